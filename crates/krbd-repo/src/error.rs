//! What can go wrong while publishing, with what to do about it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{tool} is needed to {why} but was not found; install the `{package}` package")]
    ToolMissing { tool: String, package: String, why: String },
    #[error("{tool} failed while it tried to {why} (exit status {status}): {stderr}")]
    ToolFailed { tool: String, why: String, status: String, stderr: String },
    #[error("{setting} {value:?} is not valid: use letters, digits, '.', '_' and '-' only")]
    BadSetting { setting: &'static str, value: String },
    #[error("the signing key {key} cannot be used: {reason}")]
    BadKey { key: String, reason: String },
    #[error("{path} is not a package this repository takes: {reason}")]
    BadPackage { path: PathBuf, reason: String },
    #[error("{package} {version} ({architecture}) is already published with different contents; a published version never changes, so build it with a new version")]
    Conflict { package: String, version: String, architecture: String },
    #[error("the repository {root} is not usable: {reason}")]
    Corrupt { root: PathBuf, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RepoError {
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RepoError {
        let path = path.to_path_buf();
        move |source| RepoError::Io { action, path, source }
    }
}
