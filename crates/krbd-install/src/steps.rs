//! What each journaled step does on the host. Every step is idempotent: a rerun after a
//! crash repeats the step that was not recorded yet, whatever part of it was done.

use crate::host::{module_file_name, LoadedModule, TargetHost};
use crate::journal::{copy_atomic, sync_dir, Journal, Step};
use crate::kernel::{Kernel, KernelOpError};
use crate::set::{sha256_file, ShippedSet, MODULE_NAMES};
use crate::{crash_point, InstallError};
use std::path::{Path, PathBuf};

/// Why a step failed (the transaction then rolls back).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Kernel(#[from] KernelOpError),
    #[error(transparent)]
    Files(Box<InstallError>),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the set has no {name}")]
    NotInSet { name: String },
    #[error("{} was copied but reads back with sha256 {found}, not {expected}", path.display())]
    StagedCopyDiffers { path: PathBuf, found: String, expected: String },
    #[error("the backup {} differs from {original}", backup.display())]
    BackupDiffers { backup: PathBuf, original: String },
    #[error("{} is neither staged nor in place", path.display())]
    NeitherStagedNorInPlace { path: PathBuf },
    #[error("{} was restored but its sha256 differs from the original's", path.display())]
    RestoredCopyDiffers { path: PathBuf },
    #[error("cannot unload: {}", reasons.join("; "))]
    Busy { reasons: Vec<String> },
    #[error("{name} is not loaded after modprobe")]
    NotLoaded { name: String },
    #[error(
        "/sys/module/{name} shows {}, the shipped set's module is {expected}",
        found.as_deref().unwrap_or("no srcversion and no build-id")
    )]
    WrongModuleLoaded { name: String, found: Option<String>, expected: String },
    #[error(
        "{name}: loaded {} ({:?}) after the rollback, before the install loaded {} ({:?})",
        now.loaded, now.identity, before.loaded, before.identity
    )]
    NotAsBefore { name: String, now: LoadedModule, before: LoadedModule },
    #[error("{step} is not a step of {transaction}")]
    OutOfPlace { step: Step, transaction: &'static str },
}

impl From<InstallError> for StepError {
    fn from(e: InstallError) -> StepError {
        StepError::Files(Box::new(e))
    }
}

/// Where a file is staged next to its destination, under a name depmod ignores.
pub fn staged_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.krbd-new"))
}

/// `staged`: copies the set's files next to their destinations and reads them back.
pub fn stage(set: &ShippedSet, host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    for p in &j.placed {
        let m = set.module(&p.name).ok_or_else(|| StepError::NotInSet { name: p.name.clone() })?;
        let staged = staged_path(&host.abs(&p.path));
        copy_atomic(&m.path, &staged)?;
        let found = sha256_file(&staged)?;
        if found != p.sha256 {
            return Err(StepError::StagedCopyDiffers { path: staged, found, expected: p.sha256.clone() });
        }
    }
    Ok(())
}

/// `backed-up`: copies the files to replace into the state folder and reads them back.
pub fn back_up(host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    for r in &j.replaced {
        let to = host.state_dir().join(&r.backup);
        copy_atomic(&host.abs(&r.path), &to)?;
        if sha256_file(&to)? != r.sha256 {
            return Err(StepError::BackupDiffers { backup: to, original: r.path.clone() });
        }
    }
    Ok(())
}

/// `swapped`: renames the staged files into place and removes the replaced files that are
/// not overwritten (competing copies elsewhere under updates/extra).
pub fn swap(host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    let mut dirs = Vec::new();
    for p in &j.placed {
        let dest = host.abs(&p.path);
        let staged = staged_path(&dest);
        if staged.exists() {
            std::fs::rename(&staged, &dest).map_err(|source| StepError::Io {
                what: format!("rename {} to {}", staged.display(), dest.display()),
                source,
            })?;
            // A crash here leaves the files half swapped: the test of the rerun.
            crash_point(format_args!("{}:{}", Step::Swapped, p.name));
        } else if sha256_file(&dest)? != p.sha256 {
            return Err(StepError::NeitherStagedNorInPlace { path: dest });
        }
        dirs.extend(dest.parent().map(Path::to_path_buf));
    }
    let placed: Vec<&str> = j.placed.iter().map(|p| p.path.as_str()).collect();
    for r in j.replaced.iter().filter(|r| !placed.contains(&r.path.as_str())) {
        let path = host.abs(&r.path);
        if remove_if_present(&path)? {
            dirs.extend(path.parent().map(Path::to_path_buf));
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.iter().try_for_each(|d| sync_dir(d).map_err(StepError::from))
}

/// Removes a file; `false` if it was not there.
fn remove_if_present(path: &Path) -> Result<bool, StepError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StepError::Io { what: format!("remove {}", path.display()), source }),
    }
}

/// Unloads rbd, ceph and libceph (users first), refusing while a device or mount uses them.
/// `crash_label` names the crash points after each module (`<crash_label>:<module>`).
pub fn unload_set(host: &TargetHost, kernel: &dyn Kernel, crash_label: &str) -> Result<(), StepError> {
    let reasons = host.busy_reasons();
    if !reasons.is_empty() {
        return Err(StepError::Busy { reasons });
    }
    for n in MODULE_NAMES.iter().rev() {
        if host.loaded(n).loaded {
            kernel.unload(host, n)?;
            crash_point(format_args!("{crash_label}:{n}"));
        }
    }
    Ok(())
}

/// Loads `names` in order (modprobe pulls in what each depends on).
pub fn load_set<'a>(
    host: &TargetHost,
    kernel: &dyn Kernel,
    names: impl Iterator<Item = &'a str>,
    crash_label: &str,
) -> Result<(), StepError> {
    for n in names {
        kernel.load(host, n)?;
        crash_point(format_args!("{crash_label}:{n}"));
    }
    Ok(())
}

/// `verified`: `/sys/module` shows the srcversion or build-id of every module placed.
pub fn verify_shipped(host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    for p in &j.placed {
        let now = host.loaded(&p.name);
        if !now.loaded {
            return Err(StepError::NotLoaded { name: p.name.clone() });
        }
        if now.identity.as_deref() != Some(p.identity.as_str()) {
            return Err(StepError::WrongModuleLoaded {
                name: p.name.clone(),
                found: now.identity,
                expected: p.identity.clone(),
            });
        }
    }
    Ok(())
}

/// `rollback-unloaded`: unloads the set unless what is loaded is already what was loaded
/// before the install.
pub fn unload_unless_as_before(host: &TargetHost, kernel: &dyn Kernel, j: &Journal) -> Result<(), StepError> {
    if MODULE_NAMES.iter().all(|n| j.loaded_before.get(*n) == Some(&host.loaded(n))) {
        return Ok(());
    }
    unload_set(host, kernel, Step::RollbackUnloaded.as_str())
}

/// `rollback-loaded`: loads the modules that were loaded before the install.
pub fn load_as_before(host: &TargetHost, kernel: &dyn Kernel, j: &Journal) -> Result<(), StepError> {
    let were_loaded = MODULE_NAMES.iter().copied().filter(|n| j.loaded_before.get(*n).is_some_and(|l| l.loaded));
    load_set(host, kernel, were_loaded, Step::RollbackLoaded.as_str())
}

/// `rollback-verified`: what is loaded is what was loaded before the install.
pub fn verify_as_before(host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    MODULE_NAMES.iter().try_for_each(|n| {
        let now = host.loaded(n);
        match j.loaded_before.get(*n) {
            Some(before) if *before != now => {
                Err(StepError::NotAsBefore { name: n.to_string(), now, before: before.clone() })
            }
            _ => Ok(()),
        }
    })
}

/// `rollback-restored`: puts the replaced files back and removes ours. Before the backup
/// is complete the swap has not begun, so only the staged copies are removed.
pub fn restore(host: &TargetHost, j: &Journal) -> Result<(), StepError> {
    let backed_up = j.done(Step::BackedUp);
    for p in &j.placed {
        let dest = host.abs(&p.path);
        let _ = std::fs::remove_file(staged_path(&dest));
        if backed_up {
            remove_if_present(&dest)?;
        }
    }
    if backed_up {
        for r in &j.replaced {
            let from = host.state_dir().join(&r.backup);
            let to = host.abs(&r.path);
            copy_atomic(&from, &to)?;
            if sha256_file(&to)? != r.sha256 {
                return Err(StepError::RestoredCopyDiffers { path: to });
            }
            if let Some(n) = module_file_name(&r.path) {
                crash_point(format_args!("{}:{n}", Step::RollbackRestored));
            }
        }
    }
    let dir = host.install_dir();
    if dir.is_dir() {
        sync_dir(&dir)?;
    }
    Ok(())
}
