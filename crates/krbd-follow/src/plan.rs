//! Scaling out on a CI system's runners instead of a scheduler of our own:
//! [`plan`] lists the pending jobs (one per release and stage, each the normal krbd-forge
//! command line, with the job it needs first), and [`publish_outputs`] takes the finished
//! jobs' output folders back, records them as the local run would, and publishes every
//! release whose proofs are all in.
//!
//! A job's output folder is `jobs/<release>/<stage>/`, holding what the command wrote there,
//! its stdout as `result.json`, and the plan's job object as `job.json` (the CI workflow
//! writes both; see docs/follow-ci.md).

use crate::discover::Family;
use crate::error::FollowError;
use crate::job::{self, JobCommand, Layout, Stage};
use crate::lock::FollowLock;
use crate::run::{self, RunOptions, RunSummary};
use crate::state::{ReleaseState, State, Verdict};
use crate::state_path;
use std::path::{Path, PathBuf};

/// One pending job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlannedJob {
    /// `<release>/<stage>`.
    pub id: String,
    pub job_key: String,
    pub line: String,
    pub release: String,
    pub version: String,
    pub stage: String,
    /// The job whose output folder this one reads (the same runner's earlier step, or an
    /// artifact passed along).
    pub needs: Option<String>,
    /// Where the job writes: `jobs/<release>/<stage>`.
    pub output: String,
    /// `krbd-forge` followed by these.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The same as one shell line.
    pub command: String,
}

/// The folders of a job on a runner: `jobs/<release>/<stage>/`.
struct CiLayout {
    root: PathBuf,
}

impl Layout for CiLayout {
    fn dir(&self, stage: Stage) -> PathBuf {
        self.root.join(stage.name())
    }
}

/// Discovers (recording new releases) and lists every command stage of every pending
/// release. The series is given as the configuration names it (`series_arg`), which the
/// runners must resolve the same way (a built-in name, or a folder they have too).
pub fn plan(opts: &RunOptions<'_>) -> Result<Vec<PlannedJob>, FollowError> {
    let _lock = FollowLock::acquire(&opts.config.state_dir)?;
    let state = State::open(&state_path(opts.config))?;
    run::discover_and_record(opts, &state)?;
    let mut jobs = Vec::new();
    for row in state.releases()? {
        if row.state != ReleaseState::Pending || row.series_digest != opts.series_digest {
            continue;
        }
        let family = if row.family == "rhel" { Family::Rhel } else { Family::Debian };
        let layout = CiLayout { root: Path::new("jobs").join(&row.release) };
        let inputs = job::CommandInputs {
            family,
            line: &row.line,
            release: &row.release,
            config: opts.config,
            series: &opts.series_arg,
            layout: &layout,
            cache_dir: None,
        };
        let mut needs = None;
        for stage in Stage::for_release(family, opts.config) {
            let output = layout.dir(stage);
            let Some(cmd) = job::command(stage, &inputs, &output) else { continue };
            let id = format!("{}/{}", row.release, stage.name());
            jobs.push(planned(&row, stage, &id, needs.take(), &output, cmd));
            needs = Some(id);
        }
    }
    Ok(jobs)
}

fn planned(
    row: &crate::state::ReleaseRow,
    stage: Stage,
    id: &str,
    needs: Option<String>,
    output: &Path,
    cmd: JobCommand,
) -> PlannedJob {
    PlannedJob {
        id: id.to_string(),
        job_key: row.job_key.clone(),
        line: row.line.clone(),
        release: row.release.clone(),
        version: row.version.clone(),
        stage: stage.name().to_string(),
        needs,
        output: output.display().to_string(),
        command: cmd.shell_line("krbd-forge"),
        args: cmd.args,
        env: cmd.env,
    }
}

/// Takes finished job outputs back (each folder with its `job.json` and `result.json`),
/// records them, and publishes every release whose stages are all recorded as passed. A job
/// whose result is a failure fails its release, which is then not published.
pub fn publish_outputs(opts: &RunOptions<'_>, outputs: &[PathBuf]) -> Result<RunSummary, FollowError> {
    let _lock = FollowLock::acquire(&opts.config.state_dir)?;
    let state = State::open(&state_path(opts.config))?;
    for dir in outputs {
        import(opts, &state, dir)?;
    }
    let mut summary = RunSummary::default();
    run::work_pending(opts, &state, false, &mut summary)?;
    summary.line_meta = run::sync_line_metas(opts, &state);
    Ok(summary)
}

fn read_json(path: &Path) -> Result<serde_json::Value, FollowError> {
    let bytes = std::fs::read(path).map_err(FollowError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| FollowError::Publish { detail: format!("{}: {e}", path.display()) })
}

/// Records one job output folder in the state, copied into the local layout.
fn import(opts: &RunOptions<'_>, state: &State, dir: &Path) -> Result<(), FollowError> {
    let job: PlannedJob = serde_json::from_value(read_json(&dir.join("job.json"))?)
        .map_err(|e| FollowError::Publish { detail: format!("{}/job.json: {e}", dir.display()) })?;
    let row = state
        .release(&job.job_key)?
        .ok_or_else(|| FollowError::UnknownRelease { what: format!("{} (job {})", job.release, job.id) })?;
    let stage = Stage::from_name(&job.stage)
        .filter(|s| *s != Stage::Publish)
        .ok_or_else(|| FollowError::Publish { detail: format!("{}: unknown stage {:?}", dir.display(), job.stage) })?;
    if row.state != ReleaseState::Pending || row.stage(stage.name()).is_some_and(|s| s.verdict == Verdict::Ok) {
        opts.listener.info(&format!("{}: already recorded", job.id));
        return Ok(());
    }
    let result = read_json(&dir.join("result.json"))?;
    let done_dir = run::job_root(&opts.config.out_dir, &row).join(stage.name());
    let staging = done_dir.with_extension("partial");
    run::remove_dir(&staging)?;
    copy_tree(dir, &staging)?;
    if let Some(reason) = failure_of(stage, &result) {
        let child = job::ChildOutcome { exit_code: None, json: Some(result) };
        run::record_failure(state, &row, stage, &staging, &done_dir, &child)?;
        opts.listener.warning(&format!("{}: failed on its runner: {reason}", job.id));
        return Ok(());
    }
    run::remove_dir(&done_dir)?;
    std::fs::rename(&staging, &done_dir).map_err(FollowError::io("rename into place", &done_dir))?;
    run::sync_parent(&done_dir);
    state.begin_stage(row.id, stage.name())?;
    run::record_success(state, &row, stage, &done_dir, Some(result))?;
    opts.listener.info(&format!("{}: recorded", job.id));
    Ok(())
}

/// Why a job's printed result is not a pass, if it is not.
fn failure_of(stage: Stage, result: &serde_json::Value) -> Option<String> {
    if let Some(e) = result.get("error") {
        return Some(e["message"].as_str().unwrap_or("failed").to_string());
    }
    match stage {
        Stage::BootTest if result["passed"] != true => Some("the boot test did not pass".into()),
        Stage::Check if result.get("modules").is_none() => Some("no check report".into()),
        _ => None,
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), FollowError> {
    std::fs::create_dir_all(to).map_err(FollowError::io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(FollowError::io("read", from))?.flatten() {
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src).map_err(FollowError::io("read", &src))?;
        if meta.is_dir() {
            copy_tree(&src, &dest)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dest).map_err(FollowError::io("copy", &src))?;
        }
    }
    Ok(())
}
