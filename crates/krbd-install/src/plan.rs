//! The plan of an install, written to the journal before anything changes: which files it
//! places under `updates/krbd-forge/`, which files it moves aside (an older copy of ours, or
//! a competing copy under updates/extra), and what is loaded now.

use crate::host::TargetHost;
use crate::journal::{Journal, PlacedFile, ReplacedFile, TxState, JOURNAL_FORMAT};
use crate::set::{module_identity, sha256_file, ShippedSet, MODULE_NAMES};
use crate::txn::InstallOptions;
use crate::InstallError;
use krbd_kmod::KernelModule;
use std::path::PathBuf;

/// A journal in state `installing` with no step recorded yet, and notes for the user.
pub fn plan_install(
    set: &ShippedSet,
    host: &TargetHost,
    options: &InstallOptions,
) -> Result<(Journal, Vec<String>), InstallError> {
    let placed = placed_files(set, host);
    let replaced = replaced_files(host, &placed)?;
    let notes = competing_copy_notes(host, &replaced);
    let journal = Journal {
        format: JOURNAL_FORMAT,
        release: host.release.clone(),
        state: TxState::Installing,
        source: set.source.display().to_string(),
        placed,
        replaced,
        loaded_before: MODULE_NAMES.iter().map(|n| (n.to_string(), host.loaded(n))).collect(),
        reload: options.reload,
        rollback_reload: false,
        update_initramfs: options.update_initramfs,
        steps: Vec::new(),
        failure: None,
    };
    Ok((journal, notes))
}

/// The set's modules, each at `updates/krbd-forge/<name>.ko`.
fn placed_files(set: &ShippedSet, host: &TargetHost) -> Vec<PlacedFile> {
    let install_dir = host.install_dir();
    set.modules
        .iter()
        .map(|m| PlacedFile {
            name: m.name.clone(),
            path: host.rel(&install_dir.join(format!("{}.ko", m.name))),
            sha256: m.sha256.clone(),
            identity: m.identity.clone(),
        })
        .collect()
}

/// The files the install moves aside: what is at our destinations now, and other copies of
/// the modules that depmod could prefer. A file that a package owns stops the install.
fn replaced_files(host: &TargetHost, placed: &[PlacedFile]) -> Result<Vec<ReplacedFile>, InstallError> {
    let mut to_replace: Vec<PathBuf> = placed.iter().map(|p| host.abs(&p.path)).filter(|p| p.exists()).collect();
    to_replace.extend(host.competing_files(&MODULE_NAMES));
    let mut replaced = Vec::with_capacity(to_replace.len());
    for path in &to_replace {
        if let Some(package) = host.package_owner(path) {
            return Err(InstallError::PackageOwned { path: path.clone(), package });
        }
        let rel = host.rel(path);
        let identity = KernelModule::read(path).ok().and_then(|m| module_identity(&m));
        replaced.push(ReplacedFile {
            backup: format!("backup/{}", rel.trim_start_matches('/')),
            path: rel,
            sha256: sha256_file(path)?,
            identity,
        });
    }
    Ok(replaced)
}

/// A note per module of which another copy outside our folder is moved aside.
fn competing_copy_notes(host: &TargetHost, replaced: &[ReplacedFile]) -> Vec<String> {
    let ours = host.rel(&host.install_dir());
    MODULE_NAMES
        .iter()
        .filter(|n| replaced.iter().any(|r| r.path.ends_with(&format!("/{n}.ko")) && !r.path.starts_with(&ours)))
        .map(|n| {
            format!(
                "another copy of {n} in updates/extra is moved aside (backed up) so that ours is the one depmod picks"
            )
        })
        .collect()
}
