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

use crate::boot::{guest_release, io_err, kernel_for_boot, prepare_host, read_kernel_package, BootMethod, GuestBoot};
use crate::deps::{plan_load_order, OurModule, Role};
use crate::guest::{strip_timestamp, GuestEvent};
use crate::initramfs::{self, ExtraFiles};
use crate::linux_image::KernelPackage;
use crate::qemu;
use crate::{IoAction, VmError};
use krbd_formats::digest::sha256_hex;
use krbd_kmod::corpus::{bootable_cases, CorpusCase, CorpusError, CorpusSource, SOURCE_MODULES};
use krbd_kmod::loader::{check_set, LogLevel, Outcome, SetOptions, Target};
use krbd_kmod::{load_target, KernelModule, TargetSpec};
use krbd_progress::{Listener, Silent};
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

/// What the guest needs for the whole corpus.
struct CorpusPlan {
    cases: Vec<PlannedCase>,
    /// The initramfs's files (every case module and stock dependency, once).
    files: BTreeMap<String, Vec<u8>>,
    /// Every stock dependency of any case, in first-needed order.
    stock_order: Vec<String>,
}

/// The target as `krbd-forge check --headers DIR --modules-dir <image modules>` sees it:
/// the headers' symbols and config, the package's module names, and the size of `struct
/// module` from one of the package's modules.
pub fn target_of(headers_dir: &Path, pkg: &KernelPackage) -> Result<Target, VmError> {
    let mut target = load_target(&TargetSpec::Headers { dir: headers_dir.to_path_buf() }, None)
        .map_err(|source| VmError::TargetHeaders { dir: headers_dir.to_path_buf(), source: Box::new(source) })?;
    target.extra_modules.extend(pkg.modules.keys().cloned());
    // The first module in name order, as `check --modules-dir` takes it.
    if let Some((name, _)) = pkg.modules.iter().next() {
        if let Some(bytes) = pkg.module_bytes(name)? {
            let m =
                KernelModule::parse(&bytes).map_err(|source| VmError::BadModule { origin: name.clone(), source })?;
            target.struct_module_size = m.section(".gnu.linkonce.this_module").map(|d| d.len() as u64);
        }
    }
    Ok(target)
}

fn corpus_err(origin: &str) -> impl FnOnce(CorpusError) -> VmError + '_ {
    move |source| VmError::Corpus { origin: origin.to_string(), source: Box::new(source) }
}

/// Runs the corpus in one guest and compares. A guest that never finishes is an error; a
/// disagreement is not (it is in the report).
pub fn run_agreement(spec: &AgreementSpec, listener: &dyn Listener) -> Result<AgreementReport, VmError> {
    let busybox = prepare_host(&spec.work_dir, &spec.busybox, &spec.qemu)?;
    let pkg = read_kernel_package(&spec.image_deb, spec.release.as_deref(), listener)?;
    let target = target_of(&spec.headers_dir, &pkg)?;
    let (cases, skipped) = corpus_cases(&pkg, &target)?;
    let plan = plan_cases(cases, &pkg, &target)?;
    let modules_total: usize = plan.cases.iter().map(|p| p.load.len()).sum();
    listener.info(&format!("agreement corpus: {} cases, {modules_total} modules", plan.cases.len()));

    let (kernel, boot_method) = kernel_for_boot(&pkg, &spec.work_dir, listener)?;
    let accel = qemu::probe_accel_once(&spec.qemu, &kernel, &busybox, &spec.work_dir);
    listener.info(&format!("accelerator {accel}"));
    let init = init_script(&plan.cases, &plan.stock_order);
    let extra = ExtraFiles { files: plan.files.into_iter().map(|(p, b)| (p, 0o644, b)).collect() };
    let initrd = initramfs::build(&busybox, &[], &init, &extra)?;
    let initrd_path = spec.work_dir.join("initramfs-agreement.cpio.gz");
    std::fs::write(&initrd_path, &initrd).map_err(io_err(IoAction::Write, &initrd_path))?;
    let guest = GuestBoot {
        qemu: &spec.qemu,
        kernel,
        accel: accel.accel,
        memory_mb: spec.memory_mb,
        timeout: spec.timeout,
        network: None,
    };
    let serial_log = spec.work_dir.join("serial-agreement.log");
    let task_name = format!("loading the corpus into the guest ({})", accel.accel.name());
    let (outcome, events) = guest.run(initrd_path, &serial_log, &task_name, listener)?;

    let (modules, cases) = compare_cases(&plan.cases, &events, &target)?;
    let modules_agreeing = modules.iter().filter(|m| m.agree).count();
    Ok(AgreementReport {
        kernel_release: pkg.release.clone(),
        guest_release: guest_release(&events),
        boot_method,
        accelerator: accel.to_string(),
        cases,
        skipped_cases: skipped,
        modules_total,
        all_agree: modules_total > 0 && modules_agreeing == modules_total && modules.len() == modules_total,
        modules_agreeing,
        modules,
        serial_log,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
    })
}

/// The corpus cases to run on this kernel, made from the package's own modules, and the
/// ones skipped with the reason.
fn corpus_cases(pkg: &KernelPackage, target: &Target) -> Result<(Vec<CorpusCase>, Vec<String>), VmError> {
    let images = SOURCE_MODULES
        .iter()
        .filter_map(|name| pkg.modules.get(*name).map(|m| (name.to_string(), m.raw.clone())))
        .collect::<Vec<_>>();
    let source = CorpusSource::from_images(images).map_err(corpus_err("corpus"))?;
    let mut cases = bootable_cases(&source).map_err(corpus_err("corpus"))?;
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
    Ok((cases, skipped))
}

/// Each case's load order (the check's), its stock dependencies, and the files.
fn plan_cases(cases: Vec<CorpusCase>, pkg: &KernelPackage, target: &Target) -> Result<CorpusPlan, VmError> {
    let mut plan = CorpusPlan { cases: Vec::new(), files: BTreeMap::new(), stock_order: Vec::new() };
    for case in cases {
        let load = plan_case_load(&case, target, &mut plan.files)?;
        let ours: Vec<OurModule> = case
            .modules
            .iter()
            .map(|m| OurModule { name: m.name.clone(), bytes: m.bytes.clone(), origin: m.name.clone() })
            .collect();
        let order = plan_load_order(pkg, &ours, &[], &Silent)?;
        let mut base = Vec::new();
        for p in order.iter().filter(|p| p.role != Role::Ours && !case.absent.contains(&p.name)) {
            plan.files.entry(format!("lib/modules/s-{}.ko", p.name)).or_insert_with(|| p.bytes.clone());
            if !plan.stock_order.contains(&p.name) {
                plan.stock_order.push(p.name.clone());
            }
            base.push(p.name.clone());
        }
        plan.cases.push(PlannedCase { case, load, base });
    }
    Ok(plan)
}

/// The case's modules in the check's load order, each with its file in the guest (named
/// by content, so that equal modules of different cases share one file).
fn plan_case_load(
    case: &CorpusCase,
    target: &Target,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, String)>, VmError> {
    let candidates = case.candidates().map_err(corpus_err(case.name))?;
    let order = check_set(&candidates, &case.target(target), &SetOptions::default());
    let mut load = Vec::new();
    for v in &order.modules {
        let m = case
            .modules
            .iter()
            .find(|m| m.name == v.module)
            .ok_or_else(|| VmError::CorpusModuleUnknown { case: case.name.to_string(), module: v.module.clone() })?;
        let path = format!("lib/modules/c-{}.ko", &sha256_hex(&m.bytes)[..16]);
        files.entry(path.clone()).or_insert_with(|| m.bytes.clone());
        load.push((m.name.clone(), path));
    }
    Ok(load)
}

/// Both sides of every module of every case, and a summary per case.
fn compare_cases(
    cases: &[PlannedCase],
    events: &[GuestEvent],
    target: &Target,
) -> Result<(Vec<ModuleAgreement>, Vec<CaseSummary>), VmError> {
    let mut modules = Vec::new();
    let mut summaries = Vec::new();
    for p in cases {
        let tainted_before = events.iter().find_map(|e| match e {
            GuestEvent::Case { case, tainted } if case == p.case.name => Some(*tainted),
            _ => None,
        });
        let tainted_before = tainted_before.flatten();
        let candidates = p.case.candidates().map_err(corpus_err(p.case.name))?;
        let options = SetOptions { prior_taint: tainted_before.unwrap_or(0), ..SetOptions::default() };
        let check = check_set(&candidates, &p.case.target(target), &options);
        for v in &check.modules {
            modules.push(module_agreement(events, p.case.name, v));
        }
        summaries.push(CaseSummary {
            name: p.case.name.to_string(),
            what: p.case.what.to_string(),
            tainted_before,
            stock_dependencies: p.base.clone(),
            absent: p.case.absent.clone(),
            unload_failed: unload_failures(events, p.case.name),
        });
    }
    Ok((modules, summaries))
}

/// The kernel's and the check's side of one module, compared.
fn module_agreement(events: &[GuestEvent], case: &str, v: &krbd_kmod::loader::ModuleVerdict) -> ModuleAgreement {
    let kernel = kernel_side(events, case, &v.module);
    let check = CheckSide {
        verdict: v.verdict,
        errno: v.errno,
        lines: v.log.iter().map(|l| KernelLine { level: l.level, text: l.text.clone() }).collect(),
    };
    let differences = compare(&kernel, &check);
    ModuleAgreement {
        case: case.to_string(),
        module: v.module.clone(),
        agree: differences.is_empty(),
        kernel,
        check,
        differences,
    }
}

/// Modules of the case that loaded but could not be unloaded afterwards.
fn unload_failures(events: &[GuestEvent], case: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::Unload { case: c, module, unloaded: false } if c == case => Some(module.clone()),
            _ => None,
        })
        .collect()
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
    let attempt = events.iter().find_map(|e| match e {
        GuestEvent::Try { case: c, module: m, exit, output } if c == case && m == module => Some((*exit, output)),
        _ => None,
    });
    let raw: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::Kmsg { case: c, module: m, raw } if c == case && m == module => Some(raw),
            _ => None,
        })
        .collect();
    let lines = raw
        .iter()
        .filter_map(|r| parse_raw_line(r))
        .filter(|(_, text)| is_loader_line(module, text))
        .filter_map(|(n, text)| level_of(n).map(|level| KernelLine { level, text }))
        .collect();
    KernelSide {
        loaded: attempt.and_then(|(exit, _)| exit).map(|rc| rc == 0),
        insmod_output: attempt.map(|(_, output)| output.clone()).unwrap_or_default(),
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
    let mut s = String::from(include_str!("guest/agreement-init-head.sh"));
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
