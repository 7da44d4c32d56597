//! Kernel modules as the loader sees them, and the loader's rules replayed offline.
//!
//! A `.ko` is a relocatable ELF object. What the loader reads from it lives in a few
//! sections: `.modinfo` (NUL-separated `key=value` strings), `__versions` (one record per
//! imported symbol: the CRC the module was built against and the symbol's name),
//! `__ksymtab*`/`__kcrctab*` (what it exports, with CRCs), and an optional signature
//! appended after the ELF image. `Module.symvers` lists the CRCs of a whole kernel build.

pub mod check;
pub mod config;
pub mod loader;
pub mod module;
pub mod symvers;

pub use check::{check_files, load_target, CheckError, TargetSpec};
pub use config::KernelConfig;
pub use loader::{check_set, Candidate, LoaderPolicy, Outcome, SetFinding, SetOptions, SetReport, SignaturePolicy, Target};
pub use module::{ExportedSymbol, ImportedVersion, KernelModule, ModuleError, ModuleSignature, UndefinedSymbol};
pub use symvers::{Symvers, SymversEntry, SymversError};
