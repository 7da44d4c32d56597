//! The set to install: three modules for one release, opened and verified by the one set
//! model ([`krbd_kmod::set::ModuleSet`]): a build's out folder, an unpacked installer
//! tarball (`krbd-forge package --format tar`), or any folder holding `libceph.ko`,
//! `ceph.ko` and `rbd.ko`.

use crate::InstallError;
use krbd_kmod::set::{ModuleCopy, ModuleSet, OpenOptions};
use krbd_kmod::KernelModule;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The set's modules in load order (libceph first: ceph and rbd import from it).
pub use krbd_kmod::set::MODULE_NAMES;

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

/// A validated set (see [`ModuleSet::open`]) whose modules can each be recognised once
/// loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShippedSet {
    pub release: String,
    pub source: PathBuf,
    /// In [`MODULE_NAMES`] order.
    pub modules: Vec<ShippedModule>,
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

impl ShippedSet {
    /// Opens and verifies the set in `dir`. What is installed is the debug-stripped copies,
    /// as the packages ship them: an out folder's `stripped/` (each vouched for by its full
    /// module's recorded sha256 and their common GNU build-id), an unpacked installer
    /// tarball's top-level files; a folder without `stripped/` gives its top-level files. The folder must have its build report, which vouches for every
    /// module's sha256 ([`krbd_kmod::set::SetError::NoReport`] otherwise).
    pub fn from_dir(dir: &Path) -> Result<ShippedSet, InstallError> {
        ShippedSet::open(dir, true)
    }

    /// Like [`ShippedSet::from_dir`], but a folder without a build report is a set too: its
    /// modules are then checked by name and vermagic only, and its release is taken from
    /// their vermagic.
    pub fn from_dir_without_report(dir: &Path) -> Result<ShippedSet, InstallError> {
        ShippedSet::open(dir, false)
    }

    fn open(dir: &Path, require_report: bool) -> Result<ShippedSet, InstallError> {
        let set = ModuleSet::open(dir, &OpenOptions { copy: ModuleCopy::Stripped, require_report })?;
        let mut modules = Vec::new();
        for m in &set.modules {
            let identity =
                module_identity(&m.parsed).ok_or_else(|| InstallError::Unidentifiable { path: m.path.clone() })?;
            modules.push(ShippedModule {
                name: m.name.clone(),
                path: m.path.clone(),
                identity,
                sha256: m.sha256(),
                vermagic: m.parsed.vermagic().unwrap_or("").to_string(),
            });
        }
        Ok(ShippedSet { release: set.release, source: set.dir, modules })
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
        use krbd_kmod::set::vermagic_release;
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
        let err = ShippedSet::from_dir_without_report(dir.path()).unwrap_err();
        assert!(err.to_string().contains("libceph.ko is missing"), "{err}");
        let err = ShippedSet::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no build-report.json"), "{err}");
    }
}
