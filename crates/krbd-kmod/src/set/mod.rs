//! A built module set: the out folder a build publishes (`out/<release>/`), or the
//! unpacked installer tarball laid out like it.
//!
//! ```text
//! libceph.ko ceph.ko rbd.ko      the modules, with debug information
//! stripped/{libceph,ceph,rbd}.ko the debug-stripped copies (what packages ship)
//! build-report.json              how they were built, with the sha256 of each module
//! MANIFEST.sha256                (unpacked tarball) sha256 of every file it holds
//! ```
//!
//! [`ModuleSet::open`] is the one way in: it reads the folder and verifies it, so every
//! reader (package, install, boot-test) refuses the same broken folders with the same
//! errors. Every file is reached through one path rule ([`SetError::NotInside`],
//! [`SetError::Escapes`], [`SetError::NotAFile`]): a plain relative name, that resolves
//! (symlinks followed) to a regular file inside the folder.

pub mod report;

pub use report::{BuildReport, ModuleRecord, REPORT_FORMAT};

use crate::module::{split_signature, KernelModule, ModuleError};
use krbd_formats::digest::sha256_hex;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The build report's file name in the folder.
pub const REPORT_FILE: &str = "build-report.json";
/// An unpacked installer tarball's manifest (`sha256sum -c` format).
pub const MANIFEST_FILE: &str = "MANIFEST.sha256";
/// The subfolder of the debug-stripped copies.
pub const STRIPPED_DIR: &str = "stripped";

/// One module of the set: its name, where its sources live in the kernel tree, and the
/// Kconfig symbol that makes it a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSpec {
    pub name: &'static str,
    pub dir: &'static str,
    pub config: &'static str,
}

impl ModuleSpec {
    /// `libceph.ko`: the module with debug information, at the top of the folder.
    pub fn file_name(&self) -> String {
        format!("{}.ko", self.name)
    }

    /// `stripped/libceph.ko`: its debug-stripped copy.
    pub fn stripped_file(&self) -> String {
        format!("{STRIPPED_DIR}/{}.ko", self.name)
    }
}

pub const LIBCEPH: ModuleSpec = ModuleSpec { name: "libceph", dir: "net/ceph", config: "CEPH_LIB" };
pub const CEPH: ModuleSpec = ModuleSpec { name: "ceph", dir: "fs/ceph", config: "CEPH_FS" };
pub const RBD: ModuleSpec = ModuleSpec { name: "rbd", dir: "drivers/block", config: "BLK_DEV_RBD" };
/// In load order (libceph first: ceph and rbd import from it).
pub const MODULES: [ModuleSpec; 3] = [LIBCEPH, CEPH, RBD];
/// The set's module names in load order.
pub const MODULE_NAMES: [&str; 3] = [LIBCEPH.name, CEPH.name, RBD.name];

/// Which copy of each module to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCopy {
    /// The top-level files (with debug information, in a build's out folder).
    Full,
    /// The debug-stripped copies from `stripped/`; the top-level files where there are none
    /// (an unpacked installer tarball ships only stripped copies, under the top-level names).
    Stripped,
}

/// How to open a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    pub copy: ModuleCopy,
    /// Refuse a folder without `build-report.json`. Without one, any folder holding
    /// `libceph.ko`, `ceph.ko` and `rbd.ko` is a set, its release taken from their vermagic.
    pub require_report: bool,
}

/// The folder's `build-report.json`.
#[derive(Debug, Clone)]
pub struct ReportFile {
    pub report: BuildReport,
    /// The report exactly as the build wrote it (packages ship it byte for byte).
    pub bytes: Vec<u8>,
}

/// One module of the set, as read from the folder.
#[derive(Debug, Clone)]
pub struct SetModule {
    /// `libceph`, `ceph`, `rbd`.
    pub name: String,
    /// The file the bytes were read from.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub parsed: KernelModule,
}

impl SetModule {
    /// `libceph.ko`: the name it is installed and shipped under.
    pub fn file_name(&self) -> String {
        format!("{}.ko", self.name)
    }

    /// The sha256 (hex) of the bytes.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

/// A complete, verified set: libceph, ceph and rbd, parseable, named as expected, all built
/// for one release and, when the folder has a build report, the very modules it records.
#[derive(Debug, Clone)]
pub struct ModuleSet {
    pub dir: PathBuf,
    pub release: String,
    pub report: Option<ReportFile>,
    /// In [`MODULES`] order.
    pub modules: Vec<SetModule>,
}

/// Why a folder is not a usable module set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{dir} is not a folder; give a build's out folder (out/<release>/ with libceph.ko, ceph.ko, rbd.ko and build-report.json)")]
    NotAFolder { dir: PathBuf },
    #[error("{dir} is not a build's out folder: it has no build-report.json; run `krbd-forge build` and pass its out/<release>/ folder")]
    NoReport { dir: PathBuf },
    #[error("{path} is not a readable build report ({source}); rebuild with `krbd-forge build`")]
    BadReport { path: PathBuf, source: serde_json::Error },
    #[error("{path} names release {release:?}, which is not a kernel release; rebuild with `krbd-forge build`")]
    NotARelease { path: PathBuf, release: String },
    #[error("{path} lists the modules {found:?}, not the set libceph, ceph, rbd; rebuild with `krbd-forge build`")]
    IncompleteReport { path: PathBuf, found: Vec<String> },
    #[error("{file:?} is not a plain path inside {dir} (no `..`, `.` or leading `/`)")]
    NotInside { dir: PathBuf, file: String },
    #[error("{path} leads outside the folder (to {target}); copy the file into the folder instead of linking it")]
    Escapes { path: PathBuf, target: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{dir}: {file} is missing (the set must hold libceph.ko, ceph.ko and rbd.ko); rebuild with `krbd-forge build` or copy the out folder again")]
    MissingModule { dir: PathBuf, file: String },
    #[error("{path}: not a usable kernel module: {reason}")]
    BadModule { path: PathBuf, reason: ModuleError },
    #[error("{path} holds module {found:?}, expected {expected}")]
    WrongModule { path: PathBuf, expected: &'static str, found: String },
    #[error("{path} does not match its build report: sha256 is {found} in the file but {expected} in build-report.json; the file was changed or corrupted after the build, rebuild or copy the out folder again")]
    Sha256Mismatch { path: PathBuf, expected: String, found: String },
    #[error("{path} does not match its build report: {field} is {found} in the file but {expected} in the build; the file was changed or corrupted after the build, rebuild or copy the out folder again")]
    FieldMismatch { path: PathBuf, field: &'static str, expected: String, found: String },
    #[error("{path} is built for release {found:?} (vermagic) but the set is for {expected:?}; the set mixes builds")]
    WrongRelease { path: PathBuf, expected: String, found: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SetError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SetError {
        let path = path.to_path_buf();
        move |source| SetError::Io { action, path, source }
    }

    /// The I/O error's kind, for errors that are about the machine rather than the folder.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            SetError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

impl ModuleSet {
    /// Opens the set in `dir` and verifies it: every module present and parseable, named
    /// as expected, of the set's release, and (with a build report) the module the build
    /// recorded. See [`ModuleCopy`] for which files are read.
    pub fn open(dir: &Path, options: &OpenOptions) -> Result<ModuleSet, SetError> {
        let folder = Folder::new(dir)?;
        let report = folder.read_report(options.require_report)?;
        let manifest = folder.read_manifest()?;
        let mut modules = Vec::new();
        for spec in MODULES {
            let record = report.as_ref().and_then(|r| r.report.module(spec.name));
            modules.push(folder.open_module(spec, record, options.copy, manifest.as_ref())?);
        }
        let release = match &report {
            Some(r) => r.report.release.clone(),
            None => vermagic_release(modules[0].parsed.vermagic().unwrap_or("")).to_string(),
        };
        for m in &modules {
            let found = vermagic_release(m.parsed.vermagic().unwrap_or(""));
            if found != release {
                return Err(SetError::WrongRelease {
                    path: m.path.clone(),
                    expected: release.clone(),
                    found: found.to_string(),
                });
            }
        }
        Ok(ModuleSet { dir: dir.to_path_buf(), release, report, modules })
    }

    /// The module `name` (`libceph`, `ceph`, `rbd`).
    pub fn module(&self, name: &str) -> Option<&SetModule> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// The release part of a vermagic string (its first word).
pub fn vermagic_release(vermagic: &str) -> &str {
    vermagic.split_whitespace().next().unwrap_or("")
}

/// The module's GNU build-id note (kept by `strip --strip-debug`).
fn build_id_note(m: &KernelModule) -> Option<&[u8]> {
    m.section(".note.gnu.build-id").filter(|d| !d.is_empty())
}

/// The folder being opened, with the one rule for reaching files in it.
struct Folder {
    dir: PathBuf,
    /// `dir` with every symlink resolved: what a file must resolve to be inside.
    real: PathBuf,
}

impl Folder {
    fn new(dir: &Path) -> Result<Folder, SetError> {
        if !dir.is_dir() {
            return Err(SetError::NotAFolder { dir: dir.to_path_buf() });
        }
        let real = dir.canonicalize().map_err(SetError::io("resolve", dir))?;
        Ok(Folder { dir: dir.to_path_buf(), real })
    }

    /// The path of `file` (relative to the folder, as a report names it), or `None` when
    /// there is no such file. The name must be plain (only normal components), and the
    /// file, symlinks followed, a regular file inside the folder.
    fn locate(&self, file: &str) -> Result<Option<PathBuf>, SetError> {
        let relative = Path::new(file);
        if file.is_empty() || relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(SetError::NotInside { dir: self.dir.clone(), file: file.to_string() });
        }
        let path = self.dir.join(relative);
        let target = match path.canonicalize() {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SetError::io("resolve", &path)(e)),
        };
        if !target.starts_with(&self.real) {
            return Err(SetError::Escapes { path, target });
        }
        let meta = std::fs::metadata(&target).map_err(SetError::io("inspect", &path))?;
        if !meta.is_file() {
            return Err(SetError::NotAFile { path });
        }
        Ok(Some(path))
    }

    /// Reads `file`, which must be there.
    fn read_module_file(&self, file: &str) -> Result<(PathBuf, Vec<u8>), SetError> {
        let path = self
            .locate(file)?
            .ok_or_else(|| SetError::MissingModule { dir: self.dir.clone(), file: file.to_string() })?;
        let bytes = std::fs::read(&path).map_err(SetError::io("read", &path))?;
        Ok((path, bytes))
    }

    fn read_report(&self, required: bool) -> Result<Option<ReportFile>, SetError> {
        let Some(path) = self.locate(REPORT_FILE)? else {
            return if required { Err(SetError::NoReport { dir: self.dir.clone() }) } else { Ok(None) };
        };
        let bytes = std::fs::read(&path).map_err(SetError::io("read", &path))?;
        let report: BuildReport =
            serde_json::from_slice(&bytes).map_err(|source| SetError::BadReport { path: path.clone(), source })?;
        let release = &report.release;
        if release.is_empty() || release.contains('/') || release.contains(char::is_whitespace) {
            return Err(SetError::NotARelease { path, release: release.clone() });
        }
        if MODULE_NAMES.iter().any(|name| report.module(name).is_none()) {
            let found = report.modules.iter().map(|m| m.name.clone()).collect();
            return Err(SetError::IncompleteReport { path, found });
        }
        Ok(Some(ReportFile { report, bytes }))
    }

    /// The manifest of an unpacked installer tarball: file name to sha256.
    fn read_manifest(&self) -> Result<Option<BTreeMap<String, String>>, SetError> {
        let Some(path) = self.locate(MANIFEST_FILE)? else { return Ok(None) };
        let text = std::fs::read_to_string(&path).map_err(SetError::io("read", &path))?;
        Ok(Some(
            text.lines()
                .filter_map(|l| l.split_once("  "))
                .map(|(sha, file)| (file.trim().to_string(), sha.trim().to_string()))
                .collect(),
        ))
    }

    /// The file to read for `spec`: the report's names when there is one.
    fn module_file(
        &self,
        spec: ModuleSpec,
        record: Option<&ModuleRecord>,
        copy: ModuleCopy,
    ) -> Result<String, SetError> {
        let Some(r) = record else { return Ok(spec.file_name()) };
        if copy == ModuleCopy::Stripped && self.locate(&r.stripped_file)?.is_some() {
            return Ok(r.stripped_file.clone());
        }
        Ok(r.file.clone())
    }

    fn open_module(
        &self,
        spec: ModuleSpec,
        record: Option<&ModuleRecord>,
        copy: ModuleCopy,
        manifest: Option<&BTreeMap<String, String>>,
    ) -> Result<SetModule, SetError> {
        let file = self.module_file(spec, record, copy)?;
        let (path, bytes) = self.read_module_file(&file)?;
        let parsed = KernelModule::parse(&bytes);
        // A damaged file with a report is a changed file first, an unparseable one second.
        if let Some(r) = record {
            self.verify_recorded(&file, &path, &bytes, parsed.as_ref().ok(), r, manifest)?;
        }
        let parsed = parsed.map_err(|reason| SetError::BadModule { path: path.clone(), reason })?;
        let found = parsed.name().unwrap_or(spec.name);
        if found != spec.name {
            return Err(SetError::WrongModule { path, expected: spec.name, found: found.to_string() });
        }
        if let Some(r) = record {
            let found = parsed.srcversion().unwrap_or("");
            if found != r.srcversion {
                return Err(SetError::FieldMismatch {
                    path,
                    field: "srcversion",
                    expected: r.srcversion.clone(),
                    found: found.to_string(),
                });
            }
        }
        Ok(SetModule { name: spec.name.to_string(), path, bytes, parsed })
    }

    /// Checks that `bytes`, read from `file`, are the module `r` records. The report has
    /// the full module's sha256; a signed module is checked without its signature. A
    /// debug-stripped copy is the build's when
    /// - beside its full module (an out folder's `stripped/`): the full module matches the
    ///   report and both carry the same GNU build-id;
    /// - alone under the top-level name (an unpacked installer tarball): the folder's
    ///   manifest vouches for its bytes, and its size without a signature, vermagic and
    ///   srcversion are what the report recorded for the stripped copy.
    fn verify_recorded(
        &self,
        file: &str,
        path: &Path,
        bytes: &[u8],
        parsed: Option<&KernelModule>,
        r: &ModuleRecord,
        manifest: Option<&BTreeMap<String, String>>,
    ) -> Result<(), SetError> {
        let unsigned = split_signature(bytes).map(|(elf, _)| elf).unwrap_or(bytes);
        let found = sha256_hex(unsigned);
        if found == r.sha256 {
            return Ok(());
        }
        if file == r.stripped_file {
            return self.verify_beside_full(path, parsed, r);
        }
        let vouched = manifest.and_then(|m| m.get(file)).is_some_and(|sha| *sha == sha256_hex(bytes));
        let stripped_alone = self.locate(&r.stripped_file)?.is_none();
        let same_build = parsed.is_some_and(|p| {
            r.stripped_size != 0
                && unsigned.len() as u64 == r.stripped_size
                && p.vermagic().unwrap_or("") == r.vermagic
                && p.srcversion().unwrap_or("") == r.srcversion
        });
        if vouched && stripped_alone && same_build {
            return Ok(());
        }
        Err(SetError::Sha256Mismatch { path: path.to_path_buf(), expected: r.sha256.clone(), found })
    }

    /// A stripped copy in `stripped/`: its full module must be the recorded one, with the
    /// same GNU build-id.
    fn verify_beside_full(
        &self,
        path: &Path,
        stripped: Option<&KernelModule>,
        r: &ModuleRecord,
    ) -> Result<(), SetError> {
        let (full_path, full_bytes) = self.read_module_file(&r.file)?;
        let full_sha = sha256_hex(&full_bytes);
        if full_sha != r.sha256 {
            return Err(SetError::Sha256Mismatch { path: full_path, expected: r.sha256.clone(), found: full_sha });
        }
        let full = KernelModule::parse(&full_bytes)
            .map_err(|reason| SetError::BadModule { path: full_path.clone(), reason })?;
        let expected = build_id_note(&full);
        let found = stripped.and_then(build_id_note);
        if expected.is_none() || expected != found {
            return Err(SetError::FieldMismatch {
                path: path.to_path_buf(),
                field: "GNU build-id",
                expected: expected.map(hex::encode).unwrap_or_else(|| "none".into()),
                found: found.map(hex::encode).unwrap_or_else(|| "none".into()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
