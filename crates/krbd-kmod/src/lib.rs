//! Kernel modules as the loader sees them, and the loader's rules replayed offline.
//!
//! A `.ko` is a relocatable ELF object. What the loader reads from it lives in a few
//! sections: `.modinfo` (NUL-separated `key=value` strings), `__versions` (one record per
//! imported symbol: the CRC the module was built against and the symbol's name),
//! `__ksymtab*`/`__kcrctab*` (what it exports, with CRCs), and an optional signature
//! appended after the ELF image. `Module.symvers` lists the CRCs of a whole kernel build.
//!
//! [`set`] is the built module set (libceph, ceph, rbd) as a folder: the out folder a build
//! publishes, its `build-report.json`, and the one function that opens and verifies it.

pub mod check;
pub mod config;
pub mod corpus;
pub mod installed;
mod load_module;
pub mod loader;
pub mod module;
pub mod pkcs7;
pub mod refusal;
pub mod set;
pub mod symvers;

pub use check::{check_files, load_target, CheckError, TargetSpec};
pub use config::KernelConfig;
pub use loader::{
    check_set, Candidate, LoaderPolicy, Outcome, SetFinding, SetOptions, SetReport, SignaturePolicy, Target,
};
pub use module::{ExportedSymbol, ImportedVersion, KernelModule, ModuleError, ModuleSignature, UndefinedSymbol};
pub use refusal::{CrcProblem, Refusal, SymbolFailure, UnresolvedSymbol};
pub use symvers::{Symvers, SymversEntry, SymversError};

/// A fast, non-cryptographic hash for symbol tables (FxHash's multiply-rotate scheme):
/// lookups by symbol name dominate a check, and the inputs are build artefacts, not
/// adversarial keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
