//! The check as callers use it: files in, verdicts out.

use crate::config::KernelConfig;
use crate::loader::{check_set, Candidate, LoaderPolicy, SetOptions, SetReport, Target};
use crate::module::{normalize_module_name, KernelModule, ModuleError};
use crate::symvers::{Symvers, SymversError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path} is not a usable kernel module (give .ko, .ko.xz, .ko.zst or .ko.gz files)")]
    Module {
        path: String,
        #[source]
        source: ModuleError,
    },
    #[error(transparent)]
    Symvers(#[from] SymversError),
    #[error("{dir} is not a kernel headers folder: {missing} is missing (give the folder that holds Module.symvers and .config, e.g. /usr/src/linux-headers-<release>)")]
    NotHeaders { dir: String, missing: &'static str },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The headers folder itself cannot be read: missing, a file, or no permission.
    #[error("cannot read the kernel headers folder {dir}: {source}")]
    HeadersFolder {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("vermagic {vermagic:?} has no release part; give the whole string, e.g. \"6.12.117+deb12-amd64 SMP preempt mod_unload modversions \"")]
    BadVermagic { vermagic: String },
    #[error("no modules to check; name at least one .ko file")]
    NoModules,
    #[error("kernel {release} is not installed: {dir} does not exist")]
    NotInstalled { release: String, dir: String },
    #[error("kernel {release} is installed without its {what} (looked for {looked})")]
    ImageMissing { release: String, what: &'static str, looked: String },
    #[error("cannot read the kernel's exports from {path}: {reason}")]
    ExportTable { path: String, reason: String },
}

/// Where the description of the target kernel comes from.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// A kernel headers folder (`Module.symvers`, `.config`, `include/generated/utsrelease.h`).
    Headers { dir: PathBuf },
    /// A `Module.symvers` and the kernel's vermagic; `.config` optional.
    Symvers { symvers: PathBuf, vermagic: String, config: Option<PathBuf> },
}

/// Builds the target: symbols, vermagic and loader policy. `modules_dir`, when given, is a
/// folder of the target's modules (e.g. `/lib/modules/<release>`) whose names complete the
/// list of modules the target ships.
pub fn load_target(spec: &TargetSpec, modules_dir: Option<&Path>) -> Result<Target, CheckError> {
    let (symvers, vermagic, config) = match spec {
        TargetSpec::Headers { dir } => {
            // Its own cause (missing, a file, no permission), not "Module.symvers is missing".
            std::fs::read_dir(dir)
                .map_err(|source| CheckError::HeadersFolder { dir: dir.display().to_string(), source })?;
            let symvers_path = dir.join("Module.symvers");
            if !symvers_path.is_file() {
                return Err(CheckError::NotHeaders { dir: dir.display().to_string(), missing: "Module.symvers" });
            }
            let config_path = dir.join(".config");
            if !config_path.is_file() {
                return Err(CheckError::NotHeaders { dir: dir.display().to_string(), missing: ".config" });
            }
            let config = KernelConfig::read(&config_path)
                .map_err(|source| CheckError::Read { path: config_path.display().to_string(), source })?;
            let release = read_release(dir)?;
            let vermagic = vermagic_string(&release, &config, dir);
            (Symvers::read(&symvers_path)?, vermagic, Some(config))
        }
        TargetSpec::Symvers { symvers, vermagic, config } => {
            let config = match config {
                Some(p) => Some(
                    KernelConfig::read(p)
                        .map_err(|source| CheckError::Read { path: p.display().to_string(), source })?,
                ),
                None => None,
            };
            // The kernel's vermagic ends with a space; one given without it means the same.
            let vermagic = format!("{} ", vermagic.trim_end());
            (Symvers::read(symvers)?, vermagic, config)
        }
    };
    finish_target(symvers, vermagic, config, modules_dir)
}

/// The target from its symbols and vermagic: the loader policy from the release and
/// `.config`, and the target's module names and `struct module` size from `modules_dir`.
pub(crate) fn finish_target(
    symvers: Symvers,
    vermagic: String,
    config: Option<KernelConfig>,
    modules_dir: Option<&Path>,
) -> Result<Target, CheckError> {
    let release = vermagic.split(' ').next().unwrap_or("");
    if release.is_empty() {
        return Err(CheckError::BadVermagic { vermagic });
    }
    let policy = LoaderPolicy::for_release(release, config.as_ref());
    let mut extra_modules = BTreeSet::new();
    let mut struct_module_size = None;
    if let Some(dir) = modules_dir {
        let mut first_module = None;
        collect_module_names(dir, &mut extra_modules, &mut first_module, &mut Vec::new())?;
        if let Some(path) = first_module {
            let m = KernelModule::read(&path)
                .map_err(|source| CheckError::Module { path: path.display().to_string(), source })?;
            struct_module_size = m.section(".gnu.linkonce.this_module").map(|d| d.len() as u64);
        }
    }
    Ok(Target { vermagic, symvers, policy, extra_modules, struct_module_size })
}

/// Checks module files against a target described by files: the entry point for the CLI.
pub fn check_files(
    kos: &[PathBuf],
    spec: &TargetSpec,
    modules_dir: Option<&Path>,
    options: &SetOptions,
) -> Result<SetReport, CheckError> {
    let target = load_target(spec, modules_dir)?;
    let candidates = read_candidates(kos)?;
    Ok(check_set(&candidates, &target, options))
}

/// Reads and parses module files (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
pub fn read_candidates(kos: &[PathBuf]) -> Result<Vec<Candidate>, CheckError> {
    if kos.is_empty() {
        return Err(CheckError::NoModules);
    }
    kos.iter()
        .map(|p| {
            let module = KernelModule::read(p).map_err(|source| match source {
                // A file that cannot be read is not "not a usable kernel module": say why once.
                ModuleError::Read { path, source } => CheckError::Read { path, source },
                source => CheckError::Module { path: p.display().to_string(), source },
            })?;
            Ok(Candidate { file: p.display().to_string(), module })
        })
        .collect()
}

/// The release the kernel reports (`uname -r`, vermagic's first word): `UTS_RELEASE` from
/// `include/generated/utsrelease.h`. Debian's 6.1 headers show why not
/// `include/config/kernel.release`: it says `6.1.192` where UTS_RELEASE is `6.1.0-56-amd64`.
pub fn read_release(dir: &Path) -> Result<String, CheckError> {
    let uts = dir.join("include/generated/utsrelease.h");
    if let Ok(text) = std::fs::read_to_string(&uts) {
        if let Some(release) = text.lines().find(|l| l.contains("UTS_RELEASE")).and_then(|l| l.split('"').nth(1)) {
            return Ok(release.to_string());
        }
    }
    let release_path = dir.join("include/config/kernel.release");
    match std::fs::read_to_string(&release_path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => Err(CheckError::NotHeaders { dir: dir.display().to_string(), missing: "include/generated/utsrelease.h" }),
    }
}

/// `VERMAGIC_STRING` (include/linux/vermagic.h) from a release and a `.config`, for x86-64
/// (whose `MODULE_ARCH_VERMAGIC` is empty).
pub fn vermagic_string(release: &str, config: &KernelConfig, headers: &Path) -> String {
    let mut s = format!("{release} ");
    if config.enabled("SMP") {
        s.push_str("SMP ");
    }
    if config.enabled("PREEMPT_BUILD") {
        s.push_str("preempt ");
    } else if config.enabled("PREEMPT_RT") {
        s.push_str("preempt_rt ");
    }
    if config.enabled("MODULE_UNLOAD") {
        s.push_str("mod_unload ");
    }
    if config.enabled("MODVERSIONS") {
        s.push_str("modversions ");
    }
    if config.enabled("RANDSTRUCT_FULL") || config.enabled("RANDSTRUCT_PERFORMANCE") {
        let hash = std::fs::read_to_string(headers.join("include/generated/randstruct_hash.h")).unwrap_or_default();
        if let Some(seed) = hash.split('"').nth(1) {
            s.push_str("RANDSTRUCT_");
            s.push_str(seed);
        }
    }
    s
}

/// Module names under `dir`, the first module file found (in name order, so that the
/// choice is stable), and every module file in `all`.
pub(crate) fn collect_module_names(
    dir: &Path,
    out: &mut BTreeSet<String>,
    first: &mut Option<PathBuf>,
    all: &mut Vec<PathBuf>,
) -> Result<(), CheckError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| CheckError::Read { path: dir.display().to_string(), source })?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            collect_module_names(&path, out, first, all)?;
        } else if let Some(file) = path.file_name().and_then(|f| f.to_str()) {
            if let Some((stem, rest)) = file.split_once(".ko") {
                if rest.is_empty() || rest.starts_with('.') {
                    out.insert(normalize_module_name(stem));
                    all.push(path.clone());
                    if first.is_none() {
                        *first = Some(path.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_comes_from_uts_release_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("include/generated")).unwrap();
        std::fs::create_dir_all(dir.path().join("include/config")).unwrap();
        std::fs::write(dir.path().join("include/config/kernel.release"), "6.1.192\n").unwrap();
        assert_eq!(read_release(dir.path()).unwrap(), "6.1.192");
        std::fs::write(dir.path().join("include/generated/utsrelease.h"), "#define UTS_RELEASE \"6.1.0-56-amd64\"\n")
            .unwrap();
        assert_eq!(read_release(dir.path()).unwrap(), "6.1.0-56-amd64");
        let config =
            KernelConfig::parse("CONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n");
        assert_eq!(
            vermagic_string("6.1.0-56-amd64", &config, dir.path()),
            "6.1.0-56-amd64 SMP preempt mod_unload modversions "
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(read_release(empty.path()), Err(CheckError::NotHeaders { .. })));
    }
}
