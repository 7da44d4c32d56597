//! The boot test from package and modules to verdict.

use crate::cluster::{Cluster, ClusterReport, GuestSession};
use crate::deps::{plan_load_order, OurModule, PlannedModule, Role};
use crate::guest::{last_report, parse_log, strip_timestamp, taint_flags, GuestEvent};
use crate::initramfs::{self, ExtraFiles};
use crate::linux_image::{decompress_module, module_name_of, KernelPackage};
use crate::qemu::{self, GuestNetwork, QemuSpec};
use crate::{IoAction, VmError};
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
    let entries =
        std::fs::read_dir(dir).map_err(|source| VmError::OurModulesUnreadable { dir: dir.to_path_buf(), source })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| VmError::OurModulesUnreadable { dir: dir.to_path_buf(), source })?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = module_name_of(&file_name) else { continue };
        let module = read_our_module(dir, &entry.path(), &file_name, name)?;
        if out.iter().any(|m: &OurModule| m.name == module.name) {
            return Err(VmError::OurModuleTwice { dir: dir.to_path_buf(), module: module.name });
        }
        out.push(module);
    }
    if out.is_empty() {
        return Err(VmError::NoOurModules { dir: dir.to_path_buf() });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One module file of ours, named as the kernel will know it.
fn read_our_module(dir: &Path, path: &Path, file_name: &str, name: String) -> Result<OurModule, VmError> {
    let raw = std::fs::read(path).map_err(|source| VmError::OurModuleUnreadable {
        dir: dir.to_path_buf(),
        file: file_name.to_string(),
        source,
    })?;
    let origin = path.display().to_string();
    let bytes = decompress_module(&origin, &raw)?;
    let parsed = KernelModule::parse(&bytes).map_err(|source| VmError::BadModule { origin: origin.clone(), source })?;
    // The kernel knows a module by its modinfo name; the file name is only a hint.
    let name = parsed.info("name").map(str::to_string).unwrap_or(name);
    Ok(OurModule { name, bytes, origin })
}

pub(crate) fn io_err(action: IoAction, path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    move |source| VmError::Io { action, path: path.to_path_buf(), source }
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
    let busybox = prepare_host(&spec.work_dir, &spec.busybox, &spec.qemu)?;
    let pkg = read_kernel_package(&spec.image_deb, spec.release.as_deref(), listener)?;
    let plan = plan_for(spec, &pkg, listener)?;
    let (kernel, boot_method) = kernel_for_boot(&pkg, &spec.work_dir, listener)?;
    let accel = qemu::probe_accel_once(&spec.qemu, &kernel, &busybox, &spec.work_dir);
    listener.info(&format!("accelerator {accel}"));

    let session = match spec.cluster {
        Some(c) => Some(c.guest_session(&spec.work_dir, listener)?),
        None => None,
    };
    let initrd = write_initramfs(spec, &busybox, &plan, session.as_ref(), task)?;
    let guest = GuestBoot {
        qemu: &spec.qemu,
        kernel,
        accel: accel.accel,
        memory_mb: spec.memory_mb,
        timeout: spec.timeout,
        network: session.as_ref().map(|s| s.network.clone()),
    };
    let serial_log = spec.work_dir.join("serial.log");
    let task_name = format!("booting the guest under QEMU ({})", accel.accel.name());
    let (outcome, events) = guest.run(initrd, &serial_log, &task_name, listener)?;

    let modules = verdicts(&plan, &events);
    let cluster = session.as_ref().map(|s| s.verify(&events, listener));
    let problems = problems_of(&modules, cluster.as_ref());
    Ok(BootReport {
        kernel_release: pkg.release.clone(),
        guest_release: guest_release(&events),
        boot_method,
        accelerator: accel.to_string(),
        modules,
        taint: taint_of(&events, |e| match e {
            GuestEvent::Taint { value } => Some(*value),
            _ => None,
        }),
        taint_at_end: taint_of(&events, |e| match e {
            GuestEvent::TaintEnd { value } => Some(*value),
            _ => None,
        }),
        cluster,
        serial_log,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
        passed: problems.is_empty(),
        problems,
    })
}

/// Chooses the accelerator for the target's kernel ahead of the boot test (while a cluster
/// starts, say): the kernel is written to `work_dir/kvm-probe/` and probed there. The boot
/// test in this process then reuses the choice ([`qemu::probe_accel_once`]). Reports
/// nothing, so that it can run beside another task.
pub fn choose_accel(
    image_deb: &Path,
    release: Option<&str>,
    busybox: &Path,
    qemu: &Path,
    work_dir: &Path,
) -> Result<qemu::AccelChoice, VmError> {
    let dir = work_dir.join("kvm-probe");
    let busybox = prepare_host(&dir, busybox, qemu)?;
    let pkg = KernelPackage::read(image_deb, release)?;
    let (kernel, _) = kernel_for_boot(&pkg, &dir, &krbd_progress::Silent)?;
    Ok(qemu::probe_accel_once(qemu, &kernel, &busybox, &dir))
}

/// The cheap checks before anything is read or started: the work folder can be made,
/// busybox is static, QEMU is there. Returns busybox.
pub(crate) fn prepare_host(work_dir: &Path, busybox: &Path, qemu: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::create_dir_all(work_dir).map_err(io_err(IoAction::Create, work_dir))?;
    let busybox = initramfs::read_static_busybox(busybox)?;
    if qemu::find_program(qemu).is_none() {
        return Err(VmError::QemuMissing {
            program: qemu.to_path_buf(),
            path_env: std::env::var("PATH").unwrap_or_default(),
        });
    }
    Ok(busybox)
}

/// Reads the target's linux-image package, as a progress task.
pub(crate) fn read_kernel_package(
    deb: &Path,
    release: Option<&str>,
    listener: &dyn Listener,
) -> Result<KernelPackage, VmError> {
    listener.task_start("reading the kernel package", None, Unit::Steps);
    let pkg = KernelPackage::read(deb, release);
    listener.task_finish();
    pkg
}

/// The set's load order, with the package's modules the cluster test needs.
fn plan_for(spec: &BootTestSpec, pkg: &KernelPackage, listener: &dyn Listener) -> Result<Vec<PlannedModule>, VmError> {
    let support: &[&str] = if spec.cluster.is_some() { &crate::cluster::GUEST_SUPPORT_MODULES } else { &[] };
    if spec.cluster.is_some() && !spec.modules.iter().any(|m| m.name == "rbd") {
        listener.warning("rbd is not in the set under test; the cluster test maps with the package's rbd.ko");
    }
    let plan = plan_load_order(pkg, &spec.modules, support, listener)?;
    listener.info(&format!("load order: {}", plan.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" ")));
    Ok(plan)
}

/// Writes the initramfs: the planned set, the init script (or its override), the cluster
/// session's and the task's files and steps. Returns its path.
fn write_initramfs(
    spec: &BootTestSpec,
    busybox: &[u8],
    plan: &[PlannedModule],
    session: Option<&GuestSession>,
    task: &GuestTask,
) -> Result<PathBuf, VmError> {
    let (mut extra, mut after_load) = match session {
        Some(s) => (s.extra_files(), s.guest_script()),
        None => (ExtraFiles::default(), String::new()),
    };
    extra.files.extend(task.files.files.iter().cloned());
    after_load.push_str(&task.script);
    let init = match &spec.init_override {
        Some(s) => s.clone(),
        None => initramfs::init_script(plan, &after_load),
    };
    let initrd = initramfs::build(busybox, plan, &init, &extra)?;
    let initrd_path = spec.work_dir.join("initramfs.cpio.gz");
    std::fs::write(&initrd_path, &initrd).map_err(io_err(IoAction::Write, &initrd_path))?;
    Ok(initrd_path)
}

/// One guest run: QEMU with a kernel and an initramfs, until the guest reports its end.
pub(crate) struct GuestBoot<'a> {
    pub qemu: &'a Path,
    pub kernel: PathBuf,
    pub accel: qemu::Accel,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub network: Option<GuestNetwork>,
}

impl GuestBoot<'_> {
    /// Boots `initrd` with the console going to `serial_log` (a progress task named
    /// `task_name`) and returns the outcome and the guest's reports. A guest that never
    /// reported its end is an error carrying the serial log's relevant lines.
    pub(crate) fn run(
        self,
        initrd: PathBuf,
        serial_log: &Path,
        task_name: &str,
        listener: &dyn Listener,
    ) -> Result<(qemu::QemuOutcome, Vec<GuestEvent>), VmError> {
        let timeout = self.timeout;
        let qspec = QemuSpec {
            qemu: self.qemu.to_path_buf(),
            kernel: self.kernel,
            initrd,
            append: qemu::GUEST_APPEND.into(),
            memory_mb: self.memory_mb,
            serial_log: serial_log.to_path_buf(),
            network: self.network,
            timeout,
            drive: None,
        };
        listener.task_start(task_name, None, Unit::Steps);
        let outcome = qemu::run_with(&qspec, self.accel);
        listener.task_finish();
        let outcome = outcome?;
        let events = parse_log(&outcome.serial);
        if !events.contains(&GuestEvent::End) {
            return Err(unfinished_guest(&outcome, serial_log, timeout));
        }
        Ok((outcome, events))
    }
}

/// The error for a guest that never reported its end: timed out, or QEMU exited.
fn unfinished_guest(outcome: &qemu::QemuOutcome, serial_log: &Path, timeout: Duration) -> VmError {
    let lines = relevant_lines(&outcome.serial);
    let serial_log = serial_log.to_path_buf();
    if outcome.timed_out {
        return VmError::GuestTimeout {
            seconds: timeout.as_secs(),
            last_report: last_report(&outcome.serial).unwrap_or_else(|| "none (the guest never reported)".into()),
            serial_log,
            lines,
        };
    }
    VmError::GuestDied {
        status: outcome.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()),
        qemu_stderr: outcome.stderr.trim().to_string(),
        serial_log,
        lines,
    }
}

/// The kernel release the guest reported.
pub(crate) fn guest_release(events: &[GuestEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        GuestEvent::Begin { release } => Some(release.clone()),
        _ => None,
    })
}

/// The first taint report that `pick` takes.
fn taint_of(events: &[GuestEvent], pick: impl Fn(&GuestEvent) -> Option<Option<u64>>) -> Option<Taint> {
    events.iter().find_map(pick).flatten().map(|value| Taint { value, flags: taint_flags(value) })
}

/// Every reason the run does not pass.
fn problems_of(modules: &[ModuleVerdict], cluster: Option<&ClusterReport>) -> Vec<String> {
    let mut problems = Vec::new();
    for m in modules.iter().filter(|m| m.role != Role::Optional) {
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
    if let Some(c) = cluster {
        problems.extend(c.problems.iter().cloned());
    }
    problems
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
            std::fs::write(&p, vmlinux).map_err(io_err(IoAction::Write, &p))?;
            (p, BootMethod::Pvh)
        }
        other => {
            let why = match other {
                Ok(_) => "the vmlinux has no PVH entry note".to_string(),
                Err(e) => e.to_string(),
            };
            listener.warning(&format!("booting the bzImage (slower): {why}"));
            let p = work_dir.join("vmlinuz");
            std::fs::write(&p, &pkg.vmlinuz).map_err(io_err(IoAction::Write, &p))?;
            (p, BootMethod::BzImage)
        }
    })
}

fn verdicts(plan: &[PlannedModule], events: &[GuestEvent]) -> Vec<ModuleVerdict> {
    plan.iter().map(|m| verdict(m, events)).collect()
}

/// What the guest reported about one planned module.
fn verdict(m: &PlannedModule, events: &[GuestEvent]) -> ModuleVerdict {
    let insmod = events.iter().find_map(|e| match e {
        GuestEvent::Insmod { module, exit, output, .. } if *module == m.name => Some((*exit, output)),
        _ => None,
    });
    let insmod_exit = insmod.and_then(|(exit, _)| exit);
    let sysfs = |pick: fn(&GuestEvent) -> Option<(&String, &String)>| {
        events.iter().filter_map(pick).find(|(module, _)| **module == m.name).map(|(_, value)| value.clone())
    };
    let loaded_srcversion = sysfs(|e| match e {
        GuestEvent::Srcversion { module, srcversion } => Some((module, srcversion)),
        _ => None,
    });
    let loaded_build_id = sysfs(|e| match e {
        GuestEvent::BuildIdNote { module, note_hex } => Some((module, note_hex)),
        _ => None,
    })
    .and_then(|h| hex::decode(h).ok())
    .and_then(|note| crate::deps::gnu_build_id(&note));
    let module_taint = sysfs(|e| match e {
        GuestEvent::ModuleTaint { module, flags } => Some((module, flags)),
        _ => None,
    });
    ModuleVerdict {
        name: m.name.clone(),
        role: m.role,
        origin: m.origin.clone(),
        loaded: insmod_exit.map(|rc| rc == 0),
        insmod_exit,
        insmod_output: insmod.map(|(_, output)| output.clone()).unwrap_or_default(),
        kernel_messages: kernel_messages(events, &m.name),
        srcversion_matches: both(&m.srcversion, &loaded_srcversion).map(|(a, b)| a == b),
        expected_srcversion: m.srcversion.clone(),
        loaded_srcversion,
        build_id_matches: both(&m.build_id, &loaded_build_id).map(|(a, b)| a == b),
        expected_build_id: m.build_id.clone(),
        loaded_build_id,
        module_taint: module_taint.filter(|t| !t.is_empty()),
    }
}

fn both<'a, T>(a: &'a Option<T>, b: &'a Option<T>) -> Option<(&'a T, &'a T)> {
    a.as_ref().zip(b.as_ref())
}

/// The kernel lines the guest logged under `source` (a module, `boot` or `cluster`),
/// without their timestamps.
pub(crate) fn kernel_messages(events: &[GuestEvent], source: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::Dmesg { source: s, line } if s == source => Some(strip_timestamp(line).to_string()),
            _ => None,
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
