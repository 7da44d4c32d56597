//! The agreement run: the bad-module corpus ([`krbd_kmod::corpus`]) loaded into the target's
//! real kernel, one guest for the whole corpus, and every module's verdict and messages
//! compared with what the offline check ([`krbd_kmod::check_set`], `krbd-forge check`)
//! says. The kernel is the truth: a disagreement is a bug of the check.
//!
//! Per case the guest makes sure that exactly the case's stock dependencies are loaded
//! (from the target's package, so that the target provides what the check's target
//! provides), reports `/proc/sys/kernel/tainted`, tries the case's modules in the check's
//! load order, reports each insmod's status and the kernel lines printed during that
//! attempt, then unloads what loaded. The taint before a case is handed to the check
//! ([`krbd_kmod::loader::SetOptions::prior_taint`]): messages printed once per boot or
//! while a taint is unset depend on it.
//!
//! What is compared for each module: loaded or refused; for a refusal, busybox insmod's
//! reading of the errno (e.g. ENOEXEC -> "invalid module format"); and the loader's lines
//! (level and text): the kernel's lines at levels err, warning and notice that are in the
//! loader's forms, `<module>: ...`, `module <module>: ...`, or one of its few unprefixed
//! lines ([`LOADER_UNPREFIXED`]). Info lines come from the module's own init function (e.g.
//! `libceph: loaded`), unprefixed ones from other parts of the kernel (`Key type ceph
//! registered` from the keyring when libceph's init registers its key type, or a
//! clocksource warning that happens to land during an attempt): the check models neither.
//! They are kept in the report (`all_lines`).

use crate::boot::{kernel_for_boot, relevant_lines, BootMethod};
use crate::deps::{plan_load_order, OurModule, Role};
use crate::guest::{parse_log, strip_timestamp, GuestEvent};
use crate::initramfs::{self, ExtraFiles};
use crate::linux_image::KernelPackage;
use crate::qemu::{self, QemuSpec};
use crate::VmError;
use krbd_formats::digest::sha256_hex;
use krbd_kmod::corpus::{bootable_cases, CorpusCase, CorpusSource, SOURCE_MODULES};
use krbd_kmod::loader::{check_set, LogLevel, Outcome, SetOptions, Target};
use krbd_kmod::{load_target, KernelModule, TargetSpec};
use krbd_progress::{Listener, Silent, Unit};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated request for one agreement run.
#[derive(Debug, Clone)]
pub struct AgreementSpec {
    /// The target's linux-image .deb (kernel and stock modules).
    pub image_deb: PathBuf,
    /// The kernel release; `None`: the only one in the package.
    pub release: Option<String>,
    /// The target's headers folder (Module.symvers, .config, utsrelease.h), as for `check --headers`.
    pub headers_dir: PathBuf,
    pub busybox: PathBuf,
    pub qemu: PathBuf,
    /// Where the vmlinux, the initramfs and the serial log are written and kept.
    pub work_dir: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u32,
}

/// One kernel line as compared: level and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelLine {
    pub level: LogLevel,
    pub text: String,
}

/// What the kernel did with one module.
#[derive(Debug, Clone, Serialize)]
pub struct KernelSide {
    /// `None`: the guest never tried it.
    pub loaded: Option<bool>,
    pub insmod_output: String,
    /// err, warning and notice lines printed during the attempt.
    pub lines: Vec<KernelLine>,
    /// Every line printed during the attempt, raw (info lines included), for diagnosis.
    pub all_lines: Vec<String>,
}

/// What the check says about one module.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSide {
    pub verdict: Outcome,
    pub errno: Option<&'static str>,
    pub lines: Vec<KernelLine>,
}

/// One module of one case, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleAgreement {
    pub case: String,
    pub module: String,
    pub kernel: KernelSide,
    pub check: CheckSide,
    pub agree: bool,
    /// Where they differ, in words; empty when they agree.
    pub differences: Vec<String>,
}

/// One case: its description and the taint the kernel had before it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    pub name: String,
    pub what: String,
    pub tainted_before: Option<u64>,
    /// Target modules loaded before the case (its stock dependencies).
    pub stock_dependencies: Vec<String>,
    pub absent: Vec<String>,
    /// Modules of the case that loaded but could not be unloaded afterwards (the next
    /// cases then run on a kernel that still has them).
    pub unload_failed: Vec<String>,
}

/// The result of an agreement run.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementReport {
    pub kernel_release: String,
    pub guest_release: Option<String>,
    pub boot_method: BootMethod,
    pub accelerator: String,
    pub cases: Vec<CaseSummary>,
    /// Corpus cases not run on this kernel, with the reason.
    pub skipped_cases: Vec<String>,
    /// Modules in the corpus (every module of every case).
    pub modules_total: usize,
    pub modules_agreeing: usize,
    pub modules: Vec<ModuleAgreement>,
    pub serial_log: PathBuf,
    pub elapsed_secs: f64,
    /// Both counts equal and not zero.
    pub all_agree: bool,
}

impl AgreementReport {
    pub fn disagreements(&self) -> impl Iterator<Item = &ModuleAgreement> {
        self.modules.iter().filter(|m| !m.agree)
    }
}

/// Lines the loader prints without the module's name in front.
pub const LOADER_UNPREFIXED: &[&str] = &[
    "Disabling lock debugging due to kernel taint",
    "Loading of unsigned module is rejected",
    "Loading of module with unavailable key is rejected",
    "Lockdown: ",
];

/// Whether a kernel line is in one of the loader's forms for `module`.
pub fn is_loader_line(module: &str, text: &str) -> bool {
    text.strip_prefix(module).is_some_and(|r| r.starts_with(": "))
        || text.strip_prefix("module ").and_then(|r| r.strip_prefix(module)).is_some_and(|r| r.starts_with(": "))
        || LOADER_UNPREFIXED.iter().any(|l| text.starts_with(l))
}

/// busybox insmod's text for an errno of init_module (its `moderror()`, then strerror).
pub fn insmod_text_for(errno: &str) -> Option<&'static str> {
    Some(match errno {
        "ENOEXEC" => "invalid module format",
        "ENOENT" => "unknown symbol in module, or unknown parameter",
        "EINVAL" => "Invalid argument",
        "EKEYREJECTED" => "Key was rejected by service",
        "EPERM" => "Operation not permitted",
        "EEXIST" => "File exists",
        _ => return None,
    })
}

/// A planned case: the corpus case plus what the guest needs for it.
struct PlannedCase {
    case: CorpusCase,
    /// The case's modules in the check's load order, with their file in the guest.
    load: Vec<(String, String)>,
    /// Stock modules to have loaded first, in load order.
    base: Vec<String>,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> VmError {
    move |e| VmError::Io { what, reason: e.to_string() }
}

/// The target as `krbd-forge check --headers DIR --modules-dir <image modules>` sees it:
/// the headers' symbols and config, the package's module names, and the size of `struct
/// module` from one of the package's modules.
pub fn target_of(headers_dir: &Path, pkg: &KernelPackage) -> Result<Target, VmError> {
    let mut target = load_target(&TargetSpec::Headers { dir: headers_dir.to_path_buf() }, None)
        .map_err(|e| VmError::KernelPackage { deb: headers_dir.to_path_buf(), reason: e.to_string() })?;
    target.extra_modules.extend(pkg.modules.keys().cloned());
    // The first module in name order, as `check --modules-dir` takes it.
    if let Some((name, _)) = pkg.modules.iter().next() {
        if let Some(bytes) = pkg.module_bytes(name)? {
            let m = KernelModule::parse(&bytes)
                .map_err(|e| VmError::BadModule { origin: name.clone(), reason: e.to_string() })?;
            target.struct_module_size = m.section(".gnu.linkonce.this_module").map(|d| d.len() as u64);
        }
    }
    Ok(target)
}

/// Runs the corpus in one guest and compares. A guest that never finishes is an error; a
/// disagreement is not (it is in the report).
pub fn run_agreement(spec: &AgreementSpec, listener: &dyn Listener) -> Result<AgreementReport, VmError> {
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
    let target = target_of(&spec.headers_dir, &pkg)?;

    let mut images = Vec::new();
    for name in SOURCE_MODULES {
        if let Some(m) = pkg.modules.get(*name) {
            images.push((name.to_string(), m.raw.clone()));
        }
    }
    let source = CorpusSource::from_images(images)
        .map_err(|e| VmError::BadModule { origin: "corpus".into(), reason: e.to_string() })?;
    let mut cases =
        bootable_cases(&source).map_err(|e| VmError::BadModule { origin: "corpus".into(), reason: e.to_string() })?;
    // A kernel that does not check the size of struct module takes such a module and runs
    // it with a corrupted struct module (6.1: an oops in its init, and a libceph that can no
    // longer be unloaded): a crash, not a loader verdict to compare.
    let mut skipped = Vec::new();
    if !target.policy.checks_struct_module_size {
        cases.retain(|c| {
            let keep = c.name != "struct_module_size_changed";
            if !keep {
                skipped.push(format!("{}: {} does not check the size of struct module", c.name, target.release()));
            }
            keep
        });
    }

    // Plan: each case's load order (the check's), its stock dependencies, and the files.
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut stock_order: Vec<String> = Vec::new();
    let mut planned = Vec::new();
    for case in cases {
        let candidates =
            case.candidates().map_err(|e| VmError::BadModule { origin: case.name.into(), reason: e.to_string() })?;
        let order = check_set(&candidates, &case.target(&target), &SetOptions::default());
        let mut load = Vec::new();
        for v in &order.modules {
            let m = case.modules.iter().find(|m| m.name == v.module).ok_or_else(|| VmError::BadModule {
                origin: case.name.into(),
                reason: format!("the check names module {} that the case does not hold", v.module),
            })?;
            let path = format!("lib/modules/c-{}.ko", &sha256_hex(&m.bytes)[..16]);
            files.entry(path.clone()).or_insert_with(|| m.bytes.clone());
            load.push((m.name.clone(), path));
        }
        let ours: Vec<OurModule> = case
            .modules
            .iter()
            .map(|m| OurModule { name: m.name.clone(), bytes: m.bytes.clone(), origin: m.name.clone() })
            .collect();
        let plan = plan_load_order(&pkg, &ours, &[], &Silent)?;
        let mut base = Vec::new();
        for p in plan.iter().filter(|p| p.role != Role::Ours && !case.absent.contains(&p.name)) {
            files.entry(format!("lib/modules/s-{}.ko", p.name)).or_insert_with(|| p.bytes.clone());
            if !stock_order.contains(&p.name) {
                stock_order.push(p.name.clone());
            }
            base.push(p.name.clone());
        }
        planned.push(PlannedCase { case, load, base });
    }
    let modules_total: usize = planned.iter().map(|p| p.load.len()).sum();
    listener.info(&format!("agreement corpus: {} cases, {modules_total} modules", planned.len()));

    let (kernel_path, boot_method) = kernel_for_boot(&pkg, &spec.work_dir, listener)?;
    let accel = qemu::probe_accel_once(&spec.qemu, &kernel_path, &busybox, &spec.work_dir);
    listener.info(&format!("accelerator {accel}"));
    let init = init_script(&planned, &stock_order);
    let extra = ExtraFiles { files: files.into_iter().map(|(p, b)| (p, 0o644, b)).collect() };
    let initrd = initramfs::build(&busybox, &[], &init, &extra)?;
    let initrd_path = spec.work_dir.join("initramfs-agreement.cpio.gz");
    std::fs::write(&initrd_path, &initrd).map_err(io_err(format!("write {}", initrd_path.display())))?;
    let serial_log = spec.work_dir.join("serial-agreement.log");
    let qspec = QemuSpec {
        qemu: spec.qemu.clone(),
        kernel: kernel_path,
        initrd: initrd_path,
        append: qemu::GUEST_APPEND.into(),
        memory_mb: spec.memory_mb,
        serial_log: serial_log.clone(),
        network: None,
        drive: None,
        timeout: spec.timeout,
    };
    listener.task_start(&format!("loading the corpus into the guest ({})", accel.accel.name()), None, Unit::Steps);
    let outcome = qemu::run_with(&qspec, accel.accel);
    listener.task_finish();
    let outcome = outcome?;
    let events = parse_log(&outcome.serial);
    if !events.iter().any(|e| e.kind == "end") {
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

    let mut modules = Vec::new();
    let mut summaries = Vec::new();
    for p in &planned {
        let tainted_before = events
            .iter()
            .find(|e| e.kind == "case" && e.fields.first().map(String::as_str) == Some(p.case.name))
            .and_then(|e| e.fields.get(1))
            .and_then(|t| t.trim().parse::<u64>().ok());
        let candidates = p
            .case
            .candidates()
            .map_err(|e| VmError::BadModule { origin: p.case.name.into(), reason: e.to_string() })?;
        let options = SetOptions { prior_taint: tainted_before.unwrap_or(0), ..SetOptions::default() };
        let check = check_set(&candidates, &p.case.target(&target), &options);
        for v in &check.modules {
            let kernel = kernel_side(&events, p.case.name, &v.module);
            let check = CheckSide {
                verdict: v.verdict,
                errno: v.errno,
                lines: v.log.iter().map(|l| KernelLine { level: l.level, text: l.text.clone() }).collect(),
            };
            let differences = compare(&kernel, &check);
            modules.push(ModuleAgreement {
                case: p.case.name.to_string(),
                module: v.module.clone(),
                agree: differences.is_empty(),
                kernel,
                check,
                differences,
            });
        }
        summaries.push(CaseSummary {
            name: p.case.name.to_string(),
            what: p.case.what.to_string(),
            tainted_before,
            stock_dependencies: p.base.clone(),
            absent: p.case.absent.clone(),
            unload_failed: events
                .iter()
                .filter(|e| e.kind == "unload" && e.fields.first().map(String::as_str) == Some(p.case.name))
                .filter(|e| e.fields.get(2).map(|rc| rc.trim()) != Some("0"))
                .filter_map(|e| e.fields.get(1).cloned())
                .collect(),
        });
    }
    let modules_agreeing = modules.iter().filter(|m| m.agree).count();
    Ok(AgreementReport {
        kernel_release: pkg.release.clone(),
        guest_release: events.iter().find(|e| e.kind == "begin").and_then(|e| e.fields.first().cloned()),
        boot_method,
        accelerator: accel.to_string(),
        cases: summaries,
        skipped_cases: skipped,
        modules_total,
        all_agree: modules_total > 0 && modules_agreeing == modules_total && modules.len() == modules_total,
        modules_agreeing,
        modules,
        serial_log,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
    })
}

/// A raw `dmesg -r` line: `<N>[ time] text`, N = facility * 8 + level.
fn parse_raw_line(raw: &str) -> Option<(u8, String)> {
    let rest = raw.trim_end_matches('\r').strip_prefix('<')?;
    let (n, text) = rest.split_once('>')?;
    let n: u32 = n.parse().ok()?;
    Some(((n & 7) as u8, strip_timestamp(text).to_string()))
}

fn level_of(n: u8) -> Option<LogLevel> {
    match n {
        0..=3 => Some(LogLevel::Err),
        4 => Some(LogLevel::Warning),
        5 => Some(LogLevel::Notice),
        _ => None,
    }
}

fn kernel_side(events: &[GuestEvent], case: &str, module: &str) -> KernelSide {
    let ours = |e: &&GuestEvent| {
        e.fields.first().map(String::as_str) == Some(case) && e.fields.get(1).map(String::as_str) == Some(module)
    };
    let attempt = events.iter().filter(|e| e.kind == "try").find(ours);
    let raw: Vec<&String> =
        events.iter().filter(|e| e.kind == "kmsg").filter(ours).filter_map(|e| e.fields.get(2)).collect();
    let lines = raw
        .iter()
        .filter_map(|r| parse_raw_line(r))
        .filter(|(_, text)| is_loader_line(module, text))
        .filter_map(|(n, text)| level_of(n).map(|level| KernelLine { level, text }))
        .collect();
    KernelSide {
        loaded: attempt.and_then(|e| e.fields.get(2)).and_then(|rc| rc.trim().parse::<i32>().ok()).map(|rc| rc == 0),
        insmod_output: attempt.and_then(|e| e.fields.get(3)).cloned().unwrap_or_default(),
        lines,
        all_lines: raw.iter().map(|r| r.to_string()).collect(),
    }
}

fn compare(kernel: &KernelSide, check: &CheckSide) -> Vec<String> {
    let mut d = Vec::new();
    let check_loads = check.verdict == Outcome::Loads;
    match kernel.loaded {
        None => d.push("the guest never tried this module".to_string()),
        Some(l) if l != check_loads => d.push(format!(
            "verdict: kernel {}, check {}",
            if l { "loads it" } else { "refuses it" },
            if check_loads { "says it loads" } else { "says it is refused" }
        )),
        Some(false) => {
            let want = check.errno.and_then(insmod_text_for);
            match want {
                Some(text) if kernel.insmod_output.trim_end().ends_with(text) => {}
                _ => d.push(format!(
                    "error: insmod said {:?}, the check says {}",
                    kernel.insmod_output,
                    check.errno.unwrap_or("no errno")
                )),
            }
        }
        Some(true) => {}
    }
    if kernel.lines != check.lines {
        d.push(format!(
            "messages: kernel {:?}, check {:?}",
            kernel.lines.iter().map(|l| format!("{:?}: {}", l.level, l.text)).collect::<Vec<_>>(),
            check.lines.iter().map(|l| format!("{:?}: {}", l.level, l.text)).collect::<Vec<_>>()
        ));
    }
    d
}

/// The guest's init for the corpus: see the module documentation.
fn init_script(cases: &[PlannedCase], stock_order: &[String]) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
# Generated by krbd-vm (agreement run). Reports in lines KRBD|kind|fields... on the console.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Only the most severe kernel lines reach the console; the rest is read from dmesg.
echo 3 > /proc/sys/kernel/printk
say() { echo "KRBD|$*"; }
oneline() { tr '\n' ' ' | sed 's/ *$//'; }
live() { [ -e /sys/module/$1/initstate ]; }
kmsg() { dmesg -c -r | while IFS= read -r l; do say "kmsg|$1|$2|$l"; done; }
stock() { live $1 || insmod /lib/modules/s-$1.ko >/dev/null 2>&1; }
drop() { live $1 && rmmod $1 >/dev/null 2>&1; }
# busybox insmod calls finit_module and, when that fails, init_module: a refused module
# would go through the loader twice. Holding the file open for writing makes finit_module
# fail at once (ETXTBSY, before the loader reads the module), so that every module is
# loaded by exactly one init_module call, as the check models it.
try() {
    exec 3>>"/$3"
    out=$(insmod "/$3" 2>&1); rc=$?
    exec 3>&-
    say "try|$1|$2|$rc|$(echo "$out" | oneline)"
    kmsg "$1" "$2"
    [ $rc = 0 ] && loaded="$2 $loaded"
}
unload() {
    for m in $loaded; do rmmod $m >/dev/null 2>&1; say "unload|$1|$m|$?"; done
    loaded=""
    dmesg -c >/dev/null
}
say "begin|$(uname -r)"
dmesg -c >/dev/null
"#,
    );
    for c in cases {
        s.push_str(&format!("# {}: {}\n", c.case.name, c.case.what));
        for m in stock_order.iter().rev().filter(|m| !c.base.contains(m)) {
            s.push_str(&format!("drop {m}\n"));
        }
        for m in &c.base {
            s.push_str(&format!("stock {m}\n"));
        }
        s.push_str(&format!("dmesg -c >/dev/null\nsay \"case|{}|$(cat /proc/sys/kernel/tainted)\"\n", c.case.name));
        for (name, path) in &c.load {
            s.push_str(&format!("try {} {name} {path}\n", c.case.name));
        }
        s.push_str(&format!("unload {}\n", c.case.name));
    }
    s.push_str("say \"taint_end|$(cat /proc/sys/kernel/tainted)\"\nsay \"end\"\nsync\npoweroff -f\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_lines_are_told_from_others() {
        assert!(is_loader_line("rbd", "rbd: disagrees about version of symbol x"));
        assert!(is_loader_line("rbd", "module rbd: .gnu.linkonce.this_module section size must match"));
        assert!(is_loader_line("rbd", "Disabling lock debugging due to kernel taint"));
        assert!(is_loader_line(
            "rbd",
            "Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7"
        ));
        assert!(!is_loader_line("rbd", "rbdx: something"));
        assert!(!is_loader_line("libceph", "Key type ceph registered"));
        assert!(!is_loader_line(
            "rbd",
            "clocksource: Marking clocksource 'tsc' as unstable because the skew is too large:"
        ));
        assert!(!is_loader_line("ceph", "libceph: loaded"));
    }

    #[test]
    fn raw_dmesg_lines() {
        assert_eq!(parse_raw_line("<4>[    3.120000] rbd: x"), Some((4, "rbd: x".to_string())));
        assert_eq!(parse_raw_line("<13>[ 1.0] user"), Some((5, "user".to_string())));
        assert_eq!(parse_raw_line("no level"), None);
    }

    #[test]
    fn comparison_sees_each_difference() {
        let line = |level, text: &str| KernelLine { level, text: text.into() };
        let kernel = KernelSide {
            loaded: Some(false),
            insmod_output: "insmod: can't insert '/corpus/x.ko': invalid module format".into(),
            lines: vec![line(LogLevel::Err, "rbd: version magic 'a' should be 'b'")],
            all_lines: vec![],
        };
        let check = CheckSide { verdict: Outcome::Refused, errno: Some("ENOEXEC"), lines: kernel.lines.clone() };
        assert!(compare(&kernel, &check).is_empty());
        let wrong_errno = CheckSide { errno: Some("EINVAL"), ..check.clone() };
        assert_eq!(compare(&kernel, &wrong_errno).len(), 1);
        let wrong_level =
            CheckSide { lines: vec![line(LogLevel::Warning, "rbd: version magic 'a' should be 'b'")], ..check.clone() };
        assert_eq!(compare(&kernel, &wrong_level).len(), 1);
        let loads = CheckSide { verdict: Outcome::Loads, errno: None, lines: vec![] };
        assert_eq!(compare(&kernel, &loads).len(), 2);
        let never = KernelSide { loaded: None, ..kernel.clone() };
        assert!(compare(&never, &check)[0].contains("never tried"));
    }
}
