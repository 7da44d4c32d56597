//! The build: from a kernel release to loadable libceph.ko, ceph.ko and rbd.ko.
//!
//! Stages, each cached by what it depends on:
//! 1. [`target`]: resolve the release to exact Debian packages (apt's index).
//! 2. fetch: download them into the content-addressed cache (`krbd_fetch::apt`).
//! 3. [`sysroot`]: lay the headers packages out where kbuild accepts them.
//!    [`source`]: stream the kernel tarball once, keep only the Ceph files.
//! 4. [`patch`]: apply a series, hunk by hunk, with a report.
//! 5. [`kbuild`]: generate Kbuild files; build libceph, then ceph and rbd against
//!    libceph's own Module.symvers, with the kernel's own compiler.
//! 6. [`pipeline`]: publish `out/<release>/` atomically with `build-report.json` ([`report`]).

pub mod error;
pub mod kbuild;
pub mod patch;
pub mod pipeline;
pub mod report;
pub mod rhel;
pub mod source;
pub mod sysroot;
pub mod target;

pub use error::BuildError;
pub use pipeline::{build, BuildOptions, BuildOutcome, Inputs};
pub use target::KernelRelease;
