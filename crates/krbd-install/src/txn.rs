//! The install and rollback transactions.
//!
//! Install steps, each recorded in the journal once done:
//! `begin` (plan written: files to place, files to replace, what is loaded), `staged` (new
//! files copied next to their destination under names depmod ignores), `backed-up` (the
//! files to replace copied to the state folder), `swapped` (renames into place),
//! `depmod`, then with reload `unloaded`, `loaded`, `verified` (/sys/module srcversion or
//! build-id equal the set's), with `--update-initramfs` `initramfs`, and `committed`.
//!
//! Every step is idempotent, so a rerun resumes after the last recorded step. A failure
//! rolls back by itself: `rollback-begin`, `rollback-restored`, `rollback-depmod`, with
//! reload `rollback-unloaded`, `rollback-loaded`, `rollback-verified`, then
//! `rollback-initramfs` when asked for, and `rolled-back`.

use crate::host::{InstalledModule, LoadedModule, TargetHost};
use crate::journal::{copy_atomic, crash_point, sync_dir, Journal, PlacedFile, ReplacedFile, TxState, JOURNAL_FORMAT};
use crate::kernel::{depmod, Kernel};
use crate::set::{sha256_file, ShippedSet, MODULE_NAMES};
use crate::InstallError;
use krbd_kmod::loader::{Outcome as Verdict, SetOptions};
use krbd_kmod::{KernelModule, TargetSpec};
use krbd_progress::Listener;
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

pub const INSTALL_STEPS: [&str; 10] =
    ["begin", "staged", "backed-up", "swapped", "depmod", "unloaded", "loaded", "verified", "initramfs", "committed"];
pub const ROLLBACK_STEPS: [&str; 8] = [
    "rollback-begin",
    "rollback-restored",
    "rollback-depmod",
    "rollback-unloaded",
    "rollback-loaded",
    "rollback-verified",
    "rollback-initramfs",
    "rolled-back",
];

/// Against what the set is checked before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadCheck {
    /// The release's headers on the host: `/lib/modules/<release>/build`,
    /// `/usr/src/linux-headers-<release>`, `/usr/src/kernels/<release>`.
    Auto,
    /// A headers folder (Module.symvers, .config, include/generated/utsrelease.h).
    Headers(PathBuf),
    Skip,
}

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
    pub steps: Vec<String>,
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

/// Holds the per-release lock for the length of a transaction.
struct Lock(#[allow(dead_code)] File);

fn lock(host: &TargetHost) -> Result<Lock, InstallError> {
    let dir = host.state_dir();
    std::fs::create_dir_all(&dir).map_err(InstallError::io(format!("create {}", dir.display())))?;
    let path = dir.join("lock");
    let f = File::create(&path).map_err(InstallError::io(format!("create {}", path.display())))?;
    // flock(2) directly: File::try_lock needs Rust 1.89, the workspace supports 1.85. The
    // kernel drops the lock when the process dies, also under kill -9.
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor that `f` owns for the whole call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Lock(f));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Err(InstallError::Locked { release: host.release.clone(), lock: path })
    } else {
        Err(InstallError::io(format!("lock {}", path.display()))(e))
    }
}

fn staged_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.krbd-new"))
}

fn same_set(j: &Journal, set: &ShippedSet) -> bool {
    j.placed.len() == set.modules.len()
        && set.modules.iter().all(|m| j.placed.iter().any(|p| p.name == m.name && p.sha256 == m.sha256))
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
    let state_dir = host.state_dir();
    let mut outcome = Outcome::new("install", host);
    if options.reload {
        check_running(host)?;
    }
    if let Some(j) = Journal::read(&state_dir)? {
        match j.state {
            TxState::Installing if same_set(&j, set) => {
                outcome.recovered = Some(format!(
                    "resumed the interrupted install of this set after step {}",
                    j.last_step().unwrap_or("none")
                ));
                listener.info(outcome.recovered.as_deref().unwrap_or_default());
                outcome.reloaded = j.reload;
                forward(j, set, host, kernel, listener, &mut outcome)?;
                return Ok(outcome.finish(host));
            }
            TxState::Installing | TxState::RollingBack => {
                let last = j.last_step().unwrap_or("none").to_string();
                let reload = j.reload || j.rollback_reload;
                let mut j = j;
                run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps).map_err(
                    |(step, reason)| InstallError::RollbackFailed {
                        operation: "recovery of an interrupted transaction",
                        step: last.clone(),
                        reason: "interrupted".into(),
                        rollback_reason: format!("{step}: {reason}"),
                        journal: Journal::path(&state_dir),
                    },
                )?;
                outcome.recovered =
                    Some(format!("rolled back an interrupted transaction of another set (it had reached step {last})"));
                listener.info(outcome.recovered.as_deref().unwrap_or_default());
            }
            TxState::Installed if same_set(&j, set) && placed_in_place(host, &j) => {
                // Installing again would back up this very set and lose the previous one.
                return already_installed(host, &j, options, kernel, outcome);
            }
            TxState::Installed | TxState::RolledBack => {}
        }
    }

    outcome.load_check = load_check(set, host, &options.load_check)?;
    if options.reload {
        let reasons = host.busy_reasons();
        if !reasons.is_empty() {
            return Err(InstallError::Busy { reasons });
        }
    }
    let install_dir = host.install_dir();
    let mut placed = Vec::new();
    let mut replaced = Vec::new();
    for m in &set.modules {
        let dest = install_dir.join(format!("{}.ko", m.name));
        placed.push(PlacedFile {
            name: m.name.clone(),
            path: host.rel(&dest),
            sha256: m.sha256.clone(),
            identity: m.identity.clone(),
        });
    }
    let mut to_replace: Vec<PathBuf> = placed.iter().map(|p| host.abs(&p.path)).filter(|p| p.exists()).collect();
    to_replace.extend(host.competing_files(&MODULE_NAMES));
    for path in &to_replace {
        if let Some(package) = host.package_owner(path) {
            return Err(InstallError::PackageOwned { path: path.clone(), package });
        }
        let rel = host.rel(path);
        let identity = KernelModule::read(path).ok().and_then(|m| crate::set::module_identity(&m));
        replaced.push(ReplacedFile {
            backup: format!("backup/{}", rel.trim_start_matches('/')),
            path: rel,
            sha256: sha256_file(path)?,
            identity,
        });
    }
    for n in &MODULE_NAMES {
        if replaced
            .iter()
            .any(|r| r.path.ends_with(&format!("/{n}.ko")) && !r.path.starts_with(&host.rel(&install_dir)))
        {
            outcome.notes.push(format!(
                "another copy of {n} in updates/extra is moved aside (backed up) so that ours is the one depmod picks"
            ));
        }
    }
    let loaded_before = MODULE_NAMES.iter().map(|n| (n.to_string(), host.loaded(n))).collect();
    let backup_dir = state_dir.join("backup");
    if backup_dir.exists() {
        // The previous transaction is complete; its backup is superseded by this one's.
        std::fs::remove_dir_all(&backup_dir).map_err(InstallError::io(format!("remove {}", backup_dir.display())))?;
    }
    let mut j = Journal {
        format: JOURNAL_FORMAT,
        release: host.release.clone(),
        state: TxState::Installing,
        source: set.source.display().to_string(),
        placed,
        replaced,
        loaded_before,
        reload: options.reload,
        rollback_reload: false,
        update_initramfs: options.update_initramfs,
        steps: Vec::new(),
        failure: None,
    };
    j.record("begin", &state_dir)?;
    outcome.steps.push("begin".into());
    outcome.reloaded = options.reload;
    forward(j, set, host, kernel, listener, &mut outcome)?;
    Ok(outcome.finish(host))
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
    mut outcome: Outcome,
) -> Result<Outcome, InstallError> {
    outcome.notes.push("this set is already installed: the files were left as they are".into());
    if options.reload && verify_shipped(host, j).is_err() {
        let reasons = host.busy_reasons();
        if !reasons.is_empty() {
            return Err(InstallError::Busy { reasons });
        }
        unload_set(host, kernel, "reload-unloaded")
            .and_then(|()| MODULE_NAMES.iter().try_for_each(|n| kernel.load(host, n)))
            .and_then(|()| verify_shipped(host, j))
            .map_err(|reason| InstallError::ReloadFailed { reason })?;
        outcome.reloaded = true;
        outcome.steps.extend(["unloaded", "loaded", "verified"].map(String::from));
    }
    Ok(outcome.finish(host))
}

fn install_plan(j: &Journal) -> Vec<&'static str> {
    INSTALL_STEPS
        .iter()
        .copied()
        .filter(|s| j.reload || !matches!(*s, "unloaded" | "loaded" | "verified"))
        .filter(|s| j.update_initramfs || *s != "initramfs")
        .collect()
}

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
        let result = match step {
            "staged" => stage(set, host, &j),
            "backed-up" => back_up(host, &j),
            "swapped" => swap(host, &j),
            "depmod" => depmod(host),
            "unloaded" => unload_set(host, kernel, "unloaded"),
            "loaded" => load_set(host, kernel, MODULE_NAMES.iter().copied(), "loaded"),
            "verified" => verify_shipped(host, &j),
            "initramfs" => kernel.update_initramfs(host, &MODULE_NAMES).map(|what| {
                outcome.initramfs = Some(what);
            }),
            "committed" => {
                j.state = TxState::Installed;
                Ok(())
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                j.record(step, &state_dir)?;
                outcome.steps.push(step.to_string());
            }
            Err(reason) => {
                listener.warning(&format!("install failed at {step}: {reason}; rolling back"));
                j.failure = Some(format!("{step}: {reason}"));
                j.save(&state_dir)?;
                let reload = j.reload;
                return match run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps) {
                    Ok(()) => Err(InstallError::RolledBack { operation: "install", step: step.into(), reason }),
                    Err((rb_step, rb_reason)) => Err(InstallError::RollbackFailed {
                        operation: "install",
                        step: step.into(),
                        reason,
                        rollback_reason: format!("{rb_step}: {rb_reason}"),
                        journal: Journal::path(&state_dir),
                    }),
                };
            }
        }
    }
    Ok(())
}

fn err_string(e: InstallError) -> String {
    e.to_string()
}

fn stage(set: &ShippedSet, host: &TargetHost, j: &Journal) -> Result<(), String> {
    for p in &j.placed {
        let m = set.module(&p.name).ok_or_else(|| format!("the set has no {}", p.name))?;
        let staged = staged_path(&host.abs(&p.path));
        copy_atomic(&m.path, &staged).map_err(err_string)?;
        let sha = sha256_file(&staged).map_err(err_string)?;
        if sha != p.sha256 {
            return Err(format!("{} was copied but reads back with sha256 {sha}, not {}", staged.display(), p.sha256));
        }
    }
    Ok(())
}

fn back_up(host: &TargetHost, j: &Journal) -> Result<(), String> {
    for r in &j.replaced {
        let to = host.state_dir().join(&r.backup);
        copy_atomic(&host.abs(&r.path), &to).map_err(err_string)?;
        if sha256_file(&to).map_err(err_string)? != r.sha256 {
            return Err(format!("the backup {} differs from {}", to.display(), r.path));
        }
    }
    Ok(())
}

fn swap(host: &TargetHost, j: &Journal) -> Result<(), String> {
    let mut dirs = Vec::new();
    for p in &j.placed {
        let dest = host.abs(&p.path);
        let staged = staged_path(&dest);
        if staged.exists() {
            std::fs::rename(&staged, &dest)
                .map_err(|e| format!("rename {} to {}: {e}", staged.display(), dest.display()))?;
            // A crash here leaves the files half swapped: the test of the rerun.
            crash_point(&format!("swapped:{}", p.name));
        } else if sha256_file(&dest).map_err(err_string)? != p.sha256 {
            return Err(format!("{} is neither staged nor in place", dest.display()));
        }
        dirs.extend(dest.parent().map(Path::to_path_buf));
    }
    let placed: Vec<&str> = j.placed.iter().map(|p| p.path.as_str()).collect();
    for r in j.replaced.iter().filter(|r| !placed.contains(&r.path.as_str())) {
        let path = host.abs(&r.path);
        match std::fs::remove_file(&path) {
            Ok(()) => dirs.extend(path.parent().map(Path::to_path_buf)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove {}: {e}", path.display())),
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.iter().try_for_each(|d| sync_dir(d).map_err(err_string))
}

/// Unloads rbd, ceph and libceph (users first), refusing while a device or mount uses them.
/// `step` names the crash points after each module (`<step>:<module>`).
fn unload_set(host: &TargetHost, kernel: &dyn Kernel, step: &str) -> Result<(), String> {
    let reasons = host.busy_reasons();
    if !reasons.is_empty() {
        return Err(format!("cannot unload: {}", reasons.join("; ")));
    }
    for n in MODULE_NAMES.iter().rev() {
        if host.loaded(n).loaded {
            kernel.unload(host, n)?;
            crash_point(&format!("{step}:{n}"));
        }
    }
    Ok(())
}

fn load_set<'a>(
    host: &TargetHost,
    kernel: &dyn Kernel,
    names: impl Iterator<Item = &'a str>,
    step: &str,
) -> Result<(), String> {
    for n in names {
        kernel.load(host, n)?;
        crash_point(&format!("{step}:{n}"));
    }
    Ok(())
}

fn verify_shipped(host: &TargetHost, j: &Journal) -> Result<(), String> {
    for p in &j.placed {
        let now = host.loaded(&p.name);
        if !now.loaded {
            return Err(format!("{} is not loaded after modprobe", p.name));
        }
        if now.identity.as_deref() != Some(p.identity.as_str()) {
            return Err(format!(
                "/sys/module/{} shows {}, the shipped set's module is {}",
                p.name,
                now.identity.as_deref().unwrap_or("no srcversion and no build-id"),
                p.identity
            ));
        }
    }
    Ok(())
}

fn rollback_plan(j: &Journal) -> Vec<&'static str> {
    ROLLBACK_STEPS
        .iter()
        .copied()
        .filter(|s| j.rollback_reload || !matches!(*s, "rollback-unloaded" | "rollback-loaded" | "rollback-verified"))
        .filter(|s| j.update_initramfs || *s != "rollback-initramfs")
        .collect()
}

/// Rolls the journal's transaction back (or finishes an interrupted rollback).
/// Errors are (step, reason).
fn run_rollback(
    j: &mut Journal,
    host: &TargetHost,
    reload: bool,
    kernel: &dyn Kernel,
    listener: &dyn Listener,
    steps_run: &mut Vec<String>,
) -> Result<(), (String, String)> {
    let state_dir = host.state_dir();
    let fail = |step: &str, reason: String| (step.to_string(), reason);
    if j.state != TxState::RollingBack {
        j.state = TxState::RollingBack;
        j.rollback_reload = reload;
        j.record("rollback-begin", &state_dir).map_err(|e| fail("rollback-begin", e.to_string()))?;
        steps_run.push("rollback-begin".into());
    }
    for step in rollback_plan(j) {
        if j.done(step) {
            continue;
        }
        listener.info(&format!("rollback: {step}"));
        let result = match step {
            "rollback-restored" => restore(host, j),
            "rollback-depmod" => depmod(host),
            "rollback-unloaded" => {
                if MODULE_NAMES.iter().all(|n| j.loaded_before.get(*n) == Some(&host.loaded(n))) {
                    Ok(())
                } else {
                    unload_set(host, kernel, "rollback-unloaded")
                }
            }
            "rollback-loaded" => load_set(
                host,
                kernel,
                MODULE_NAMES.iter().copied().filter(|n| j.loaded_before.get(*n).is_some_and(|l| l.loaded)),
                "rollback-loaded",
            ),
            "rollback-verified" => MODULE_NAMES.iter().try_for_each(|n| {
                let now = host.loaded(n);
                match j.loaded_before.get(*n) {
                    Some(before) if *before != now => Err(format!(
                        "{n}: loaded {} ({:?}) after the rollback, before the install loaded {} ({:?})",
                        now.loaded, now.identity, before.loaded, before.identity
                    )),
                    _ => Ok(()),
                }
            }),
            "rollback-initramfs" => kernel.update_initramfs(host, &MODULE_NAMES).map(|_| ()),
            "rolled-back" => {
                j.state = TxState::RolledBack;
                Ok(())
            }
            _ => Ok(()),
        };
        result.map_err(|r| fail(step, r))?;
        j.record(step, &state_dir).map_err(|e| fail(step, e.to_string()))?;
        steps_run.push(step.to_string());
    }
    // Done: the backup has been put back and is no longer needed.
    let _ = std::fs::remove_dir_all(state_dir.join("backup"));
    Ok(())
}

/// Puts the replaced files back and removes ours. Before the backup is complete the
/// swap has not begun, so only the staged copies are removed.
fn restore(host: &TargetHost, j: &Journal) -> Result<(), String> {
    for p in &j.placed {
        let dest = host.abs(&p.path);
        let _ = std::fs::remove_file(staged_path(&dest));
        if j.done("backed-up") {
            match std::fs::remove_file(&dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("remove {}: {e}", dest.display())),
            }
        }
    }
    if j.done("backed-up") {
        for r in &j.replaced {
            let from = host.state_dir().join(&r.backup);
            let to = host.abs(&r.path);
            copy_atomic(&from, &to).map_err(err_string)?;
            if sha256_file(&to).map_err(err_string)? != r.sha256 {
                return Err(format!("{} was restored but its sha256 differs from the original's", to.display()));
            }
            if let Some(n) = crate::host::module_file_name(&r.path) {
                crash_point(&format!("rollback-restored:{n}"));
            }
        }
    }
    for dir in [host.install_dir()] {
        if dir.is_dir() {
            sync_dir(&dir).map_err(err_string)?;
        }
    }
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
    let reload = match j.state {
        TxState::RolledBack => {
            return Err(InstallError::NothingToRollBack {
                release: host.release.clone(),
                reason: "the last install was already rolled back".into(),
            })
        }
        TxState::Installing => {
            outcome.recovered = Some(format!(
                "rolled back an interrupted install (it had reached step {})",
                j.last_step().unwrap_or("none")
            ));
            j.reload || options.reload
        }
        TxState::RollingBack => {
            outcome.recovered = Some(format!(
                "finished an interrupted rollback (it had reached step {})",
                j.last_step().unwrap_or("none")
            ));
            j.rollback_reload
        }
        TxState::Installed => {
            if options.reload {
                check_running(host)?;
                let reasons = host.busy_reasons();
                if !reasons.is_empty() {
                    return Err(InstallError::Busy { reasons });
                }
            }
            options.reload
        }
    };
    outcome.reloaded = reload;
    run_rollback(&mut j, host, reload, kernel, listener, &mut outcome.steps).map_err(|(step, reason)| {
        InstallError::RollbackFailed {
            operation: "rollback",
            step: step.clone(),
            reason: reason.clone(),
            rollback_reason: "stopped there".into(),
            journal: Journal::path(&state_dir),
        }
    })?;
    Ok(outcome.finish(host))
}

/// Where the release's headers may be, under the root.
fn header_candidates(host: &TargetHost) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let build = host.modules_dir().join("build");
    if let Ok(link) = std::fs::read_link(&build) {
        // The link is absolute on the host; resolve it inside the root.
        out.push(if link.is_absolute() {
            host.abs(&link.display().to_string())
        } else {
            host.modules_dir().join(link)
        });
    } else {
        out.push(build);
    }
    out.push(host.abs(&format!("usr/src/linux-headers-{}", host.release)));
    out.push(host.abs(&format!("usr/src/kernels/{}", host.release)));
    out
}

fn load_check(set: &ShippedSet, host: &TargetHost, check: &LoadCheck) -> Result<Option<String>, InstallError> {
    let dir = match check {
        LoadCheck::Skip => return Ok(None),
        LoadCheck::Headers(d) => d.clone(),
        LoadCheck::Auto => {
            let candidates = header_candidates(host);
            match candidates.iter().find(|d| d.join("Module.symvers").is_file()) {
                Some(d) => d.clone(),
                None => {
                    return Err(InstallError::NoLoadCheckTarget {
                        release: host.release.clone(),
                        looked: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
                    })
                }
            }
        }
    };
    let kos: Vec<PathBuf> = set.modules.iter().map(|m| m.path.clone()).collect();
    let report = krbd_kmod::check_files(
        &kos,
        &TargetSpec::Headers { dir: dir.clone() },
        Some(&host.modules_dir()),
        &SetOptions::default(),
    )
    .map_err(|e| InstallError::LoadCheck { reason: e.to_string() })?;
    if !report.all_load() {
        let mut verdicts: Vec<String> = report
            .modules
            .iter()
            .filter(|m| m.verdict == Verdict::Refused)
            .map(|m| format!("  {}: {}", m.module, m.reason.clone().unwrap_or_else(|| "refused".into())))
            .collect();
        verdicts.extend(report.findings.iter().map(|f| format!("  {}", f.message())));
        return Err(InstallError::WouldNotLoad { verdicts });
    }
    Ok(Some(format!(
        "all {} modules load on {} (checked against {})",
        report.modules.len(),
        report.target_vermagic.trim_end(),
        dir.display()
    )))
}
