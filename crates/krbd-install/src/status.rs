//! `status`: installed, loaded and shipped, side by side, and the journal's state.

use crate::host::{InstalledModule, LoadedModule, TargetHost};
use crate::journal::{Journal, Step, TxState};
use crate::set::{ShippedSet, MODULE_NAMES};
use crate::InstallError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ModuleStatus {
    pub name: String,
    /// The file modprobe would load (depmod's choice).
    pub installed: Option<InstalledModule>,
    pub loaded: LoadedModule,
    /// The identity (srcversion or build-id) of the given set's module.
    pub shipped: Option<String>,
    /// Loaded equals installed (what runs is what the next boot loads).
    pub loaded_is_installed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransactionStatus {
    pub state: TxState,
    pub last_step: Option<Step>,
    pub source: String,
    pub failure: Option<String>,
    /// `rollback` would put this many files back.
    pub backed_up_files: usize,
    /// What to do about it, for people.
    pub advice: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub release: String,
    pub modules: Vec<ModuleStatus>,
    /// Installed and loaded are our set, equal to the shipped one (when given).
    pub shipped_installed: Option<bool>,
    pub shipped_loaded: Option<bool>,
    pub transaction: Option<TransactionStatus>,
    /// Why a live swap would be refused now.
    pub busy: Vec<String>,
}

pub fn status(host: &TargetHost, shipped: Option<&ShippedSet>) -> Result<Status, InstallError> {
    let modules: Vec<ModuleStatus> = MODULE_NAMES
        .iter()
        .map(|n| {
            let installed = host.installed(n);
            let loaded = host.loaded(n);
            let loaded_is_installed =
                loaded.loaded && installed.as_ref().is_some_and(|i| i.identity == loaded.identity);
            ModuleStatus {
                name: n.to_string(),
                shipped: shipped.and_then(|s| s.module(n)).map(|m| m.identity.clone()),
                installed,
                loaded,
                loaded_is_installed,
            }
        })
        .collect();
    let shipped_installed = shipped.map(|_| {
        modules
            .iter()
            .all(|m| m.installed.as_ref().is_some_and(|i| i.origin == "krbd-forge" && i.identity == m.shipped))
    });
    let shipped_loaded = shipped.map(|_| modules.iter().all(|m| m.loaded.loaded && m.loaded.identity == m.shipped));
    let transaction = Journal::read(&host.state_dir())?.map(|j| TransactionStatus {
        advice: match j.state {
            TxState::Installing => {
                "an install was interrupted: rerun the same install to finish it, or `krbd-forge rollback`".into()
            }
            TxState::RollingBack => "a rollback was interrupted: rerun `krbd-forge rollback` to finish it".into(),
            TxState::Installed => "installed; `krbd-forge rollback` restores the previous set".into(),
            TxState::RolledBack => "rolled back; nothing left to undo".into(),
        },
        state: j.state,
        last_step: j.last_step(),
        source: j.source.clone(),
        failure: j.failure.clone(),
        backed_up_files: if j.state == TxState::Installed { j.replaced.len() } else { 0 },
    });
    Ok(Status {
        release: host.release.clone(),
        modules,
        shipped_installed,
        shipped_loaded,
        transaction,
        busy: host.busy_reasons(),
    })
}
