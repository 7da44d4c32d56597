//! Boot-testing a module set on the target's own kernel.
//!
//! [`boot::run_boot_test`] takes the target's linux-image package ([`linux_image`]) and our
//! modules, builds a reproducible initramfs ([`initramfs`], a newc cpio written with
//! krbd-formats) whose init loads the set in dependency order ([`deps`]), boots the package's kernel under QEMU/TCG ([`qemu`], via PVH from the
//! vmlinux inside the bzImage, [`bzimage`]), and turns the guest's console report
//! ([`guest`]) into a verdict per module. With a [`cluster::Cluster`] the guest also maps an
//! RBD image from a throwaway Ceph cluster and pushes I/O through it.

pub mod agreement;
pub mod boot;
pub mod bzimage;
pub mod cluster;
pub mod deps;
pub mod guest;
pub mod initramfs;
pub mod interrupt;
pub mod linux_image;
pub mod qemu;

pub use boot::{
    load_our_modules, run_boot_test, run_boot_test_with_task, BootReport, BootTestSpec, GuestTask, ModuleVerdict,
};
pub use cluster::{Cluster, ClusterSpec};
pub use linux_image::KernelPackage;

use std::path::PathBuf;

/// Everything that can stop a boot test from reaching a verdict.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("kernel package {deb}: {reason}")]
    KernelPackage { deb: PathBuf, reason: String },
    #[error("kernel image: {reason}")]
    BzImage { reason: String },
    #[error("cannot decompress {what}: {reason}")]
    Decompress { what: String, reason: String },
    #[error("module {origin}: {reason}")]
    BadModule { origin: String, reason: String },
    #[error("modules folder {dir}: {reason}")]
    OurModules { dir: PathBuf, reason: String },
    #[error("module {module} (needed by {needed_by}) is neither in our set nor in the linux-image package of {release}, nor built in; add it to the modules folder")]
    MissingDependency { module: String, needed_by: String, release: String },
    #[error("modules depend on each other in a cycle through {module} (reached from {via})")]
    DependencyCycle { module: String, via: String },
    #[error("busybox {path}: {reason}")]
    Busybox { path: PathBuf, reason: String },
    #[error("building the initramfs failed: {reason}")]
    Initramfs { reason: String },
    #[error("QEMU ({program}) not found or not runnable ({path_env}); install qemu-system-x86 (scripts/install-deps.sh) or pass --qemu")]
    QemuMissing { program: PathBuf, path_env: String },
    #[error("the guest did not finish within {seconds} s (QEMU killed); last report: {last_report}; serial log {serial_log}, relevant lines:\n{}", .lines.join("\n"))]
    GuestTimeout { seconds: u64, last_report: String, serial_log: PathBuf, lines: Vec<String> },
    #[error("QEMU exited ({status}) before the guest finished; serial log {serial_log}; QEMU said: {qemu_stderr}; relevant lines:\n{}", .lines.join("\n"))]
    GuestDied { status: String, qemu_stderr: String, serial_log: PathBuf, lines: Vec<String> },
    #[error("interrupted by a signal; QEMU and the cluster were stopped")]
    Interrupted,
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
    #[error("Ceph cluster: {step} failed: {reason}")]
    Cluster { step: String, reason: String },
    #[error("network namespace: {step} failed: {reason}; boot tests with --cluster need root and iproute2")]
    Netns { step: String, reason: String },
}
