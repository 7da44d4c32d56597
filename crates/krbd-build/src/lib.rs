//! The build: from a kernel release to loadable libceph.ko, ceph.ko and rbd.ko.
//!
//! Stages, each cached by what it depends on ([`stages`] times them):
//! 1. [`target`]: resolve the release to exact Debian packages (apt's index).
//! 2. fetch: download them into the content-addressed cache (`krbd_fetch::apt`);
//!    [`debian`] does 1-2 and lays the target out. RHEL-family targets take the
//!    [`rhel`] path instead: the vault catalog, the source RPM and kernel-devel RPM.
//! 3. [`sysroot`]: lay the headers packages out where kbuild accepts them.
//!    [`source`]: stream the kernel tarball once, keep only the Ceph files.
//! 4. [`patch`]: apply a series, hunk by hunk, with a report.
//! 5. [`kbuild`]: generate Kbuild files; build libceph, then ceph and rbd against
//!    libceph's own Module.symvers, with the kernel's own compiler.
//! 6. [`pipeline`]: runs 1-5, checks the set loads, and publishes `out/<release>/`
//!    atomically with `build-report.json` ([`report`]).
//!
//! Beside the build: [`patch_check`] tries a series' variants on a source without
//! building; [`cache_listing`] says what the cache already holds.

pub mod cache_listing;
pub mod debian;
pub mod error;
mod json_file;
pub mod kbuild;
pub mod patch;
pub mod patch_check;
pub mod pipeline;
pub mod report;
pub mod rhel;
pub mod source;
pub mod stages;
pub mod sysroot;
pub mod target;

pub use debian::{prepare_debian, KernelDebs, PreparedTarget};
pub use error::BuildError;
pub use pipeline::{build, BuildOptions, BuildOutcome, Inputs};
pub use stages::Stages;
pub use target::KernelRelease;
