//! The parts of a Debian `linux-image-<release>` package that a boot test needs: the
//! compressed kernel, every loadable module (still compressed, decompressed on demand),
//! and the list of what is built in.
//!
//! The .deb is read here directly (ar + data.tar.{xz,zst,gz}) so that no external tool is
//! needed; krbd-fetch will offer the same and can replace this reader.

use crate::VmError;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One loadable module file of the package.
#[derive(Debug, Clone)]
pub struct PackagedModule {
    /// Path inside the package, e.g. `lib/modules/R/kernel/net/ceph/libceph.ko.xz`.
    pub path: String,
    /// The file's bytes as packaged (maybe xz/zstd/gzip compressed).
    pub raw: Vec<u8>,
}

/// What a boot test takes from a linux-image package.
#[derive(Debug, Clone)]
pub struct KernelPackage {
    pub deb: PathBuf,
    pub release: String,
    /// `boot/vmlinuz-<release>` (a bzImage, possibly with a signature appended).
    pub vmlinuz: Vec<u8>,
    /// Loadable modules by module name (dashes turned into underscores, as the kernel does).
    pub modules: BTreeMap<String, PackagedModule>,
    /// Names of modules built into the kernel image (`modules.builtin`).
    pub builtin: BTreeSet<String>,
    /// Aliases provided by built-in code (`alias=` in `modules.builtin.modinfo`).
    pub builtin_aliases: BTreeSet<String>,
}

/// A module name as the kernel spells it: file stem without `.ko*`, `-` turned into `_`.
pub fn module_name_of(file_name: &str) -> Option<String> {
    let base = file_name.rsplit('/').next()?;
    let stem = base
        .strip_suffix(".ko.xz")
        .or_else(|| base.strip_suffix(".ko.zst"))
        .or_else(|| base.strip_suffix(".ko.gz"))
        .or_else(|| base.strip_suffix(".ko"))?;
    Some(stem.replace('-', "_"))
}

/// Decompresses a module file if it is xz, zstd or gzip compressed; plain ELF passes through.
pub fn decompress_module(path: &str, raw: &[u8]) -> Result<Vec<u8>, VmError> {
    let bad = |e: std::io::Error| VmError::Decompress { what: path.to_string(), reason: e.to_string() };
    let mut out = Vec::new();
    if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        liblzma::read::XzDecoder::new(raw).read_to_end(&mut out).map_err(bad)?;
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(raw).map_err(bad)?.read_to_end(&mut out).map_err(bad)?;
    } else if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(raw).read_to_end(&mut out).map_err(bad)?;
    } else {
        out = raw.to_vec();
    }
    Ok(out)
}

impl KernelPackage {
    /// Reads a linux-image .deb. `release` picks `boot/vmlinuz-<release>`; `None` takes the
    /// only one there is.
    pub fn read(deb: &Path, release: Option<&str>) -> Result<Self, VmError> {
        let file = std::fs::File::open(deb)
            .map_err(|e| VmError::KernelPackage { deb: deb.to_path_buf(), reason: format!("cannot open it: {e}") })?;
        let bad = |reason: String| VmError::KernelPackage { deb: deb.to_path_buf(), reason };
        let mut archive = ar::Archive::new(std::io::BufReader::new(file));
        while let Some(entry) = archive.next_entry() {
            let entry = entry.map_err(|e| bad(format!("not a .deb (ar archive): {e}")))?;
            let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
            if !name.starts_with("data.tar") {
                continue;
            }
            let reader: Box<dyn Read + '_> = match name.as_str() {
                "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
                "data.tar.zst" => {
                    Box::new(zstd::stream::read::Decoder::new(entry).map_err(|e| bad(format!("{name}: {e}")))?)
                }
                "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(entry)),
                "data.tar" => Box::new(entry),
                other => return Err(bad(format!("unsupported member {other}"))),
            };
            return Self::from_tar(deb, reader, release);
        }
        Err(bad("no data.tar member: not a .deb".into()))
    }

    fn from_tar(deb: &Path, reader: Box<dyn Read + '_>, release: Option<&str>) -> Result<Self, VmError> {
        let bad = |reason: String| VmError::KernelPackage { deb: deb.to_path_buf(), reason };
        let mut vmlinuz: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut modules = BTreeMap::new();
        let mut builtin_lists: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(|e| bad(format!("data.tar: {e}")))? {
            let mut entry = entry.map_err(|e| bad(format!("data.tar: {e}")))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry.path().map_err(|e| bad(format!("data.tar: {e}")))?;
            let path = path.to_string_lossy().trim_start_matches("./").to_string();
            let mut take = || -> Result<Vec<u8>, VmError> {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| bad(format!("{path}: {e}")))?;
                Ok(buf)
            };
            if let Some(rel) = path.strip_prefix("boot/vmlinuz-") {
                let data = take()?;
                vmlinuz.insert(rel.to_string(), data);
            } else if path.starts_with("lib/modules/") || path.starts_with("usr/lib/modules/") {
                let base = path.rsplit('/').next().unwrap_or("");
                if base == "modules.builtin" || base == "modules.builtin.modinfo" {
                    let data = take()?;
                    builtin_lists.insert(base.to_string(), data);
                } else if let Some(name) = module_name_of(base) {
                    let raw = take()?;
                    modules.insert(name, PackagedModule { path: path.clone(), raw });
                }
            }
        }
        let (release, vmlinuz) = match release {
            Some(r) => match vmlinuz.remove(r) {
                Some(v) => (r.to_string(), v),
                None => {
                    return Err(VmError::KernelNotInPackage {
                        deb: deb.to_path_buf(),
                        release: r.to_string(),
                        found: vmlinuz.keys().cloned().collect(),
                    })
                }
            },
            None => {
                if vmlinuz.len() != 1 {
                    return Err(bad(format!("expected exactly one boot/vmlinuz-*, found {}", vmlinuz.len())));
                }
                vmlinuz.pop_first().unwrap_or_default()
            }
        };
        if modules.is_empty() {
            return Err(bad("it holds no kernel modules".into()));
        }
        let builtin = builtin_lists
            .get("modules.builtin")
            .map(|d| String::from_utf8_lossy(d).lines().filter_map(module_name_of).collect())
            .unwrap_or_default();
        let builtin_aliases = builtin_lists
            .get("modules.builtin.modinfo")
            .map(|d| {
                d.split(|b| *b == 0)
                    .filter_map(|s| {
                        let s = String::from_utf8_lossy(s);
                        let (_, kv) = s.split_once('.')?;
                        kv.strip_prefix("alias=").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(KernelPackage { deb: deb.to_path_buf(), release, vmlinuz, modules, builtin, builtin_aliases })
    }

    /// The decompressed bytes of a packaged module.
    pub fn module_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, VmError> {
        match self.modules.get(name) {
            Some(m) => decompress_module(&m.path, &m.raw).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_follow_the_kernel() {
        assert_eq!(module_name_of("a/b/crc32c-intel.ko.xz").as_deref(), Some("crc32c_intel"));
        assert_eq!(module_name_of("rbd.ko").as_deref(), Some("rbd"));
        assert_eq!(module_name_of("modules.order"), None);
    }
}
