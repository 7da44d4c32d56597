//! Boot-testing a module set on the target's own kernel.
//!
//! [`boot::run_boot_test`] takes the target's linux-image package ([`linux_image`]) and our
//! modules, builds a reproducible initramfs ([`initramfs`], a newc cpio written with
//! krbd-formats) whose init loads the set in dependency order ([`deps`]), boots the package's kernel under QEMU/TCG ([`qemu`], via PVH from the
//! vmlinux inside the bzImage, [`bzimage`]), and turns the guest's console report
//! ([`guest`], typed [`guest::GuestEvent`]s) into a verdict per module. With a
//! [`cluster::Cluster`] the guest also maps an RBD image from a throwaway Ceph cluster and
//! pushes I/O through it. [`agreement`] loads the bad-module corpus into the same kind of
//! guest and compares the kernel's verdicts with the offline check's.
//!
//! Every process we start (QEMU, the Ceph daemons, `ip` and the Ceph tools) is supervised by
//! [`process`]: it dies with us and is killed and reaped when left. The shell code the
//! guests run lives in `src/guest/*.sh`, compiled in with `include_str!`. Failures are
//! [`VmError`]s; [`VmError::kind`] sorts them for exit codes.

pub mod agreement;
pub mod boot;
pub mod bzimage;
pub mod cluster;
pub mod deps;
pub mod error;
pub mod guest;
pub mod guest_root;
pub mod initramfs;
pub mod interrupt;
pub mod linux_image;
pub mod process;
pub mod qemu;
pub mod suite;

pub use boot::{
    load_our_modules, run_boot_test, run_boot_test_with_task, BootReport, BootTestSpec, GuestTask, ModuleVerdict,
};
pub use cluster::{Cluster, ClusterSpec, MsMode};
pub use error::{BusyboxProblem, ClusterFailure, ClusterStep, IoAction, VmError, VmErrorKind};
pub use linux_image::KernelPackage;
pub use process::CommandError;
