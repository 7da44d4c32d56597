//! `krbd-forge boot-test --suite DIR`: a suite of workunit scripts and cram tests in a real
//! Debian guest on the target's kernel, against a throwaway cluster; with `--stock`, the
//! same suite on the stock modules as a control, and each failure classified.

use super::boot_test::{
    download_image, fail, fail_vm, remember_accel_verdicts, start_cluster_while_probing, target_release, BootTestArgs,
};
use super::exit::{ExitCode, Failure};
use super::terminal::Terminal;
use krbd_host::outln;
use krbd_progress::Listener;
use krbd_vm::guest_root::{GuestRoot, GuestRootSpec};
use krbd_vm::suite::{self, Classification, Outcome, SetUnderTest, SuiteReport};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `boot-test --suite --json` prints.
#[derive(Debug, Serialize)]
pub struct SuiteRunReport {
    pub kernel_release: String,
    pub suite: PathBuf,
    pub guest_root: GuestRoot,
    /// The set under test.
    pub ours: SuiteReport,
    /// The control run on the stock set (`--stock`).
    pub stock: Option<SuiteReport>,
    /// Tests that failed only with the set under test.
    pub regressions: Vec<String>,
    /// Tests that failed with the stock set too.
    pub environment_failures: Vec<String>,
    pub passed: bool,
}

/// The modules to test as `install` places them: a build's out folder gives its
/// debug-stripped copies (what ships); another folder is read as it is.
fn set_under_test(dir: &Path) -> Result<Vec<krbd_vm::deps::OurModule>, Failure> {
    use krbd_kmod::set::{ModuleCopy, ModuleSet, OpenOptions, REPORT_FILE};
    if !dir.join(REPORT_FILE).exists() {
        return krbd_vm::load_our_modules(dir).map_err(|e| Failure::from_error(super::boot_test::exit_code_of(&e), &e));
    }
    let options = OpenOptions { copy: ModuleCopy::Stripped, require_report: true };
    let set = ModuleSet::open(dir, &options)
        .map_err(|e| Failure::from_error(e.io_kind().map_or(ExitCode::BadInput, ExitCode::of_io), &e))?;
    Ok(set
        .modules
        .into_iter()
        .map(|m| krbd_vm::deps::OurModule { origin: m.path.display().to_string(), name: m.name, bytes: m.bytes })
        .collect())
}

/// Everything before the guests run: the inputs checked, the kernel package, the guest root.
struct Prepared {
    release: String,
    image_deb: PathBuf,
    modules: Vec<krbd_vm::deps::OurModule>,
    tests: Vec<suite::SuiteTest>,
    suite_dir: PathBuf,
    work_dir: PathBuf,
}

fn prepare(args: &BootTestArgs, listener: &Terminal) -> Result<Prepared, ExitCode> {
    let json = args.json;
    if krbd_vm::qemu::find_program(&args.qemu).is_none() {
        let e = krbd_vm::VmError::QemuMissing {
            program: args.qemu.clone(),
            path_env: std::env::var("PATH").unwrap_or_default(),
        };
        return Err(fail_vm(json, "qemu", &e));
    }
    let suite_dir = args.suite.clone().unwrap_or_default();
    let tests = suite::discover(&suite_dir, &args.tests).map_err(|e| fail_vm(json, "suite", &e))?;
    let release = target_release(args)?;
    let modules_dir = args.modules.clone().unwrap_or_else(|| PathBuf::from("out").join(&release));
    let modules = set_under_test(&modules_dir).map_err(|f| f.detail("stage", "modules").report(json))?;
    let image_deb = match &args.image_deb {
        Some(p) => p.clone(),
        None => download_image(&release, &args.cache, listener)
            .map_err(|f| f.detail("stage", "kernel-package").report(json))?,
    };
    let work_dir =
        match &args.work_dir {
            Some(d) => d.clone(),
            None => tempfile::Builder::new().prefix("krbd-boot-suite.").tempdir().map(|d| d.keep()).map_err(|e| {
                fail(json, ExitCode::Environment, "work-dir", &format!("cannot create a work folder: {e}"))
            })?,
        };
    Ok(Prepared { release, image_deb, modules, tests, suite_dir, work_dir })
}

/// The guest root from the cache (built on first use).
fn guest_root(args: &BootTestArgs, listener: &Terminal) -> Result<GuestRoot, ExitCode> {
    let cache = args.cache.cache_dir.clone().unwrap_or_else(krbd_fetch::cache::Cache::default_root);
    let mut spec = GuestRootSpec::new(cache);
    spec.packages.extend(args.guest_packages.iter().cloned());
    let root = krbd_vm::guest_root::ensure(&spec, listener).map_err(|e| fail_vm(args.json, "guest-root", &e))?;
    match root.built_secs {
        Some(s) => listener.info(&format!("guest root {} built in {s:.0} s", root.key)),
        None => listener.info(&format!("guest root {} from the cache", root.key)),
    }
    Ok(root)
}

/// `boot-test --suite`.
pub fn run(args: BootTestArgs) -> ExitCode {
    let listener = Terminal::new(args.json);
    let json = args.json;
    krbd_vm::interrupt::install_handler();
    let p = match prepare(&args, &listener) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let root = match guest_root(&args, &listener) {
        Ok(r) => r,
        Err(code) => return code,
    };
    remember_accel_verdicts(&args.cache);
    let cluster = match start_cluster_while_probing(&args, &p.image_deb, &p.release, &p.work_dir, &listener) {
        Ok(c) => c,
        Err(e) => return fail_vm(json, "cluster", &e),
    };
    listener.task_start("reading the kernel package", None, krbd_progress::Unit::Steps);
    let package = krbd_vm::KernelPackage::read(&p.image_deb, Some(&p.release));
    listener.task_finish();
    let package = match package {
        Ok(pkg) => pkg,
        Err(e) => return fail_vm(json, "kernel-package", &e),
    };
    let run_one = |set: SetUnderTest, sub: &str| {
        let spec = suite::SuiteSpec {
            package: &package,
            set,
            suite_dir: p.suite_dir.clone(),
            tests: p.tests.clone(),
            test_timeout: Duration::from_secs(args.test_timeout),
            root: root.clone(),
            cluster: &cluster,
            ms_mode: args.ms_mode.into(),
            busybox: args.busybox.clone(),
            qemu: args.qemu.clone(),
            work_dir: p.work_dir.join(sub),
            memory_mb: args.memory,
        };
        suite::run_suite(&spec, &listener)
    };
    let ours = run_one(SetUnderTest::Ours(p.modules.clone()), "ours");
    let stock = match (&ours, args.stock) {
        (Ok(_), true) => Some(run_one(SetUnderTest::Stock, "stock")),
        _ => None,
    };
    drop(cluster);
    let mut ours = match ours {
        Ok(r) => r,
        Err(e) => return fail_vm(json, "suite", &e),
    };
    let stock = match stock.transpose() {
        Ok(s) => s,
        Err(e) => return fail_vm(json, "suite-stock", &e),
    };
    if let Some(s) = &stock {
        suite::classify(&mut ours, s);
    }
    let names =
        |c: Classification| ours.tests.iter().filter(|t| t.classification == c).map(|t| t.name.clone()).collect();
    let report = SuiteRunReport {
        kernel_release: p.release.clone(),
        suite: p.suite_dir.clone(),
        guest_root: root,
        regressions: names(Classification::Regression),
        environment_failures: names(Classification::Environment),
        passed: ours.passed,
        ours,
        stock,
    };
    super::boot_test::publish_report(&report, &p.work_dir.join("report.json"), json, print_human);
    exit_code_of_run(&report)
}

/// 0 when everything passed; 22 when, with the control run, every failing test failed
/// with the stock set too and the set under test was proven loaded (nothing points at our
/// modules); 16 otherwise.
fn exit_code_of_run(report: &SuiteRunReport) -> ExitCode {
    let ours = &report.ours;
    if ours.passed {
        return ExitCode::Ok;
    }
    let only_environment = report.stock.is_some()
        && !ours.timed_out
        && ours.proof.iter().all(|m| m.matches)
        && ours.tests.iter().all(|t| matches!(t.classification, Classification::Pass | Classification::Environment));
    if only_environment {
        ExitCode::SuiteEnvironment
    } else {
        ExitCode::TestFailed
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Timeout => "TIMEOUT",
        Outcome::NotRun => "NOT RUN",
    }
}

fn print_human(r: &SuiteRunReport) {
    let o = &r.ours;
    outln!("kernel {} ({}), guest root {}, ms_mode {:?}", r.kernel_release, o.accelerator, r.guest_root.key, o.ms_mode);
    if let Some(m) = &o.map {
        outln!("rbd map: {m}");
    }
    for m in &o.proof {
        outln!(
            "  {:<8} {}  {}",
            m.name,
            if m.matches { "build-id matches the set under test" } else { "build-id DIFFERS" },
            m.modprobe_path.as_deref().unwrap_or("-")
        );
    }
    for t in &o.tests {
        let secs = t.seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into());
        let control = match (t.stock_outcome, t.classification) {
            (Some(s), Classification::Regression | Classification::Environment) => {
                format!("  (stock: {}, {:?})", outcome_word(s), t.classification).to_lowercase()
            }
            _ => String::new(),
        };
        outln!("  {:<8} {:<40} {secs:>9}{control}", outcome_word(t.outcome), t.name);
        for k in &t.kernel_concerns {
            outln!("           kernel: {k}");
        }
        if let Some(out) = &t.output {
            let lines: Vec<&str> = out.lines().collect();
            for l in &lines[lines.len().saturating_sub(20)..] {
                outln!("           | {l}");
            }
        }
    }
    if r.passed {
        outln!("PASSED");
    } else {
        outln!("FAILED:");
        for p in &o.problems {
            outln!("  {p}");
        }
    }
    outln!("results: {}", o.results_dir.display());
}
