//! One module through the kernel's `load_module()`, step by step in the kernel's order:
//! `module_sig_check()`, the `struct module` layout, `check_modstruct_version()`,
//! `check_modinfo()` (vermagic), the taints, `check_export_symbol_versions()`,
//! `simplify_symbols()`, `verify_exported_symbols()`. Each step either logs what the
//! kernel logs and lets the module through, or stops it with a [`Refusal`].

use crate::loader::{
    same_magic, Candidate, KernelState, LoaderPolicy, LogLevel, LogLine, ModuleVerdict, Outcome, Provider, Resolution,
    SetOptions, SignaturePolicy, Target,
};
use crate::module::KernelModule;
use crate::refusal::{namespace_line, CrcProblem, ForceLoadCheck, Refusal, SymbolFailure, UnresolvedSymbol};
use std::collections::HashMap;

/// The symbols available when a module loads, by name.
pub(crate) type SymbolTable<'a> = HashMap<&'a str, Provider<'a>, crate::FastHash>;

/// What `check_version()` refuses.
enum CrcRefusal {
    Crc(CrcProblem),
    /// No `__versions` and no forced load.
    CannotForceLoad,
}

/// One module being loaded: what its steps share.
struct ModuleLoad<'a, 's> {
    module: &'a KernelModule,
    name: &'s str,
    target: &'s Target,
    table: &'s SymbolTable<'a>,
    options: &'s SetOptions,
    state: &'s mut KernelState,
    /// The module's `__versions`; the loader takes the first record of a name.
    recorded: HashMap<&'a str, u32>,
    log: Vec<LogLine>,
    notes: Vec<String>,
}

/// Replays `load_module()` for one module against the symbols loaded so far. Returns the
/// verdict (without hint) and how each undefined symbol resolved, for the set rules.
pub(crate) fn check_module<'a>(
    cand: &'a Candidate,
    name: &str,
    target: &Target,
    table: &SymbolTable<'a>,
    state: &mut KernelState,
    options: &SetOptions,
) -> (ModuleVerdict, Vec<Resolution<'a>>) {
    let module = &cand.module;
    let mut recorded: HashMap<&str, u32> = HashMap::with_capacity(module.versions.len());
    for v in &module.versions {
        recorded.entry(v.name.as_str()).or_insert(v.crc);
    }
    let mut load =
        ModuleLoad { module, name, target, table, options, state, recorded, log: Vec::new(), notes: Vec::new() };
    let mut used = Vec::new();
    let refusal = load.run(&mut used).err();
    let verdict = ModuleVerdict {
        module: name.to_string(),
        file: cand.file.clone(),
        verdict: if refusal.is_some() { Outcome::Refused } else { Outcome::Loads },
        errno: refusal.as_ref().map(Refusal::errno),
        reason: refusal.as_ref().and_then(Refusal::log_line).map(|l| l.text),
        log: load.log,
        notes: load.notes,
        hint: None,
        refusal,
    };
    (verdict, used)
}

/// `license_is_gpl_compatible()`.
fn license_is_gpl_compatible(license: &str) -> bool {
    matches!(license, "GPL" | "GPL v2" | "GPL and additional rights" | "Dual BSD/GPL" | "Dual MIT/GPL" | "Dual MPL/GPL")
}

impl<'a> ModuleLoad<'a, '_> {
    fn policy(&self) -> &LoaderPolicy {
        &self.target.policy
    }

    fn push(&mut self, level: LogLevel, text: String) {
        self.log.push(LogLine { level, text });
    }

    /// Logs the refusal's line, as the kernel does when it refuses.
    fn refuse(&mut self, refusal: Refusal) -> Refusal {
        self.log.extend(refusal.log_line());
        refusal
    }

    fn run(&mut self, used: &mut Vec<Resolution<'a>>) -> Result<(), Refusal> {
        self.module_sig_check()?;
        self.check_struct_module()?;
        self.check_modstruct_version()?;
        self.check_modinfo()?;
        let gpl_compatible = self.augment_kernel_taints();
        self.check_export_symbol_versions()?;
        self.simplify_symbols(gpl_compatible, used)?;
        self.verify_exported_symbols()
    }

    /// `module_sig_check()`: runs before anything reads the ELF.
    fn module_sig_check(&mut self) -> Result<(), Refusal> {
        match (&self.module.signature, self.policy().signatures) {
            (None, SignaturePolicy::Enforced) => Err(self.refuse(Refusal::UnsignedRejected)),
            (None, SignaturePolicy::Lockdown) => {
                let program = self.options.loader_program.clone();
                Err(self.refuse(Refusal::UnsignedUnderLockdown { program }))
            }
            (Some(sig), _) => {
                let signer = match &sig.signer {
                    Some(info) => format!(
                        " by {:?}, key {}, hash {}",
                        info.signer.as_deref().unwrap_or("(key identifier only)"),
                        info.key_id,
                        info.hash
                    ),
                    None => String::new(),
                };
                self.notes.push(format!(
                    "the module is signed{signer}; whether the target trusts the key (and whether the signature still \
                     matches the content) cannot be decided offline"
                ));
                Ok(())
            }
            (None, SignaturePolicy::Optional) => Ok(()),
        }
    }

    /// `elf_validity_cache_index_mod()`: the module's `struct module` must be the kernel's.
    fn check_struct_module(&mut self) -> Result<(), Refusal> {
        let this_module = self.module.section(".gnu.linkonce.this_module").map(|d| d.len() as u64);
        let strict = self.policy().checks_struct_module_size;
        match (this_module, self.target.struct_module_size) {
            (None, _) => Err(self.refuse(Refusal::NoModuleStruct { module: self.name.to_string(), strict })),
            (Some(size), Some(expected)) if size != expected && strict => {
                self.notes
                    .push(format!("struct module is {size} bytes in the module, {expected} in the target kernel"));
                Err(self.refuse(Refusal::StructModuleSize { module: self.name.to_string() }))
            }
            (Some(size), Some(expected)) if size != expected => {
                self.notes.push(format!(
                    "struct module is {size} bytes in the module, {expected} in the target kernel, which does not \
                     check it: the loader takes the module, which then runs with a wrong struct module (seen on \
                     6.1: an oops in its init); build it with the target's headers"
                ));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `check_modstruct_version()`: `module_layout` against the kernel's own CRC.
    fn check_modstruct_version(&mut self) -> Result<(), Refusal> {
        if !self.policy().modversions {
            return Ok(());
        }
        // The kernel's own export, whoever else is loaded.
        let Some(crc) = self.table.get("module_layout").filter(|p| p.owner.is_none()).map(|p| p.crc) else {
            self.notes.push("the target's symbol list has no module_layout; that check was skipped".into());
            return Ok(());
        };
        match self.check_version("module_layout", crc) {
            Ok(()) => Ok(()),
            Err(CrcRefusal::Crc(problem)) => {
                Err(self.refuse(Refusal::ModuleLayout { module: self.name.to_string(), problem }))
            }
            Err(CrcRefusal::CannotForceLoad) => Err(Refusal::CannotForceLoad { check: ForceLoadCheck::ModuleLayout }),
        }
    }

    /// `check_modinfo()`: vermagic, ignoring the release when the module has CRCs.
    fn check_modinfo(&mut self) -> Result<(), Refusal> {
        let m = self.module;
        let has_crcs = m.has_versions_section || (self.policy().extended_modversions && m.ext_versions.is_some());
        match m.vermagic() {
            None => {
                if !self.try_to_force_load("bad vermagic") {
                    return Err(Refusal::CannotForceLoad { check: ForceLoadCheck::BadVermagic });
                }
                Ok(())
            }
            Some(got) if !same_magic(got, &self.target.vermagic, has_crcs) => Err(self.refuse(Refusal::VersionMagic {
                module: self.name.to_string(),
                got: got.to_string(),
                want: self.target.vermagic.clone(),
            })),
            Some(_) => Ok(()),
        }
    }

    /// `module_augment_kernel_taints()`: printed once the module is past the early checks.
    /// Returns whether the license is GPL-compatible (GPL-only symbols are visible).
    fn augment_kernel_taints(&mut self) -> bool {
        let m = self.module;
        let name = self.name;
        if m.info("intree").is_none() {
            if !self.state.oot_taint {
                self.push(LogLevel::Warning, format!("{name}: loading out-of-tree module taints kernel."));
            }
            self.state.oot_taint = true;
        }
        if self.policy().retpoline && m.info("retpoline") != Some("Y") {
            self.push(LogLevel::Warning, format!("{name}: loading module not compiled with retpoline compiler."));
        }
        let license = m.info("license").unwrap_or("unspecified");
        let gpl_compatible = license_is_gpl_compatible(license);
        if !gpl_compatible {
            if !self.state.proprietary_taint {
                self.push(LogLevel::Warning, format!("{name}: module license '{license}' taints kernel."));
            }
            self.state.proprietary_taint = true;
            self.taint_lockdep_unreliable();
        }
        if self.policy().module_sig && m.signature.is_none() && !self.state.unsigned_notice {
            self.push(
                LogLevel::Notice,
                format!("{name}: module verification failed: signature and/or required key missing - tainting kernel"),
            );
            self.state.unsigned_notice = true;
        }
        gpl_compatible
    }

    /// `check_export_symbol_versions()`: exports without CRCs need a forced load.
    fn check_export_symbol_versions(&mut self) -> Result<(), Refusal> {
        if self.policy().modversions
            && self.module.exports.iter().any(|e| e.crc.is_none())
            && !self.try_to_force_load("no versions for exported symbols")
        {
            return Err(Refusal::CannotForceLoad { check: ForceLoadCheck::UnversionedExports });
        }
        Ok(())
    }

    /// `simplify_symbols()`: every undefined symbol; failures are logged and the loop goes on.
    fn simplify_symbols(&mut self, gpl_compatible: bool, used: &mut Vec<Resolution<'a>>) -> Result<(), Refusal> {
        let m = self.module;
        used.reserve(m.undefined.len());
        let mut unresolved = Vec::new();
        for u in &m.undefined {
            let found = self.table.get(u.name.as_str()).filter(|p| gpl_compatible || !p.gpl_only).cloned();
            used.push(Resolution { symbol: &u.name, provider: found.clone() });
            let failure = match found {
                None if u.weak || (m.machine == object::elf::EM_X86_64.0 && u.name == "_GLOBAL_OFFSET_TABLE_") => None,
                None => Some(SymbolFailure::Unknown),
                Some(p) => self.resolve_symbol(&u.name, &p),
            };
            if let Some(failure) = failure {
                let symbol = UnresolvedSymbol { symbol: u.name.clone(), failure };
                self.log.extend(symbol.log_lines(self.name));
                unresolved.push(symbol);
            }
        }
        if unresolved.is_empty() {
            Ok(())
        } else {
            Err(Refusal::UnresolvedSymbols { module: self.name.to_string(), symbols: unresolved })
        }
    }

    /// `resolve_symbol()` for a symbol that has a provider: its CRC, then its namespace.
    fn resolve_symbol(&mut self, symbol: &str, provider: &Provider) -> Option<SymbolFailure> {
        match self.check_version(symbol, provider.crc) {
            Err(CrcRefusal::Crc(problem)) => return Some(SymbolFailure::Crc(problem)),
            Err(CrcRefusal::CannotForceLoad) => return Some(SymbolFailure::CannotForceLoad),
            Ok(()) => {}
        }
        let namespace = provider.namespace.filter(|ns| !ns.is_empty())?;
        if self.module.info_all("import_ns").any(|imported| imported == namespace) {
            return None;
        }
        if self.policy().allow_missing_namespace_imports {
            self.push(LogLevel::Warning, namespace_line(self.name, symbol, namespace));
            return None;
        }
        Some(SymbolFailure::Namespace { namespace: namespace.to_string() })
    }

    /// `complete_formation()` -> `verify_exported_symbols()`: no export may exist already.
    fn verify_exported_symbols(&mut self) -> Result<(), Refusal> {
        let duplicate = self.module.exports.iter().find_map(|e| Some((e, self.table.get(e.name.as_str())?)));
        match duplicate {
            Some((export, provider)) => {
                let refusal = Refusal::DuplicateExport {
                    module: self.name.to_string(),
                    symbol: export.name.clone(),
                    owner: provider.owner.unwrap_or("kernel").to_string(),
                };
                Err(self.refuse(refusal))
            }
            None => Ok(()),
        }
    }

    /// `check_version()`: does the module's recorded CRC for `symbol` match the provider's?
    fn check_version(&mut self, symbol: &str, crc: Option<u32>) -> Result<(), CrcRefusal> {
        if !self.policy().modversions {
            return Ok(());
        }
        // Exporting module didn't supply CRCs: accepted.
        let Some(crc) = crc else { return Ok(()) };
        if self.policy().extended_modversions {
            if let Some(ext) = &self.module.ext_versions {
                return match ext.iter().find(|v| v.name == symbol) {
                    Some(v) if v.crc == crc => Ok(()),
                    Some(_) => Err(CrcRefusal::Crc(CrcProblem::Disagrees)),
                    None => {
                        if self.state.warned_once.insert("no extended symbol version") {
                            let name = self.name;
                            self.push(LogLevel::Warning, format!("{name}: no extended symbol version for {symbol}"));
                        }
                        Ok(())
                    }
                };
            }
        }
        if !self.module.has_versions_section {
            return if self.try_to_force_load(symbol) { Ok(()) } else { Err(CrcRefusal::CannotForceLoad) };
        }
        match self.recorded.get(symbol) {
            Some(&v) if v == crc => Ok(()),
            Some(_) => Err(CrcRefusal::Crc(CrcProblem::Disagrees)),
            None if self.policy().missing_version_fatal => Err(CrcRefusal::Crc(CrcProblem::NoVersion)),
            None => {
                if self.state.warned_once.insert("no symbol version") {
                    let name = self.name;
                    self.push(LogLevel::Warning, format!("{name}: no symbol version for {symbol}"));
                }
                Ok(())
            }
        }
    }

    /// `try_to_force_load()`: with `CONFIG_MODULE_FORCE_LOAD` the module loads with the F
    /// taint (announced once per boot); without it the load fails with ENOEXEC and no
    /// message. Returns whether the module goes on.
    fn try_to_force_load(&mut self, reason: &str) -> bool {
        if !self.policy().force_load {
            return false;
        }
        if !self.state.forced_taint {
            let name = self.name;
            self.push(LogLevel::Warning, format!("{name}: {reason}: kernel tainted."));
            self.state.forced_taint = true;
        }
        self.taint_lockdep_unreliable();
        true
    }

    /// `add_taint(..., LOCKDEP_NOW_UNRELIABLE)`: the first such taint of a boot turns lock
    /// debugging off and says so (`__debug_locks_off()` succeeds only once).
    fn taint_lockdep_unreliable(&mut self) {
        if !self.state.lock_debugging_off {
            self.push(LogLevel::Warning, "Disabling lock debugging due to kernel taint".into());
            self.state.lock_debugging_off = true;
        }
    }
}
