//! The kernel module loader's acceptance rules, replayed offline.
//!
//! The order and the log lines follow `kernel/module/main.c`, `version.c` and `signing.c`
//! of Linux 6.12 (`load_module`): signature check, `module_layout`, vermagic (`same_magic`
//! with the modversions relaxation), taints, then every undefined symbol in symbol-table
//! order (provider lookup, GPL-only, CRC, namespace), then duplicate exports. A set of
//! modules is loaded into one fresh kernel in dependency order, so a refused module takes
//! its exports with it and "once per boot" messages are printed once.
//!
//! This file holds the set: the target, the policy, the load order, the symbol table and
//! the set rules. One module's way through `load_module()` is in `load_module.rs`, step by
//! step; why it is refused is a [`Refusal`], which gives the kernel's line, the errno and
//! the hint.
//!
//! Limits (what is not replayed): the signature's cryptographic validity and the trust in
//! its key (a signed module is assumed valid, with a note; note that a signed module whose
//! bytes were changed is refused by every kernel, enforcing or not); `module_blacklist=`;
//! a module of the same name already loaded (the set is assumed to replace the target's
//! modules, which are not loaded yet); relocation and per-CPU checks after symbol
//! resolution; kernels older than 6.12 are modelled with the 6.12 order and messages, with
//! the version-dependent differences in [`LoaderPolicy`].

use crate::config::KernelConfig;
use crate::load_module::{check_module, SymbolTable};
use crate::module::{normalize_module_name, KernelModule};
use crate::refusal::{Exporter, Refusal};
use crate::symvers::Symvers;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What happens to an unsigned module at `module_sig_check()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignaturePolicy {
    /// `CONFIG_MODULE_SIG=y` without enforcement, no lockdown: unsigned modules load and taint.
    Optional,
    /// `CONFIG_MODULE_SIG_FORCE=y` or `module.sig_enforce=1`.
    Enforced,
    /// Lockdown (e.g. Debian under UEFI Secure Boot): refused by the lockdown LSM.
    Lockdown,
}

/// The loader's build-time choices that change a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoaderPolicy {
    /// `CONFIG_MODVERSIONS`: CRCs are checked and the vermagic release is ignored.
    pub modversions: bool,
    /// `CONFIG_MODULE_FORCE_LOAD`: a module without `__versions`/vermagic loads, tainted.
    pub force_load: bool,
    /// `CONFIG_MODULE_SIG`: unsigned modules taint with a notice.
    pub module_sig: bool,
    pub signatures: SignaturePolicy,
    /// `CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS`.
    pub allow_missing_namespace_imports: bool,
    /// An import with a provider CRC but no entry in `__versions` is refused
    /// (`no symbol version for X`). Read in the sources: Debian's 6.1.192 and 6.12.117
    /// refuse, as did 3.x/4.x; some mainline releases in between warned once and loaded.
    pub missing_version_fatal: bool,
    /// The kernel compares `.gnu.linkonce.this_module`'s size with its `struct module`
    /// (6.12.117 does, 6.1.192 does not).
    pub checks_struct_module_size: bool,
    /// The kernel reads `__version_ext_crcs`/`__version_ext_names` (6.13 and later).
    pub extended_modversions: bool,
    /// The kernel was built with retpolines and warns about modules that were not.
    pub retpoline: bool,
}

impl LoaderPolicy {
    /// The policy of a kernel release, refined by its `.config` when known. Without a
    /// config, Debian's defaults are assumed (modversions, force load, optional signatures).
    pub fn for_release(release: &str, config: Option<&KernelConfig>) -> Self {
        let (major, minor) = release_version(release);
        let at_least = |a: u32, b: u32| (major, minor) >= (a, b);
        let on = |name: &str, default: bool| config.map_or(default, |c| c.enabled(name));
        LoaderPolicy {
            modversions: on("MODVERSIONS", true),
            force_load: on("MODULE_FORCE_LOAD", true),
            module_sig: on("MODULE_SIG", true),
            signatures: if on("MODULE_SIG_FORCE", false) {
                SignaturePolicy::Enforced
            } else if on("LOCK_DOWN_KERNEL_FORCE_INTEGRITY", false)
                || on("LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY", false)
            {
                SignaturePolicy::Lockdown
            } else {
                SignaturePolicy::Optional
            },
            allow_missing_namespace_imports: on("MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS", false),
            missing_version_fatal: true,
            checks_struct_module_size: at_least(6, 12),
            extended_modversions: at_least(6, 13),
            retpoline: on("MITIGATION_RETPOLINE", false) || on("RETPOLINE", false),
        }
    }
}

/// `6.12.117+deb12-amd64` -> (6, 12); unparsable parts are 0.
pub fn release_version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// The kernel a module set is meant for.
#[derive(Debug, Clone)]
pub struct Target {
    /// The running kernel's `VERMAGIC_STRING`.
    pub vermagic: String,
    /// Every export of the kernel and of its modules, with CRCs.
    pub symvers: Symvers,
    pub policy: LoaderPolicy,
    /// Target modules known besides those that export symbols (e.g. from the image).
    pub extra_modules: BTreeSet<String>,
    /// `sizeof(struct module)` of the target kernel, when known (from one of its modules'
    /// `.gnu.linkonce.this_module`): a module built with another layout is refused.
    pub struct_module_size: Option<u64>,
}

impl Target {
    /// The release: vermagic's first word.
    pub fn release(&self) -> &str {
        self.vermagic.split(' ').next().unwrap_or("")
    }

    /// Whether the target kernel ships a module of this name.
    pub fn has_module(&self, name: &str) -> bool {
        self.extra_modules.contains(name) || self.symvers.has_module(name)
    }
}

/// A module of the set being checked, and where it came from (for reports).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub file: String,
    pub module: KernelModule,
}

impl Candidate {
    /// The name the kernel will know the module by.
    pub fn name(&self) -> String {
        match self.module.name() {
            Some(n) => normalize_module_name(n),
            None => {
                let base = self.file.rsplit('/').next().unwrap_or(&self.file);
                normalize_module_name(base.split('.').next().unwrap_or(base))
            }
        }
    }
}

/// Options of a set check that are not properties of the target.
#[derive(Debug, Clone, Serialize)]
pub struct SetOptions {
    /// Modules that are compiled against each other's structures and must be shipped as one
    /// set: a set module binding to the target's stock copy of one of these is flagged.
    pub ship_together: Vec<String>,
    /// The `comm` the lockdown message names (the program that loads the module).
    pub loader_program: String,
    /// The target kernel's `/proc/sys/kernel/tainted` before the set is loaded (0: a fresh
    /// boot). Some loader lines are printed only while their taint is not set yet (forced
    /// load F, out-of-tree O, proprietary P), and the unsigned-module notice only once per
    /// boot, which a kernel with the E taint has already printed.
    pub prior_taint: u64,
}

impl Default for SetOptions {
    fn default() -> Self {
        SetOptions {
            ship_together: vec!["libceph".into(), "ceph".into(), "rbd".into()],
            loader_program: "insmod".into(),
            prior_taint: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Err,
    Warning,
    Notice,
}

/// One line the kernel would print while loading the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Loads,
    Refused,
}

/// What the kernel would do with one module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleVerdict {
    pub module: String,
    pub file: String,
    pub verdict: Outcome,
    /// The error `init_module`/`finit_module` would return (`ENOEXEC`, `ENOENT`, …).
    pub errno: Option<&'static str>,
    /// The line that states why it was refused, if the kernel logs one.
    pub reason: Option<String>,
    /// Everything the kernel would log for this module, in order.
    pub log: Vec<LogLine>,
    /// What the check could not decide offline.
    pub notes: Vec<String>,
    /// For a refused module: what to do about it.
    pub hint: Option<String>,
    /// For a refused module: why, as a value (the reason, errno and hint are made from it).
    #[serde(skip)]
    pub refusal: Option<Refusal>,
}

/// A problem of the set as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SetFinding {
    /// `module` was built against the target's stock `provider`, but the set ships a
    /// different `provider`: the kernel refuses it (`disagrees about version`).
    StaleAgainstSetProvider { module: String, provider: String, symbols: usize, examples: Vec<String>, message: String },
    /// `module` would bind to the target's own `provider`, which should ship with it.
    BindsToStockModule { module: String, provider: String, symbols: usize, message: String },
    /// `depends=` names a module that neither the set nor the target has.
    MissingDependency { module: String, dependency: String, message: String },
    /// `depends=` names a set module that the kernel refuses.
    DependencyRefused { module: String, dependency: String, message: String },
}

impl SetFinding {
    pub fn message(&self) -> &str {
        match self {
            SetFinding::StaleAgainstSetProvider { message, .. }
            | SetFinding::BindsToStockModule { message, .. }
            | SetFinding::MissingDependency { message, .. }
            | SetFinding::DependencyRefused { message, .. } => message,
        }
    }
}

/// The verdicts for a set, in the order the modules would be loaded.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    pub target_vermagic: String,
    pub policy: LoaderPolicy,
    pub modules: Vec<ModuleVerdict>,
    pub findings: Vec<SetFinding>,
}

impl SetReport {
    /// Every module loads and nothing about the set is wrong.
    pub fn all_load(&self) -> bool {
        self.modules.iter().all(|m| m.verdict == Outcome::Loads) && self.findings.is_empty()
    }
}

/// Who exports a symbol at the moment a module is loaded.
#[derive(Debug, Clone)]
pub(crate) struct Provider<'a> {
    /// `None` for the kernel itself (`module_name(NULL)` is "kernel").
    pub(crate) owner: Option<&'a str>,
    pub(crate) crc: Option<u32>,
    pub(crate) gpl_only: bool,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) from_set: bool,
}

/// Bits of `/proc/sys/kernel/tainted` (include/linux/panic.h) that loader messages depend on.
pub const TAINT_PROPRIETARY_MODULE: u64 = 1 << 0;
pub const TAINT_FORCED_MODULE: u64 = 1 << 1;
pub const TAINT_OOT_MODULE: u64 = 1 << 12;
pub const TAINT_UNSIGNED_MODULE: u64 = 1 << 13;
/// P, F, R, M, B, D, A: the taints whose `add_taint()` turns lock debugging off.
pub const LOCKDEP_UNRELIABLE_TAINTS: u64 = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8);

/// Kernel-wide state that "once" messages and taints depend on.
#[derive(Default)]
pub(crate) struct KernelState {
    pub(crate) forced_taint: bool,
    pub(crate) oot_taint: bool,
    pub(crate) proprietary_taint: bool,
    pub(crate) unsigned_notice: bool,
    /// `debug_locks` was turned off by an earlier taint that makes lockdep unreliable.
    pub(crate) lock_debugging_off: bool,
    pub(crate) warned_once: HashSet<&'static str>,
}

/// Checks a set of modules against a target kernel.
pub fn check_set(candidates: &[Candidate], target: &Target, options: &SetOptions) -> SetReport {
    let names: Vec<String> = candidates.iter().map(Candidate::name).collect();
    let set_names: HashSet<&str, crate::FastHash> = names.iter().map(String::as_str).collect();
    let (mut table, replaced_stock) = symbols_before_the_set(target, &set_names);
    let mut state = KernelState::after_taints(options.prior_taint);
    let mut verdicts = Vec::with_capacity(candidates.len());
    let mut findings = Vec::new();
    let mut refused: HashSet<String> = HashSet::new();
    for i in load_order(candidates, &names) {
        let cand = &candidates[i];
        let name = &names[i];
        let (mut verdict, used) = check_module(cand, name, target, &table, &mut state, options);
        verdict.hint =
            verdict.refusal.as_ref().map(|r| r.hint(name, target.release(), |symbol| exporter(&used, symbol)));
        let loads = verdict.verdict == Outcome::Loads;
        findings.extend(set_findings(cand, name, &replaced_stock, &used, options, loads));
        findings.extend(dependency_findings(cand, name, &set_names, &refused, target));
        if verdict.verdict == Outcome::Loads {
            for e in &cand.module.exports {
                table.entry(e.name.as_str()).or_insert(Provider {
                    owner: Some(name.as_str()),
                    crc: e.crc,
                    gpl_only: e.gpl_only,
                    namespace: e.namespace.as_deref(),
                    from_set: true,
                });
            }
        } else {
            refused.insert(name.clone());
        }
        verdicts.push(verdict);
    }
    SetReport { target_vermagic: target.vermagic.clone(), policy: target.policy.clone(), modules: verdicts, findings }
}

/// Who exported `symbol` to a module, from how its imports resolved.
fn exporter<'a>(used: &[Resolution<'a>], symbol: &str) -> Option<Exporter<'a>> {
    let provider = used.iter().find(|r| r.symbol == symbol)?.provider.as_ref()?;
    Some(Exporter { owner: provider.owner, from_set: provider.from_set })
}

/// The symbols available before any set module loads: the kernel and every target module
/// that the set does not replace (`find_symbol` looks at vmlinux first); and the stock CRCs
/// of the modules the set replaces, for the set rules.
fn symbols_before_the_set<'a>(
    target: &'a Target,
    set_names: &HashSet<&str, crate::FastHash>,
) -> (SymbolTable<'a>, HashMap<&'a str, (&'a str, u32)>) {
    let mut table: SymbolTable = HashMap::with_capacity_and_hasher(target.symvers.len() + 1024, crate::FastHash);
    let mut replaced_stock: HashMap<&str, (&str, u32)> = HashMap::new();
    for pass_vmlinux in [true, false] {
        for e in &target.symvers.entries {
            if e.is_vmlinux() != pass_vmlinux {
                continue;
            }
            let owner = if e.is_vmlinux() {
                None
            } else {
                let n = e.module_name();
                if set_names.contains(n) {
                    replaced_stock.insert(e.symbol.as_str(), (n, e.crc));
                    continue;
                }
                Some(n)
            };
            table.entry(e.symbol.as_str()).or_insert(Provider {
                owner,
                crc: Some(e.crc),
                gpl_only: e.gpl_only(),
                namespace: e.namespace.as_deref(),
                from_set: false,
            });
        }
    }
    (table, replaced_stock)
}

impl KernelState {
    /// The state of a kernel whose `/proc/sys/kernel/tainted` is `taint`.
    fn after_taints(taint: u64) -> KernelState {
        KernelState {
            forced_taint: taint & TAINT_FORCED_MODULE != 0,
            oot_taint: taint & TAINT_OOT_MODULE != 0,
            proprietary_taint: taint & TAINT_PROPRIETARY_MODULE != 0,
            // The notice is the only way to the E taint: a kernel that has it printed it.
            unsigned_notice: taint & TAINT_UNSIGNED_MODULE != 0,
            // Taints added with LOCKDEP_NOW_UNRELIABLE: proprietary and forced module, forced
            // rmmod, machine check, bad page, oops (die), ACPI table override.
            lock_debugging_off: taint & LOCKDEP_UNRELIABLE_TAINTS != 0,
            ..KernelState::default()
        }
    }
}

/// The `depends=` rules for one module: a dependency the set ships but the kernel
/// refused, or one that neither the set nor the target has.
fn dependency_findings(
    cand: &Candidate,
    name: &str,
    set_names: &HashSet<&str, crate::FastHash>,
    refused: &HashSet<String>,
    target: &Target,
) -> Vec<SetFinding> {
    let mut out = Vec::new();
    for dep in cand.module.depends() {
        if set_names.contains(dep.as_str()) {
            if refused.contains(&dep) {
                out.push(SetFinding::DependencyRefused {
                    message: format!(
                        "{name} depends on {dep}, which the kernel refuses: {name} cannot load without it"
                    ),
                    module: name.to_string(),
                    dependency: dep,
                });
            }
        } else if !target.has_module(&dep) {
            out.push(SetFinding::MissingDependency {
                message: format!(
                    "{name} depends on {dep}, which neither the set nor the target kernel provides: add {dep}.ko to the set"
                ),
                module: name.to_string(),
                dependency: dep,
            });
        }
    }
    out
}

/// Set modules in `depends=` order (a module after the set modules it depends on); ties and
/// cycles keep the order given.
fn load_order(candidates: &[Candidate], names: &[String]) -> Vec<usize> {
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut placed = vec![false; candidates.len()];
    let mut visiting = vec![false; candidates.len()];
    let mut order = Vec::with_capacity(candidates.len());
    fn visit(
        i: usize,
        candidates: &[Candidate],
        index: &HashMap<&str, usize>,
        placed: &mut [bool],
        visiting: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        if placed[i] || visiting[i] {
            return;
        }
        visiting[i] = true;
        for dep in candidates[i].module.depends() {
            if let Some(&j) = index.get(dep.as_str()) {
                visit(j, candidates, index, placed, visiting, order);
            }
        }
        visiting[i] = false;
        placed[i] = true;
        order.push(i);
    }
    for i in 0..candidates.len() {
        visit(i, candidates, &index, &mut placed, &mut visiting, &mut order);
    }
    order
}

/// How each import was resolved, for the set rules.
pub(crate) struct Resolution<'a> {
    pub(crate) symbol: &'a str,
    pub(crate) provider: Option<Provider<'a>>,
}

/// `same_magic()`: with CRCs, everything up to the first space (the release) is ignored.
pub fn same_magic(module_magic: &str, kernel_magic: &str, has_crcs: bool) -> bool {
    if has_crcs {
        let skip = |s: &str| -> usize { s.find(' ').unwrap_or(s.len()) };
        module_magic[skip(module_magic)..] == kernel_magic[skip(kernel_magic)..]
    } else {
        module_magic == kernel_magic
    }
}

/// The set rules for one module, from how its imports resolved.
fn set_findings(
    cand: &Candidate,
    name: &str,
    replaced_stock: &HashMap<&str, (&str, u32)>,
    used: &[Resolution],
    options: &SetOptions,
    loads: bool,
) -> Vec<SetFinding> {
    let m = &cand.module;
    // Per provider: (stale imports, their names) and count of imports bound to stock copies.
    let mut stale: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut stock: BTreeMap<&str, usize> = BTreeMap::new();
    for r in used {
        let Some(p) = &r.provider else { continue };
        let Some(owner) = p.owner else { continue };
        if p.from_set {
            let Some(recorded) = m.version_of(r.symbol) else { continue };
            let stock_crc = replaced_stock.get(r.symbol).filter(|(m, _)| *m == owner).map(|(_, crc)| *crc);
            if Some(recorded) != p.crc && stock_crc == Some(recorded) {
                stale.entry(owner).or_default().push(r.symbol);
            }
        } else if options.ship_together.iter().any(|s| s == owner) && options.ship_together.iter().any(|s| s == name) {
            *stock.entry(owner).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (provider, symbols) in stale {
        out.push(SetFinding::StaleAgainstSetProvider {
            message: format!(
                "{name} was built against the target's stock {provider} ({} of its imports carry the stock CRCs), but the \
                 set ships a different {provider}: rebuild {name} with KBUILD_EXTRA_SYMBOLS pointing at the set's \
                 {provider} Module.symvers",
                symbols.len()
            ),
            module: name.to_string(),
            provider: provider.to_string(),
            symbols: symbols.len(),
            examples: symbols.iter().take(5).map(|s| s.to_string()).collect(),
        });
    }
    for (provider, n) in stock {
        // Refused, it does not load at all, let alone silently: only the advice stays.
        let message = if loads {
            format!(
                "{name} would bind to the target's stock {provider} ({n} symbols) and load without a word even if it was \
                 compiled against a changed {provider}: ship {provider} in the same set"
            )
        } else {
            format!(
                "{name} would bind to the target's stock {provider} ({n} symbols): ship the {provider} built with \
                 {name} in the same set"
            )
        };
        out.push(SetFinding::BindsToStockModule {
            message,
            module: name.to_string(),
            provider: provider.to_string(),
            symbols: n,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_magic_ignores_release_only_with_crcs() {
        let k = "6.12.117+deb12-amd64 SMP preempt mod_unload modversions ";
        assert!(same_magic("6.12.999-other SMP preempt mod_unload modversions ", k, true));
        assert!(!same_magic("6.12.999-other SMP preempt mod_unload modversions ", k, false));
        assert!(!same_magic("6.12.117+deb12-amd64 SMP mod_unload modversions ", k, true));
        assert!(same_magic(k, k, false));
        // No space at all: the whole string is the "release".
        assert!(same_magic("abc", "xyz", true));
    }

    #[test]
    fn release_versions() {
        assert_eq!(release_version("6.12.117+deb12-amd64"), (6, 12));
        assert_eq!(release_version("3.10.0-327.el7.x86_64"), (3, 10));
        assert_eq!(release_version("garbage"), (0, 0));
    }

    use crate::module::{ExportedSymbol, ImportedVersion, UndefinedSymbol};
    use crate::symvers::SymversEntry;

    const MAGIC: &str = "6.12.117+deb12-amd64 SMP preempt mod_unload modversions ";

    fn synthetic(
        name: &str,
        imports: &[(&str, u32)],
        undefined: &[(&str, bool)],
        exports: &[(&str, u32, bool)],
    ) -> Candidate {
        let mut modinfo = vec![
            ("license".to_string(), "GPL".to_string()),
            ("name".to_string(), name.to_string()),
            ("intree".to_string(), "Y".to_string()),
            ("vermagic".to_string(), MAGIC.to_string()),
        ];
        modinfo.push(("retpoline".into(), "Y".into()));
        Candidate {
            file: format!("{name}.ko"),
            module: KernelModule {
                modinfo,
                versions: imports.iter().map(|(n, c)| ImportedVersion { name: n.to_string(), crc: *c }).collect(),
                has_versions_section: true,
                ext_versions: None,
                exports: exports
                    .iter()
                    .map(|(n, c, gpl)| ExportedSymbol {
                        name: n.to_string(),
                        crc: Some(*c),
                        gpl_only: *gpl,
                        namespace: None,
                    })
                    .collect(),
                undefined: undefined
                    .iter()
                    .map(|(n, weak)| UndefinedSymbol { name: n.to_string(), weak: *weak })
                    .collect(),
                signature: Some(crate::module::ModuleSignature {
                    algo: 0,
                    hash: 0,
                    id_type: 2,
                    signer_len: 0,
                    key_id_len: 0,
                    sig_len: 0,
                    signed_len: 0,
                    signer: None,
                }),
                machine: object::elf::EM_X86_64.0,
                sections: [(".gnu.linkonce.this_module".to_string(), vec![0u8; 1280])].into_iter().collect(),
            },
        }
    }

    fn kernel(release: &str) -> Target {
        let entries = vec![
            SymversEntry::new(0x1111, "module_layout", "vmlinux", "EXPORT_SYMBOL", None),
            SymversEntry::new(0x2222, "printk", "vmlinux", "EXPORT_SYMBOL", None),
            SymversEntry::new(0x3333, "gpl_thing", "vmlinux", "EXPORT_SYMBOL_GPL", None),
        ];
        Target {
            vermagic: MAGIC.replace("6.12.117+deb12-amd64", release),
            symvers: Symvers::from_entries(entries),
            policy: LoaderPolicy::for_release(release, None),
            extra_modules: Default::default(),
            struct_module_size: None,
        }
    }

    fn texts(v: &ModuleVerdict) -> Vec<&str> {
        v.log.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn missing_symbol_version_depends_on_the_kernel() {
        let m = synthetic("m", &[("module_layout", 0x1111)], &[("printk", false)], &[]);
        // Debian 6.12.117: refused.
        let r = check_set(std::slice::from_ref(&m), &kernel("6.12.117+deb12-amd64"), &SetOptions::default());
        assert_eq!(r.modules[0].verdict, Outcome::Refused);
        assert_eq!(texts(&r.modules[0]), vec!["m: no symbol version for printk", "m: Unknown symbol printk (err -22)"]);
        // Kernels that warn once and load.
        let mut t = kernel("6.1.0-26-amd64");
        t.policy.missing_version_fatal = false;
        let r = check_set(
            &[m.clone(), synthetic("n", &[("module_layout", 0x1111)], &[("printk", false)], &[])],
            &t,
            &SetOptions::default(),
        );
        assert!(r.modules.iter().all(|v| v.verdict == Outcome::Loads));
        assert_eq!(texts(&r.modules[0]), vec!["m: no symbol version for printk"]);
        assert!(texts(&r.modules[1]).is_empty(), "warned once per boot");
    }

    #[test]
    fn extended_versions_are_read_only_by_kernels_that_know_them() {
        let mut m = synthetic("m", &[("module_layout", 0x1111), ("printk", 0x2222)], &[("printk", false)], &[]);
        m.module.ext_versions = Some(vec![
            ImportedVersion { name: "module_layout".into(), crc: 0x1111 },
            ImportedVersion { name: "printk".into(), crc: 0xbad },
        ]);
        let r = check_set(std::slice::from_ref(&m), &kernel("6.14.0"), &SetOptions::default());
        assert_eq!(
            texts(&r.modules[0]),
            vec!["m: disagrees about version of symbol printk", "m: Unknown symbol printk (err -22)"]
        );
        // 6.12 ignores the extended tables and uses __versions.
        let r = check_set(&[m], &kernel("6.12.117+deb12-amd64"), &SetOptions::default());
        assert_eq!(r.modules[0].verdict, Outcome::Loads);
    }

    #[test]
    fn no_versions_section_is_force_loaded_or_refused_silently() {
        let mut m = synthetic("m", &[], &[("printk", false)], &[]);
        m.module.has_versions_section = false;
        let mut t = kernel("6.12.117+deb12-amd64");
        let r = check_set(std::slice::from_ref(&m), &t, &SetOptions::default());
        assert_eq!(r.modules[0].verdict, Outcome::Loads);
        assert_eq!(
            texts(&r.modules[0]),
            vec!["m: module_layout: kernel tainted.", "Disabling lock debugging due to kernel taint"]
        );
        // On a kernel that already has the F taint, neither line is printed again.
        let tainted = SetOptions { prior_taint: TAINT_FORCED_MODULE, ..SetOptions::default() };
        let r = check_set(std::slice::from_ref(&m), &t, &tainted);
        assert_eq!(r.modules[0].verdict, Outcome::Loads);
        assert!(r.modules[0].log.is_empty(), "{:?}", r.modules[0].log);
        // After an oops (D) lock debugging is already off: the F line alone.
        let r = check_set(std::slice::from_ref(&m), &t, &SetOptions { prior_taint: 1 << 7, ..SetOptions::default() });
        assert_eq!(texts(&r.modules[0]), vec!["m: module_layout: kernel tainted."]);
        // An unsigned module on a kernel with the E taint: the once-per-boot notice was printed.
        let r = check_set(
            std::slice::from_ref(&m),
            &t,
            &SetOptions { prior_taint: TAINT_UNSIGNED_MODULE, ..SetOptions::default() },
        );
        assert_eq!(
            texts(&r.modules[0]),
            vec!["m: module_layout: kernel tainted.", "Disabling lock debugging due to kernel taint"]
        );
        t.policy.force_load = false;
        let r = check_set(&[m], &t, &SetOptions::default());
        assert_eq!((r.modules[0].verdict, r.modules[0].errno), (Outcome::Refused, Some("ENOEXEC")));
        assert!(r.modules[0].log.is_empty() && r.modules[0].reason.is_none());
    }

    #[test]
    fn gpl_only_weak_and_duplicate_exports() {
        let t = kernel("6.12.117+deb12-amd64");
        let versions = [("module_layout", 0x1111), ("gpl_thing", 0x3333), ("printk", 0x2222)];
        let mut m = synthetic("m", &versions, &[("gpl_thing", false), ("missing_weak", true)], &[]);
        let r = check_set(std::slice::from_ref(&m), &t, &SetOptions::default());
        assert_eq!(r.modules[0].verdict, Outcome::Loads, "weak symbols may stay unresolved");
        m.module.modinfo[0].1 = "Proprietary".into();
        let r = check_set(&[m], &t, &SetOptions::default());
        assert_eq!(
            texts(&r.modules[0]),
            vec![
                "m: module license 'Proprietary' taints kernel.",
                "Disabling lock debugging due to kernel taint",
                "m: Unknown symbol gpl_thing (err -2)"
            ]
        );
        let dup = synthetic("d", &versions, &[], &[("printk", 1, false)]);
        let r = check_set(&[dup], &t, &SetOptions::default());
        assert_eq!(texts(&r.modules[0]), vec!["d: exports duplicate symbol printk (owned by kernel)"]);
        assert_eq!(r.modules[0].errno, Some("ENOEXEC"));
    }

    #[test]
    fn reason_errno_and_hint_come_from_the_refusal_not_from_earlier_lines() {
        // Force-loaded past module_layout (two taint lines), then refused for its vermagic.
        let mut m = synthetic("m", &[], &[], &[]);
        m.module.has_versions_section = false;
        m.module.modinfo.retain(|(k, _)| k != "vermagic");
        m.module.modinfo.push(("vermagic".into(), MAGIC.replace("6.12.117", "6.12.118")));
        let r = check_set(&[m], &kernel("6.12.117+deb12-amd64"), &SetOptions::default());
        let v = &r.modules[0];
        assert_eq!(
            texts(v)[..2],
            ["m: module_layout: kernel tainted.", "Disabling lock debugging due to kernel taint"]
        );
        assert!(matches!(v.refusal, Some(Refusal::VersionMagic { .. })), "{v:?}");
        assert_eq!(v.reason.as_deref(), texts(v).last().copied());
        assert!(v.reason.as_deref().is_some_and(|r| r.starts_with("m: version magic '6.12.118")), "{v:?}");
        assert_eq!(v.errno, Some("ENOEXEC"));
        assert!(v.hint.as_deref().is_some_and(|h| h.starts_with("the module was built for another kernel")), "{v:?}");

        // A silent refusal after a taint line: no reason line, a hint all the same.
        let mut p = synthetic("p", &[("module_layout", 0x1111)], &[], &[]);
        p.module.modinfo[0].1 = "Proprietary".into();
        p.module.exports.push(ExportedSymbol { name: "p_fn".into(), crc: None, gpl_only: false, namespace: None });
        let mut t = kernel("6.12.117+deb12-amd64");
        t.policy.force_load = false;
        let r = check_set(&[p], &t, &SetOptions::default());
        let v = &r.modules[0];
        assert_eq!(texts(v)[0], "p: module license 'Proprietary' taints kernel.");
        assert_eq!((v.verdict, v.errno, v.reason.as_deref()), (Outcome::Refused, Some("ENOEXEC"), None));
        assert!(v.hint.as_deref().is_some_and(|h| h.contains("exports symbols without CRCs")), "{v:?}");
    }

    #[test]
    fn the_last_unresolved_symbol_gives_the_errno_and_the_first_the_reason() {
        let versions = [("module_layout", 0x1111), ("printk", 0x9999)];
        let m = synthetic("m", &versions, &[("printk", false), ("nowhere", false)], &[]);
        let r = check_set(&[m], &kernel("6.12.117+deb12-amd64"), &SetOptions::default());
        let v = &r.modules[0];
        assert_eq!(
            texts(v),
            [
                "m: disagrees about version of symbol printk",
                "m: Unknown symbol printk (err -22)",
                "m: Unknown symbol nowhere (err -2)"
            ]
        );
        assert_eq!(
            (v.errno, v.reason.as_deref()),
            (Some("ENOENT"), Some("m: disagrees about version of symbol printk"))
        );
        assert!(v.hint.as_deref().is_some_and(|h| h.starts_with("printk comes from the target's kernel")), "{v:?}");
    }

    #[test]
    fn policy_follows_config() {
        let c = KernelConfig::parse("CONFIG_MODVERSIONS=y\nCONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_FORCE=y\n");
        let p = LoaderPolicy::for_release("6.1.0-26-amd64", Some(&c));
        assert_eq!(p.signatures, SignaturePolicy::Enforced);
        assert!(!p.force_load && p.missing_version_fatal && !p.extended_modversions && !p.checks_struct_module_size);
        assert!(LoaderPolicy::for_release("6.14.0", None).extended_modversions);
    }
}
