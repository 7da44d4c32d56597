//! What can go wrong while packaging, with what to do about it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The out folder is not a complete, verified set with its build report.
    #[error(transparent)]
    Set(#[from] krbd_kmod::set::SetError),
    #[error("the patched sources of build {build_key} are not in the cache ({looked}); rebuild with `krbd-forge build --kernel {release}` using the same cache (--cache-dir)")]
    SourcesMissing { build_key: String, release: String, looked: PathBuf },
    #[error("the installer {path} is not usable: {reason}")]
    BadInstaller { path: PathBuf, reason: String },
    #[error("the installer {path} needs {version} (from {library}), newer than glibc {max} of the oldest supported targets (RHEL/CentOS 7); build it with scripts/build-target-binary.sh")]
    InstallerNeedsNewerGlibc { path: PathBuf, version: String, library: String, max: &'static str },
    #[error("signing {module} failed: {reason}")]
    SignFailed { module: String, reason: String },
    #[error("{tool} is needed to {why} but was not found; install the `{package}` package")]
    ToolMissing { tool: String, package: String, why: String },
    #[error("{path}: {problem}")]
    Verify { path: PathBuf, problem: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ShipError {
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ShipError {
        let path = path.to_path_buf();
        move |source| ShipError::Io { action, path, source }
    }

    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ShipError::Io { source, .. } => Some(source.kind()),
            ShipError::Set(e) => e.io_kind(),
            _ => None,
        }
    }
}
