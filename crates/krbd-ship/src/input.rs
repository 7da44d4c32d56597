//! The set to pack: a build's out folder, opened and verified by the one set model
//! ([`krbd_kmod::set::ModuleSet`]), which must have its build report.

use crate::error::ShipError;
use krbd_kmod::set::{BuildReport, ModuleCopy, ModuleSet, OpenOptions, SetError, SetModule};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use krbd_kmod::set::REPORT_FILE;

/// A symbol requirement or provision with its modversions CRC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct SymbolCrc {
    pub name: String,
    pub crc: u32,
}

/// A complete, verified module set and its build report.
#[derive(Debug, Clone)]
pub struct BuildSet {
    pub dir: PathBuf,
    pub report: BuildReport,
    /// The report exactly as the build wrote it (it is shipped byte for byte).
    pub report_bytes: Vec<u8>,
    /// In load order: libceph, ceph, rbd. Their bytes are what goes into the package
    /// (signed, when a key was given).
    pub modules: Vec<SetModule>,
}

impl BuildSet {
    /// Opens `dir` (an `out/<release>/` folder, or an unpacked installer tarball) and
    /// verifies every module against the build report.
    /// `debug`: ship the modules with their debug information (the out folder's top-level
    /// copies) instead of the debug-stripped ones from `stripped/`, as distributions do.
    pub fn open(dir: &Path, debug: bool) -> Result<BuildSet, ShipError> {
        let copy = if debug { ModuleCopy::Full } else { ModuleCopy::Stripped };
        let set = ModuleSet::open(dir, &OpenOptions { copy, require_report: true })?;
        let report = set.report.ok_or_else(|| SetError::NoReport { dir: dir.to_path_buf() })?;
        Ok(BuildSet { dir: set.dir, report: report.report, report_bytes: report.bytes, modules: set.modules })
    }

    /// When the build published the set: the modification time of its build report, in
    /// seconds since the epoch (0 for times before it, the largest u32 after 2106).
    pub fn report_mtime(&self) -> Result<u32, ShipError> {
        let path = self.dir.join(REPORT_FILE);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).map_err(ShipError::io("inspect", &path))?;
        let seconds = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(u32::try_from(seconds).unwrap_or(u32::MAX))
    }

    pub fn release(&self) -> &str {
        &self.report.release
    }

    /// The first 12 hex digits of the build key: names this exact set.
    pub fn short_key(&self) -> &str {
        self.report.short_key()
    }

    /// The tool version that built the set (`krbd-forge 0.1.0` -> `0.1.0`).
    pub fn tool_version(&self) -> String {
        self.report.tool_version()
    }

    /// Every symbol the set exports, with its CRC (kmod packages provide them).
    pub fn exports(&self) -> Vec<SymbolCrc> {
        let mut out: Vec<SymbolCrc> = self
            .modules
            .iter()
            .flat_map(|m| m.parsed.exports.iter())
            .filter_map(|e| e.crc.map(|crc| SymbolCrc { name: e.name.clone(), crc }))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// What the set needs from the kernel: every `__versions` import that no module of the
    /// set exports itself, with the CRC it was built against (RHEL's weak-modules and
    /// `find-requires.ksyms` turn these into `kernel(sym) = crc`).
    pub fn kernel_requirements(&self) -> Vec<SymbolCrc> {
        let own: std::collections::HashSet<&str> =
            self.modules.iter().flat_map(|m| m.parsed.exports.iter().map(|e| e.name.as_str())).collect();
        let mut need: BTreeMap<String, u32> = BTreeMap::new();
        for m in &self.modules {
            let versions = m.parsed.ext_versions.iter().flatten().chain(m.parsed.versions.iter());
            for v in versions {
                if !own.contains(v.name.as_str()) {
                    need.entry(v.name.clone()).or_insert(v.crc);
                }
            }
        }
        need.into_iter().map(|(name, crc)| SymbolCrc { name, crc }).collect()
    }

    /// Total bytes of the shipped modules.
    pub fn modules_size(&self) -> u64 {
        self.modules.iter().map(|m| m.bytes.len() as u64).sum()
    }
}
