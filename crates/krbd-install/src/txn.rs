//! The install and rollback transactions: the state machine over the journal's [`Step`]s.
//!
//! Install steps, each recorded in the journal once done: `begin` (plan written, see
//! [`crate::plan`]), `staged`, `backed-up`, `swapped`, `depmod`, then with reload
//! `unloaded`, `loaded`, `verified` (/sys/module srcversion or build-id equal the set's),
//! with `--update-initramfs` `initramfs`, and `committed`. What each step does is in
//! [`crate::steps`].
//!
//! Every step is idempotent, so a rerun resumes after the last recorded step. A failure
//! rolls back by itself: `rollback-begin`, `rollback-restored`, `rollback-depmod`, with
//! reload `rollback-unloaded`, `rollback-loaded`, `rollback-verified`, then
//! `rollback-initramfs` when asked for, and `rolled-back`.

use crate::host::{InstalledModule, LoadedModule, TargetHost};
use crate::journal::{Journal, Step, TxState};
use crate::kernel::{depmod, Kernel};
use crate::load_check::{load_check, LoadCheck};
use crate::set::{sha256_file, ShippedSet, MODULE_NAMES};
use crate::steps::{self, StepError};
use crate::InstallError;
use krbd_progress::Listener;
use serde::Serialize;
use std::fs::File;

#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Swap the loaded modules now (otherwise the set takes effect at the next boot).
    pub reload: bool,
    pub update_initramfs: bool,
    pub load_check: LoadCheck,
}

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub reload: bool,
}

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub operation: &'static str,
    pub release: String,
    /// What was done about an interrupted transaction found at the start.
    pub recovered: Option<String>,
    /// Steps run by this invocation, in order.
    pub steps: Vec<Step>,
    pub reloaded: bool,
    /// The load check's summary (`None`: skipped or not run).
    pub load_check: Option<String>,
    pub initramfs: Option<String>,
    pub modules: Vec<ModuleAfter>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleAfter {
    pub name: String,
    pub installed: Option<InstalledModule>,
    pub loaded: LoadedModule,
}

impl Outcome {
    fn new(operation: &'static str, host: &TargetHost) -> Outcome {
        Outcome {
            operation,
            release: host.release.clone(),
            recovered: None,
            steps: Vec::new(),
            reloaded: false,
            load_check: None,
            initramfs: None,
            modules: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn finish(mut self, host: &TargetHost) -> Outcome {
        self.modules = MODULE_NAMES
            .iter()
            .map(|n| ModuleAfter { name: n.to_string(), installed: host.installed(n), loaded: host.loaded(n) })
            .collect();
        self
    }
}

/// Holds the per-release lock for the length of a transaction (released on drop, and by
/// the kernel when the process dies, also under kill -9).
struct Lock {
    _file: File,
}

fn lock(host: &TargetHost) -> Result<Lock, InstallError> {
    let dir = host.state_dir();
    std::fs::create_dir_all(&dir).map_err(InstallError::io(format!("create {}", dir.display())))?;
    let path = dir.join("lock");
    let f = File::create(&path).map_err(InstallError::io(format!("create {}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(Lock { _file: f }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(InstallError::Locked { release: host.release.clone(), lock: path })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(InstallError::io(format!("lock {}", path.display()))(e)),
    }
}

fn same_set(j: &Journal, set: &ShippedSet) -> bool {
    j.placed.len() == set.modules.len()
        && set.modules.iter().all(|m| j.placed.iter().any(|p| p.name == m.name && p.sha256 == m.sha256))
}

fn last_step_name(j: &Journal) -> &'static str {
    j.last_step().map_or("none", Step::as_str)
}

/// What an install does after looking at the journal it finds.
enum Start {
    /// Plan a new transaction.
    Fresh,
    /// Nothing left to do: this set's install was resumed and finished, or it was
    /// installed already.
    Finished,
}

/// Installs `set` on `host` as one transaction (see the module docs).
pub fn install(
    set: &ShippedSet,
    host: &TargetHost,
    options: &InstallOptions,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
) -> Result<Outcome, InstallError> {
    if set.release != host.release {
        return Err(InstallError::ReleaseMismatch {
            set_release: set.release.clone(),
            target_release: host.release.clone(),
        });
    }
    let _lock = lock(host)?;
    let mut outcome = Outcome::new("install", host);
    if options.reload {
        check_running(host)?;
    }
    if let Start::Finished = settle_previous(set, host, options, kernel, listener, &mut outcome)? {
        return Ok(outcome.finish(host));
    }
    outcome.load_check = load_check(set, host, &options.load_check)?;
    if options.reload {
        refuse_if_busy(host)?;
    }
    let (mut j, notes) = crate::plan::plan_install(set, host, options)?;
    outcome.notes.extend(notes);
    let state_dir = host.state_dir();
    let backup_dir = state_dir.join("backup");
    if backup_dir.exists() {
        // The previous transaction is complete; its backup is superseded by this one's.
        std::fs::remove_dir_all(&backup_dir).map_err(InstallError::io(format!("remove {}", backup_dir.display())))?;
    }
    j.record(Step::Begin, &state_dir)?;
    outcome.steps.push(Step::Begin);
    outcome.reloaded = options.reload;
    forward(j, set, host, kernel, listener, &mut outcome)?;
    Ok(outcome.finish(host))
}

/// Looks at the journal of the last transaction: resumes an interrupted install of this
/// set, rolls back an interrupted transaction of another, or notices that this set is
/// installed already.
fn settle_previous(
    set: &ShippedSet,
    host: &TargetHost,
    options: &InstallOptions,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
    outcome: &mut Outcome,
) -> Result<Start, InstallError> {
    let state_dir = host.state_dir();
    let Some(mut j) = Journal::read(&state_dir)? else { return Ok(Start::Fresh) };
    match j.state {
        TxState::Installing if same_set(&j, set) => {
            let recovered = format!("resumed the interrupted install of this set after step {}", last_step_name(&j));
            listener.info(&recovered);
            outcome.recovered = Some(recovered);
            outcome.reloaded = j.reload;
            forward(j, set, host, kernel, listener, outcome)?;
            Ok(Start::Finished)
        }
        TxState::Installing | TxState::RollingBack => {
            let last = last_step_name(&j);
            let reload = j.reload || j.rollback_reload;
            run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps).map_err(|(step, cause)| {
                InstallError::RollbackFailed {
                    operation: "recovery of an interrupted transaction",
                    step: last.to_string(),
                    reason: "interrupted".into(),
                    rollback_reason: format!("{step}: {cause}"),
                    journal: Journal::path(&state_dir),
                }
            })?;
            let recovered =
                format!("rolled back an interrupted transaction of another set (it had reached step {last})");
            listener.info(&recovered);
            outcome.recovered = Some(recovered);
            Ok(Start::Fresh)
        }
        TxState::Installed if same_set(&j, set) && placed_in_place(host, &j) => {
            // Installing again would back up this very set and lose the previous one.
            already_installed(host, &j, options, kernel, outcome)?;
            Ok(Start::Finished)
        }
        TxState::Installed | TxState::RolledBack => Ok(Start::Fresh),
    }
}

/// The module's release must be the running one to load its modules.
fn check_running(host: &TargetHost) -> Result<(), InstallError> {
    if let Ok(running) = std::fs::read_to_string(host.root.join("proc/sys/kernel/osrelease")) {
        let running = running.trim();
        if !running.is_empty() && running != host.release {
            return Err(InstallError::NotRunningKernel { release: host.release.clone(), running: running.to_string() });
        }
    }
    Ok(())
}

/// A live swap is refused while an rbd device is mapped or a CephFS mounted.
fn refuse_if_busy(host: &TargetHost) -> Result<(), InstallError> {
    let reasons = host.busy_reasons();
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Busy { reasons })
    }
}

fn placed_in_place(host: &TargetHost, j: &Journal) -> bool {
    j.placed.iter().all(|p| sha256_file(&host.abs(&p.path)).is_ok_and(|s| s == p.sha256))
}

/// The same set is installed already: nothing to change on disk; with reload, load it if
/// something else runs (e.g. it was installed with --no-reload).
fn already_installed(
    host: &TargetHost,
    j: &Journal,
    options: &InstallOptions,
    kernel: &dyn Kernel,
    outcome: &mut Outcome,
) -> Result<(), InstallError> {
    outcome.notes.push("this set is already installed: the files were left as they are".into());
    if options.reload && steps::verify_shipped(host, j).is_err() {
        refuse_if_busy(host)?;
        steps::unload_set(host, kernel, "reload-unloaded")
            .and_then(|()| MODULE_NAMES.iter().try_for_each(|n| kernel.load(host, n).map_err(StepError::from)))
            .and_then(|()| steps::verify_shipped(host, j))
            .map_err(|cause| InstallError::ReloadFailed { cause })?;
        outcome.reloaded = true;
        outcome.steps.extend([Step::Unloaded, Step::Loaded, Step::Verified]);
    }
    Ok(())
}

/// The install steps this journal's options call for, in order.
fn install_plan(j: &Journal) -> Vec<Step> {
    Step::INSTALL
        .into_iter()
        .filter(|s| j.reload || !s.needs_reload())
        .filter(|s| j.update_initramfs || !s.needs_initramfs())
        .collect()
}

/// Runs one install step.
fn run_install_step(
    step: Step,
    j: &mut Journal,
    set: &ShippedSet,
    host: &TargetHost,
    kernel: &dyn Kernel,
    outcome: &mut Outcome,
) -> Result<(), StepError> {
    match step {
        // The plan is in this journal already.
        Step::Begin => Ok(()),
        Step::Staged => steps::stage(set, host, j),
        Step::BackedUp => steps::back_up(host, j),
        Step::Swapped => steps::swap(host, j),
        Step::Depmod => Ok(depmod(host)?),
        Step::Unloaded => steps::unload_set(host, kernel, Step::Unloaded.as_str()),
        Step::Loaded => steps::load_set(host, kernel, MODULE_NAMES.iter().copied(), Step::Loaded.as_str()),
        Step::Verified => steps::verify_shipped(host, j),
        Step::Initramfs => {
            outcome.initramfs = Some(kernel.update_initramfs(host, &MODULE_NAMES)?);
            Ok(())
        }
        Step::Committed => {
            j.state = TxState::Installed;
            Ok(())
        }
        Step::RollbackBegin
        | Step::RollbackRestored
        | Step::RollbackDepmod
        | Step::RollbackUnloaded
        | Step::RollbackLoaded
        | Step::RollbackVerified
        | Step::RollbackInitramfs
        | Step::RolledBack => Err(StepError::OutOfPlace { step, transaction: "an install" }),
    }
}

/// Runs the install steps not recorded yet; on a failure, rolls back.
fn forward(
    mut j: Journal,
    set: &ShippedSet,
    host: &TargetHost,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
    outcome: &mut Outcome,
) -> Result<(), InstallError> {
    let state_dir = host.state_dir();
    for step in install_plan(&j) {
        if j.done(step) {
            continue;
        }
        listener.info(&format!("install: {step}"));
        match run_install_step(step, &mut j, set, host, kernel, outcome) {
            Ok(()) => {
                j.record(step, &state_dir)?;
                outcome.steps.push(step);
            }
            Err(cause) => return Err(roll_back_failed_install(j, step, cause, host, kernel, listener, outcome)),
        }
    }
    Ok(())
}

/// An install step failed: records why and rolls back; the error says how that went.
fn roll_back_failed_install(
    mut j: Journal,
    step: Step,
    cause: StepError,
    host: &TargetHost,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
    outcome: &mut Outcome,
) -> InstallError {
    let state_dir = host.state_dir();
    listener.warning(&format!("install failed at {step}: {cause}; rolling back"));
    j.failure = Some(format!("{step}: {cause}"));
    if let Err(e) = j.save(&state_dir) {
        return e;
    }
    let reload = j.reload;
    match run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps) {
        Ok(()) => InstallError::RolledBack { operation: "install", step, cause },
        Err((rb_step, rb_cause)) => InstallError::RollbackFailed {
            operation: "install",
            step: step.to_string(),
            reason: cause.to_string(),
            rollback_reason: format!("{rb_step}: {rb_cause}"),
            journal: Journal::path(&state_dir),
        },
    }
}

/// The rollback steps this journal's options call for, in order.
fn rollback_plan(j: &Journal) -> Vec<Step> {
    Step::ROLLBACK
        .into_iter()
        .filter(|s| j.rollback_reload || !s.needs_reload())
        .filter(|s| j.update_initramfs || !s.needs_initramfs())
        .collect()
}

/// Runs one rollback step.
fn run_rollback_step(step: Step, j: &mut Journal, host: &TargetHost, kernel: &dyn Kernel) -> Result<(), StepError> {
    match step {
        // Recorded when the rollback starts.
        Step::RollbackBegin => Ok(()),
        Step::RollbackRestored => steps::restore(host, j),
        Step::RollbackDepmod => Ok(depmod(host)?),
        Step::RollbackUnloaded => steps::unload_unless_as_before(host, kernel, j),
        Step::RollbackLoaded => steps::load_as_before(host, kernel, j),
        Step::RollbackVerified => steps::verify_as_before(host, j),
        Step::RollbackInitramfs => kernel.update_initramfs(host, &MODULE_NAMES).map(drop).map_err(StepError::from),
        Step::RolledBack => {
            j.state = TxState::RolledBack;
            Ok(())
        }
        Step::Begin
        | Step::Staged
        | Step::BackedUp
        | Step::Swapped
        | Step::Depmod
        | Step::Unloaded
        | Step::Loaded
        | Step::Verified
        | Step::Initramfs
        | Step::Committed => Err(StepError::OutOfPlace { step, transaction: "a rollback" }),
    }
}

/// Rolls the journal's transaction back (or finishes an interrupted rollback).
/// Errors name the step that failed.
fn run_rollback(
    j: &mut Journal,
    host: &TargetHost,
    reload: bool,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
    steps_run: &mut Vec<Step>,
) -> Result<(), (Step, StepError)> {
    let state_dir = host.state_dir();
    if j.state != TxState::RollingBack {
        j.state = TxState::RollingBack;
        j.rollback_reload = reload;
        j.record(Step::RollbackBegin, &state_dir).map_err(|e| (Step::RollbackBegin, e.into()))?;
        steps_run.push(Step::RollbackBegin);
    }
    for step in rollback_plan(j) {
        if j.done(step) {
            continue;
        }
        listener.info(&format!("rollback: {step}"));
        run_rollback_step(step, j, host, kernel).map_err(|e| (step, e))?;
        j.record(step, &state_dir).map_err(|e| (step, e.into()))?;
        steps_run.push(step);
    }
    // Done: the backup has been put back and is no longer needed.
    let _ = std::fs::remove_dir_all(state_dir.join("backup"));
    Ok(())
}

/// Puts back the set the last install replaced.
pub fn rollback(
    host: &TargetHost,
    options: &RollbackOptions,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
) -> Result<Outcome, InstallError> {
    let _lock = lock(host)?;
    let state_dir = host.state_dir();
    let mut outcome = Outcome::new("rollback", host);
    let Some(mut j) = Journal::read(&state_dir)? else {
        return Err(InstallError::NothingToRollBack {
            release: host.release.clone(),
            reason: "krbd-forge install has not run for it on this host".into(),
        });
    };
    let reload = rollback_reload(host, &j, options, &mut outcome)?;
    outcome.reloaded = reload;
    run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps).map_err(|(step, cause)| {
        InstallError::RollbackFailed {
            operation: "rollback",
            step: step.to_string(),
            reason: cause.to_string(),
            rollback_reason: "stopped there".into(),
            journal: Journal::path(&state_dir),
        }
    })?;
    Ok(outcome.finish(host))
}

/// Whether this rollback swaps the loaded modules, from the journal's state and the options;
/// notes an interrupted transaction it finishes.
fn rollback_reload(
    host: &TargetHost,
    j: &Journal,
    options: &RollbackOptions,
    outcome: &mut Outcome,
) -> Result<bool, InstallError> {
    match j.state {
        TxState::RolledBack => Err(InstallError::NothingToRollBack {
            release: host.release.clone(),
            reason: "the last install was already rolled back".into(),
        }),
        TxState::Installing => {
            outcome.recovered =
                Some(format!("rolled back an interrupted install (it had reached step {})", last_step_name(j)));
            Ok(j.reload || options.reload)
        }
        TxState::RollingBack => {
            outcome.recovered =
                Some(format!("finished an interrupted rollback (it had reached step {})", last_step_name(j)));
            Ok(j.rollback_reload)
        }
        TxState::Installed => {
            if options.reload {
                check_running(host)?;
                refuse_if_busy(host)?;
            }
            Ok(options.reload)
        }
    }
}
