//! Following a distribution's kernels: every new release of the followed lines built,
//! proven and published before any host can boot it.
//!
//! One run ([`run::run`]) takes the state's lock ([`lock`]), updates a private apt
//! ([`private_apt`]) and lists the releases the mirrors offer ([`discover`]), then works
//! each release it has not handled through its stages ([`job::Stage`]: build, check,
//! boot-test --cluster for Debian, package, publish), each stage being the normal
//! krbd-forge command line run as a child process. Everything it learns is kept in SQLite
//! ([`state`]): releases, inputs' hashes, each stage's verdict, times, artifacts and
//! reasons. A stage's result is recorded only after its artifacts are in place, and only a
//! release whose every stage passed is published ([`publish`], through krbd-repo), so a
//! run killed at any point resumes on the next one. [`config`] reads the TOML file.
//! A run first stops what a killed run left running ([`orphans`]), and redoes a stage in a
//! fresh folder renamed into place only when the stage succeeded.
//! A failed release waits for [`retry`].
//! [`plan`] lists the same work as jobs for a CI system's runners and takes their outputs
//! back. Nothing here prints; progress goes through [`krbd_progress::Listener`].

pub mod config;
pub mod discover;
pub mod error;
pub mod fault;
pub mod job;
pub mod lock;
pub mod orphans;
pub mod plan;
pub mod private_apt;
pub mod publish;
pub mod retry;
pub mod run;
pub mod state;

pub use config::FollowConfig;
pub use error::{ConfigError, FollowError};

use std::path::{Path, PathBuf};

/// The SQLite database of a configuration's state folder.
pub fn state_path(config: &FollowConfig) -> PathBuf {
    config.state_dir.join("state.db")
}

/// [`krbd_formats::atomic::write_atomic`], as a follow error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FollowError> {
    krbd_formats::atomic::write_atomic(path, bytes).map_err(|e| FollowError::Io {
        action: e.step,
        path: e.path,
        source: e.source,
    })
}
