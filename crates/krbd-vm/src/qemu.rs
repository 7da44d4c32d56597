//! Running QEMU under TCG with a hard timeout. The serial console goes to a file that is
//! kept; the caller parses it. The process is killed on timeout and whenever the runner
//! is left early (guard), and also when our process dies (PR_SET_PDEATHSIG).

use crate::process::{die_with_parent, ChildGuard};
use crate::{IoAction, VmError};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct QemuSpec {
    /// `qemu-system-x86_64` or a path to it.
    pub qemu: PathBuf,
    /// An ELF vmlinux with a PVH note, or a bzImage.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub memory_mb: u32,
    pub serial_log: PathBuf,
    /// Run inside this network namespace (via `ip netns exec`), with a tap NIC.
    pub network: Option<GuestNetwork>,
    pub timeout: Duration,
    /// A raw disk image attached as a virtio-blk device (`/dev/vda` in the guest), for
    /// guests that boot into a real root file system.
    pub drive: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct GuestNetwork {
    pub netns: String,
    pub tap: String,
}

/// One more disk for [`run_with_drives`], after [`QemuSpec::drive`] (`/dev/vdb`, `/dev/vdc`, ...
/// in the guest, in order).
#[derive(Debug, Clone)]
pub struct Drive {
    /// A raw image.
    pub path: PathBuf,
    /// The guest's writes go to a temporary overlay that QEMU discards: the image itself
    /// is only read, so one cached image serves any number of guests at once.
    pub discard_writes: bool,
}

/// How the run ended.
#[derive(Debug)]
pub struct QemuOutcome {
    /// `None` when it was killed on timeout.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub serial: String,
    /// QEMU's own stderr (errors about its arguments, devices, the tap).
    pub stderr: String,
    pub elapsed: Duration,
}

/// Finds a program in PATH (or checks an explicit path), so that a missing QEMU is a clear
/// error before anything starts.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Boots under TCG and waits until QEMU exits (the guest powers off), or kills it after
/// the timeout.
pub fn run(spec: &QemuSpec) -> Result<QemuOutcome, VmError> {
    run_with(spec, Accel::Tcg)
}

/// [`run`] with the given accelerator.
pub fn run_with(spec: &QemuSpec, accel: Accel) -> Result<QemuOutcome, VmError> {
    run_with_drives(spec, accel, &[])
}

/// [`run_with`] with more disks attached as virtio-blk devices after `spec.drive`.
pub fn run_with_drives(spec: &QemuSpec, accel: Accel, drives: &[Drive]) -> Result<QemuOutcome, VmError> {
    let qemu = find_program(&spec.qemu).ok_or_else(|| VmError::QemuMissing {
        program: spec.qemu.clone(),
        path_env: std::env::var("PATH").unwrap_or_default(),
    })?;
    let _ = std::fs::remove_file(&spec.serial_log);
    let stderr_path = spec.serial_log.with_extension("qemu-stderr");
    let stderr_file = std::fs::File::create(&stderr_path).map_err(|source| VmError::Io {
        action: IoAction::Create,
        path: stderr_path.clone(),
        source,
    })?;
    let mut cmd = qemu_command(spec, &qemu, accel);
    for d in drives {
        let overlay = if d.discard_writes { ",snapshot=on" } else { ",cache=unsafe" };
        cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio{overlay}", d.path.display()));
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr_file);
    die_with_parent(&mut cmd);
    let start = Instant::now();
    let child = cmd.spawn().map_err(|source| VmError::QemuSpawn { program: qemu.clone(), source })?;
    let (status, timed_out) = wait_for_guest(ChildGuard(Some(child)), spec, start)?;
    let serial = String::from_utf8_lossy(&std::fs::read(&spec.serial_log).unwrap_or_default()).into_owned();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    Ok(QemuOutcome { status, timed_out, serial, stderr, elapsed: start.elapsed() })
}

/// QEMU's command line for `spec` (inside the namespace with a network).
fn qemu_command(spec: &QemuSpec, qemu: &Path, accel: Accel) -> Command {
    let mut cmd = match &spec.network {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &n.netns]).arg(qemu);
            c
        }
        None => Command::new(qemu),
    };
    let (machine, cpu) = match accel {
        Accel::Tcg => ("pc,accel=tcg", "qemu64"),
        Accel::Kvm => ("pc,accel=kvm", "host"),
    };
    cmd.args(["-machine", machine, "-cpu", cpu, "-smp", "1", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-no-reboot", "-m", &spec.memory_mb.to_string()])
        .arg("-chardev")
        .arg(format!("file,id=con,path={}", spec.serial_log.display()))
        .args(["-serial", "chardev:con"])
        .arg("-kernel")
        .arg(&spec.kernel)
        .arg("-initrd")
        .arg(&spec.initrd)
        .args(["-append", &spec.append]);
    if let Some(d) = &spec.drive {
        cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio,cache=unsafe", d.display()));
    }
    if let Some(n) = &spec.network {
        cmd.args(["-netdev", &format!("tap,id=n0,ifname={},script=no,downscript=no", n.tap)])
            .args(["-device", "e1000,netdev=n0"]);
    }
    cmd
}

/// Waits until QEMU exits, the timeout passes, or the guest reported its end but does not
/// power off; QEMU is killed (the guard dropped) in every case but its own exit. Returns
/// QEMU's status (if it exited) and whether the timeout struck.
fn wait_for_guest(
    mut guard: ChildGuard,
    spec: &QemuSpec,
    start: Instant,
) -> Result<(Option<ExitStatus>, bool), VmError> {
    let mut end_seen_at: Option<Instant> = None;
    loop {
        if let Some(c) = guard.0.as_mut() {
            match c.try_wait() {
                Ok(Some(s)) => {
                    guard.0 = None;
                    return Ok((Some(s), false));
                }
                Ok(None) => {}
                Err(source) => return Err(VmError::QemuWait { source }),
            }
        }
        if crate::interrupt::interrupted() {
            return Err(VmError::Interrupted); // the guard kills QEMU
        }
        if start.elapsed() > spec.timeout {
            return Ok((None, true));
        }
        // A guest that reported its end but does not power off is not worth waiting for.
        if end_seen_at.is_none() {
            let log = std::fs::read(&spec.serial_log).unwrap_or_default();
            if crate::guest::reports_end(&String::from_utf8_lossy(&log)) {
                end_seen_at = Some(Instant::now());
            }
        } else if end_seen_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
            return Ok((None, false));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The kernel command line of the boot tests' guests.
pub const GUEST_APPEND: &str = "console=ttyS0,115200 panic=-1 rdinit=/init mitigations=off net.ifnames=0";

/// How QEMU runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    /// QEMU's own CPU emulation: slow, works everywhere.
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The accelerator chosen and why, e.g. "tcg: /dev/kvm absent".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

impl std::fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.accel.name(), self.reason)
    }
}

impl AccelChoice {
    pub fn tcg(reason: impl Into<String>) -> Self {
        AccelChoice { accel: Accel::Tcg, reason: reason.into() }
    }
}

/// The first step of the probe: is there a KVM device this process can open?
/// `Err` carries the reason to stay on TCG.
pub fn kvm_device(path: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{} absent", path.display())),
        Err(e) => Err(format!("{} cannot be opened ({e})", path.display())),
    }
}

/// Chooses the accelerator for `kernel`: KVM only if /dev/kvm opens and a probe boot of
/// that kernel under KVM reaches a tiny init (which reports `KRBD|end` and powers off)
/// within `timeout`; otherwise TCG. A device that opens is not enough: on nested
/// hypervisors stock kernels hang or die under KVM.
pub fn probe_accel(qemu: &Path, kernel: &Path, busybox: &[u8], work_dir: &Path, timeout: Duration) -> AccelChoice {
    probe_accel_with(Path::new("/dev/kvm"), qemu, kernel, busybox, work_dir, timeout)
}

/// The accelerator chosen in this process: whether KVM works is a property of the host.
static CHOICE: std::sync::OnceLock<AccelChoice> = std::sync::OnceLock::new();

/// Where this process remembers probe verdicts (see [`remember_verdicts_in`]).
static VERDICTS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`probe_accel_once`] remember its probe's verdict in `file` (a file in the cache),
/// as [`probe_accel_remembered`] does. The first call in a process wins.
pub fn remember_verdicts_in(file: PathBuf) {
    let _ = VERDICTS.set(file);
}

/// [`probe_accel`] once per process: whether KVM works is a property of the host. With
/// [`remember_verdicts_in`], the verdict is also remembered across runs.
pub fn probe_accel_once(qemu: &Path, kernel: &Path, busybox: &[u8], work_dir: &Path) -> AccelChoice {
    if let Some(file) = VERDICTS.get() {
        return probe_accel_remembered(file, qemu, kernel, busybox, work_dir);
    }
    CHOICE.get_or_init(|| probe_accel(qemu, kernel, busybox, work_dir, PROBE_TIMEOUT)).clone()
}

/// [`probe_accel_once`], remembering the verdict of a probe boot in `verdicts` (a file in
/// the cache) for this host, so that a host where /dev/kvm opens but KVM cannot run guests
/// pays the probe's timeout once, not on every run. A later [`probe_accel_once`] in this
/// process returns the same choice.
pub fn probe_accel_remembered(
    verdicts: &Path,
    qemu: &Path,
    kernel: &Path,
    busybox: &[u8],
    work_dir: &Path,
) -> AccelChoice {
    CHOICE
        .get_or_init(|| {
            if let Err(why) = kvm_device(Path::new("/dev/kvm")) {
                return AccelChoice::tcg(why);
            }
            let host = HostKey::of_this_host(qemu);
            remembered_verdict(verdicts, &host, || probe_boot(qemu, kernel, busybox, work_dir, PROBE_TIMEOUT))
        })
        .clone()
}

/// What a remembered KVM verdict holds for: the host as the probe saw it. Another QEMU, CPU
/// or host kernel probes again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostKey {
    /// The first line of `qemu --version`.
    pub qemu_version: String,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// The host's kernel release.
    pub host_kernel: String,
}

impl HostKey {
    /// This host, with `qemu`; a part that cannot be read stays empty.
    pub fn of_this_host(qemu: &Path) -> HostKey {
        let qemu_version = Command::new(qemu)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("")
            .to_string();
        let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        HostKey { qemu_version, cpu_model, host_kernel }
    }
}

/// One remembered verdict, as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    host: HostKey,
    accel: Accel,
    reason: String,
}

/// The verdict remembered in `file` for `host`; otherwise `probe`'s, stored in `file` when
/// the probe boot ran (`Ok`). A probe that could not run (`Err`, the reason) is not
/// remembered. The file is a cache: unreadable or unwritable, it is as if absent.
pub fn remembered_verdict(
    file: &Path,
    host: &HostKey,
    probe: impl FnOnce() -> Result<AccelChoice, String>,
) -> AccelChoice {
    let stored = std::fs::read(file).ok().and_then(|b| serde_json::from_slice::<Remembered>(&b).ok());
    if let Some(r) = stored.filter(|r| &r.host == host) {
        return AccelChoice { accel: r.accel, reason: format!("{} (remembered for this host)", r.reason) };
    }
    match probe() {
        Ok(choice) => {
            let r = Remembered { host: host.clone(), accel: choice.accel, reason: choice.reason.clone() };
            if let Ok(bytes) = serde_json::to_vec_pretty(&r) {
                let _ = file.parent().map(std::fs::create_dir_all);
                let _ = krbd_formats::atomic::write_atomic(file, &bytes);
            }
            choice
        }
        Err(why) => AccelChoice::tcg(format!("KVM probe not run: {why}")),
    }
}

/// A working KVM boots the probe's kernel to its init in a second or two.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// [`probe_accel`] with the KVM device's path given (for tests).
pub fn probe_accel_with(
    device: &Path,
    qemu: &Path,
    kernel: &Path,
    busybox: &[u8],
    work_dir: &Path,
    timeout: Duration,
) -> AccelChoice {
    if let Err(why) = kvm_device(device) {
        return AccelChoice::tcg(why);
    }
    probe_boot(qemu, kernel, busybox, work_dir, timeout)
        .unwrap_or_else(|why| AccelChoice::tcg(format!("KVM probe not run: {why}")))
}

/// The probe boot under KVM and its verdict; `Err` (why) when it could not be run at all.
fn probe_boot(
    qemu: &Path,
    kernel: &Path,
    busybox: &[u8],
    work_dir: &Path,
    timeout: Duration,
) -> Result<AccelChoice, String> {
    let init = include_str!("guest/kvm-probe-init.sh");
    let initrd = crate::initramfs::build(busybox, &[], init, &crate::initramfs::ExtraFiles::default())
        .map_err(|e| e.to_string())?;
    let initrd_path = work_dir.join("kvm-probe.cpio.gz");
    std::fs::write(&initrd_path, initrd).map_err(|e| format!("cannot write {}: {e}", initrd_path.display()))?;
    let spec = QemuSpec {
        qemu: qemu.to_path_buf(),
        kernel: kernel.to_path_buf(),
        initrd: initrd_path,
        append: GUEST_APPEND.into(),
        memory_mb: 256,
        serial_log: work_dir.join("kvm-probe.log"),
        network: None,
        drive: None,
        timeout,
    };
    Ok(match run_with(&spec, Accel::Kvm) {
        Ok(o) if crate::guest::reports_end(&o.serial) => AccelChoice {
            accel: Accel::Kvm,
            reason: format!("probe boot under KVM finished in {:.1} s", o.elapsed.as_secs_f64()),
        },
        Ok(o) if o.timed_out => AccelChoice::tcg(format!(
            "/dev/kvm opens, but a probe boot under KVM did not finish within {} s",
            timeout.as_secs()
        )),
        Ok(o) => {
            let said = o.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let status = o.status.map(|s| s.to_string()).unwrap_or_default();
            AccelChoice::tcg(format!(
                "/dev/kvm opens, but the probe boot under KVM failed ({status}){}",
                if said.is_empty() { String::new() } else { format!(": {said}") }
            ))
        }
        Err(e) => return Err(format!("the probe boot could not run: {e}")),
    })
}

#[cfg(test)]
mod accel_tests {
    use super::*;

    #[test]
    fn a_missing_kvm_device_means_tcg() {
        let tmp = std::env::temp_dir().join("krbd-no-such-kvm-device");
        let c = probe_accel_with(
            &tmp,
            Path::new("qemu-system-x86_64"),
            Path::new("/nonexistent"),
            b"",
            Path::new("/tmp"),
            Duration::from_secs(1),
        );
        assert_eq!(c.accel, Accel::Tcg);
        assert_eq!(c.to_string(), format!("tcg: {} absent", tmp.display()));
    }

    #[test]
    fn an_unopenable_kvm_device_means_tcg() {
        // A folder cannot be opened for writing: the same path as a device without permission.
        let dir = std::env::temp_dir();
        let why = kvm_device(&dir).unwrap_err();
        assert!(why.contains("cannot be opened"), "{why}");
    }

    fn host(qemu_version: &str) -> HostKey {
        HostKey { qemu_version: qemu_version.into(), cpu_model: "Test CPU".into(), host_kernel: "6.1.0-test".into() }
    }

    #[test]
    fn a_remembered_verdict_is_reused_for_the_same_host_and_probed_again_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("accel").join("verdicts.json");
        let probes = std::cell::Cell::new(0);
        let failing_kvm = || {
            probes.set(probes.get() + 1);
            Ok(AccelChoice::tcg("/dev/kvm opens, but a probe boot under KVM did not finish within 20 s"))
        };
        let first = remembered_verdict(&file, &host("QEMU emulator version 7.2.0"), failing_kvm);
        assert_eq!((first.accel, probes.get()), (Accel::Tcg, 1));
        let again = remembered_verdict(&file, &host("QEMU emulator version 7.2.0"), failing_kvm);
        assert_eq!((again.accel, probes.get()), (Accel::Tcg, 1), "the same host must not probe again");
        assert!(again.reason.starts_with(&first.reason), "{}", again.reason);
        assert!(again.reason.contains("remembered"), "{}", again.reason);

        // Another QEMU (or CPU, or host kernel): probe again, and remember the new verdict.
        let kvm = || {
            probes.set(probes.get() + 1);
            Ok(AccelChoice { accel: Accel::Kvm, reason: "probe boot under KVM finished in 1.0 s".into() })
        };
        let upgraded = remembered_verdict(&file, &host("QEMU emulator version 8.0.0"), kvm);
        assert_eq!((upgraded.accel, probes.get()), (Accel::Kvm, 2));
        let mut other_cpu = host("QEMU emulator version 8.0.0");
        other_cpu.cpu_model = "Another CPU".into();
        let _ = remembered_verdict(&file, &other_cpu, failing_kvm);
        assert_eq!(probes.get(), 3);
        let mut other_kernel = other_cpu.clone();
        other_kernel.host_kernel = "6.12.0-test".into();
        let _ = remembered_verdict(&file, &other_kernel, failing_kvm);
        assert_eq!(probes.get(), 4);
    }

    #[test]
    fn a_probe_that_could_not_run_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("verdicts.json");
        let c = remembered_verdict(&file, &host("q"), || Err("no busybox".into()));
        assert_eq!(c.accel, Accel::Tcg);
        assert!(!file.exists());
    }

    #[test]
    fn this_host_has_a_key() {
        let key = HostKey::of_this_host(Path::new("/nonexistent/qemu"));
        assert_eq!(key.qemu_version, "");
        assert!(!key.host_kernel.is_empty());
    }
}
