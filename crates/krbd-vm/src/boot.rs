//! The boot test from package and modules to verdict.

use crate::cluster::{Cluster, ClusterReport};
use crate::deps::{plan_load_order, OurModule, PlannedModule, Role};
use crate::guest::{parse_log, strip_timestamp, taint_flags, GuestEvent};
use crate::initramfs::{self, ExtraFiles};
use crate::linux_image::{decompress_module, module_name_of, KernelPackage};
use crate::qemu::{self, QemuSpec};
use crate::VmError;
use krbd_kmod::KernelModule;
use krbd_progress::{Listener, Unit};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated request for one boot test.
pub struct BootTestSpec<'a> {
    /// The target's linux-image .deb.
    pub image_deb: PathBuf,
    /// The kernel release (`boot/vmlinuz-<release>` in the package); `None`: the only one.
    pub release: Option<String>,
    /// Our modules (see [`load_our_modules`]).
    pub modules: Vec<OurModule>,
    pub busybox: PathBuf,
    /// `qemu-system-x86_64` or a path.
    pub qemu: PathBuf,
    /// Where the vmlinux, the initramfs and the serial log are written and kept.
    pub work_dir: PathBuf,
    /// Hard limit for the whole guest run.
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Replaces the generated init script (for diagnosing a guest by hand).
    pub init_override: Option<String>,
    /// With a cluster: map an image from it and push I/O through our modules.
    pub cluster: Option<&'a Cluster>,
}

/// How the kernel was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootMethod {
    /// The ELF vmlinux from the bzImage's payload, at its PVH entry.
    Pvh,
    /// The bzImage itself (slower: real-mode setup and in-guest decompression).
    BzImage,
}

#[derive(Debug, Clone, Serialize)]
pub struct Taint {
    pub value: u64,
    pub flags: String,
}

/// What happened to one module in the guest.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleVerdict {
    pub name: String,
    pub role: Role,
    pub origin: String,
    /// `None`: the guest never got to it.
    pub loaded: Option<bool>,
    pub insmod_exit: Option<i32>,
    pub insmod_output: String,
    /// What the kernel logged while loading it (the refusal reason, taint notices).
    pub kernel_messages: Vec<String>,
    pub expected_srcversion: Option<String>,
    pub loaded_srcversion: Option<String>,
    pub srcversion_matches: Option<bool>,
    /// GNU build-id of the file and of the module the kernel loaded (its notes in sysfs).
    pub expected_build_id: Option<String>,
    pub loaded_build_id: Option<String>,
    pub build_id_matches: Option<bool>,
    /// `/sys/module/<name>/taint`.
    pub module_taint: Option<String>,
}

/// The verdict of a boot test.
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub kernel_release: String,
    pub guest_release: Option<String>,
    pub boot_method: BootMethod,
    /// The accelerator QEMU ran with and why, e.g. "tcg: /dev/kvm absent".
    pub accelerator: String,
    pub modules: Vec<ModuleVerdict>,
    /// Kernel taint right after loading the set.
    pub taint: Option<Taint>,
    /// Kernel taint at the end of the run (after the cluster I/O).
    pub taint_at_end: Option<Taint>,
    pub cluster: Option<ClusterReport>,
    pub serial_log: PathBuf,
    pub elapsed_secs: f64,
    /// Every reason the run does not pass; empty when it passes.
    pub problems: Vec<String>,
    pub passed: bool,
}

/// Reads `*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz` from `dir` as our module set.
pub fn load_our_modules(dir: &Path) -> Result<Vec<OurModule>, VmError> {
    let bad = |reason: String| VmError::OurModules { dir: dir.to_path_buf(), reason };
    let entries = std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = module_name_of(&file_name) else { continue };
        let raw = std::fs::read(&path).map_err(|e| bad(format!("{file_name}: {e}")))?;
        let bytes = decompress_module(&path.display().to_string(), &raw)?;
        let parsed = KernelModule::parse(&bytes)
            .map_err(|e| VmError::BadModule { origin: path.display().to_string(), reason: e.to_string() })?;
        // The kernel knows a module by its modinfo name; the file name is only a hint.
        let name = parsed.info("name").map(str::to_string).unwrap_or(name);
        if out.iter().any(|m: &OurModule| m.name == name) {
            return Err(bad(format!("two files hold module {name}")));
        }
        out.push(OurModule { name, bytes, origin: path.display().to_string() });
    }
    if out.is_empty() {
        return Err(bad("no .ko files in it; pass the folder that holds libceph.ko, ceph.ko and rbd.ko".into()));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> VmError {
    move |e| VmError::Io { what, reason: e.to_string() }
}

/// Lines of the serial log that explain a failure: kernel panics, oopses, errors, and the tail.
pub fn relevant_lines(serial: &str) -> Vec<String> {
    const MARKS: [&str; 9] =
        ["panic", "oops", "bug:", "call trace", "error", "fail", "unable to", "no working init", "krbd|"];
    let lines: Vec<&str> = serial.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut keep: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.to_ascii_lowercase();
            MARKS.iter().any(|m| l.contains(m))
        })
        .map(|(i, _)| i)
        .collect();
    if keep.len() > 20 {
        keep.drain(..keep.len() - 20);
    }
    keep.extend(lines.len().saturating_sub(20)..lines.len());
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| lines[i].to_string()).collect()
}

/// Extra work for the guest beyond loading the set: shell code run after the modules are
/// loaded (and after the cluster steps, with a cluster), and files it reads. It reports with
/// `say "<kind>|..."` (see [`crate::guest`]); read its lines back from the report's serial log.
#[derive(Debug, Clone, Default)]
pub struct GuestTask {
    pub script: String,
    pub files: ExtraFiles,
}

/// Runs one boot test.
pub fn run_boot_test(spec: &BootTestSpec, listener: &dyn Listener) -> Result<BootReport, VmError> {
    run_boot_test_with_task(spec, &GuestTask::default(), listener)
}

/// Runs one boot test, and `task` in the guest once the set is loaded.
pub fn run_boot_test_with_task(
    spec: &BootTestSpec,
    task: &GuestTask,
    listener: &dyn Listener,
) -> Result<BootReport, VmError> {
    std::fs::create_dir_all(&spec.work_dir).map_err(io_err(format!("create {}", spec.work_dir.display())))?;
    let busybox = initramfs::read_static_busybox(&spec.busybox)?;
    if qemu::find_program(&spec.qemu).is_none() {
        return Err(VmError::QemuMissing {
            program: spec.qemu.clone(),
            path_env: std::env::var("PATH").unwrap_or_default(),
        });
    }
    listener.task_start("reading the kernel package", None, Unit::Steps);
    let pkg = KernelPackage::read(&spec.image_deb, spec.release.as_deref());
    listener.task_finish();
    let pkg = pkg?;

    let support: &[&str] = if spec.cluster.is_some() { &crate::cluster::GUEST_SUPPORT_MODULES } else { &[] };
    if spec.cluster.is_some() && !spec.modules.iter().any(|m| m.name == "rbd") {
        listener.warning("rbd is not in the set under test; the cluster test maps with the package's rbd.ko");
    }
    let plan = plan_load_order(&pkg, &spec.modules, support, listener)?;
    listener.info(&format!("load order: {}", plan.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" ")));

    let (kernel_path, boot_method) = kernel_for_boot(&pkg, &spec.work_dir, listener)?;
    let accel = qemu::probe_accel_once(&spec.qemu, &kernel_path, &busybox, &spec.work_dir);
    listener.info(&format!("accelerator {accel}"));

    let session = match spec.cluster {
        Some(c) => Some(c.guest_session(&spec.work_dir, listener)?),
        None => None,
    };
    let (mut extra, mut after_load) = match &session {
        Some(s) => (s.extra_files(), s.guest_script()),
        None => (ExtraFiles::default(), String::new()),
    };
    extra.files.extend(task.files.files.iter().cloned());
    after_load.push_str(&task.script);
    let init = match &spec.init_override {
        Some(s) => s.clone(),
        None => initramfs::init_script(&plan, &after_load),
    };
    let initrd = initramfs::build(&busybox, &plan, &init, &extra)?;
    let initrd_path = spec.work_dir.join("initramfs.cpio.gz");
    std::fs::write(&initrd_path, &initrd).map_err(io_err(format!("write {}", initrd_path.display())))?;

    let serial_log = spec.work_dir.join("serial.log");
    let qspec = QemuSpec {
        qemu: spec.qemu.clone(),
        kernel: kernel_path,
        initrd: initrd_path,
        append: qemu::GUEST_APPEND.into(),
        memory_mb: spec.memory_mb,
        serial_log: serial_log.clone(),
        network: session.as_ref().map(|s| s.network.clone()),
        timeout: spec.timeout,
        drive: None,
    };
    listener.task_start(&format!("booting the guest under QEMU ({})", accel.accel.name()), None, Unit::Steps);
    let outcome = qemu::run_with(&qspec, accel.accel);
    listener.task_finish();
    let outcome = outcome?;
    let events = parse_log(&outcome.serial);
    let finished = events.iter().any(|e| e.kind == "end");
    if !finished {
        let lines = relevant_lines(&outcome.serial);
        if outcome.timed_out {
            let last = events
                .last()
                .map(|e| format!("{}|{}", e.kind, e.fields.join("|")))
                .unwrap_or_else(|| "none (the guest never reported)".into());
            return Err(VmError::GuestTimeout {
                seconds: spec.timeout.as_secs(),
                last_report: last,
                serial_log,
                lines,
            });
        }
        return Err(VmError::GuestDied {
            status: outcome.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()),
            qemu_stderr: outcome.stderr.trim().to_string(),
            serial_log,
            lines,
        });
    }

    let modules = verdicts(&plan, &events);
    let taint_of = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind == kind)
            .and_then(|e| e.fields.first())
            .and_then(|v| v.trim().parse().ok())
            .map(|value: u64| Taint { value, flags: taint_flags(value) })
    };
    let cluster = session.as_ref().map(|s| s.verify(&events, listener));
    let mut problems = Vec::new();
    for m in &modules {
        if m.role == Role::Optional {
            continue;
        }
        match m.loaded {
            Some(true) => {}
            Some(false) => problems.push(format!(
                "{} was refused: {}",
                m.name,
                m.kernel_messages.first().cloned().unwrap_or_else(|| m.insmod_output.clone())
            )),
            None => problems.push(format!("{} was never loaded", m.name)),
        }
        if m.build_id_matches == Some(false) {
            problems.push(format!(
                "{}: the kernel runs build-id {:?}, the file has {:?}",
                m.name, m.loaded_build_id, m.expected_build_id
            ));
        }
        if m.srcversion_matches == Some(false) {
            problems.push(format!(
                "{}: /sys/module srcversion {:?} differs from the file's {:?}",
                m.name, m.loaded_srcversion, m.expected_srcversion
            ));
        }
    }
    if let Some(c) = &cluster {
        problems.extend(c.problems.iter().cloned());
    }
    let report = BootReport {
        kernel_release: pkg.release.clone(),
        guest_release: events.iter().find(|e| e.kind == "begin").and_then(|e| e.fields.first().cloned()),
        boot_method,
        accelerator: accel.to_string(),
        modules,
        taint: taint_of("taint"),
        taint_at_end: taint_of("taint_end"),
        cluster,
        serial_log,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
        passed: problems.is_empty(),
        problems,
    };
    Ok(report)
}

/// Writes the kernel to boot into `work_dir`: the PVH entry of the vmlinux inside the
/// bzImage where there is one (much faster under TCG), else the bzImage.
pub fn kernel_for_boot(
    pkg: &KernelPackage,
    work_dir: &Path,
    listener: &dyn Listener,
) -> Result<(PathBuf, BootMethod), VmError> {
    Ok(match crate::bzimage::extract_vmlinux(&pkg.vmlinuz) {
        Ok(vmlinux) if crate::bzimage::has_pvh_entry(&vmlinux) => {
            let p = work_dir.join("vmlinux");
            std::fs::write(&p, vmlinux).map_err(io_err(format!("write {}", p.display())))?;
            (p, BootMethod::Pvh)
        }
        other => {
            let why = match other {
                Ok(_) => "the vmlinux has no PVH entry note".to_string(),
                Err(e) => e.to_string(),
            };
            listener.warning(&format!("booting the bzImage (slower): {why}"));
            let p = work_dir.join("vmlinuz");
            std::fs::write(&p, &pkg.vmlinuz).map_err(io_err(format!("write {}", p.display())))?;
            (p, BootMethod::BzImage)
        }
    })
}

fn verdicts(plan: &[PlannedModule], events: &[GuestEvent]) -> Vec<ModuleVerdict> {
    plan.iter()
        .map(|m| {
            let insmod = events.iter().find(|e| e.kind == "insmod" && e.fields.get(1) == Some(&m.name));
            let insmod_exit = insmod.and_then(|e| e.fields.get(2)).and_then(|rc| rc.parse::<i32>().ok());
            let field = |kind: &str| {
                events
                    .iter()
                    .find(|e| e.kind == kind && e.fields.first() == Some(&m.name))
                    .and_then(|e| e.fields.get(1))
                    .map(|v| v.trim().to_string())
            };
            let loaded_srcversion = field("srcversion");
            let srcversion_matches = match (&m.srcversion, &loaded_srcversion) {
                (Some(a), Some(b)) => Some(a == b),
                _ => None,
            };
            let loaded_build_id =
                field("buildid").and_then(|h| hex::decode(h).ok()).and_then(|note| crate::deps::gnu_build_id(&note));
            let build_id_matches = match (&m.build_id, &loaded_build_id) {
                (Some(a), Some(b)) => Some(a == b),
                _ => None,
            };
            ModuleVerdict {
                name: m.name.clone(),
                role: m.role,
                origin: m.origin.clone(),
                loaded: insmod_exit.map(|rc| rc == 0),
                insmod_exit,
                insmod_output: insmod.and_then(|e| e.fields.get(3)).cloned().unwrap_or_default(),
                kernel_messages: events
                    .iter()
                    .filter(|e| e.kind == "dmesg" && e.fields.first() == Some(&m.name))
                    .filter_map(|e| e.fields.get(1))
                    .map(|l| strip_timestamp(l).to_string())
                    .collect(),
                expected_srcversion: m.srcversion.clone(),
                loaded_srcversion,
                srcversion_matches,
                expected_build_id: m.build_id.clone(),
                loaded_build_id,
                build_id_matches,
                module_taint: field("modtaint").filter(|t| !t.is_empty()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::parse_log;

    fn planned(name: &str, srcversion: Option<&str>) -> PlannedModule {
        PlannedModule {
            name: name.into(),
            role: Role::Ours,
            bytes: vec![],
            srcversion: srcversion.map(str::to_string),
            origin: format!("{name}.ko"),
            build_id: Some("aabbcc".into()),
        }
    }

    #[test]
    fn verdicts_from_a_guest_log() {
        let log = "\
[    0.5] Run /init as init process
KRBD|insmod|ours|libceph|0|
KRBD|dmesg|libceph|[    1.000001] libceph: loaded (mon/osd proto 15/24)
KRBD|insmod|ours|rbd|1|insmod: can't insert '/lib/modules/01-rbd.ko': invalid module format
KRBD|dmesg|rbd|[    1.2] rbd: disagrees about version of symbol ceph_osdc_start_request
KRBD|srcversion|libceph|0123456789ABCDEF012345
KRBD|modtaint|libceph|OE
KRBD|buildid|libceph|040000000300000003000000474e5500aabbcc00
KRBD|taint|12288
KRBD|end
";
        let plan =
            [planned("libceph", Some("AAAAAAAAAAAAAAAAAAAAAA")), planned("rbd", Some("B")), planned("ceph", None)];
        let v = verdicts(&plan, &parse_log(log));
        assert_eq!(v[0].loaded, Some(true));
        assert_eq!(v[0].srcversion_matches, Some(false), "a different srcversion is caught");
        assert_eq!(v[0].module_taint.as_deref(), Some("OE"));
        assert_eq!(v[0].loaded_build_id.as_deref(), Some("aabbcc"));
        assert_eq!(v[0].build_id_matches, Some(true));
        assert_eq!(v[1].build_id_matches, None, "not loaded: nothing to compare");
        assert_eq!(v[0].kernel_messages, ["libceph: loaded (mon/osd proto 15/24)"]);
        assert_eq!(v[1].loaded, Some(false));
        assert_eq!(v[1].insmod_exit, Some(1));
        assert_eq!(v[1].kernel_messages, ["rbd: disagrees about version of symbol ceph_osdc_start_request"]);
        assert_eq!(v[1].srcversion_matches, None, "not loaded: nothing to compare");
        assert_eq!(v[2].loaded, None, "never tried");
    }

    #[test]
    fn relevant_lines_keep_panics_and_the_tail() {
        let mut log: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        log[10] = "Kernel panic - not syncing: VFS: Unable to mount root fs".into();
        let got = relevant_lines(&log.join("\n"));
        assert_eq!(got[0], log[10]);
        assert_eq!(got.last().map(String::as_str), Some("line 99"));
        assert!(got.len() <= 21);
    }
}
