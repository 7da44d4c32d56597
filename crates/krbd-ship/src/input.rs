//! A build's out folder, read and checked against its own report before anything is packed.

use crate::error::ShipError;
use krbd_build::kbuild::MODULES;
use krbd_build::report::BuildReport;
use krbd_formats::digest::sha256_hex;
use krbd_kmod::KernelModule;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const REPORT_FILE: &str = "build-report.json";

/// One module of the set, as it will be shipped.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// `libceph`, `ceph`, `rbd`.
    pub name: String,
    /// The bytes that go into the package (signed, when a key was given).
    pub bytes: Vec<u8>,
    pub parsed: KernelModule,
}

impl ModuleFile {
    pub fn file_name(&self) -> String {
        format!("{}.ko", self.name)
    }
}

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
    /// In load order: libceph, ceph, rbd.
    pub modules: Vec<ModuleFile>,
}

impl BuildSet {
    /// Reads `dir` (an `out/<release>/` folder): the report, then each module it lists,
    /// whose sha256 must still be the one the build recorded.
    /// `debug`: ship the modules with their debug information (the out folder's top-level
    /// copies) instead of the debug-stripped ones from `stripped/`, as distributions do.
    pub fn open(dir: &Path, debug: bool) -> Result<BuildSet, ShipError> {
        let report_path = dir.join(REPORT_FILE);
        if !dir.is_dir() {
            return Err(ShipError::Io {
                action: "open the out folder",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
            });
        }
        let report_bytes = match std::fs::read(&report_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShipError::NoReport { dir: dir.to_path_buf() })
            }
            Err(e) => return Err(ShipError::io("read", &report_path)(e)),
        };
        let report: BuildReport = serde_json::from_slice(&report_bytes)
            .map_err(|e| ShipError::BadReport { path: report_path.clone(), reason: e.to_string() })?;
        if report.release.is_empty() || report.release.contains('/') || report.release.contains(char::is_whitespace) {
            return Err(ShipError::BadReport {
                path: report_path,
                reason: format!("release {:?} is not a kernel release", report.release),
            });
        }
        let names: Vec<String> = report.modules.iter().map(|m| m.name.clone()).collect();
        if MODULES.iter().any(|m| !names.iter().any(|n| n == m.name)) {
            return Err(ShipError::IncompleteSet { found: names });
        }
        let mut modules = Vec::new();
        for spec in MODULES {
            let Some(record) = report.modules.iter().find(|m| m.name == spec.name) else { continue };
            let file = match (debug, dir.join(&record.stripped_file).is_file()) {
                // An unpacked tarball has only the top-level (stripped) copies.
                (false, true) => &record.stripped_file,
                _ => &record.file,
            };
            if file.starts_with('/') || file.split('/').any(|c| c == "..") {
                return Err(ShipError::BadReport {
                    path: dir.join(REPORT_FILE),
                    reason: format!("module file {file:?} is not inside the out folder"),
                });
            }
            let path = dir.join(file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ShipError::MissingModule { dir: dir.to_path_buf(), module: file.clone() })
                }
                Err(e) => return Err(ShipError::io("read", &path)(e)),
            };
            let parsed = KernelModule::parse(&bytes)
                .map_err(|e| ShipError::BadModule { path: path.clone(), reason: e.to_string() })?;
            // The report has the full module's sha256. A debug-stripped copy must have the
            // GNU build-id of the full module when that is there (an out folder), else the
            // recorded stripped size, srcversion and vermagic (an unpacked tarball, whose
            // manifest vouches for the bytes). A signed module is either plus a signature.
            let unsigned = match krbd_kmod::module::split_signature(&bytes) {
                Ok((elf, _)) => elf,
                Err(_) => &bytes[..],
            };
            let found = sha256_hex(unsigned);
            let same_build = if found == record.sha256 {
                true
            } else if file == &record.stripped_file {
                let full = dir.join(&record.file);
                match std::fs::read(&full) {
                    Ok(full_bytes) => {
                        let full_sha = sha256_hex(&full_bytes);
                        if full_sha != record.sha256 {
                            return Err(ShipError::ModuleChanged {
                                path: full,
                                expected: record.sha256.clone(),
                                found: full_sha,
                            });
                        }
                        let full_id = KernelModule::parse(&full_bytes).ok().and_then(|m| build_id(&m));
                        full_id.is_some() && full_id == build_id(&parsed)
                    }
                    Err(_) => {
                        return Err(ShipError::MissingModule { dir: dir.to_path_buf(), module: record.file.clone() })
                    }
                }
            } else {
                // The only copy, at the top (an unpacked tarball).
                !dir.join(&record.stripped_file).exists()
                    && unsigned.len() as u64 == record.stripped_size
                    && parsed.srcversion().unwrap_or("") == record.srcversion
                    && parsed.vermagic().unwrap_or("") == record.vermagic
            };
            if !same_build {
                return Err(ShipError::ModuleChanged { path, expected: record.sha256.clone(), found });
            }
            modules.push(ModuleFile { name: spec.name.to_string(), bytes, parsed });
        }
        Ok(BuildSet { dir: dir.to_path_buf(), report, report_bytes, modules })
    }

    pub fn release(&self) -> &str {
        &self.report.release
    }

    /// The first 12 hex digits of the build key: names this exact set.
    pub fn short_key(&self) -> &str {
        let k = &self.report.build_key;
        &k[..k.len().min(12)]
    }

    /// The tool version that built the set (`krbd-forge 0.1.0` -> `0.1.0`).
    pub fn tool_version(&self) -> String {
        self.report
            .tool
            .split_whitespace()
            .last()
            .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or(env!("CARGO_PKG_VERSION"))
            .to_string()
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

/// The module's GNU build-id note (kept by `strip --strip-debug`).
pub fn build_id(m: &KernelModule) -> Option<Vec<u8>> {
    m.section(".note.gnu.build-id").filter(|d| !d.is_empty()).map(|d| d.to_vec())
}
