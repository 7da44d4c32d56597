//! Why the loader refuses a module: one value per cause, from which the line the kernel
//! logs, the error `init_module` returns and the advice for the user are all derived.
//!
//! The line texts are the kernel's own (`kernel/module/main.c`, `version.c`, `signing.c`
//! of Linux 6.12) and must stay byte-identical: the offline verdicts are compared with a
//! real kernel's log.

use crate::loader::{LogLevel, LogLine};

/// A symbol's CRC that `check_version()` does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrcProblem {
    /// The module recorded another CRC than the provider exports.
    Disagrees,
    /// The module recorded no CRC for the symbol (and the kernel treats that as fatal).
    NoVersion,
}

impl CrcProblem {
    fn line(self, module: &str, symbol: &str) -> LogLine {
        let text = match self {
            CrcProblem::Disagrees => format!("{module}: disagrees about version of symbol {symbol}"),
            CrcProblem::NoVersion => format!("{module}: no symbol version for {symbol}"),
        };
        LogLine { level: LogLevel::Warning, text }
    }
}

/// The check that needed `try_to_force_load()`, which a kernel without
/// `CONFIG_MODULE_FORCE_LOAD` answers with ENOEXEC and no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceLoadCheck {
    /// The module has no `__versions`, so `module_layout` cannot be compared.
    ModuleLayout,
    /// The module has no `vermagic=`.
    BadVermagic,
    /// The module exports symbols without CRCs.
    UnversionedExports,
}

/// Why one undefined symbol did not resolve (`resolve_symbol()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolFailure {
    /// Nothing loaded exports it (or only as GPL-only to a non-GPL module): ENOENT.
    Unknown,
    /// The CRC check refused it: EINVAL.
    Crc(CrcProblem),
    /// The module has no `__versions` and the kernel cannot force-load: EINVAL, no line.
    CannotForceLoad,
    /// It lives in a namespace the module does not import: EINVAL.
    Namespace { namespace: String },
}

/// One undefined symbol that did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedSymbol {
    pub symbol: String,
    pub failure: SymbolFailure,
}

impl UnresolvedSymbol {
    /// `(errno name, error code)` as in `Unknown symbol X (err -N)`.
    pub fn error(&self) -> (&'static str, i32) {
        match self.failure {
            SymbolFailure::Unknown => ("ENOENT", -2),
            _ => ("EINVAL", -22),
        }
    }

    /// The line that names the cause: the CRC or namespace line if there is one, else the
    /// `Unknown symbol` line.
    fn cause_line(&self, module: &str) -> Option<LogLine> {
        self.log_lines(module).into_iter().next()
    }

    /// The lines the kernel prints for it, in order.
    pub fn log_lines(&self, module: &str) -> Vec<LogLine> {
        let symbol = &self.symbol;
        let mut lines = Vec::with_capacity(2);
        match &self.failure {
            SymbolFailure::Crc(problem) => lines.push(problem.line(module, symbol)),
            SymbolFailure::Namespace { namespace } => {
                lines.push(LogLine { level: LogLevel::Err, text: namespace_line(module, symbol, namespace) })
            }
            SymbolFailure::Unknown | SymbolFailure::CannotForceLoad => {}
        }
        let (_, code) = self.error();
        lines.push(LogLine {
            level: LogLevel::Warning,
            text: format!("{module}: Unknown symbol {symbol} (err {code})"),
        });
        lines
    }
}

/// The line of a symbol used from a namespace the module does not import (an error, or a
/// warning under `CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS`).
pub(crate) fn namespace_line(module: &str, symbol: &str, namespace: &str) -> String {
    format!("{module}: module uses symbol ({symbol}) from namespace {namespace}, but does not import it.")
}

/// Who exported a symbol to the module being loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exporter<'a> {
    /// The module, `None` for the kernel itself.
    pub owner: Option<&'a str>,
    /// One of the set's modules, loaded before this one.
    pub from_set: bool,
}

/// Why the loader refuses a module, in `load_module()`'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `module_sig_check()` with enforced signatures: the module is unsigned.
    UnsignedRejected,
    /// The lockdown LSM refuses an unsigned module loaded by `program`.
    UnsignedUnderLockdown { program: String },
    /// No `.gnu.linkonce.this_module` section; `strict` kernels (6.12) say so in their own words.
    NoModuleStruct { module: String, strict: bool },
    /// `.gnu.linkonce.this_module` is not the kernel's `sizeof(struct module)`.
    StructModuleSize { module: String },
    /// `check_modstruct_version()`: the module's `module_layout` CRC is not the kernel's.
    ModuleLayout { module: String, problem: CrcProblem },
    /// A check that needs a forced load, on a kernel that cannot force-load (no message).
    CannotForceLoad { check: ForceLoadCheck },
    /// `check_modinfo()`: the module's vermagic is not the kernel's.
    VersionMagic { module: String, got: String, want: String },
    /// `simplify_symbols()`: at least one undefined symbol did not resolve, in symbol-table order.
    UnresolvedSymbols { module: String, symbols: Vec<UnresolvedSymbol> },
    /// `verify_exported_symbols()`: the module exports a symbol that `owner` exports already.
    DuplicateExport { module: String, symbol: String, owner: String },
}

impl Refusal {
    /// The error `init_module`/`finit_module` returns.
    pub fn errno(&self) -> &'static str {
        match self {
            Refusal::UnsignedRejected => "EKEYREJECTED",
            Refusal::UnsignedUnderLockdown { .. } => "EPERM",
            // The last failing symbol's error is the one returned.
            Refusal::UnresolvedSymbols { symbols, .. } => symbols.last().map_or("ENOENT", |s| s.error().0),
            _ => "ENOEXEC",
        }
    }

    /// The line the kernel logs that states the refusal (`None`: the kernel says nothing).
    pub fn log_line(&self) -> Option<LogLine> {
        let (level, text) = match self {
            Refusal::UnsignedRejected => (LogLevel::Notice, "Loading of unsigned module is rejected".to_string()),
            Refusal::UnsignedUnderLockdown { program } => (
                LogLevel::Notice,
                format!("Lockdown: {program}: unsigned module loading is restricted; see man kernel_lockdown.7"),
            ),
            Refusal::NoModuleStruct { module, strict: true } => {
                (LogLevel::Err, format!("module {module}: Exactly one .gnu.linkonce.this_module section must exist."))
            }
            Refusal::NoModuleStruct { module, strict: false } => {
                (LogLevel::Warning, format!("{module}: No module found in object"))
            }
            Refusal::StructModuleSize { module } => (
                LogLevel::Err,
                format!(
                    "module {module}: .gnu.linkonce.this_module section size must match the kernel's built struct \
                     module size at run time"
                ),
            ),
            Refusal::ModuleLayout { module, problem } => return Some(problem.line(module, "module_layout")),
            Refusal::CannotForceLoad { .. } => return None,
            Refusal::VersionMagic { module, got, want } => {
                (LogLevel::Err, format!("{module}: version magic '{got}' should be '{want}'"))
            }
            Refusal::UnresolvedSymbols { module, symbols } => {
                return symbols.first().and_then(|s| s.cause_line(module))
            }
            Refusal::DuplicateExport { module, symbol, owner } => {
                (LogLevel::Err, format!("{module}: exports duplicate symbol {symbol} (owned by {owner})"))
            }
        };
        Some(LogLine { level, text })
    }

    /// What to do about it. `release` is the target's; `exporter_of` tells who exported a
    /// symbol to the module, if anyone did.
    pub fn hint<'a>(&self, module: &str, release: &str, exporter_of: impl Fn(&str) -> Option<Exporter<'a>>) -> String {
        match self {
            Refusal::UnsignedRejected | Refusal::UnsignedUnderLockdown { .. } => {
                "the target only loads signed modules: sign the module with a key the target trusts (e.g. an enrolled MOK)".into()
            }
            Refusal::NoModuleStruct { strict: false, .. } => "see the kernel's lines above".into(),
            Refusal::NoModuleStruct { strict: true, .. } | Refusal::StructModuleSize { .. } => format!(
                "struct module differs: the module was built with another .config; build it with the headers of {release}"
            ),
            Refusal::ModuleLayout { .. } => module_layout_hint(release),
            Refusal::CannotForceLoad { check: ForceLoadCheck::UnversionedExports } => {
                "the module exports symbols without CRCs and the kernel cannot force-load: rebuild it with modversions"
                    .into()
            }
            Refusal::CannotForceLoad { .. } => {
                "the module has no __versions or vermagic and the kernel cannot force-load: rebuild it with modversions".into()
            }
            Refusal::VersionMagic { .. } => format!(
                "the module was built for another kernel or configuration: build it with the headers of {release}"
            ),
            Refusal::UnresolvedSymbols { symbols, .. } => match symbols.first() {
                Some(first) => unresolved_hint(first, module, release, exporter_of),
                None => "see the kernel's lines above".into(),
            },
            Refusal::DuplicateExport { .. } => {
                "another module or the kernel already exports that symbol: remove the duplicate from the set".into()
            }
        }
    }
}

fn module_layout_hint(release: &str) -> String {
    format!("the module was built against another kernel's Module.symvers: rebuild it with the headers of {release}")
}

/// The hint for the first symbol that did not resolve.
fn unresolved_hint<'a>(
    first: &UnresolvedSymbol,
    module: &str,
    release: &str,
    exporter_of: impl Fn(&str) -> Option<Exporter<'a>>,
) -> String {
    let symbol = &first.symbol;
    match &first.failure {
        SymbolFailure::Namespace { .. } => "the module uses a namespaced symbol without MODULE_IMPORT_NS(); the target's headers differ from the ones it was built with".into(),
        SymbolFailure::Crc(_) if symbol == "module_layout" => module_layout_hint(release),
        SymbolFailure::Crc(_) => match exporter_of(symbol) {
            Some(Exporter { owner, from_set: true }) => format!(
                "{symbol} comes from the set's {}: rebuild {module} with KBUILD_EXTRA_SYMBOLS pointing at that module's Module.symvers",
                owner.unwrap_or("module"),
            ),
            // A stock module's CRC differs: the module was built with another copy of that
            // module (a patched build's), which is what must be loaded before it.
            Some(Exporter { owner: Some(owner), from_set: false }) => format!(
                "{symbol} comes from the target's stock {owner}, not the {owner} {module} was built against: \
                 load the {owner} built with {module} before it (check them as one set)"
            ),
            Some(Exporter { owner: None, from_set: false }) => {
                format!("{symbol} comes from the target's kernel: rebuild {module} against the Module.symvers of {release}")
            }
            None => format!("rebuild {module} against the Module.symvers of {release}"),
        },
        SymbolFailure::Unknown | SymbolFailure::CannotForceLoad => format!(
            "nothing loaded exports {symbol}: add the module that provides it to the set, or check that the target kernel has it"
        ),
    }
}
