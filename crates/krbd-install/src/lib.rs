//! Installing a module set (libceph, ceph, rbd) on a target host as one transaction.
//!
//! The set goes to `/lib/modules/<release>/updates/krbd-forge/`: depmod's default search
//! order puts `updates/` before the in-tree `kernel/` folder on Debian and RHEL, so the
//! stock modules are shadowed, never touched. Every step is written to a journal
//! ([`journal`]) before the next begins, so a rerun after a crash (or a `kill -9`) either
//! finishes the transaction or rolls it back; the host never keeps a mixed set.
//!
//! Everything on the host is addressed relative to a root folder ([`host::TargetHost`]), so
//! tests run on a scratch root; loading and unloading goes through the [`kernel::Kernel`]
//! trait, so host tests never touch the running kernel.
//!
//! Where things are: [`txn`] is the state machine (install, rollback, recovery); [`plan`]
//! decides which files an install places and moves aside; [`steps`] is what each journaled
//! step does on the host; [`load_check`] finds the release's headers and checks the set
//! against them before anything changes; [`journal`] records the steps.
//!
//! The tests' fault injection (a crash point, a simulated kernel) exists only with the
//! `test-hooks` feature, in the `fault` module; without it the crash points do nothing.

pub mod host;
pub mod journal;
pub mod kernel;
pub mod load_check;
pub mod plan;
pub mod set;
pub mod status;
pub mod steps;
pub mod txn;

#[cfg(feature = "test-hooks")]
pub mod fault;
#[cfg(any(test, feature = "test-hooks"))]
pub mod simulated;

pub use host::{infer_release, InstalledModule, LoadedModule, TargetHost};
pub use journal::{Journal, Step, TxState};
pub use kernel::{Kernel, KernelOpError, RealKernel};
pub use load_check::LoadCheck;
pub use set::{ShippedModule, ShippedSet, MODULE_NAMES};
#[cfg(any(test, feature = "test-hooks"))]
pub use simulated::SimulatedKernel;
pub use status::{status, ModuleStatus, Status};
pub use steps::StepError;
pub use txn::{install, rollback, InstallOptions, Outcome, RollbackOptions};

use std::path::PathBuf;

/// Everything that stops an install, a rollback or a status.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The folder is not a complete, verified module set.
    #[error(transparent)]
    Set(#[from] krbd_kmod::set::SetError),
    #[error("{path} has neither a srcversion nor a GNU build-id, so the loaded module could not be verified")]
    Unidentifiable { path: PathBuf },
    #[error("the set is built for {set_release} but the target runs/names {target_release}; build for the target (krbd-forge build --kernel {target_release}) or pass --kernel {set_release} to install for that release")]
    ReleaseMismatch { set_release: String, target_release: String },
    #[error("{dir} does not exist: kernel {release} is not installed on this host (under root {root})")]
    NoSuchKernel { dir: PathBuf, release: String, root: PathBuf },
    #[error("cannot tell the target release: {reason}; pass --kernel RELEASE")]
    UnknownRelease { reason: String },
    #[error("no description of kernel {release} to check the set against (looked for {looked}); install its headers ({package}), or pass --headers DIR, or --skip-load-check")]
    NoLoadCheckTarget {
        release: String,
        looked: String,
        /// The headers package of the target's family (see [`load_check::headers_package`]).
        package: String,
    },
    #[error("the load check failed: {source}")]
    LoadCheck {
        #[source]
        source: krbd_kmod::CheckError,
    },
    #[error("the kernel would refuse this set, nothing was changed:\n{}", .verdicts.join("\n"))]
    WouldNotLoad { verdicts: Vec<String> },
    #[error("{path} is owned by the package {package}; nothing was changed. Upgrade or remove that package with the package manager instead")]
    PackageOwned { path: PathBuf, package: String },
    #[error("refusing to swap the loaded modules, nothing was changed: {}; unmap/unmount first, or pass --no-reload (the new set then takes effect at the next boot)", .reasons.join("; "))]
    Busy { reasons: Vec<String> },
    #[error("another krbd-forge install or rollback is running on {release} (lock {lock})")]
    Locked { release: String, lock: PathBuf },
    #[error("nothing to roll back for {release}: {reason}")]
    NothingToRollBack { release: String, reason: String },
    #[error("{operation} failed at step {step}: {cause}; the previous set was restored (rollback complete)")]
    RolledBack {
        operation: &'static str,
        step: Step,
        #[source]
        cause: StepError,
    },
    #[error("{operation} failed at step {step}: {reason}; then the rollback failed too: {rollback_reason}. The journal {journal} records where it stopped: fix the cause and rerun `krbd-forge rollback`")]
    RollbackFailed { operation: &'static str, step: String, reason: String, rollback_reason: String, journal: PathBuf },
    #[error("kernel {release} is not the running kernel ({running}): its modules cannot be loaded now; add --no-reload (the set takes effect when {release} boots)")]
    NotRunningKernel { release: String, running: String },
    #[error("the set is installed and takes effect at the next boot, but swapping the loaded modules failed: {cause}; `krbd-forge rollback` restores the previous set")]
    ReloadFailed {
        #[source]
        cause: StepError,
    },
    #[error("journal {path} is unreadable: {reason}; inspect it and the files it names before removing it")]
    Journal { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A point where the tests' fault injection may kill the process: after a journaled step,
/// or inside a step after one module (`swapped:rbd`). Only builds with the `test-hooks`
/// feature act on it (see `fault`); in every other build this does nothing.
#[inline]
pub(crate) fn crash_point(point: std::fmt::Arguments<'_>) {
    #[cfg(feature = "test-hooks")]
    fault::crash_point(&point.to_string());
    #[cfg(not(feature = "test-hooks"))]
    let _ = point;
}

impl InstallError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
        let what = what.into();
        move |source| InstallError::Io { what, source }
    }
}
