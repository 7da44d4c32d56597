//! `krbd-forge follow`: discover the followed lines' new kernel releases, build, prove,
//! package and publish each, keep the state, and exit (run it from a timer or cron).

use super::exit::{help_with_table, ExitCode, Failure};
use super::terminal::Terminal;
use krbd_follow::config::DEFAULT_CONFIG;
use krbd_follow::retry::{RetryOutcome, RetrySelection};
use krbd_follow::run::{RunOptions, RunSummary};
use krbd_follow::state::{iso8601, ReleaseRow, ReleaseState, State, Verdict};
use krbd_follow::{FollowConfig, FollowError};
use krbd_host::outln;
use std::path::{Path, PathBuf};

const FOLLOW_HELP: &str = "\
One run: take the state's lock, `apt-get update` a private apt (its own sources list,
lists, cache and status under the state folder; the host's apt is untouched) for Debian
lines and read each [[rhel]] repository's repodata (kernel-devel packages; repomd.xml's
signature checked with archive_key), list the releases of every followed line, and work
each release not handled before through its
stages: build, check, boot-test --cluster (Debian; proofs.boot_test_cluster), package
(.deb / kmod RPM), publish (signed APT / YUM repository, switched atomically). Each stage
is the normal krbd-forge command line, run as a child process; its results are recorded in
the state (SQLite) only once they are in place, so a run killed at any point resumes on the
next one, and only releases whose every stage passed are published. A release that fails
is recorded with its reason and not worked again by later runs (`follow status` shows it);
once the cause is fixed, `follow retry RELEASE` (or `--all-failed`) makes the next run redo
it from its first failed stage (from build if its packages changed in the mirror). A run
first stops whatever a killed run left running and redoes an interrupted stage in a fresh
folder. Then the run exits: start it from the systemd timer or the cron file shipped in
dist/.

Exit 0: every release handled was published (or there was nothing new); 20: at least one
release failed; 21: another run holds the lock.";

/// Follow the distribution: build, prove and publish every new kernel release of the
/// configured lines, then exit (`follow` alone is `follow run`).
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(FOLLOW_HELP))]
pub struct FollowArgs {
    #[command(subcommand)]
    command: Option<FollowCommand>,

    /// The configuration file (TOML; see the README's "follow configuration").
    #[arg(long, value_name = "FILE", global = true, env = "KRBD_FORGE_FOLLOW_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,

    /// Print the result as JSON on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum FollowCommand {
    /// Discover new releases and work them through every stage, then exit (the default).
    Run,
    /// Show every release seen, each stage's verdict, times and the reason of a failure.
    Status,
    /// Discover, then print the pending jobs (one per release and stage, each the normal
    /// krbd-forge command line) for a CI system's runners (docs/follow-ci.md).
    Plan,
    /// Take finished job outputs (folders jobs/<release>/<stage>/ with job.json and
    /// result.json) into the state and publish every release whose proofs are all in.
    Publish {
        /// The job output folders.
        #[arg(value_name = "JOB_OUTPUT", required = true)]
        outputs: Vec<PathBuf>,
    },
    /// Mark failed releases pending again, so that the next run redoes each from its first
    /// failed stage (from build when its packages changed in the mirror). Fix the cause
    /// first: `follow status` shows each failure's reason.
    #[command(
        after_help = "Examples:\n  krbd-forge follow retry 6.12.118+deb12-amd64\n  krbd-forge follow retry --all-failed"
    )]
    Retry {
        /// The releases to retry, as `follow status` lists them.
        #[arg(value_name = "RELEASE", required_unless_present = "all_failed", conflicts_with = "all_failed")]
        releases: Vec<String>,
        /// Every release recorded as failed.
        #[arg(long)]
        all_failed: bool,
    },
}

pub fn run(args: FollowArgs) -> ExitCode {
    let config = match FollowConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => return report(&FollowError::Config(e), args.json),
    };
    match args.command.unwrap_or(FollowCommand::Run) {
        FollowCommand::Run => run_once(&config, args.json, None),
        FollowCommand::Status => status(&config, args.json),
        FollowCommand::Plan => plan(&config, args.json),
        FollowCommand::Publish { outputs } => run_once(&config, args.json, Some(&outputs)),
        FollowCommand::Retry { releases, all_failed } => {
            let selection = if all_failed { RetrySelection::AllFailed } else { RetrySelection::Releases(releases) };
            retry(&config, &selection, args.json)
        }
    }
}

/// The exit code of each follow error; a new variant needs one line here.
fn code(e: &FollowError) -> ExitCode {
    match e {
        FollowError::Config(_) | FollowError::UnknownRelease { .. } => ExitCode::Usage,
        FollowError::Locked { .. } => ExitCode::FollowLocked,
        FollowError::Io { source, .. } => ExitCode::of_io(source.kind()),
        FollowError::State { .. } | FollowError::StateTooNew { .. } => ExitCode::Environment,
        FollowError::Apt { .. } | FollowError::Repodata { .. } => ExitCode::Fetch,
        FollowError::Publish { .. } => ExitCode::Environment,
    }
}

fn report(e: &FollowError, json: bool) -> ExitCode {
    let hint = match e {
        FollowError::Config(krbd_follow::ConfigError::Read { .. }) => Some(format!(
            "write one (see the README's follow configuration) or pass --config FILE; default {DEFAULT_CONFIG}"
        )),
        FollowError::Locked { .. } => Some("wait for that run to end; its lock goes with it".to_string()),
        FollowError::Apt { .. } => {
            Some("check the mirror URLs, suites and archive_key in the configuration".to_string())
        }
        FollowError::Repodata { .. } => Some(
            "check the [[rhel]] repo URL (the folder holding repodata/) and its archive_key; \
             without archive_key repomd.xml is not verified"
                .to_string(),
        ),
        FollowError::UnknownRelease { .. } => Some("`krbd-forge follow status` lists the known releases".to_string()),
        _ => None,
    };
    Failure::from_error(code(e), e).with_hint(hint).report(json)
}

/// The series as the child builds take it (its folder), and a digest of its files.
fn series(config: &FollowConfig) -> Result<(String, String), Failure> {
    if config.series == "none" {
        return Ok(("none".into(), "none".into()));
    }
    let cache = krbd_fetch::cache::Cache::open(config.cache_dir.clone())
        .map_err(|e| Failure::from_error(super::exit::fetch_code(&e), &e))?;
    let source = super::series::find_series(&config.series, &cache).map_err(|e| {
        Failure::new(ExitCode::Patch, format!("series {:?} of {}: {e}", config.series, config.path.display()))
    })?;
    let dir = match source {
        Some(krbd_build::patch::SeriesSource::Plain(dir)) => dir,
        Some(krbd_build::patch::SeriesSource::Variants { dir, .. }) => dir,
        None => return Ok(("none".into(), "none".into())),
    };
    let digest = folder_digest(&dir).map_err(|e| Failure::from_error(ExitCode::of_io(e.kind()), &e))?;
    Ok((dir.display().to_string(), digest))
}

/// sha256 over every file's relative path and contents, in path order.
fn folder_digest(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut text = String::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        text += &format!("{rel}\0{}\n", krbd_formats::digest::sha256_file(&f, |_| {})?);
    }
    Ok(krbd_formats::digest::sha256_hex(text.as_bytes()))
}

/// `follow run`, or with `outputs` `follow publish` of CI job outputs.
fn run_once(config: &FollowConfig, json: bool, outputs: Option<&[PathBuf]>) -> ExitCode {
    let (series_arg, series_digest) = match series(config) {
        Ok(s) => s,
        Err(f) => return f.report(json),
    };
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return Failure::from_error(ExitCode::Environment, &e).report(json),
    };
    let terminal = Terminal::new(false);
    let opts = RunOptions { config, program, series_arg, series_digest, listener: &terminal };
    let result = match outputs {
        None => krbd_follow::run::run(&opts),
        Some(outputs) => krbd_follow::plan::publish_outputs(&opts, outputs),
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => return report(&e, json),
    };
    drop(terminal);
    print_summary(&summary);
    let exit = if summary.failed.is_empty() { ExitCode::Ok } else { ExitCode::ReleasesFailed };
    if json {
        let mut v = serde_json::to_value(&summary).unwrap_or_default();
        v["exit_code"] = exit.code().into();
        super::exit::print_json(&v);
    }
    exit
}

fn plan(config: &FollowConfig, json: bool) -> ExitCode {
    let (_, series_digest) = match series(config) {
        Ok(s) => s,
        Err(f) => return f.report(json),
    };
    let terminal = Terminal::new(false);
    let opts = RunOptions {
        config,
        program: PathBuf::from("krbd-forge"),
        series_arg: config.series.clone(),
        series_digest,
        listener: &terminal,
    };
    let jobs = match krbd_follow::plan::plan(&opts) {
        Ok(j) => j,
        Err(e) => return report(&e, json),
    };
    drop(terminal);
    if json {
        return super::exit::print_json(&serde_json::json!({ "jobs": jobs }));
    }
    for j in &jobs {
        outln!("{:<40} needs {:<40} {}", j.id, j.needs.as_deref().unwrap_or("-"), j.command);
    }
    if jobs.is_empty() {
        outln!("nothing pending");
    }
    ExitCode::Ok
}

fn print_summary(s: &RunSummary) {
    if krbd_host::terminal::quiet() {
        return;
    }
    eprintln!(
        "follow: {} new, {} published, {} failed, {} handled before",
        s.discovered.len(),
        s.published.len(),
        s.failed.len(),
        s.already_handled
    );
    for r in &s.published {
        eprintln!("  published {} ({}, {})", r.release, r.line, r.version);
    }
    for r in &s.failed {
        eprintln!("  FAILED    {} ({}): {}", r.release, r.line, r.reason.as_deref().unwrap_or("?"));
    }
    for r in &s.incomplete {
        eprintln!("  waiting   {r}: not every proof is in yet");
    }
}

/// `follow retry`: failed releases pending again (the state only; the next run works them).
fn retry(config: &FollowConfig, selection: &RetrySelection, json: bool) -> ExitCode {
    let path = krbd_follow::state_path(config);
    let outcome = match (path.exists(), selection) {
        // No run yet: no release is known, so none failed.
        (false, RetrySelection::AllFailed) => Ok(RetryOutcome::default()),
        (false, RetrySelection::Releases(names)) => {
            Err(FollowError::UnknownRelease { what: names.first().cloned().unwrap_or_default() })
        }
        (true, _) => State::open(&path).and_then(|s| krbd_follow::retry::retry(&s, selection)),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return report(&e, json),
    };
    if json {
        return super::exit::print_json(&outcome);
    }
    print_retry(&outcome);
    ExitCode::Ok
}

fn print_retry(o: &RetryOutcome) {
    for r in &o.retried {
        let from = r.from_stage.as_deref().unwrap_or("build");
        outln!(
            "{}: pending again, the next run redoes it from {from} (failed: {})",
            r.release,
            r.reason.as_deref().unwrap_or("?")
        );
    }
    for n in &o.not_failed {
        let state = serde_json::to_value(n.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        outln!("{}: {state}, not failed: left as it is", n.release);
    }
    if o.retried.is_empty() {
        outln!("no failed release to retry");
    } else {
        outln!("run `krbd-forge follow` (or wait for the timer) to work them");
    }
}

fn status(config: &FollowConfig, json: bool) -> ExitCode {
    let path = krbd_follow::state_path(config);
    if !path.exists() {
        if json {
            return super::exit::print_json(&serde_json::json!({ "state": path, "releases": [] }));
        }
        outln!("no follow run yet ({} does not exist)", path.display());
        return ExitCode::Ok;
    }
    let releases = match State::open(&path).and_then(|s| s.releases()) {
        Ok(r) => r,
        Err(e) => return report(&e, json),
    };
    if json {
        let rows: Vec<serde_json::Value> = releases.iter().map(status_json).collect();
        return super::exit::print_json(&serde_json::json!({ "state": path, "releases": rows }));
    }
    print_table(&releases);
    let failed: Vec<&str> =
        releases.iter().filter(|r| r.state == ReleaseState::Failed).map(|r| r.release.as_str()).collect();
    if !failed.is_empty() {
        outln!(
            "{} failed (REASON above); once the cause is fixed: krbd-forge follow retry {} (or --all-failed)",
            failed.len(),
            failed.join(" ")
        );
    }
    ExitCode::Ok
}

/// A release's row as JSON; a failed one with the command that retries it.
fn status_json(r: &ReleaseRow) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if r.state == ReleaseState::Failed {
        v["retry"] = format!("krbd-forge follow retry {}", r.release).into();
    }
    v
}

const STAGES: [&str; 6] = ["build", "check", "boot-test", "guest-suite", "package", "publish"];

fn print_table(releases: &[ReleaseRow]) {
    let used: Vec<&str> = STAGES.iter().copied().filter(|s| releases.iter().any(|r| r.stage(s).is_some())).collect();
    // RHEL-family lines name their repository's host: as wide as the longest.
    let (rw, lw) = releases.iter().fold((26, 20), |(r, l), x| (r.max(x.release.len()), l.max(x.line.len())));
    let mut header = format!("{:<rw$} {:<lw$} {:<10}", "RELEASE", "LINE", "STATE");
    for s in &used {
        header += &format!(" {s:<11}");
    }
    outln!("{header} REASON");
    for r in releases {
        let state = serde_json::to_value(r.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let mut line = format!("{:<rw$} {:<lw$} {:<10}", r.release, r.line, state);
        for s in &used {
            let cell = match r.stage(s) {
                None => "-".to_string(),
                Some(st) => match (st.verdict, st.finished) {
                    (Verdict::Ok, Some(end)) => format!("ok {}s", end - st.started),
                    (Verdict::Failed, _) => "FAILED".into(),
                    _ => "running".into(),
                },
            };
            line += &format!(" {cell:<11}");
        }
        outln!("{line} {}", r.reason.as_deref().unwrap_or(""));
    }
    if let Some(last) = releases.iter().filter_map(|r| r.finished).max() {
        outln!("last release finished {}", iso8601(last));
    }
}
