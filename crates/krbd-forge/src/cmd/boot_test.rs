//! `krbd-forge boot-test`: boot the target's own kernel under QEMU, load the module set,
//! and optionally push I/O through it to a throwaway Ceph cluster.

use super::exit::{help_with_table, ExitCode, Failure};
use super::terminal::Terminal;
use clap::Args;
use krbd_host::outln;
use krbd_progress::Listener;
use krbd_vm::{BootReport, Cluster, ClusterSpec, VmError, VmErrorKind};
use std::path::PathBuf;
use std::time::Duration;

const BOOT_TEST_HELP: &str = "\
The test passes (exit 0) when every module of the set (and its dependencies) loaded, the
loaded modules are the given files (GNU build-id in sysfs; srcversion where modinfo has
one), and with --cluster every I/O check passed. The guest's serial log, the initramfs,
the vmlinux and report.json are kept in --work-dir (default: a new folder under $TMPDIR,
printed at the end).

With --agreement (the kernel against `krbd-forge check`): the bad-module corpus (flipped
vermagic, another release, changed CRCs, module_layout, missing export, missing dependency,
another struct module size, ...) is made from the target's own libceph, ceph, rbd and
libcrc32c, loaded into the target's kernel in one guest, and every module's verdict and
kernel messages are compared with the check's; it prints \"N/N modules agree\" and each
disagreement with both sides. Exit 0: all agree; 19 (disagreement): at least one
disagrees. The headers come from --headers or, like `check --kernel`, through the cache.

With --suite DIR: a Debian 12 guest root (debootstrap: ceph-common, udev, xfsprogs,
e2fsprogs, python3, cram, ...; built once into the cache under guest-root/, keyed by its
package list) boots the target's kernel with the package's whole module tree and the set
under test in /lib/modules/RELEASE/updates/krbd-forge/ (where `install` puts it; depmod
run). The guest starts udevd, reaches the throwaway cluster (3 OSDs unless --osds; pool
deletion allowed; client settings of Ceph's krbd QA: rbd default features = 37, every map
with --ms-mode), proves that `rbd map` loads the set (GNU build-ids in /sys/module equal
the files'), then runs each DIR/*.sh (pass: exit 0; environment: $CEPH_ARGS, $CEPH_ID,
a writable $TESTDIR as the working folder, /dev/rbd/POOL/IMAGE links, /dev/fd) and each
DIR/*.t (cram; pass: exact output), each killed after --test-timeout or the limit it
declares (`krbd-timeout: SECS` on one of its first 30 lines). Per test the report
has pass/fail/timeout, seconds, the failing output (cram's diff), and the kernel's oops,
WARN, BUG and libceph error lines; every output in full is under WORK_DIR/ours/results/.
--stock runs the same suite on the stock modules as a control: a test failing on both
is an environment failure, one failing only with the set under test a regression. Exit 0:
all passed; 16: a test failed (with --stock: at least one regression or the proof
failed); 22: with --stock, every failure failed on the stock set too.

QEMU uses KVM only when /dev/kvm opens and a short probe boot under KVM works; otherwise
TCG. The report says which and why (e.g. \"tcg: /dev/kvm absent\").";

#[derive(Debug, Args)]
#[command(after_long_help = help_with_table(BOOT_TEST_HELP))]
pub struct BootTestArgs {
    /// Kernel release to boot, e.g. 6.12.117+deb12-amd64 (its linux-image package is
    /// downloaded through apt into the cache unless --image-deb is given).
    /// [default: the target `krbd-forge build` builds by default, the newest -amd64
    /// release apt offers for the newest linux-source]
    #[arg(long, value_name = "RELEASE")]
    pub kernel: Option<String>,
    /// The folder with the modules under test (libceph.ko ceph.ko rbd.ko; .ko.xz also read).
    /// [default: out/RELEASE, where `krbd-forge build` puts them]
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    #[command(flatten)]
    pub cache: super::CacheArgs,
    /// Use this linux-image .deb instead of downloading linux-image-RELEASE.
    #[arg(long, value_name = "FILE")]
    pub image_deb: Option<PathBuf>,
    /// Also start a throwaway Ceph cluster (mon, mgr, memstore OSDs, cephx) in a network
    /// namespace of its own, map an RBD image in the guest and check I/O through it. Needs root.
    #[arg(long)]
    pub cluster: bool,
    /// Number of OSDs of the throwaway cluster. [default: 1; 3 with --suite, so that
    /// erasure-coded pools and pools of size 2 and 3 work]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub osds: Option<u32>,
    /// Hard limit for the guest run, in seconds (QEMU is killed after it).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub timeout: u64,
    /// Where to keep the serial log, images and report.json.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64", value_name = "PROGRAM")]
    pub qemu: PathBuf,
    /// A statically linked busybox for the initramfs.
    #[arg(long, default_value = "/bin/busybox", value_name = "FILE")]
    pub busybox: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(256..=8192))]
    pub memory: u32,
    /// Print the report as JSON on stdout (progress and warnings still go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Instead of testing a set: load the bad-module corpus into the kernel and compare every
    /// verdict and message with `krbd-forge check` (see below).
    #[arg(long, conflicts_with_all = ["cluster", "modules"])]
    pub agreement: bool,
    /// Run a suite instead of the one I/O check: each workunit-style script (DIR/*.sh, passes
    /// when it exits 0) and cram test (DIR/*.t, passes when its output is exactly the
    /// expected one) in a Debian 12 guest with the Ceph CLI (`rbd map` through udev and
    /// modprobe), against a throwaway 3-OSD cluster. See below.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["agreement", "cluster"])]
    pub suite: Option<PathBuf>,
    /// With --suite: run only this test (file name, with or without .sh/.t); repeatable.
    #[arg(long = "test", value_name = "NAME", requires = "suite")]
    pub tests: Vec<String>,
    /// With --suite: each test's limit in seconds (unless the test declares its own with
    /// `krbd-timeout: SECS`); the guest kills a test after it and reports it as timed out.
    #[arg(long, default_value_t = 600, value_name = "SECS", requires = "suite",
          value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub test_timeout: u64,
    /// With --suite: also run the suite against the target's stock modules as a control, and
    /// classify each failure: regression (fails only with the set under test) or
    /// environment (fails with the stock set too).
    #[arg(long, requires = "suite")]
    pub stock: bool,
    /// With --suite: how the guest's kernel client talks to the cluster: msgr2 in crc or
    /// secure mode, or the legacy protocol.
    #[arg(long, value_enum, default_value_t = MsModeArg::Crc, requires = "suite")]
    pub ms_mode: MsModeArg,
    /// With --suite: one more Debian package for the guest root (repeatable); a changed
    /// package list builds (and caches) another root.
    #[arg(long = "guest-package", value_name = "PACKAGE", requires = "suite")]
    pub guest_packages: Vec<String>,
    /// With --agreement: the target's headers folder (Module.symvers, .config); default:
    /// fetched through the cache like `check --kernel`.
    #[arg(long, value_name = "DIR", requires = "agreement")]
    pub headers: Option<PathBuf>,
}

/// `--ms-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MsModeArg {
    Crc,
    Secure,
    Legacy,
}

impl From<MsModeArg> for krbd_vm::MsMode {
    fn from(m: MsModeArg) -> Self {
        match m {
            MsModeArg::Crc => krbd_vm::MsMode::Crc,
            MsModeArg::Secure => krbd_vm::MsMode::Secure,
            MsModeArg::Legacy => krbd_vm::MsMode::Legacy,
        }
    }
}

/// The exit code of each kind of VM error.
pub(super) fn exit_code_of(e: &VmError) -> ExitCode {
    match e.kind() {
        VmErrorKind::UnknownTarget => ExitCode::Target,
        VmErrorKind::BadInput => ExitCode::BadInput,
        VmErrorKind::Environment => ExitCode::Environment,
        VmErrorKind::Guest => ExitCode::Guest,
        VmErrorKind::Cluster => ExitCode::Cluster,
        VmErrorKind::Interrupted => ExitCode::Interrupted,
    }
}

/// Reports a failure at `stage` (a `stage` field in the JSON error) and returns its code.
pub(super) fn fail(json: bool, code: ExitCode, stage: &str, message: &str) -> ExitCode {
    Failure::new(code, message).detail("stage", stage).report(json)
}

/// Reports a VM error at `stage` and returns its exit code.
pub(super) fn fail_vm(json: bool, stage: &str, e: &VmError) -> ExitCode {
    Failure::from_error(exit_code_of(e), e).detail("stage", stage).report(json)
}

/// The release to boot: `--kernel`, or without it the default target of `krbd-forge
/// build` (krbd_build's one choice of it), so that `build` then `boot-test` test the same.
pub(super) fn target_release(args: &BootTestArgs) -> Result<String, ExitCode> {
    match &args.kernel {
        Some(kernel) => Ok(kernel.clone()),
        None => krbd_build::target::default_release()
            .map(|release| release.to_string())
            .map_err(|e| super::build::report_error(&e, args.json)),
    }
}

/// Whether KVM can run guests is remembered per host in the cache (`accel/kvm-verdict.json`),
/// so that a host where /dev/kvm opens but KVM hangs pays the probe's timeout once.
pub(crate) fn remember_accel_verdicts(cache: &super::CacheArgs) {
    let root = cache.cache_dir.clone().unwrap_or_else(krbd_fetch::cache::Cache::default_root);
    krbd_vm::qemu::remember_verdicts_in(root.join("accel").join("kvm-verdict.json"));
}

/// Starts the cluster and, meanwhile, chooses the accelerator (the KVM probe boot), which
/// the boot test then reuses. A probe that cannot run is left for the boot test to report.
pub(super) fn start_cluster_while_probing(
    args: &BootTestArgs,
    image_deb: &std::path::Path,
    release: &str,
    work_dir: &std::path::Path,
    listener: &Terminal,
) -> Result<Cluster, VmError> {
    let osds = args.osds.unwrap_or(if args.suite.is_some() { 3 } else { 1 });
    let spec = ClusterSpec { dir: work_dir.join("ceph"), osds, start_timeout: Duration::from_secs(240) };
    std::thread::scope(|s| {
        let probe =
            s.spawn(|| krbd_vm::boot::choose_accel(image_deb, Some(release), &args.busybox, &args.qemu, work_dir));
        let cluster = Cluster::start(&spec, listener);
        let _ = probe.join();
        cluster
    })
}

/// The boot test of a set (`cmd::run` sends `--agreement` to the agreement run instead).
pub fn run(args: BootTestArgs) -> ExitCode {
    let listener = Terminal::new(args.json);
    let json = args.json;
    // A signal only sets a flag; the waiting loops then stop and everything is torn down.
    krbd_vm::interrupt::install_handler();
    // Cheap checks first, so that nothing is downloaded or started for nothing.
    if krbd_vm::qemu::find_program(&args.qemu).is_none() {
        let e =
            VmError::QemuMissing { program: args.qemu.clone(), path_env: std::env::var("PATH").unwrap_or_default() };
        return fail_vm(json, "qemu", &e);
    }
    let release = match target_release(&args) {
        Ok(release) => release,
        Err(code) => return code,
    };
    let modules_dir = args.modules.clone().unwrap_or_else(|| PathBuf::from("out").join(&release));
    let modules = match modules_under_test(&modules_dir) {
        Ok(m) => m,
        Err(failure) => return failure.detail("stage", "modules").report(json),
    };
    let image_deb = match &args.image_deb {
        Some(p) => p.clone(),
        None => match download_image(&release, &args.cache, &listener) {
            Ok(p) => p,
            Err(f) => return f.detail("stage", "kernel-package").report(json),
        },
    };
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("krbd-boot-test.").tempdir() {
            Ok(d) => d.keep(),
            Err(e) => {
                return fail(json, ExitCode::Environment, "work-dir", &format!("cannot create a work folder: {e}"))
            }
        },
    };
    remember_accel_verdicts(&args.cache);
    let cluster = if args.cluster {
        match start_cluster_while_probing(&args, &image_deb, &release, &work_dir, &listener) {
            Ok(c) => Some(c),
            Err(e) => return fail_vm(json, "cluster", &e),
        }
    } else {
        None
    };
    let spec = krbd_vm::BootTestSpec {
        image_deb,
        release: Some(release),
        modules,
        busybox: args.busybox.clone(),
        qemu: args.qemu.clone(),
        work_dir: work_dir.clone(),
        timeout: Duration::from_secs(args.timeout),
        memory_mb: args.memory,
        init_override: None,
        cluster: cluster.as_ref(),
    };
    let result = krbd_vm::run_boot_test(&spec, &listener);
    // The cluster goes before anything is printed, so that it is down even if output fails.
    drop(cluster);
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail_vm(json, "boot", &e),
    };
    publish_report(&report, &work_dir.join("report.json"), json, print_human);
    if report.passed {
        ExitCode::Ok
    } else {
        ExitCode::TestFailed
    }
}

/// The modules to boot. A build's out folder (it has a build report) is verified as a set
/// first, and the verified bytes are what the guest loads; any other folder (e.g. a
/// package's .ko.xz files) is read as it is.
pub(super) fn modules_under_test(dir: &std::path::Path) -> Result<Vec<krbd_vm::deps::OurModule>, Failure> {
    use krbd_kmod::set::{ModuleCopy, ModuleSet, OpenOptions, REPORT_FILE};
    if !dir.join(REPORT_FILE).exists() {
        return krbd_vm::load_our_modules(dir).map_err(|e| Failure::from_error(exit_code_of(&e), &e));
    }
    let options = OpenOptions { copy: ModuleCopy::Full, require_report: true };
    let set = ModuleSet::open(dir, &options)
        .map_err(|e| Failure::from_error(e.io_kind().map_or(ExitCode::BadInput, ExitCode::of_io), &e))?;
    let mut modules: Vec<krbd_vm::deps::OurModule> = set
        .modules
        .into_iter()
        .map(|m| krbd_vm::deps::OurModule { origin: m.path.display().to_string(), name: m.name, bytes: m.bytes })
        .collect();
    // In the order `load_our_modules` gives, so that a set boots the same either way.
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(modules)
}

/// Keeps the report next to the serial log and prints it: as JSON on stdout with `--json`,
/// else in words followed by the report's path.
pub(crate) fn publish_report<R: serde::Serialize>(report: &R, path: &std::path::Path, json: bool, print_human: fn(&R)) {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    if let Err(e) = std::fs::write(path, &text) {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
    if json {
        outln!("{text}");
    } else {
        print_human(report);
        outln!("report: {}", path.display());
    }
}

pub(super) fn download_image(
    release: &str,
    cache: &super::CacheArgs,
    listener: &dyn Listener,
) -> Result<PathBuf, Failure> {
    use krbd_fetch::apt;
    let fail = |e: &krbd_fetch::FetchError| Failure::from_error(super::exit::fetch_code(e), e);
    let name = format!("linux-image-{release}");
    let pkg = apt::show(&name, None).map_err(|e| {
        let f = fail(&e);
        Failure { message: format!("{} (is {release} a Debian kernel release?)", f.message), ..f }
    })?;
    let cache = cache.open().map_err(|e| fail(&e))?;
    apt::fetch(&cache, &pkg, listener).map(|(p, _)| p).map_err(|e| fail(&e))
}

fn print_human(r: &BootReport) {
    outln!(
        "kernel {} booted via {} in {:.1} s",
        r.kernel_release,
        match r.boot_method {
            krbd_vm::boot::BootMethod::Pvh => "PVH (vmlinux)",
            krbd_vm::boot::BootMethod::BzImage => "bzImage",
        },
        r.elapsed_secs
    );
    outln!("accelerator {}", r.accelerator);
    for m in &r.modules {
        let optional = m.role == krbd_vm::deps::Role::Optional;
        let state = match m.loaded {
            Some(true) => "loaded",
            // A softdep alternative the (virtual) CPU cannot use is not a failure.
            Some(false) if optional => "not loaded (optional)",
            Some(false) => "REFUSED",
            None => "not tried",
        };
        let role = serde_json::to_value(m.role).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let mut line = format!("  {role:<10} {:<16} {state}", m.name);
        match (&m.expected_srcversion, &m.loaded_srcversion) {
            (Some(e), Some(l)) if e == l => line.push_str(&format!("  srcversion {l}")),
            (Some(e), l) => line.push_str(&format!("  srcversion {} (file: {e})", l.as_deref().unwrap_or("none"))),
            _ => {}
        }
        match m.build_id_matches {
            Some(true) => line.push_str("  build-id matches"),
            Some(false) => line.push_str("  build-id DIFFERS"),
            None => {}
        }
        if let Some(t) = &m.module_taint {
            line.push_str(&format!("  taint {t}"));
        }
        outln!("{line}");
        if m.loaded == Some(false) && !optional {
            for k in &m.kernel_messages {
                outln!("      kernel: {k}");
            }
            if m.kernel_messages.is_empty() {
                outln!("      {}", m.insmod_output);
            }
        }
    }
    if let Some(t) = &r.taint {
        outln!("kernel taint after loading: {} ({})", if t.flags.is_empty() { "none" } else { &t.flags }, t.value);
    }
    if let Some(c) = &r.cluster {
        let steps: Vec<String> =
            c.steps.iter().map(|s| format!("{} {}", s.name, if s.ok { "ok" } else { "FAILED" })).collect();
        outln!("cluster: {}", steps.join(", "));
        outln!(
            "  guest-written image sha256: guest {} / host export {}",
            c.guest_device_sha256.as_deref().unwrap_or("-"),
            c.host_export_sha256.as_deref().unwrap_or("-")
        );
        outln!(
            "  host-written image sha256: host {} / guest read {}",
            c.host_written_sha256,
            c.guest_read_sha256.as_deref().unwrap_or("-")
        );
    }
    if r.passed {
        outln!("PASSED");
    } else {
        outln!("FAILED:");
        for p in &r.problems {
            outln!("  {p}");
        }
    }
    outln!("serial log: {}", r.serial_log.display());
}
