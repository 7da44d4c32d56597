//! One follow run: take the lock, discover, work every pending release through its stages
//! (each stage's result recorded only once its artifacts are in their final place), publish
//! whole results only, and exit.

use crate::config::FollowConfig;
use crate::discover::{self, Discovered, Family};
use crate::error::FollowError;
use crate::fault::crash_point;
use crate::job::{self, ChildOutcome, Layout, Stage};
use crate::lock::FollowLock;
use crate::orphans;
use crate::publish::Publisher;
use crate::state::{NewRelease, ReleaseRow, ReleaseState, StageEnd, State, Verdict};
use crate::{private_apt, state_path};
use krbd_progress::{Listener, Unit};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run needs beside the configuration.
pub struct RunOptions<'a> {
    pub config: &'a FollowConfig,
    /// The krbd-forge binary the stages run.
    pub program: PathBuf,
    /// The series as `build --series` takes it here (a folder), and its digest.
    pub series_arg: String,
    pub series_digest: String,
    pub listener: &'a dyn Listener,
}

/// A release's outcome in a run's summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseOutcome {
    pub line: String,
    pub release: String,
    pub version: String,
    pub state: ReleaseState,
    pub reason: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    /// Releases seen for the first time.
    pub discovered: Vec<Discovered>,
    pub published: Vec<ReleaseOutcome>,
    pub failed: Vec<ReleaseOutcome>,
    /// Releases already handled by earlier runs (nothing was done for them).
    pub already_handled: usize,
    /// Line meta packages published (`krbd-forge-linux-image-6.12-amd64 6.12.118-1~deb12u1`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub line_meta: Vec<String>,
    /// `follow publish`: releases whose proofs are not all in yet (left pending).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

/// A job's folders: `<out_dir>/<release>_<key>/<stage>/`.
pub struct LocalLayout {
    pub root: PathBuf,
}

impl Layout for LocalLayout {
    fn dir(&self, stage: Stage) -> PathBuf {
        self.root.join(stage.name())
    }
}

/// The folder of a release's job under `out_dir`.
pub fn job_root(out_dir: &Path, row: &ReleaseRow) -> PathBuf {
    out_dir.join(format!("{}_{}", row.release, &row.job_key[..12.min(row.job_key.len())]))
}

/// The key of a release's job: what it is built from.
pub fn job_key(d: &Discovered, series_digest: &str) -> String {
    let text = format!("follow-job-v1\0{}\0{}\0{}\0{}", d.line, d.release, d.version, series_digest);
    krbd_formats::digest::sha256_hex(text.as_bytes())
}

/// Runs once: see the module's documentation.
pub fn run(opts: &RunOptions<'_>) -> Result<RunSummary, FollowError> {
    let _lock = FollowLock::acquire(&opts.config.state_dir)?;
    let state = State::open(&state_path(opts.config))?;
    let run_id = state.begin_run()?;
    // We hold the lock: whatever still carries this state's marker belongs to a killed run.
    orphans::stop_leftovers(&opts.config.state_dir, opts.listener);
    let mut summary = RunSummary { discovered: discover_and_record(opts, &state)?, ..RunSummary::default() };
    crash_point("discovered");
    work_pending(opts, &state, true, &mut summary)?;
    summary.line_meta = sync_line_metas(opts, &state);
    state.end_run(run_id, summary.discovered.len(), summary.published.len(), summary.failed.len())?;
    Ok(summary)
}

/// Lists the mirrors' releases and records the new ones; returns those.
pub(crate) fn discover_and_record(opts: &RunOptions<'_>, state: &State) -> Result<Vec<Discovered>, FollowError> {
    let config = opts.config;
    let mut new_ones = Vec::new();
    for d in discover_all(config, opts.listener)? {
        let key = job_key(&d, &opts.series_digest);
        let new = NewRelease {
            job_key: &key,
            line: &d.line,
            family: d.family.as_str(),
            release: &d.release,
            version: &d.version,
            series: &config.series,
            series_digest: &opts.series_digest,
            index_sha256: &d.index_sha256,
        };
        if state.add_release(&new)? {
            opts.listener.info(&format!("new release {} ({}, {})", d.release, d.line, d.version));
            new_ones.push(d);
        } else if let Some(row) = state.changed_pending(&key, &d.index_sha256)? {
            redo_from_build(opts, state, &row, &d.index_sha256)?;
        }
    }
    Ok(new_ones)
}

/// A pending release whose packages changed in the mirror: its stage results go (the
/// folder first, so that a kill in between never leaves records of results that are gone
/// adopted again), and the next stage to run is build.
fn redo_from_build(opts: &RunOptions<'_>, state: &State, row: &ReleaseRow, index: &str) -> Result<(), FollowError> {
    opts.listener.info(&format!("{}: its packages changed in the mirror; redone from build", row.release));
    remove_dir(&job_root(&opts.config.out_dir, row))?;
    state.reset_release(row.id)?;
    state.set_index(row.id, index)
}

/// Works every pending release of the current series. `run_commands`: run the missing
/// command stages here; otherwise a release whose command stages are not all recorded is
/// left for later (`follow publish` of CI outputs).
pub(crate) fn work_pending(
    opts: &RunOptions<'_>,
    state: &State,
    run_commands: bool,
    summary: &mut RunSummary,
) -> Result<(), FollowError> {
    let mut publisher = Publisher::new(opts.config);
    for row in state.releases()? {
        if row.state != ReleaseState::Pending || row.series_digest != opts.series_digest {
            summary.already_handled += 1;
            continue;
        }
        match work_release(opts, state, &row, &mut publisher, run_commands)? {
            Some(outcome) if outcome.state == ReleaseState::Published => summary.published.push(outcome),
            Some(outcome) => summary.failed.push(outcome),
            None => summary.incomplete.push(row.release.clone()),
        }
    }
    Ok(())
}

/// Publishes the line meta packages whose kernel is now proven and published; a failure
/// is a warning (the next run tries again), never a reason to fail a release.
pub(crate) fn sync_line_metas(opts: &RunOptions<'_>, state: &State) -> Vec<String> {
    if opts.config.debian.is_empty() {
        return Vec::new();
    }
    let published: Vec<String> = match state.releases() {
        Ok(rows) => rows.into_iter().filter(|r| r.state == ReleaseState::Published).map(|r| r.release).collect(),
        Err(e) => {
            opts.listener.warning(&format!("line meta packages: {e}"));
            return Vec::new();
        }
    };
    let apt = match private_apt::prepare(opts.config) {
        Ok(apt) => apt,
        Err(e) => {
            opts.listener.warning(&format!("line meta packages: {e}"));
            return Vec::new();
        }
    };
    match Publisher::new(opts.config).sync_line_metas(&apt, &published, opts.listener) {
        Ok(done) => {
            for m in &done {
                opts.listener.info(&format!("line meta package {m} published"));
            }
            done
        }
        Err(e) => {
            opts.listener.warning(&format!("line meta packages not published: {e}"));
            Vec::new()
        }
    }
}

/// Updates the private apt and lists the releases of every followed line.
fn discover_all(config: &FollowConfig, listener: &dyn Listener) -> Result<Vec<Discovered>, FollowError> {
    let mut found = Vec::new();
    if !config.debian.is_empty() {
        let apt = private_apt::prepare(config)?;
        listener.task_start("apt-get update (private configuration)", None, Unit::Steps);
        let updated = private_apt::update(&apt);
        listener.task_finish();
        updated?;
        found.extend(discover::debian(&apt, &config.debian_lines())?);
    }
    if !config.rhel.is_empty() {
        let cache = krbd_fetch::cache::Cache::open(config.cache_dir.clone()).map_err(|e| match e {
            krbd_fetch::FetchError::Io { source, path, .. } => {
                FollowError::Io { action: "open the cache", path, source }
            }
            other => FollowError::Repodata { url: config.cache_dir.display().to_string(), detail: other.to_string() },
        })?;
        found.extend(discover::rhel(&config.rhel, &cache, listener)?);
    }
    Ok(found)
}

/// Works one release through its remaining stages.
fn work_release(
    opts: &RunOptions<'_>,
    state: &State,
    row: &ReleaseRow,
    publisher: &mut Publisher,
    run_commands: bool,
) -> Result<Option<ReleaseOutcome>, FollowError> {
    let family = if row.family == "rhel" { Family::Rhel } else { Family::Debian };
    let layout = LocalLayout { root: job_root(&opts.config.out_dir, row) };
    std::fs::create_dir_all(&layout.root).map_err(FollowError::io("create", &layout.root))?;
    let outcome = |state_now: ReleaseState, reason: Option<String>| ReleaseOutcome {
        line: row.line.clone(),
        release: row.release.clone(),
        version: row.version.clone(),
        state: state_now,
        reason,
    };
    for stage in Stage::for_release(family, opts.config) {
        let done = row.stage(stage.name()).is_some_and(|s| s.verdict == Verdict::Ok);
        if done && (stage == Stage::Publish || layout.dir(stage).is_dir()) {
            continue;
        }
        if !run_commands && stage != Stage::Publish {
            return Ok(None);
        }
        let end = match stage {
            Stage::Publish => publish_stage(opts, state, row, &layout, publisher)?,
            _ => command_stage(opts, state, row, family, stage, &layout)?,
        };
        if end.verdict == Verdict::Failed {
            let reason = format!("{}: {}", stage.name(), end.reason.as_deref().unwrap_or("failed"));
            if stage == Stage::Publish {
                // The repository's fault, not the release's: proven results wait for the next
                // run, which publishes them once the cause is fixed.
                state.set_release_state(row.id, ReleaseState::Pending, Some(&reason))?;
            }
            opts.listener.warning(&format!("{} failed at {reason}", row.release));
            return Ok(Some(outcome(ReleaseState::Failed, Some(reason))));
        }
    }
    state.set_release_state(row.id, ReleaseState::Published, None)?;
    opts.listener.info(&format!("{} published", row.release));
    Ok(Some(outcome(ReleaseState::Published, None)))
}

/// Runs (or adopts the finished results of) a stage that is a krbd-forge command.
fn command_stage(
    opts: &RunOptions<'_>,
    state: &State,
    row: &ReleaseRow,
    family: Family,
    stage: Stage,
    layout: &LocalLayout,
) -> Result<StageEnd, FollowError> {
    let done_dir = layout.dir(stage);
    let result_file = done_dir.join("result.json");
    // A run killed after the results were renamed into place but before they were recorded:
    // they are whole (the rename is the last step), so they are recorded now, not redone.
    if result_file.is_file() {
        let json = std::fs::read(&result_file).ok().and_then(|b| serde_json::from_slice(&b).ok());
        opts.listener.info(&format!("{} {}: finished results found, recorded", row.release, stage.name()));
        return record_success(state, row, stage, &done_dir, json);
    }
    state.begin_stage(row.id, stage.name())?;
    // A fresh folder per attempt: a killed attempt's folder is never reused, whatever is
    // left in it, and nothing but a successful rename makes it the stage's results.
    remove_partials(&done_dir, opts.listener);
    let staging = done_dir.with_extension(format!("partial.{}", std::process::id()));
    remove_dir(&staging)?;
    std::fs::create_dir_all(&staging).map_err(FollowError::io("create", &staging))?;
    let inputs = job::CommandInputs {
        family,
        line: &row.line,
        release: &row.release,
        config: opts.config,
        series: &opts.series_arg,
        layout,
        cache_dir: Some(&opts.config.cache_dir),
    };
    let Some(mut cmd) = job::command(stage, &inputs, &staging) else {
        let end = StageEnd {
            verdict: Verdict::Failed,
            exit_code: None,
            kind: Some("usage".into()),
            reason: Some(format!("{} has no command line (a bug: please report it)", stage.name())),
            artifacts: Vec::new(),
        };
        state.end_stage(row.id, stage.name(), &end)?;
        return Ok(end);
    };
    cmd.env.push((orphans::OWNER_ENV.into(), orphans::owner_value(&opts.config.state_dir)));
    let started = Instant::now();
    opts.listener.task_start(&format!("{} {}", stage.name(), row.release), None, Unit::Steps);
    let child = job::run_child(&opts.program, &cmd, &staging.join("stderr.log"));
    opts.listener.task_finish();
    let child = child?;
    let secs = started.elapsed().as_secs_f64();
    if !child.success() {
        return record_failure(state, row, stage, &staging, &done_dir, &child);
    }
    opts.listener.info(&format!("{} {}: ok ({secs:.1} s)", row.release, stage.name()));
    finish_staging(stage, &staging, child.json.as_ref())?;
    remove_dir(&done_dir.with_extension("failed"))?;
    remove_dir(&done_dir)?;
    std::fs::rename(&staging, &done_dir).map_err(FollowError::io("rename into place", &done_dir))?;
    sync_parent(&done_dir);
    crash_point(&format!("staged:{}", stage.name()));
    record_success(state, row, stage, &done_dir, child.json)
}

/// Writes the command's JSON beside its results (last: its presence means "whole") and
/// drops what is only worth keeping while a stage runs (a boot test's kernel images).
fn finish_staging(stage: Stage, staging: &Path, json: Option<&serde_json::Value>) -> Result<(), FollowError> {
    if stage == Stage::BootTest {
        let work = staging.join("work");
        for big in ["vmlinux", "vmlinuz", "initramfs.cpio.gz", "kvm-probe", "ceph"] {
            let p = work.join(big);
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    let text = serde_json::to_vec_pretty(json.unwrap_or(&serde_json::Value::Null)).unwrap_or_default();
    let result = staging.join("result.json");
    crate::write_atomic(&result, &text)
}

pub(crate) fn record_success(
    state: &State,
    row: &ReleaseRow,
    stage: Stage,
    done_dir: &Path,
    json: Option<serde_json::Value>,
) -> Result<StageEnd, FollowError> {
    if stage == Stage::Build {
        if let Some(report) = &json {
            state.set_inputs(row.id, &job::build_inputs(report))?;
        }
    }
    let end = StageEnd {
        verdict: Verdict::Ok,
        exit_code: Some(0),
        kind: None,
        reason: None,
        artifacts: job::artifacts(done_dir)?,
    };
    state.end_stage(row.id, stage.name(), &end)?;
    crash_point(&format!("recorded:{}", stage.name()));
    Ok(end)
}

pub(crate) fn record_failure(
    state: &State,
    row: &ReleaseRow,
    stage: Stage,
    staging: &Path,
    done_dir: &Path,
    child: &ChildOutcome,
) -> Result<StageEnd, FollowError> {
    let (kind, reason) = child.failure();
    if let Some(json) = &child.json {
        let text = serde_json::to_vec_pretty(json).unwrap_or_default();
        crate::write_atomic(&staging.join("result.json"), &text)?;
    }
    // Kept for the post-mortem, under a name no later run takes for finished results.
    let failed_dir = done_dir.with_extension("failed");
    remove_dir(&failed_dir)?;
    std::fs::rename(staging, &failed_dir).map_err(FollowError::io("rename", &failed_dir))?;
    let artifacts = job::artifacts(&failed_dir)?.into_iter().filter(|a| a.size < 16 << 20).collect();
    let end = StageEnd { verdict: Verdict::Failed, exit_code: child.exit_code, kind, reason: Some(reason), artifacts };
    state.end_stage(row.id, stage.name(), &end)?;
    Ok(end)
}

/// Publishes the release's packages (in-process, through krbd-repo).
fn publish_stage(
    opts: &RunOptions<'_>,
    state: &State,
    row: &ReleaseRow,
    layout: &LocalLayout,
    publisher: &mut Publisher,
) -> Result<StageEnd, FollowError> {
    state.begin_stage(row.id, Stage::Publish.name())?;
    let packages = job::artifacts(&layout.dir(Stage::Package))?
        .into_iter()
        .map(|a| a.path)
        .filter(|p| p.extension().is_some_and(|e| e == "deb" || e == "rpm"))
        .collect::<Vec<_>>();
    let end = match publisher.publish(row, &packages, opts.listener) {
        Ok(artifacts) => StageEnd { verdict: Verdict::Ok, exit_code: Some(0), kind: None, reason: None, artifacts },
        Err(reason) => StageEnd {
            verdict: Verdict::Failed,
            exit_code: None,
            kind: Some("publish".into()),
            reason: Some(reason),
            artifacts: Vec::new(),
        },
    };
    crash_point("published");
    state.end_stage(row.id, Stage::Publish.name(), &end)?;
    Ok(end)
}

/// Removes the folders of earlier attempts at the stage whose results go to `done_dir`
/// (`build.partial`, `build.partial.<pid>`); one that cannot be removed only costs space.
fn remove_partials(done_dir: &Path, listener: &dyn Listener) {
    let (Some(parent), Some(name)) = (done_dir.parent(), done_dir.file_name()) else { return };
    let prefix = format!("{}.partial", name.to_string_lossy());
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(e) = remove_dir(&entry.path()) {
                listener.warning(&format!("a killed attempt's folder is left behind: {e}"));
            }
        }
    }
}

pub(crate) fn remove_dir(dir: &Path) -> Result<(), FollowError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FollowError::io("remove", dir)(e)),
    }
}

pub(crate) fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        // Durability of the rename; a failure here only weakens a crash guarantee.
        let _ = krbd_formats::atomic::sync_dir(parent);
    }
}
