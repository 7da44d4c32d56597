//! `boot-test --suite`: workunit-style scripts (`*.sh`, pass = exit 0) and cram tests (`*.t`,
//! pass = exact output) run in a real Debian guest ([`crate::guest_root`]) on the target's
//! own kernel, against the throwaway cluster, each with its own timeout.
//!
//! One run is one boot with three disks: the cached root (`/dev/vda`, writes discarded),
//! the run's payload (`/dev/vdb`: the kernel's whole module tree with the set under test in
//! `updates/krbd-forge/` where `install` puts it and depmod run, the cluster's client
//! config, the suite, the init), and a raw results disk (`/dev/vdc`) onto which the guest
//! writes a tar of every test's exit status, time, output and kernel log before it powers
//! off. The console carries one short record per test as well, so that a guest killed
//! half-way still reports what finished. `rbd map` in the guest modprobes the set; the
//! report proves it with the GNU build-ids of the loaded modules.

mod payload;
mod report;

pub use report::{classify, Classification, ModuleProof, Outcome, SuiteReport, TestResult};

use crate::boot::{io_err, kernel_for_boot, prepare_host};
use crate::cluster::{Cluster, MsMode};
use crate::deps::{plan_load_order, OurModule};
use crate::guest::{parse_log, GuestEvent};
use crate::guest_root::GuestRoot;
use crate::linux_image::KernelPackage;
use crate::qemu::{self, Drive, QemuSpec};
use crate::{IoAction, VmError};
use krbd_progress::{Listener, Unit};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What kind of test a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// A workunit-style script: passes when it exits 0.
    Script,
    /// A cram test: passes when the output is exactly the expected one.
    Cram,
}

/// One test of a suite folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteTest {
    /// The file name (`krbd_discard.sh`, `unmap.t`).
    pub name: String,
    pub kind: TestKind,
    /// Its own limit, declared in the file (`krbd-timeout: SECS` on one of its first 30
    /// lines, e.g. a comment); otherwise the run's.
    pub timeout_secs: Option<u64>,
}

/// The `krbd-timeout: SECS` a test declares on one of its first 30 lines.
fn declared_timeout(path: &Path) -> Option<u64> {
    let text = std::fs::read(path).ok()?;
    String::from_utf8_lossy(&text).lines().take(30).find_map(|l| {
        let rest = l.split_once("krbd-timeout:")?.1.trim();
        rest.split_whitespace().next()?.parse().ok().filter(|s| *s > 0)
    })
}

/// The tests of `dir` (its top-level `*.sh` and `*.t`, by name), or those of them named in
/// `only` (file name, or file name without `.sh`/`.t`), in the order given.
pub fn discover(dir: &Path, only: &[String]) -> Result<Vec<SuiteTest>, VmError> {
    let unreadable = |source| VmError::SuiteUnreadable { dir: dir.to_path_buf(), source };
    let mut all: Vec<SuiteTest> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".sh") {
            TestKind::Script
        } else if name.ends_with(".t") {
            TestKind::Cram
        } else {
            continue;
        };
        if entry.file_type().map_err(unreadable)?.is_file() && !name.starts_with('.') {
            let timeout_secs = declared_timeout(&entry.path());
            all.push(SuiteTest { name, kind, timeout_secs });
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    if all.is_empty() {
        return Err(VmError::SuiteEmpty { dir: dir.to_path_buf() });
    }
    if only.is_empty() {
        return Ok(all);
    }
    only.iter()
        .map(|want| {
            all.iter()
                .find(|t| &t.name == want || t.name.strip_suffix(".sh").or(t.name.strip_suffix(".t")) == Some(want))
                .cloned()
                .ok_or_else(|| VmError::SuiteTestUnknown {
                    dir: dir.to_path_buf(),
                    name: want.clone(),
                    available: all.iter().map(|t| t.name.clone()).collect(),
                })
        })
        .collect()
}

/// Which modules the guest's `rbd map` is to load.
#[derive(Debug, Clone)]
pub enum SetUnderTest {
    /// Our set, placed in `updates/krbd-forge/` as `install` does.
    Ours(Vec<OurModule>),
    /// The kernel package's own modules (the control run).
    Stock,
}

impl SetUnderTest {
    pub fn label(&self) -> &'static str {
        match self {
            SetUnderTest::Ours(_) => "ours",
            SetUnderTest::Stock => "stock",
        }
    }
}

/// One suite run.
pub struct SuiteSpec<'a> {
    /// The target's linux-image package (read once for both runs of a `--stock` pair).
    pub package: &'a KernelPackage,
    pub set: SetUnderTest,
    pub suite_dir: PathBuf,
    pub tests: Vec<SuiteTest>,
    /// Each test's limit unless it declares its own; the guest kills a test after it.
    pub test_timeout: Duration,
    pub root: GuestRoot,
    pub cluster: &'a Cluster,
    pub ms_mode: MsMode,
    pub busybox: PathBuf,
    pub qemu: PathBuf,
    /// Created if missing; holds the disks, the serial log and the extracted results.
    pub work_dir: PathBuf,
    pub memory_mb: u32,
}

impl SuiteSpec<'_> {
    /// The limit of `test`: its own, or the run's.
    pub fn timeout_secs(&self, test: &SuiteTest) -> u64 {
        test.timeout_secs.unwrap_or(self.test_timeout.as_secs())
    }
}

/// The modules the initramfs loads to reach the disks.
const DISK_MODULES: [&str; 3] = ["virtio_blk", "ext4", "crc32c_generic"];

/// Boot, udev, network and the proof take about a minute under TCG; the guest's own end
/// (tar, power-off) a few seconds.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(300);

/// Runs the suite in one guest and reports every test.
pub fn run_suite(spec: &SuiteSpec, listener: &dyn Listener) -> Result<SuiteReport, VmError> {
    std::fs::create_dir_all(&spec.work_dir).map_err(io_err(IoAction::Create, &spec.work_dir))?;
    let busybox = prepare_host(&spec.work_dir, &spec.busybox, &spec.qemu)?;
    let pkg = spec.package;
    let (kernel, _) = kernel_for_boot(pkg, &spec.work_dir, listener)?;
    let accel = qemu::probe_accel_once(&spec.qemu, &kernel, &busybox, &spec.work_dir);
    let disk_plan = plan_load_order(pkg, &[], &DISK_MODULES, listener)?;
    let init = include_str!("../guest/suite-initramfs.sh");
    let initrd_bytes = crate::initramfs::build(&busybox, &disk_plan, init, &Default::default())?;
    let initrd = spec.work_dir.join("suite-initramfs.cpio.gz");
    std::fs::write(&initrd, initrd_bytes).map_err(io_err(IoAction::Write, &initrd))?;
    let expected = report::expected_build_ids(pkg, &spec.set, listener)?;

    let session = spec.cluster.guest_session(&spec.work_dir, listener)?;
    let payload_disk = payload::make(spec, pkg, &session, listener)?;
    let results_disk = payload::results_disk(&spec.work_dir)?;
    let serial_log = spec.work_dir.join("serial.log");
    let qspec = QemuSpec {
        qemu: spec.qemu.clone(),
        kernel,
        initrd,
        append: qemu::GUEST_APPEND.into(),
        memory_mb: spec.memory_mb,
        serial_log: serial_log.clone(),
        network: Some(session.network.clone()),
        timeout: BOOT_ALLOWANCE
            + spec.tests.iter().map(|t| Duration::from_secs(spec.timeout_secs(t) + 15)).sum::<Duration>(),
        drive: None,
    };
    let drives = [
        Drive { path: spec.root.image.clone(), discard_writes: true },
        Drive { path: payload_disk.clone(), discard_writes: false },
        Drive { path: results_disk.clone(), discard_writes: false },
    ];
    listener.task_start(
        &format!(
            "running {} test(s) in the guest ({}, {} set)",
            spec.tests.len(),
            accel.accel.name(),
            spec.set.label()
        ),
        None,
        Unit::Steps,
    );
    let outcome = qemu::run_with_drives(&qspec, accel.accel, &drives);
    listener.task_finish();
    let outcome = outcome?;
    drop(session);
    let _ = std::fs::remove_file(&payload_disk);
    let events = parse_log(&outcome.serial);
    let results_dir = spec.work_dir.join("results");
    let files = payload::read_results(&results_disk, &results_dir)?;
    let _ = std::fs::remove_file(&results_disk);
    Ok(report::assemble(spec, &pkg.release, &accel.to_string(), &events, &files, &outcome, &serial_log, &expected))
}

/// The guest's `KRBD|suite|<name>|<rc>|<seconds>` records.
pub(crate) fn console_records(events: &[GuestEvent]) -> Vec<(String, Option<i32>, Option<f64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::Other { kind, fields } if kind == "suite" => {
                let joined = fields.join("|");
                let mut parts = joined.rsplitn(3, '|');
                let secs = parts.next()?.trim().parse().ok();
                let rc = parts.next()?.trim().parse().ok();
                Some((parts.next()?.to_string(), rc, secs))
            }
            _ => None,
        })
        .collect()
}

/// Where the results of one run's tests are kept on the host.
pub fn results_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_takes_top_level_scripts_and_cram_tests_and_picks_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.t", "a.sh", "notes.txt", ".hidden.sh"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::write(dir.path().join("b.t"), "Slow:\n  krbd-timeout: 900 (seconds)\n  $ true\n").unwrap();
        std::fs::create_dir(dir.path().join("lib.sh")).unwrap();
        let names = |v: Vec<SuiteTest>| v.into_iter().map(|t| (t.name, t.kind)).collect::<Vec<_>>();
        assert_eq!(
            names(discover(dir.path(), &[]).unwrap()),
            [("a.sh".to_string(), TestKind::Script), ("b.t".to_string(), TestKind::Cram)]
        );
        let timeouts: Vec<Option<u64>> = discover(dir.path(), &[]).unwrap().iter().map(|t| t.timeout_secs).collect();
        assert_eq!(timeouts, [None, Some(900)]);
        let picked = discover(dir.path(), &["b".into(), "a.sh".into()]).unwrap();
        assert_eq!(names(picked), [("b.t".to_string(), TestKind::Cram), ("a.sh".to_string(), TestKind::Script)]);
        let err = discover(dir.path(), &["c".into()]).unwrap_err();
        assert!(matches!(&err, VmError::SuiteTestUnknown { available, .. } if available.len() == 2), "{err:?}");
        assert!(err.to_string().contains("no test c (it has: a.sh, b.t)"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(discover(empty.path(), &[]), Err(VmError::SuiteEmpty { .. })));
        assert!(matches!(discover(&empty.path().join("nope"), &[]), Err(VmError::SuiteUnreadable { .. })));
    }

    #[test]
    fn console_records_survive_names_with_bars_and_missing_numbers() {
        let events = parse_log("x KRBD|suite|a.sh|0|1.50\nKRBD|suite|odd|name.t|124|60.1\nKRBD|suite|b.sh|x|y\n");
        let records = console_records(&events);
        assert_eq!(records[0], ("a.sh".to_string(), Some(0), Some(1.5)));
        assert_eq!(records[1], ("odd|name.t".to_string(), Some(124), Some(60.1)));
        assert_eq!(records[2], ("b.sh".to_string(), None, None));
    }
}
