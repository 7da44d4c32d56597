//! Publishing a build entry as `out/<release>/`, atomically.

use super::compile::copy_tree;
use crate::error::BuildError;
use crate::json_file;
use crate::kbuild::MODULES;
use crate::report::{BuildReport, ModuleRecord};
use std::path::{Path, PathBuf};

/// Writes `out` atomically: a sibling staging folder is filled and renamed over it.
/// `make_report` turns the published modules' records into the report written beside them.
pub(super) fn publish(
    entry: &Path,
    out: &Path,
    make_report: impl FnOnce(Vec<ModuleRecord>) -> BuildReport,
) -> Result<BuildReport, BuildError> {
    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(BuildError::io("create folder", parent))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let guard = RemoveOnDrop(staging.clone());
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&entry.join("modules"), &staging)?;
    copy_tree(&entry.join("stripped"), &staging.join("stripped"))?;
    copy_tree(&entry.join("logs"), &staging.join("logs"))?;
    let report = make_report(module_records(&staging)?);
    json_file::write(&staging.join("build-report.json"), &report)?;
    // Swap: the old folder moves aside first, so `out` is never half-written.
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &old).map_err(BuildError::io("move aside", out))?;
    }
    if let Err(e) = std::fs::rename(&staging, out) {
        let _ = std::fs::rename(&old, out);
        return Err(BuildError::io("publish", out)(e));
    }
    std::mem::forget(guard);
    let _ = std::fs::remove_dir_all(&old);
    Ok(report)
}

/// What the report says of each module in the staging folder (and its stripped copy).
fn module_records(staging: &Path) -> Result<Vec<ModuleRecord>, BuildError> {
    let mut modules = Vec::new();
    for m in MODULES {
        let file = format!("{}.ko", m.name);
        let path = staging.join(&file);
        let bytes = std::fs::read(&path).map_err(BuildError::io("read", &path))?;
        let parsed = krbd_kmod::KernelModule::parse(&bytes).map_err(|e| BuildError::CompileFailed {
            module: m.name.to_string(),
            log: path.clone(),
            first_errors: vec![e.to_string()],
        })?;
        let stripped = staging.join("stripped").join(&file);
        modules.push(ModuleRecord {
            name: m.name.to_string(),
            file: file.clone(),
            stripped_file: format!("stripped/{file}"),
            vermagic: parsed.vermagic().unwrap_or("").to_string(),
            srcversion: parsed.srcversion().unwrap_or("").to_string(),
            depends: parsed.info("depends").unwrap_or("").to_string(),
            size: bytes.len() as u64,
            stripped_size: std::fs::metadata(&stripped).map(|m| m.len()).unwrap_or(0),
            sha256: krbd_formats::digest::sha256_hex(&bytes),
        });
    }
    Ok(modules)
}

/// Removes the staging folder unless the publish got as far as renaming it.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
