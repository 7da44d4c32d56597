//! The set to ship: three modules for one release, validated once. Read from a build's
//! out folder or from an unpacked installer tarball (`krbd-forge package --format tar`).

use crate::InstallError;
use krbd_kmod::KernelModule;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The set's modules in load order (libceph first: ceph and rbd import from it).
pub const MODULE_NAMES: [&str; 3] = ["libceph", "ceph", "rbd"];

/// One module of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShippedModule {
    pub name: String,
    pub path: PathBuf,
    /// What identifies the module once loaded (see [`module_identity`]).
    pub identity: String,
    pub sha256: String,
    pub vermagic: String,
}

/// A validated set: every module present, parseable, of one release, and (when the folder
/// has a build report) byte-identical to what the build recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShippedSet {
    pub release: String,
    pub source: PathBuf,
    /// In [`MODULE_NAMES`] order.
    pub modules: Vec<ShippedModule>,
}

/// The fields of `build-report.json` the installer relies on. Read as a view, not as the
/// whole report type, so that the target-side tool does not depend on the build pipeline
/// and ignores additions to the report.
#[derive(Debug, Deserialize)]
struct ReportView {
    release: String,
    modules: Vec<ReportModule>,
}

#[derive(Debug, Deserialize)]
struct ReportModule {
    name: String,
    file: String,
    srcversion: String,
    sha256: String,
    #[serde(default)]
    vermagic: String,
    #[serde(default)]
    stripped_size: u64,
}

/// `MANIFEST.sha256` of an unpacked installer tarball (`sha256sum -c` format).
const MANIFEST: &str = "MANIFEST.sha256";

fn read_manifest(dir: &Path) -> Result<Option<std::collections::BTreeMap<String, String>>, InstallError> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter_map(|l| l.split_once("  "))
                .map(|(sha, file)| (file.trim().to_string(), sha.trim().to_string()))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InstallError::io(format!("read {}", path.display()))(e)),
    }
}

/// An unpacked installer tarball ships the debug-stripped (maybe signed) copies under the
/// out folder's names, with the build's report, whose sha256 is the full module's. Such a
/// file is the build's when the tarball's manifest vouches for its bytes and its size
/// without a signature, vermagic and srcversion are what the report recorded for the
/// stripped copy.
fn stripped_copy_matches(
    bytes: &[u8],
    sha256: &str,
    file: &str,
    r: &ReportModule,
    parsed: &KernelModule,
    manifest: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    let Some(manifest) = manifest else {
        return false;
    };
    let unsigned = krbd_kmod::module::split_signature(bytes).map(|(elf, _)| elf.len()).unwrap_or(bytes.len());
    manifest.get(file).map(String::as_str) == Some(sha256)
        && r.stripped_size != 0
        && unsigned as u64 == r.stripped_size
        && parsed.vermagic().unwrap_or("") == r.vermagic
        && parsed.srcversion().unwrap_or("") == r.srcversion
}

/// How a loaded module is recognised in `/sys/module/<name>`: `srcversion:<hash>` when
/// modinfo has one (MODULE_VERSION or CONFIG_MODULE_SRCVERSION_ALL), otherwise
/// `build-id:<hex>`, the GNU build-id the kernel exposes in `notes/.note.gnu.build-id`.
/// Debian's Ceph modules carry no srcversion, so the build-id is what tells sets apart.
pub fn module_identity(module: &KernelModule) -> Option<String> {
    if let Some(sv) = module.srcversion().filter(|s| !s.is_empty()) {
        return Some(format!("srcversion:{sv}"));
    }
    module.section(".note.gnu.build-id").and_then(gnu_build_id).map(|id| format!("build-id:{id}"))
}

/// The GNU build-id in an ELF note section (records of namesz, descsz, type, name, desc,
/// each padded to 4 bytes; NT_GNU_BUILD_ID = 3 with name "GNU").
pub fn gnu_build_id(notes: &[u8]) -> Option<String> {
    let mut at = 0usize;
    let word = |i: usize| -> Option<usize> {
        notes.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    while at + 12 <= notes.len() {
        let (namesz, descsz, kind) = (word(at)?, word(at + 4)?, word(at + 8)?);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let end = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        if kind == 3 && notes.get(name_at..name_at + namesz) == Some(b"GNU\0") {
            return notes.get(desc_at..desc_at + descsz).map(hex::encode);
        }
        at = end;
    }
    None
}

/// The SHA-256 of a file (krbd-formats' [`krbd_formats::digest::sha256_file`]).
pub fn sha256_file(path: &Path) -> Result<String, InstallError> {
    krbd_formats::digest::sha256_file(path, |_| {}).map_err(InstallError::io(format!("read {}", path.display())))
}

/// The release part of a vermagic string (its first word).
fn vermagic_release(vermagic: &str) -> &str {
    vermagic.split_whitespace().next().unwrap_or("")
}

impl ShippedSet {
    /// Reads a build's out folder (`out/<release>/`), or any folder holding `libceph.ko`,
    /// `ceph.ko` and `rbd.ko` (then the release comes from their vermagic).
    pub fn from_dir(dir: &Path) -> Result<ShippedSet, InstallError> {
        let folder_err = |reason: String| InstallError::SetFolder { dir: dir.to_path_buf(), reason };
        if !dir.is_dir() {
            return Err(folder_err("not a folder".into()));
        }
        let report_path = dir.join("build-report.json");
        let report: Option<ReportView> = match std::fs::read(&report_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| InstallError::SetModule {
                path: report_path.clone(),
                reason: format!("not a build report ({e})"),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(InstallError::io(format!("read {}", report_path.display()))(e)),
        };
        let manifest = read_manifest(dir)?;
        let mut modules = Vec::new();
        for name in MODULE_NAMES {
            let recorded = report.as_ref().and_then(|r| r.modules.iter().find(|m| m.name == name));
            if report.is_some() && recorded.is_none() {
                return Err(InstallError::SetModule {
                    path: report_path.clone(),
                    reason: format!("the report lists no module {name}; the set must hold libceph, ceph and rbd"),
                });
            }
            let file = recorded.map(|m| m.file.clone()).unwrap_or_else(|| format!("{name}.ko"));
            // The report names files relative to the out folder; never let it point elsewhere.
            if Path::new(&file).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(InstallError::SetModule {
                    path: report_path.clone(),
                    reason: format!("module file {file:?} is not a plain path inside the folder"),
                });
            }
            let path = dir.join(&file);
            if !path.is_file() {
                return Err(folder_err(format!(
                    "{file} is missing (the set must hold libceph.ko, ceph.ko and rbd.ko)"
                )));
            }
            let bytes = std::fs::read(&path).map_err(InstallError::io(format!("read {}", path.display())))?;
            let sha256 = krbd_formats::digest::sha256_hex(&bytes);
            let parsed = KernelModule::parse(&bytes).map_err(|e| InstallError::SetModule {
                path: path.clone(),
                reason: format!("not a usable kernel module: {e}"),
            });
            if let Some(r) = recorded {
                let stripped_ok = parsed
                    .as_ref()
                    .is_ok_and(|p| stripped_copy_matches(&bytes, &sha256, &file, r, p, manifest.as_ref()));
                if r.sha256 != sha256 && !stripped_ok {
                    return Err(InstallError::SetTampered {
                        path,
                        what: "sha256",
                        expected: r.sha256.clone(),
                        found: sha256,
                    });
                }
            }
            let parsed = parsed?;
            let modname = parsed.name().unwrap_or(name);
            if modname != name {
                return Err(InstallError::SetModule {
                    path: path.clone(),
                    reason: format!("holds module {modname:?}, expected {name}"),
                });
            }
            if let Some(r) = recorded {
                let found = parsed.srcversion().unwrap_or("");
                if r.srcversion != found {
                    return Err(InstallError::SetTampered {
                        path,
                        what: "srcversion",
                        expected: r.srcversion.clone(),
                        found: found.into(),
                    });
                }
            }
            let identity = module_identity(&parsed).ok_or_else(|| InstallError::SetModule {
                path: path.clone(),
                reason: "has neither a srcversion nor a GNU build-id, so the loaded module could not be verified"
                    .into(),
            })?;
            let vermagic = parsed.vermagic().unwrap_or("").to_string();
            modules.push(ShippedModule { name: name.to_string(), path, identity, sha256, vermagic });
        }
        let release = match &report {
            Some(r) => r.release.clone(),
            None => vermagic_release(&modules[0].vermagic).to_string(),
        };
        for m in &modules {
            let r = vermagic_release(&m.vermagic);
            if r != release {
                return Err(InstallError::SetModule {
                    path: m.path.clone(),
                    reason: format!(
                        "built for release {r:?} (vermagic) but the set is for {release:?}; the set mixes builds"
                    ),
                });
            }
        }
        Ok(ShippedSet { release, source: dir.to_path_buf(), modules })
    }

    pub fn module(&self, name: &str) -> Option<&ShippedModule> {
        self.modules.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_vermagics_first_word() {
        assert_eq!(
            vermagic_release("6.12.117+deb12-amd64 SMP preempt mod_unload modversions "),
            "6.12.117+deb12-amd64"
        );
        assert_eq!(vermagic_release(""), "");
    }

    #[test]
    fn build_id_is_read_from_the_gnu_note() {
        // namesz 4, descsz 3, type 3 (NT_GNU_BUILD_ID), "GNU\0", desc padded to 4 bytes.
        let mut note = vec![4, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0];
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0]);
        assert_eq!(gnu_build_id(&note).as_deref(), Some("aabbcc"));
        // Another note type first, then the build-id.
        let mut two = vec![4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0];
        two.extend_from_slice(b"GNU\0");
        two.extend_from_slice(&[1, 2, 3, 4]);
        two.extend_from_slice(&note);
        assert_eq!(gnu_build_id(&two).as_deref(), Some("aabbcc"));
        assert_eq!(gnu_build_id(&note[..10]), None, "truncated");
        assert_eq!(gnu_build_id(&[0xff; 16]), None, "garbage sizes do not panic");
    }

    #[test]
    fn missing_folder_and_missing_module_are_clear() {
        let err = ShippedSet::from_dir(Path::new("/nonexistent/krbd")).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = ShippedSet::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("libceph.ko is missing"), "{err}");
    }
}
