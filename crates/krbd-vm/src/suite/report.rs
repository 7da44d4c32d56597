//! The suite's report: one row per test, the proof that the loaded modules are the set
//! under test, and (with a control run on the stock set) each failure classified.

use super::payload::TestFiles;
use super::{SetUnderTest, SuiteSpec, TestKind};
use crate::cluster::MsMode;
use crate::deps::{gnu_build_id, plan_load_order};
use crate::guest::GuestEvent;
use crate::linux_image::KernelPackage;
use crate::qemu::QemuOutcome;
use crate::VmError;
use krbd_progress::Listener;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The modules `rbd map` (and `modprobe ceph`) load, whose identity the report proves.
pub const PROVEN_MODULES: [&str; 3] = ["libceph", "rbd", "ceph"];

/// A failing test's output is kept in full in the results folder; the report carries this
/// much of its end.
const OUTPUT_IN_REPORT: usize = 64 * 1024;

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Killed after its timeout (or still hung past it when the guest's own time ran out).
    Timeout,
    /// The guest never got to it (it died or ran out of time before).
    NotRun,
}

/// What a failure means once the control run on the stock set is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Passed with our set.
    Pass,
    /// Failed with our set and passed with the stock set: our modules broke it.
    Regression,
    /// Failed with both sets: the environment (cluster, guest, the test itself).
    Environment,
    /// Failed with our set; no control run to tell why.
    Unclassified,
}

/// One test's row.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub kind: TestKind,
    pub outcome: Outcome,
    pub seconds: Option<f64>,
    /// Its limit (its own `krbd-timeout:` or the run's).
    pub timeout_secs: u64,
    pub exit_code: Option<i32>,
    /// The end of the output (cram's diff) when the test did not pass.
    pub output: Option<String>,
    pub output_truncated: bool,
    /// The full output, kept on the host.
    pub output_file: Option<PathBuf>,
    /// Kernel lines logged during the test that point at trouble (oops, WARN, BUG,
    /// `libceph:` errors).
    pub kernel_concerns: Vec<String>,
    /// With a control run: the same test on the stock set, and what the pair means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_outcome: Option<Outcome>,
    pub classification: Classification,
}

/// One module the guest loaded, against the file it should be.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleProof {
    pub name: String,
    /// GNU build-id of the file under test (ours, or the package's for the stock set).
    pub expected_build_id: Option<String>,
    /// From `/sys/module/<name>/notes/.note.gnu.build-id` after `rbd map`.
    pub loaded_build_id: Option<String>,
    pub matches: bool,
    /// `modinfo -n <name>` in the guest: the file modprobe picks.
    pub modprobe_path: Option<String>,
    /// Whether the module was loaded before `rbd map` ran (it should not be).
    pub loaded_before_map: Option<bool>,
}

/// One suite run's report.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub kernel_release: String,
    pub guest_release: Option<String>,
    /// `ours` or `stock`.
    pub set: String,
    pub accelerator: String,
    pub ms_mode: MsMode,
    pub test_timeout_secs: u64,
    /// `rbd map` in the guest worked (and how the udev link resolved).
    pub map: Option<String>,
    pub proof: Vec<ModuleProof>,
    pub tests: Vec<TestResult>,
    /// Seconds from power-on until the guest's network reached the cluster.
    pub ready_secs: Option<f64>,
    pub elapsed_secs: f64,
    pub timed_out: bool,
    pub serial_log: PathBuf,
    pub results_dir: PathBuf,
    pub passed: bool,
    pub problems: Vec<String>,
}

/// The build-ids the loaded modules must have.
pub(super) fn expected_build_ids(
    pkg: &KernelPackage,
    set: &SetUnderTest,
    listener: &dyn Listener,
) -> Result<BTreeMap<String, Option<String>>, VmError> {
    let plan = match set {
        SetUnderTest::Ours(ours) => plan_load_order(pkg, ours, &[], listener)?,
        SetUnderTest::Stock => plan_load_order(pkg, &[], &PROVEN_MODULES, listener)?,
    };
    Ok(plan.into_iter().filter(|m| PROVEN_MODULES.contains(&m.name.as_str())).map(|m| (m.name, m.build_id)).collect())
}

/// Whether a kernel line points at trouble.
pub fn is_concern(line: &str) -> bool {
    const ALWAYS: [&str; 8] =
        ["Oops", "WARNING:", "BUG:", "Call Trace", "general protection fault", "Kernel panic", "RIP:", "refcount_t:"];
    if ALWAYS.iter().any(|w| line.contains(w)) {
        return true;
    }
    line.contains("libceph:")
        && ["error", "fail", "corrupt", "bad ", "invalid", "mismatch"].iter().any(|w| line.to_lowercase().contains(w))
}

fn value<'a>(events: &'a [GuestEvent], key: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match e {
        GuestEvent::Value { key: k, value } if k == key => Some(value.as_str()),
        _ => None,
    })
}

fn proof(events: &[GuestEvent], expected: &BTreeMap<String, Option<String>>) -> Vec<ModuleProof> {
    PROVEN_MODULES
        .iter()
        .map(|name| {
            let loaded_build_id = events.iter().find_map(|e| match e {
                GuestEvent::BuildIdNote { module, note_hex } if module == name => {
                    hex::decode(note_hex).ok().and_then(|n| gnu_build_id(&n))
                }
                _ => None,
            });
            let expected_build_id = expected.get(*name).cloned().flatten();
            ModuleProof {
                name: name.to_string(),
                matches: expected_build_id.is_some() && expected_build_id == loaded_build_id,
                expected_build_id,
                loaded_build_id,
                modprobe_path: value(events, &format!("modpath_{name}")).map(str::to_string),
                loaded_before_map: value(events, &format!("loaded_before_map_{name}")).map(|v| v == "yes"),
            }
        })
        .collect()
}

/// One test's row from the files the guest wrote (or, failing those, its console record).
fn test_row(
    test: &super::SuiteTest,
    files: Option<&TestFiles>,
    record: Option<&(String, Option<i32>, Option<f64>)>,
    started: bool,
    timeout_secs: u64,
    results_dir: &Path,
) -> TestResult {
    let exit_code = files.and_then(|f| f.rc).or(record.and_then(|r| r.1));
    let seconds = files.and_then(|f| f.seconds).or(record.and_then(|r| r.2));
    // timeout(1) exits 124 after its signal, 137 when it had to SIGKILL.
    let timed_out = |rc| rc == 124 || (rc == 137 && seconds.is_some_and(|s| s + 1.0 >= timeout_secs as f64));
    let outcome = match exit_code {
        // Started but never ended: hung beyond timeout(1)'s SIGKILL (a task stuck in the
        // kernel) until the guest's own time ran out.
        None if started => Outcome::Timeout,
        None => Outcome::NotRun,
        Some(0) => Outcome::Pass,
        Some(rc) if timed_out(rc) => Outcome::Timeout,
        Some(_) => Outcome::Fail,
    };
    let failed = outcome != Outcome::Pass;
    let raw = files.map(|f| f.output.as_slice()).unwrap_or_default();
    let truncated = raw.len() > OUTPUT_IN_REPORT;
    let tail = &raw[raw.len().saturating_sub(OUTPUT_IN_REPORT)..];
    let output_file = results_dir.join(&test.name).join("output");
    TestResult {
        name: test.name.clone(),
        kind: test.kind,
        outcome,
        seconds,
        timeout_secs,
        exit_code,
        output: (failed && files.is_some()).then(|| String::from_utf8_lossy(tail).into_owned()),
        output_truncated: failed && truncated,
        output_file: output_file.is_file().then_some(output_file),
        kernel_concerns: files
            .map(|f| f.dmesg.lines().filter(|l| is_concern(l)).map(str::to_string).collect())
            .unwrap_or_default(),
        stock_outcome: None,
        classification: if failed { Classification::Unclassified } else { Classification::Pass },
    }
}

/// The report of one run.
#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    spec: &SuiteSpec,
    release: &str,
    accelerator: &str,
    events: &[GuestEvent],
    files: &BTreeMap<String, TestFiles>,
    outcome: &QemuOutcome,
    serial_log: &Path,
    expected: &BTreeMap<String, Option<String>>,
) -> SuiteReport {
    let records = super::console_records(events);
    let results_dir = super::results_dir(&spec.work_dir);
    let timeout_secs = spec.test_timeout.as_secs();
    let tests: Vec<TestResult> = spec
        .tests
        .iter()
        .map(|t| {
            let record = records.iter().find(|r| r.0 == t.name);
            let started = events.iter().any(
                |e| matches!(e, GuestEvent::Other { kind, fields } if kind == "started" && fields.join("|") == t.name),
            );
            test_row(t, files.get(&t.name), record, started, spec.timeout_secs(t), &results_dir)
        })
        .collect();
    let proof = proof(events, expected);
    let map = events.iter().find_map(|e| match e {
        GuestEvent::Step { name, ok, detail } if name == "map" => {
            Some(format!("{}: {detail}", if *ok { "ok" } else { "failed" }))
        }
        _ => None,
    });
    let mut problems = Vec::new();
    for e in events {
        if let GuestEvent::Step { name, ok: false, detail } = e {
            problems.push(format!("guest step {name} failed: {detail}"));
        }
        if let GuestEvent::Value { key, value } = e {
            if key == "initramfs_error" {
                problems.push(format!("initramfs: {value}"));
            }
        }
    }
    for p in proof.iter().filter(|p| !p.matches) {
        problems.push(format!(
            "{}: the loaded module's build-id {} is not the {} file's {}",
            p.name,
            p.loaded_build_id.as_deref().unwrap_or("(none)"),
            spec.set.label(),
            p.expected_build_id.as_deref().unwrap_or("(none)")
        ));
    }
    if outcome.timed_out {
        problems.push(format!("the guest did not finish in time; serial log {}", serial_log.display()));
    }
    for t in tests.iter().filter(|t| t.outcome != Outcome::Pass) {
        problems.push(format!("test {}: {:?}", t.name, t.outcome).to_lowercase());
    }
    SuiteReport {
        kernel_release: release.to_string(),
        guest_release: events.iter().find_map(|e| match e {
            GuestEvent::Begin { release } => Some(release.trim().to_string()),
            _ => None,
        }),
        set: spec.set.label().into(),
        accelerator: accelerator.to_string(),
        ms_mode: spec.ms_mode,
        test_timeout_secs: timeout_secs,
        map,
        proof,
        tests,
        ready_secs: value(events, "ready_uptime").and_then(|v| v.parse().ok()),
        elapsed_secs: outcome.elapsed.as_secs_f64(),
        timed_out: outcome.timed_out,
        serial_log: serial_log.to_path_buf(),
        results_dir,
        passed: problems.is_empty(),
        problems,
    }
}

/// Adds the control run's outcome to each of our rows and classifies the failures: a test
/// that fails on both sets is an environment problem, one that fails only on ours a
/// regression.
pub fn classify(ours: &mut SuiteReport, stock: &SuiteReport) {
    for t in &mut ours.tests {
        let control = stock.tests.iter().find(|s| s.name == t.name).map(|s| s.outcome);
        t.stock_outcome = control;
        t.classification = match (t.outcome, control) {
            (Outcome::Pass, _) => Classification::Pass,
            (_, Some(Outcome::Pass)) => Classification::Regression,
            (_, Some(_)) => Classification::Environment,
            (_, None) => Classification::Unclassified,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: &[(&str, Outcome)]) -> SuiteReport {
        let row = |(name, outcome): &(&str, Outcome)| TestResult {
            name: name.to_string(),
            kind: TestKind::Script,
            outcome: *outcome,
            seconds: Some(1.0),
            timeout_secs: 1,
            exit_code: None,
            output: None,
            output_truncated: false,
            output_file: None,
            kernel_concerns: vec![],
            stock_outcome: None,
            classification: if *outcome == Outcome::Pass { Classification::Pass } else { Classification::Unclassified },
        };
        SuiteReport {
            kernel_release: "r".into(),
            guest_release: None,
            set: "ours".into(),
            accelerator: "tcg".into(),
            ms_mode: MsMode::Crc,
            test_timeout_secs: 1,
            map: None,
            proof: vec![],
            tests: rows.iter().map(row).collect(),
            ready_secs: None,
            elapsed_secs: 0.0,
            timed_out: false,
            serial_log: PathBuf::new(),
            results_dir: PathBuf::new(),
            passed: false,
            problems: vec![],
        }
    }

    #[test]
    fn failures_on_both_sets_are_environment_and_only_on_ours_regressions() {
        use Outcome::*;
        let mut ours = report(&[("a", Pass), ("b", Fail), ("c", Timeout), ("d", Fail)]);
        let stock = report(&[("a", Pass), ("b", Pass), ("c", Fail)]);
        classify(&mut ours, &stock);
        let got: Vec<(Classification, Option<Outcome>)> =
            ours.tests.iter().map(|t| (t.classification, t.stock_outcome)).collect();
        assert_eq!(
            got,
            [
                (Classification::Pass, Some(Pass)),
                (Classification::Regression, Some(Pass)),
                (Classification::Environment, Some(Fail)),
                (Classification::Unclassified, None),
            ]
        );
    }

    #[test]
    fn outcomes_from_exit_status_time_and_the_console() {
        let t = super::super::SuiteTest { name: "t.sh".into(), kind: TestKind::Script, timeout_secs: None };
        let dir = Path::new("/nonexistent");
        let rec = |rc, secs| ("t.sh".to_string(), Some(rc), Some(secs));
        let outcome = |record: Option<(String, Option<i32>, Option<f64>)>, started| {
            test_row(&t, None, record.as_ref(), started, 20, dir).outcome
        };
        assert_eq!(outcome(Some(rec(0, 1.0)), true), Outcome::Pass);
        assert_eq!(outcome(Some(rec(124, 20.1)), true), Outcome::Timeout);
        assert_eq!(outcome(Some(rec(137, 30.0)), true), Outcome::Timeout, "SIGKILL after the grace period");
        assert_eq!(outcome(Some(rec(137, 3.0)), true), Outcome::Fail, "killed by something else, early");
        assert_eq!(outcome(None, true), Outcome::Timeout, "started, never ended");
        assert_eq!(outcome(None, false), Outcome::NotRun);
    }

    #[test]
    fn concerns_are_oopses_warnings_and_libceph_errors() {
        assert!(is_concern("[  3.1] WARNING: CPU: 0 PID: 1 at net/ceph/osdmap.c:123"));
        assert!(is_concern("[  3.1] BUG: kernel NULL pointer dereference"));
        assert!(is_concern("libceph: osdmap corrupt or bad"));
        assert!(is_concern("libceph: mon0 (2)10.254.0.1:3300 protocol error, bad features"));
        assert!(!is_concern("libceph: mon0 (2)10.254.0.1:3300 session established"));
        assert!(!is_concern("rbd: rbd0: capacity 16777216 features 0x3d"));
    }
}
