//! The journal: one small JSON file per release, rewritten atomically (write a temporary
//! file, fsync it, rename it over the old one, fsync the folder) after every step, so that
//! after a crash it names the last step that was completed, never a half-written one.

use crate::host::LoadedModule;
use crate::InstallError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const JOURNAL_FORMAT: u32 = 1;
pub const JOURNAL_FILE: &str = "journal.json";

/// Tests set this to a step name: the process kills itself (SIGKILL) right after the
/// journal records that step, as a crash or `kill -9` at that point would.
pub const CRASH_ENV: &str = "KRBD_INSTALL_CRASH_AFTER";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxState {
    /// An install is under way (or was interrupted).
    Installing,
    /// The install finished; the backup holds the previous set for `rollback`.
    Installed,
    /// A rollback is under way (or was interrupted).
    RollingBack,
    /// The previous set is back; nothing left to roll back.
    RolledBack,
}

/// A module file the transaction puts in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedFile {
    pub name: String,
    /// Relative to the root.
    pub path: String,
    pub sha256: String,
    pub identity: String,
}

/// A file the transaction moved aside; its copy is in the backup folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedFile {
    /// Where it was, relative to the root.
    pub path: String,
    /// Relative to the state folder.
    pub backup: String,
    pub sha256: String,
    pub identity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub release: String,
    pub state: TxState,
    /// Where the set came from (for people).
    pub source: String,
    pub placed: Vec<PlacedFile>,
    pub replaced: Vec<ReplacedFile>,
    /// `/sys/module/<name>` of libceph, ceph and rbd before the install.
    pub loaded_before: BTreeMap<String, LoadedModule>,
    /// The install swaps the loaded modules.
    pub reload: bool,
    /// The current rollback swaps the loaded modules back.
    #[serde(default)]
    pub rollback_reload: bool,
    pub update_initramfs: bool,
    /// Completed steps, in order (install steps, then `rollback-*` steps).
    pub steps: Vec<String>,
    /// Why the install failed, when it rolled back by itself.
    pub failure: Option<String>,
}

impl Journal {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(JOURNAL_FILE)
    }

    pub fn read(state_dir: &Path) -> Result<Option<Journal>, InstallError> {
        let path = Journal::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let j: Journal = serde_json::from_slice(&bytes)
                    .map_err(|e| InstallError::Journal { path: path.clone(), reason: e.to_string() })?;
                if j.format != JOURNAL_FORMAT {
                    return Err(InstallError::Journal {
                        path,
                        reason: format!("format {} is not {JOURNAL_FORMAT}", j.format),
                    });
                }
                Ok(Some(j))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(InstallError::io(format!("read {}", path.display()))(e)),
        }
    }

    pub fn done(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s == step)
    }

    pub fn last_step(&self) -> Option<&str> {
        self.steps.last().map(String::as_str)
    }

    /// Writes the journal atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), InstallError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| InstallError::Journal { path: Journal::path(state_dir), reason: e.to_string() })?;
        write_atomic(&Journal::path(state_dir), &bytes)
    }

    /// Records a completed step, then honours the crash hook.
    pub fn record(&mut self, step: &str, state_dir: &Path) -> Result<(), InstallError> {
        self.steps.push(step.to_string());
        self.save(state_dir)?;
        crash_point(step);
        Ok(())
    }
}

/// The fault-injection hook (see [`CRASH_ENV`]).
pub fn crash_point(step: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|s| s == step) {
        // SAFETY: plain syscalls; the process ends here, as it would under `kill -9`.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Writes `path` so that it holds either the old or the new bytes after a crash
/// (krbd-formats' [`krbd_formats::atomic::write_atomic`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    krbd_formats::atomic::write_atomic(path, bytes)
        .map_err(|e| InstallError::Io { what: format!("{} {}", e.step, e.path.display()), source: e.source })
}

/// Copies `from` to `to` atomically (temporary name in `to`'s folder, fsync, rename).
/// The temporary name does not end in `.ko`, so depmod never sees a half-copied module.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), InstallError> {
    let data = std::fs::read(from).map_err(InstallError::io(format!("read {}", from.display())))?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(InstallError::io(format!("create {}", dir.display())))?;
    }
    write_atomic(to, &data)
}

pub fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    krbd_formats::atomic::sync_dir(dir).map_err(InstallError::io(format!("fsync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal {
            format: JOURNAL_FORMAT,
            release: "r".into(),
            state: TxState::Installing,
            source: "out/r".into(),
            placed: vec![],
            replaced: vec![],
            loaded_before: BTreeMap::new(),
            reload: true,
            rollback_reload: false,
            update_initramfs: false,
            steps: vec![],
            failure: None,
        };
        j.record("begin", dir.path()).unwrap();
        let back = Journal::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.last_step(), Some("begin"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(JOURNAL_FILE)]);
        std::fs::write(Journal::path(dir.path()), b"{not json").unwrap();
        assert!(matches!(Journal::read(dir.path()), Err(InstallError::Journal { .. })));
    }
}
