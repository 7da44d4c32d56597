//! Patching a copy of the Ceph sources and compiling it, in a cache entry's staging folder.

use crate::error::BuildError;
use crate::json_file;
use crate::kbuild::{self, MakeStep, Toolchain, MODULES};
use crate::patch::{apply_series, Series, SeriesReport};
use crate::report::StageRecord;
use crate::stages::Stages;
use crate::sysroot::Headers;
use krbd_progress::Listener;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What shapes the modules, apart from where they are compiled.
pub(super) struct CompileInputs<'a> {
    pub headers: &'a Headers,
    pub toolchain: &'a Toolchain,
    /// The Ceph sources, unpatched; only a copy is patched.
    pub subset: &'a Path,
    pub series: Option<&'a Series>,
    pub jobs: usize,
}

/// What a cached build entry remembers of how it was made (`build.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BuildRecord {
    pub compiler: Toolchain,
    pub series: Option<SeriesReport>,
    pub stages: Vec<StageRecord>,
}

/// Patches a copy of the sources and compiles it in `staging`, leaving
/// `modules/`, `stripped/`, `src/` (the patched sources), `logs/` and `build.json`.
pub(super) fn compile(inputs: &CompileInputs<'_>, staging: &Path, listener: &dyn Listener) -> Result<(), BuildError> {
    let mut stages = Stages::default();
    let tree = staging.join("tree");
    let series_report = stages.run("patch", || {
        let report = patched_copy(inputs.subset, inputs.series, &tree, listener)?;
        copy_tree(&tree, &staging.join("src"))?;
        Ok((report, false))
    })?;
    kbuild::write_kbuild_files(&tree)?;
    let logs = staging.join("logs");
    std::fs::create_dir_all(&logs).map_err(BuildError::io("create folder", &logs))?;
    for (stage, step) in make_steps(&tree, &logs) {
        stages.run(stage, || {
            kbuild::run_make(inputs.headers, inputs.toolchain, &step, inputs.jobs, listener).map(|_| ((), false))
        })?;
    }
    stages.run("strip", || strip_modules(&tree, staging).map(|()| ((), false)))?;
    // The object files are 10x the modules' size and never reused.
    std::fs::remove_dir_all(&tree).map_err(BuildError::io("remove", &tree))?;
    let record =
        BuildRecord { compiler: inputs.toolchain.clone(), series: series_report, stages: stages.into_records() };
    json_file::write(&staging.join("build.json"), &record)
}

/// Copies `subset` to `tree` and applies `series` (if any) to the copy.
fn patched_copy(
    subset: &Path,
    series: Option<&Series>,
    tree: &Path,
    listener: &dyn Listener,
) -> Result<Option<SeriesReport>, BuildError> {
    copy_tree(subset, tree)?;
    let Some(series) = series else { return Ok(None) };
    listener.info(&format!("applying series {} ({} patches)", series.name, series.patches.len()));
    Ok(Some(apply_series(series, tree)?))
}

/// libceph first, then ceph and rbd against libceph's own Module.symvers; each with the
/// name of its stage in the report.
fn make_steps(tree: &Path, logs: &Path) -> [(&'static str, MakeStep<'static>); 2] {
    let libceph = MakeStep {
        label: "libceph",
        dir: tree.join("net/ceph"),
        extra_symbols: None,
        objects: kbuild::count_sources(&tree.join("net/ceph"), None),
        log: logs.join("libceph.log"),
    };
    let ceph_and_rbd = MakeStep {
        label: "ceph and rbd",
        dir: tree.to_path_buf(),
        extra_symbols: Some(tree.join("net/ceph/Module.symvers")),
        objects: kbuild::count_sources(&tree.join("fs/ceph"), None)
            + kbuild::count_sources(&tree.join("drivers/block"), Some("rbd.c")),
        log: logs.join("ceph-rbd.log"),
    };
    [("compile libceph", libceph), ("compile ceph+rbd", ceph_and_rbd)]
}

/// Keeps each built module in `modules/` and a debug-stripped copy in `stripped/`.
fn strip_modules(tree: &Path, staging: &Path) -> Result<(), BuildError> {
    for sub in ["modules", "stripped"] {
        let d = staging.join(sub);
        std::fs::create_dir_all(&d).map_err(BuildError::io("create folder", &d))?;
    }
    for m in MODULES {
        let built = tree.join(m.dir).join(format!("{}.ko", m.name));
        let kept = staging.join("modules").join(format!("{}.ko", m.name));
        std::fs::copy(&built, &kept).map_err(BuildError::io("copy", &built))?;
        let stripped = staging.join("stripped").join(format!("{}.ko", m.name));
        let out = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&stripped)
            .arg(&kept)
            .output()
            .map_err(BuildError::io("run strip on", &kept))?;
        if !out.status.success() {
            return Err(BuildError::CompileFailed {
                module: format!("strip {}", m.name),
                log: kept,
                first_errors: String::from_utf8_lossy(&out.stderr).lines().map(String::from).collect(),
            });
        }
    }
    Ok(())
}

/// Copies the folder `from` to `to`, recursively.
pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(BuildError::io("create folder", to))?;
    for e in std::fs::read_dir(from).map_err(BuildError::io("read", from))?.flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(BuildError::io("copy to", &dst))?;
        }
    }
    Ok(())
}
