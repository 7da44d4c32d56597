//! The stages of a release and the normal command line of each: `follow run` runs them
//! here, one child process at a time; `follow plan` prints the same command lines for a CI
//! system's runners.

use crate::config::FollowConfig;
use crate::discover::Family;
use crate::error::FollowError;
use crate::state::{Artifact, InputRow};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One stage of a release's way from discovery to the repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// `krbd-forge build`: fetch, patch, compile, and the loader check a build always does.
    Build,
    /// `krbd-forge check`: the offline loader check of the built set, on its own record.
    Check,
    /// `krbd-forge boot-test --cluster`: the release's own kernel under QEMU with RBD I/O.
    BootTest,
    /// `krbd-forge boot-test --suite DIR`: the configured suite in a Debian guest (off unless
    /// `proofs.guest_suite` names a folder).
    GuestSuite,
    /// `krbd-forge package`: the .deb (Debian) or kmod RPM (RHEL family).
    Package,
    /// Into the APT or YUM repository (in the follow process itself).
    Publish,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Check => "check",
            Stage::BootTest => "boot-test",
            Stage::GuestSuite => "guest-suite",
            Stage::Package => "package",
            Stage::Publish => "publish",
        }
    }

    /// The stage named `name`.
    pub fn from_name(name: &str) -> Option<Stage> {
        [Stage::Build, Stage::Check, Stage::BootTest, Stage::GuestSuite, Stage::Package, Stage::Publish]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// The stages a release of `family` goes through under `config`'s proofs, in order.
    pub fn for_release(family: Family, config: &FollowConfig) -> Vec<Stage> {
        let mut stages = vec![Stage::Build, Stage::Check];
        if family == Family::Debian && config.proofs.boot_test_cluster {
            stages.push(Stage::BootTest);
        }
        if family == Family::Debian && config.proofs.guest_suite.is_some() {
            stages.push(Stage::GuestSuite);
        }
        stages.extend([Stage::Package, Stage::Publish]);
        stages
    }
}

/// A command line: the program's arguments and the environment it needs beyond the
/// runner's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobCommand {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl JobCommand {
    /// As a shell line, `krbd-forge` standing for the program.
    pub fn shell_line(&self, program: &str) -> String {
        let quote = |s: &str| {
            if s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-/=:,@".contains(c)) {
                s.to_string()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        };
        let env = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v)));
        let args = self.args.iter().map(|a| quote(a));
        env.chain(std::iter::once(program.to_string())).chain(args).collect::<Vec<_>>().join(" ")
    }
}

/// Where a job's stages read and write: `dir(stage)` holds a finished stage's results.
pub trait Layout {
    fn dir(&self, stage: Stage) -> PathBuf;
}

/// What a stage's command line is made from.
pub struct CommandInputs<'a> {
    pub family: Family,
    /// The release's line (`debian/6.12-amd64`, `rhel/<host>/<series>`): for RHEL-family
    /// releases, which `[[rhel]]` repository the build fetches from.
    pub line: &'a str,
    pub release: &'a str,
    pub config: &'a FollowConfig,
    /// As `build --series` takes it.
    pub series: &'a str,
    pub layout: &'a dyn Layout,
    /// The package cache (`--cache-dir`); `None`: the runner's default.
    pub cache_dir: Option<&'a Path>,
}

/// The command of `stage`, writing into `output`; `None` for the stages that are no
/// command (publish).
pub fn command(stage: Stage, inputs: &CommandInputs<'_>, output: &Path) -> Option<JobCommand> {
    let CommandInputs { family, line, release, config, series, layout, cache_dir } = *inputs;
    // The RHEL-family repositories the release was found in: the build and the check take
    // the very packages discovery saw (`--repo`), not whatever a vault has.
    let rhel = config.rhel_source(line).filter(|_| family == Family::Rhel);
    let repos: Vec<String> =
        rhel.map(|r| std::iter::once(r.repo.clone()).chain(r.source_repo.clone()).collect()).unwrap_or_default();
    let repo_args = |to: &mut Vec<String>| {
        for r in &repos {
            to.extend(["--repo".to_string(), r.clone()]);
        }
    };
    let p = |path: &Path| path.display().to_string();
    let set = layout.dir(Stage::Build).join(release);
    let cache = cache_dir.map(|c| vec!["--cache-dir".to_string(), p(c)]).unwrap_or_default();
    let mut args: Vec<String> = match stage {
        Stage::Build => {
            let mut a = vec!["build", "--kernel", release, "--series", series, "--out"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            a.push(p(output));
            repo_args(&mut a);
            if let Some(key) = rhel.and_then(|r| r.rpm_key.as_deref()) {
                a.extend(["--rpm-key".to_string(), p(key)]);
            }
            a
        }
        Stage::Check => {
            let mut a = vec!["check".to_string()];
            a.extend(["libceph", "ceph", "rbd"].iter().map(|m| p(&set.join(format!("{m}.ko")))));
            // RHEL family: the kernel-devel RPM's headers, from the same repository.
            a.extend(["--kernel".to_string(), release.to_string()]);
            repo_args(&mut a);
            a
        }
        Stage::BootTest => {
            let timeout = config.proofs.boot_test_timeout.to_string();
            let mut a: Vec<String> =
                ["boot-test", "--kernel", release, "--cluster", "--timeout", &timeout, "--modules"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            a.extend([p(&set), "--work-dir".into(), p(&output.join("work"))]);
            a
        }
        Stage::Package => {
            let format = if family == Family::Debian { "deb" } else { "rpm" };
            let mut a =
                vec!["package".to_string(), "--format".into(), format.into(), p(&set), "--out".into(), p(output)];
            if let Some(key) = &config.publish.module_sign_key {
                a.extend(["--sign-key".into(), p(key)]);
                if let Some(cert) = &config.publish.module_sign_cert {
                    a.extend(["--sign-cert".into(), p(cert)]);
                }
            }
            a
        }
        Stage::GuestSuite => {
            let suite = config.proofs.guest_suite.as_deref()?;
            let mut a: Vec<String> =
                ["boot-test", "--kernel", release, "--modules"].iter().map(|s| s.to_string()).collect();
            a.extend([p(&set), "--suite".into(), p(suite), "--work-dir".into(), p(&output.join("work"))]);
            a
        }
        Stage::Publish => return None,
    };
    if stage != Stage::Package {
        args.extend(cache);
    }
    args.push("--json".into());
    Some(JobCommand { args, env: Vec::new() })
}

/// How a child stage ended.
#[derive(Debug, Clone)]
pub struct ChildOutcome {
    pub exit_code: Option<i32>,
    /// Its stdout, parsed (every stage command prints JSON with `--json`).
    pub json: Option<serde_json::Value>,
}

impl ChildOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The `kind` and the reason of a failure, from the JSON error the command printed (or
    /// from the report a test printed before exiting non-zero).
    pub fn failure(&self) -> (Option<String>, String) {
        let Some(json) = &self.json else {
            return (
                None,
                format!("exited with {}", self.exit_code.map_or("a signal".into(), |c| format!("status {c}"))),
            );
        };
        if let Some(e) = json.get("error") {
            let message = e["message"].as_str().unwrap_or("failed").to_string();
            let hint = e["hint"].as_str().map(|h| format!(" ({h})")).unwrap_or_default();
            return (e["kind"].as_str().map(String::from), format!("{message}{hint}"));
        }
        // boot-test --suite's report: the tests that did not pass.
        if let Some(tests) = json["ours"]["tests"].as_array() {
            let failed: Vec<String> = tests
                .iter()
                .filter(|t| t["outcome"] != "pass")
                .map(|t| format!("{} {}", t["name"].as_str().unwrap_or("?"), t["outcome"].as_str().unwrap_or("?")))
                .collect();
            if !failed.is_empty() {
                return (Some("test-failed".into()), format!("suite tests failed: {}", failed.join(", ")));
            }
        }
        // boot-test's report: its problems; check's: the refused modules.
        let problems: Vec<String> = json["problems"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let reason = if problems.is_empty() {
            format!("exited with status {}", self.exit_code.unwrap_or(-1))
        } else {
            problems.join("; ")
        };
        (None, reason)
    }
}

/// Runs `program` with `cmd` in the foreground: stdout captured (JSON), stderr into
/// `log`. The child gets SIGTERM if this process dies (kill -9 included), so that it stops
/// and tears down what it started (a boot test's QEMU and cluster) instead of running on.
pub fn run_child(program: &Path, cmd: &JobCommand, log: &Path) -> Result<ChildOutcome, FollowError> {
    let log_file = std::fs::File::create(log).map_err(FollowError::io("create", log))?;
    let mut command = Command::new(program);
    command.args(cmd.args.iter().map(OsString::from)).stdin(Stdio::null()).stderr(log_file).stdout(Stdio::piped());
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    die_with_parent(&mut command);
    let out = command.output().map_err(FollowError::io("run", program))?;
    let json = serde_json::from_slice(&out.stdout).ok();
    Ok(ChildOutcome { exit_code: out.status.code(), json })
}

fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid before the fork; prctl and getppid are async-signal-safe, and nothing
    // else runs between fork and exec here.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Killed between fork and prctl: no signal would ever come, so do not start.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Every file below `dir`, with its sha256, in path order.
pub fn artifacts(dir: &Path) -> Result<Vec<Artifact>, FollowError> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(FollowError::io("read", &d))?.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(FollowError::io("read", &path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let sha256 =
                    krbd_formats::digest::sha256_file(&path, |_| {}).map_err(FollowError::io("read", &path))?;
                files.push(Artifact { path, sha256, size: meta.len() });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The inputs a build report lists.
pub fn build_inputs(report: &serde_json::Value) -> Vec<InputRow> {
    report["inputs"]
        .as_array()
        .map(|inputs| {
            inputs
                .iter()
                .filter_map(|i| {
                    Some(InputRow {
                        role: i["role"].as_str()?.to_string(),
                        name: i["name"].as_str()?.to_string(),
                        version: i["version"].as_str().map(String::from),
                        sha256: i["sha256"].as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
