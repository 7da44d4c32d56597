//! The parts of a Debian `linux-image-<release>` package that a boot test needs: the
//! compressed kernel, every loadable module (still compressed, decompressed on demand),
//! and the list of what is built in.
//!
//! The .deb is read with krbd-formats' reader, so the `debian-binary` check and the rule
//! for safe entry names are the same as everywhere else, and no external tool is needed.

use crate::VmError;
use krbd_formats::compress::{self, Streams};
use krbd_formats::deb::{DebError, DebReader};
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
    /// `modules.builtin` and `modules.builtin.modinfo` as packaged, by file name (depmod
    /// reads them when a guest gets the package's whole module tree).
    pub builtin_files: BTreeMap<String, Vec<u8>>,
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

/// Decompresses a module file if it is xz, zstd, gzip or bzip2 compressed; plain ELF
/// passes through.
pub fn decompress_module(path: &str, raw: &[u8]) -> Result<Vec<u8>, VmError> {
    compress::decompress(raw, Streams::All)
        .map_err(|e| VmError::Decompress { what: path.to_string(), reason: e.to_string() })
}

/// What the walk over `data.tar` collects, before a release is picked.
#[derive(Default)]
struct Contents {
    /// `boot/vmlinuz-<release>` by release.
    vmlinuz: BTreeMap<String, Vec<u8>>,
    modules: BTreeMap<String, PackagedModule>,
    /// `modules.builtin` and `modules.builtin.modinfo` by file name.
    builtin_lists: BTreeMap<String, Vec<u8>>,
}

impl Contents {
    /// Reads the regular files of the package's `data.tar` that a boot test needs.
    fn read(deb: &Path) -> Result<Contents, DebError> {
        let reader = DebReader::open(deb)?;
        let mut contents = Contents::default();
        reader.walk_data(|rel, entry| {
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Ok(true);
            }
            let path = rel.to_string_lossy().into_owned();
            let mut take = || {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map(|_| buf).map_err(|source| DebError::CorruptMember {
                    path: deb.to_path_buf(),
                    member: path.clone(),
                    source,
                })
            };
            if let Some(rel) = path.strip_prefix("boot/vmlinuz-") {
                let data = take()?;
                contents.vmlinuz.insert(rel.to_string(), data);
            } else if path.starts_with("lib/modules/") || path.starts_with("usr/lib/modules/") {
                let base = path.rsplit('/').next().unwrap_or("");
                if base == "modules.builtin" || base == "modules.builtin.modinfo" {
                    let data = take()?;
                    contents.builtin_lists.insert(base.to_string(), data);
                } else if let Some(name) = module_name_of(base) {
                    let raw = take()?;
                    contents.modules.insert(name, PackagedModule { path: path.clone(), raw });
                }
            }
            Ok(true)
        })?;
        Ok(contents)
    }
}

/// The reason a package could not be read, for [`VmError::KernelPackage`] (which names
/// the package itself).
fn unreadable(e: DebError) -> String {
    match e {
        DebError::Io { op, source, .. } => format!("cannot {op} it: {source}"),
        DebError::NotADeb { defect, .. } => format!("not a .deb: {defect}"),
        DebError::CorruptMember { member, source, .. } => format!("{member}: {source}"),
        DebError::UnsafeEntry { entry, refusal, .. } => {
            format!("entry {entry:?} would land outside its folder ({refusal})")
        }
    }
}

impl KernelPackage {
    /// Reads a linux-image .deb. `release` picks `boot/vmlinuz-<release>`; `None` takes the
    /// only one there is.
    pub fn read(deb: &Path, release: Option<&str>) -> Result<Self, VmError> {
        let bad = |reason: String| VmError::KernelPackage { deb: deb.to_path_buf(), reason };
        let Contents { mut vmlinuz, modules, builtin_lists } = Contents::read(deb).map_err(|e| bad(unreadable(e)))?;
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
        let builtin_aliases =
            builtin_lists.get("modules.builtin.modinfo").map(|d| builtin_aliases(d)).unwrap_or_default();
        Ok(KernelPackage {
            deb: deb.to_path_buf(),
            release,
            vmlinuz,
            modules,
            builtin,
            builtin_aliases,
            builtin_files: builtin_lists,
        })
    }

    /// The decompressed bytes of a packaged module.
    pub fn module_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, VmError> {
        match self.modules.get(name) {
            Some(m) => decompress_module(&m.path, &m.raw).map(Some),
            None => Ok(None),
        }
    }
}

/// The aliases of built-in code: the `<module>.alias=<alias>` records of
/// `modules.builtin.modinfo` (NUL-separated).
fn builtin_aliases(modinfo: &[u8]) -> BTreeSet<String> {
    modinfo
        .split(|b| *b == 0)
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (_, kv) = s.split_once('.')?;
            kv.strip_prefix("alias=").map(str::to_string)
        })
        .collect()
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
