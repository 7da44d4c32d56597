//! Why a follow run could not do its work. A release that fails a stage is not an error
//! of the run: it is recorded in the state with its reason (see [`crate::state`]).

use std::path::PathBuf;

/// The configuration file is missing, unreadable or invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the follow configuration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("another follow run holds the lock {path}{}", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the follow state {path} cannot be used")]
    State {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the follow state {path} has schema version {found}; this krbd-forge knows up to {known}")]
    StateTooNew { path: PathBuf, found: i64, known: i64 },
    #[error("`{command}` failed: {detail}")]
    Apt { command: String, detail: String },
    #[error("the repository {url} cannot be read: {detail}")]
    Repodata { url: String, detail: String },
    #[error("{what}: no such release in the follow state")]
    UnknownRelease { what: String },
    #[error("publishing failed: {detail}")]
    Publish { detail: String },
}

impl FollowError {
    /// An I/O failure `action` on `path`, as a `map_err` argument.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FollowError {
        let path = path.into();
        move |source| FollowError::Io { action, path, source }
    }

    /// A database failure on the state at `path`, as a `map_err` argument.
    pub fn state(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> FollowError + '_ {
        move |source| FollowError::State { path: path.to_path_buf(), source }
    }
}
