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

/// A step of an install or a rollback, recorded in the journal once done. Written as
/// the same kebab-case names journals have always held (`backed-up`, `rollback-depmod`,
/// …), so journals on disk still read; a name this version does not know is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The plan is written: files to place, files to replace, what is loaded.
    Begin,
    /// The new files are copied next to their destination under names depmod ignores.
    Staged,
    /// The files to replace are copied to the state folder.
    BackedUp,
    /// The new files are renamed into place, the replaced ones removed.
    Swapped,
    Depmod,
    /// The old set is unloaded (with reload).
    Unloaded,
    /// The new set is loaded (with reload).
    Loaded,
    /// `/sys/module` shows the set's srcversion or build-id (with reload).
    Verified,
    /// The initramfs is rebuilt (with `--update-initramfs`).
    Initramfs,
    /// The install is complete.
    Committed,
    RollbackBegin,
    /// The replaced files are back and ours are gone.
    RollbackRestored,
    RollbackDepmod,
    RollbackUnloaded,
    RollbackLoaded,
    /// What is loaded is what was loaded before the install.
    RollbackVerified,
    RollbackInitramfs,
    RolledBack,
}

impl Step {
    /// Every install step, in order; a transaction runs those its options call for.
    pub const INSTALL: [Step; 10] = [
        Step::Begin,
        Step::Staged,
        Step::BackedUp,
        Step::Swapped,
        Step::Depmod,
        Step::Unloaded,
        Step::Loaded,
        Step::Verified,
        Step::Initramfs,
        Step::Committed,
    ];
    /// Every rollback step, in order.
    pub const ROLLBACK: [Step; 8] = [
        Step::RollbackBegin,
        Step::RollbackRestored,
        Step::RollbackDepmod,
        Step::RollbackUnloaded,
        Step::RollbackLoaded,
        Step::RollbackVerified,
        Step::RollbackInitramfs,
        Step::RolledBack,
    ];

    /// The name the journal records.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Begin => "begin",
            Step::Staged => "staged",
            Step::BackedUp => "backed-up",
            Step::Swapped => "swapped",
            Step::Depmod => "depmod",
            Step::Unloaded => "unloaded",
            Step::Loaded => "loaded",
            Step::Verified => "verified",
            Step::Initramfs => "initramfs",
            Step::Committed => "committed",
            Step::RollbackBegin => "rollback-begin",
            Step::RollbackRestored => "rollback-restored",
            Step::RollbackDepmod => "rollback-depmod",
            Step::RollbackUnloaded => "rollback-unloaded",
            Step::RollbackLoaded => "rollback-loaded",
            Step::RollbackVerified => "rollback-verified",
            Step::RollbackInitramfs => "rollback-initramfs",
            Step::RolledBack => "rolled-back",
        }
    }

    /// Steps that swap the loaded modules, run only with reload.
    pub fn needs_reload(self) -> bool {
        matches!(
            self,
            Step::Unloaded
                | Step::Loaded
                | Step::Verified
                | Step::RollbackUnloaded
                | Step::RollbackLoaded
                | Step::RollbackVerified
        )
    }

    /// Steps that rebuild the initramfs, run only when asked for.
    pub fn needs_initramfs(self) -> bool {
        matches!(self, Step::Initramfs | Step::RollbackInitramfs)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// Completed steps, in order (install steps, then rollback steps).
    pub steps: Vec<Step>,
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

    pub fn done(&self, step: Step) -> bool {
        self.steps.contains(&step)
    }

    pub fn last_step(&self) -> Option<Step> {
        self.steps.last().copied()
    }

    /// Writes the journal atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), InstallError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| InstallError::Journal { path: Journal::path(state_dir), reason: e.to_string() })?;
        write_atomic(&Journal::path(state_dir), &bytes)
    }

    /// Records a completed step; a crash point follows (acted on only in test builds, see
    /// the `fault` module of the `test-hooks` feature).
    pub fn record(&mut self, step: Step, state_dir: &Path) -> Result<(), InstallError> {
        self.steps.push(step);
        self.save(state_dir)?;
        crate::crash_point(format_args!("{step}"));
        Ok(())
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

    /// A journal of an install that has recorded no step yet.
    fn new_journal(reload: bool) -> Journal {
        Journal {
            format: JOURNAL_FORMAT,
            release: "r".into(),
            state: TxState::Installing,
            source: "out/r".into(),
            placed: vec![],
            replaced: vec![],
            loaded_before: BTreeMap::new(),
            reload,
            rollback_reload: false,
            update_initramfs: false,
            steps: vec![],
            failure: None,
        }
    }

    #[test]
    fn journal_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = new_journal(true);
        j.record(Step::Begin, dir.path()).unwrap();
        j.record(Step::BackedUp, dir.path()).unwrap();
        let back = Journal::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.last_step(), Some(Step::BackedUp));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(JOURNAL_FILE)]);
        std::fs::write(Journal::path(dir.path()), b"{not json").unwrap();
        assert!(matches!(Journal::read(dir.path()), Err(InstallError::Journal { .. })));
    }

    #[test]
    fn steps_keep_the_names_journals_hold() {
        for step in Step::INSTALL.into_iter().chain(Step::ROLLBACK) {
            assert_eq!(serde_json::to_value(step).unwrap(), step.as_str());
            assert_eq!(serde_json::from_value::<Step>(step.as_str().into()).unwrap(), step);
        }
        let names: Vec<&str> = Step::INSTALL.iter().chain(&Step::ROLLBACK).map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "begin",
                "staged",
                "backed-up",
                "swapped",
                "depmod",
                "unloaded",
                "loaded",
                "verified",
                "initramfs",
                "committed",
                "rollback-begin",
                "rollback-restored",
                "rollback-depmod",
                "rollback-unloaded",
                "rollback-loaded",
                "rollback-verified",
                "rollback-initramfs",
                "rolled-back"
            ]
        );
    }

    /// Without the `test-hooks` feature the crash point is inert: a build for a customer
    /// host survives the variable that would kill a test build.
    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn without_test_hooks_the_crash_variable_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = new_journal(false);
        // The variable the `fault` module reads in test builds.
        std::env::set_var("KRBD_INSTALL_CRASH_AFTER", "staged");
        j.record(Step::Staged, dir.path()).unwrap();
        std::env::remove_var("KRBD_INSTALL_CRASH_AFTER");
        assert_eq!(Journal::read(dir.path()).unwrap().unwrap().last_step(), Some(Step::Staged));
    }

    #[test]
    fn a_journal_with_an_unknown_step_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let journal = r#"{"format":1,"release":"r","state":"installing","source":"s","placed":[],"replaced":[],
            "loaded_before":{},"reload":false,"update_initramfs":false,"steps":["begin","teleported"],"failure":null}"#;
        std::fs::write(Journal::path(dir.path()), journal).unwrap();
        let read = Journal::read(dir.path());
        assert!(
            matches!(&read, Err(InstallError::Journal { reason, .. }) if reason.contains("teleported")),
            "{read:?}"
        );
        // The same journal with known steps reads.
        std::fs::write(Journal::path(dir.path()), journal.replace("teleported", "staged")).unwrap();
        assert_eq!(Journal::read(dir.path()).unwrap().unwrap().steps, [Step::Begin, Step::Staged]);
    }
}
