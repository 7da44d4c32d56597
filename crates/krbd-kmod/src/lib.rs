//! Kernel modules as the loader sees them.
//!
//! A `.ko` is a relocatable ELF object. What the loader reads from it lives in a few
//! sections: `.modinfo` (NUL-separated `key=value` strings), `__versions` (one record per
//! imported symbol: the CRC the module was built against and the symbol's name).

pub mod module;

pub use module::{ImportedVersion, KernelModule, ModuleError};
