//! The whole build, stage by stage, each stage cached by the hash of what it depends on.

use crate::error::BuildError;
use crate::kbuild::{self, MakeStep, Toolchain, MODULES};
use crate::patch::{apply_series, Series, SeriesReport};
use crate::report::{BuildReport, InputRecord, ModuleRecord, StageRecord, REPORT_FORMAT};
use crate::source;
use crate::sysroot::{self, Headers};
use crate::target::{self, DebianTarget, KernelRelease};
use krbd_packages::apt::{self, AptPackage};
use krbd_packages::cache::Cache;
use krbd_packages::deb::DebArchive;
use krbd_packages::hash::KeyHasher;
use krbd_progress::Listener;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Raised when a cache entry's layout changes, so old entries are not reused.
const LAYOUT_VERSION: &str = "krbd-forge-build-v2";

/// Where the kernel comes from.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// A Debian release through apt; `None` is the default target.
    Debian { release: Option<KernelRelease> },
    /// Local files: a headers folder, with the source tarball given or fetched through apt.
    Local { headers_dir: PathBuf },
}

/// A validated build request.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub inputs: Inputs,
    /// A kernel source tarball (or linux-source .deb) to use instead of apt's.
    pub source_tarball: Option<PathBuf>,
    pub series: Option<Series>,
    /// The results go to `out_root/<release>/`.
    pub out_root: PathBuf,
    pub cache: Cache,
    pub jobs: usize,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub out: PathBuf,
    pub report: BuildReport,
}

/// What a cached build entry remembers of how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BuildRecord {
    compiler: Toolchain,
    series: Option<SeriesReport>,
    stages: Vec<StageRecord>,
}

struct Stages(Vec<StageRecord>);

impl Stages {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, bool), BuildError>) -> Result<T, BuildError> {
        let start = Instant::now();
        let (value, cached) = f()?;
        self.0.push(StageRecord {
            name: name.to_string(),
            seconds: (start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            cached,
        });
        Ok(value)
    }
}

fn record(role: &str, p: &AptPackage) -> InputRecord {
    InputRecord {
        role: role.to_string(),
        name: p.name.clone(),
        version: Some(p.version.clone()),
        sha256: p.sha256.clone(),
    }
}

/// Runs the build and publishes `out_root/<release>/`.
pub fn build(opts: &BuildOptions, listener: &dyn Listener) -> Result<BuildOutcome, BuildError> {
    let mut stages = Stages(Vec::new());
    let mut inputs = Vec::new();
    let cache = &opts.cache;

    // 1. Resolve and fetch.
    let (headers, sysroot_key, target) = match &opts.inputs {
        Inputs::Debian { release } => {
            let target = stages.run("resolve", || {
                let t = target::resolve_cached(cache, release.as_ref(), opts.source_tarball.is_none())?;
                Ok((t, false))
            })?;
            listener.info(&format!("target {} (Debian {})", target.release, target.headers.version));
            let debs = stages.run("fetch", || {
                let mut all_cached = true;
                let mut paths = Vec::new();
                let wanted = target.headers_packages().into_iter().chain([&target.image]).chain(target.source.as_ref());
                for p in wanted {
                    let (path, hit) = apt::fetch(cache, p, listener)?;
                    all_cached &= hit;
                    paths.push(path);
                }
                Ok((paths, all_cached))
            })?;
            for (role, p) in [
                ("headers", &target.headers),
                ("headers-common", &target.headers_common),
                ("kbuild", &target.kbuild),
                ("image", &target.image),
            ] {
                inputs.push(record(role, p));
            }
            if let Some(s) = &target.source {
                inputs.push(record("source", s));
            }
            let mut key = KeyHasher::new(LAYOUT_VERSION);
            for p in target.headers_packages() {
                key.str(&p.sha256);
            }
            let sysroot_key = key.finish();
            let headers_debs: Vec<DebArchive> = debs[..3].iter().map(DebArchive::open).collect::<Result<_, _>>()?;
            let root = stages.run("headers", || {
                let (root, hit) = cache.get_or_create("sysroots", &sysroot_key, |staging| {
                    sysroot::lay_out(&headers_debs, staging, listener)
                })?;
                Ok((root, hit))
            })?;
            let headers = Headers::open(&root.join("usr/src").join(format!("linux-headers-{}", target.release)))?;
            (headers, sysroot_key, Some((target, debs)))
        }
        Inputs::Local { headers_dir } => {
            let headers = Headers::open(headers_dir)?;
            let sha = krbd_packages::hash::sha256_file(&headers.symvers(), |_| {})
                .map_err(BuildError::io("read", headers.symvers()))?;
            inputs.push(InputRecord {
                role: "headers-dir".into(),
                name: headers_dir.display().to_string(),
                version: None,
                sha256: sha.clone(),
            });
            let key = KeyHasher::new(LAYOUT_VERSION).str(&sha).str(&headers.dir.display().to_string()).finish();
            (headers, key, None)
        }
    };
    let release = headers.release.clone();
    if let Inputs::Debian { release: Some(r) } = &opts.inputs {
        if *r != release {
            return Err(BuildError::ReleaseMismatch {
                requested: r.to_string(),
                found: release.to_string(),
                headers: headers.dir.clone(),
            });
        }
    }

    // 2. Check the configuration and the toolchain before spending time on sources.
    kbuild::check_config(&headers)?;
    let toolchain = kbuild::toolchain(&headers)?;

    // 3. The Ceph sources, cached by the tarball's hash.
    let source_path: PathBuf;
    let source_sha: String;
    match (&opts.source_tarball, &target) {
        (Some(path), _) => {
            source_path = path.clone();
            let size = std::fs::metadata(path).map_err(BuildError::io("read", path))?.len();
            listener.task_start("hash the source tarball", Some(size), krbd_progress::Unit::Bytes);
            let sha = krbd_packages::hash::sha256_file(path, |n| listener.task_progress(n));
            listener.task_finish();
            source_sha = sha.map_err(BuildError::io("read", path))?;
            inputs.push(InputRecord {
                role: "source".into(),
                name: path.display().to_string(),
                version: None,
                sha256: source_sha.clone(),
            });
        }
        (None, Some((t, debs))) => {
            let src = t.source.as_ref().expect("resolve() was asked for the source");
            source_path = debs[debs.len() - 1].clone();
            source_sha = src.sha256.clone();
        }
        (None, None) => {
            let t = target::resolve(&release, true)?;
            let src = t.source.expect("resolve() was asked for the source");
            let (path, _) = apt::fetch(cache, &src, listener)?;
            inputs.push(record("source", &src));
            source_path = path;
            source_sha = src.sha256.clone();
        }
    }
    let source_key = KeyHasher::new(LAYOUT_VERSION).str(&source_sha).finish();
    let subset = stages.run("extract", || {
        Ok(cache.get_or_create("sources", &source_key, |staging| {
            source::extract_from_file(&source_path, staging, listener).map(|_| ())
        })?)
    })?;

    // 4-5. Patch and compile, cached by everything that shapes the modules.
    let mut key = KeyHasher::new(LAYOUT_VERSION);
    key.str(env!("CARGO_PKG_VERSION"))
        .str(&sysroot_key)
        .str(&source_key)
        .str(&toolchain.host_cc)
        .str(&opts.series.as_ref().map(|s| s.sha256()).unwrap_or_default());
    let build_key = key.finish();
    let build_start = Instant::now();
    let (entry, hit) = cache.get_or_create("builds", &build_key, |staging| {
        compile(&headers, &toolchain, &subset, opts.series.as_ref(), opts.jobs, staging, listener)
    })?;
    let record: BuildRecord = read_json(&entry.join("build.json"))?;
    if hit {
        stages.0.push(StageRecord {
            name: "build".into(),
            seconds: (build_start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            cached: true,
        });
    } else {
        stages.0.extend(record.stages.iter().cloned());
    }

    // 6. Publish.
    let out = opts.out_root.join(release.as_str());
    let publish_start = Instant::now();
    let modules = publish(&entry, &out, |modules| {
        let mut stages = stages.0.clone();
        stages.push(StageRecord {
            name: "publish".into(),
            seconds: (publish_start.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            cached: false,
        });
        BuildReport {
            format: REPORT_FORMAT,
            tool: format!("krbd-forge {}", env!("CARGO_PKG_VERSION")),
            release: release.to_string(),
            build_key: build_key.clone(),
            cache_hit: hit,
            inputs: inputs.clone(),
            compiler: record.compiler.clone(),
            jobs: opts.jobs,
            series: record.series.clone(),
            stages,
            modules,
        }
    })?;
    Ok(BuildOutcome { out, report: modules })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, BuildError> {
    let text = std::fs::read(path).map_err(BuildError::io("read", path))?;
    serde_json::from_slice(&text).map_err(|e| BuildError::Io {
        op: "parse",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
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

/// Patches a copy of the sources and compiles it in `staging`, leaving
/// `modules/`, `stripped/`, `src/` (the patched sources), `logs/` and `build.json`.
fn compile(
    headers: &Headers,
    toolchain: &Toolchain,
    subset: &Path,
    series: Option<&Series>,
    jobs: usize,
    staging: &Path,
    listener: &dyn Listener,
) -> Result<(), BuildError> {
    let mut stages = Stages(Vec::new());
    let tree = staging.join("tree");
    let series_report = stages.run("patch", || {
        copy_tree(subset, &tree)?;
        let report = match series {
            Some(s) => {
                listener.info(&format!("applying series {} ({} patches)", s.name, s.patches.len()));
                Some(apply_series(s, &tree)?)
            }
            None => None,
        };
        copy_tree(&tree, &staging.join("src"))?;
        Ok((report, false))
    })?;
    kbuild::write_kbuild_files(&tree)?;
    let logs = staging.join("logs");
    std::fs::create_dir_all(&logs).map_err(BuildError::io("create folder", &logs))?;
    stages.run("compile libceph", || {
        let step = MakeStep {
            label: "libceph",
            dir: tree.join("net/ceph"),
            extra_symbols: None,
            objects: kbuild::count_sources(&tree.join("net/ceph"), None),
            log: logs.join("libceph.log"),
        };
        kbuild::run_make(headers, toolchain, &step, jobs, listener).map(|_| ((), false))
    })?;
    stages.run("compile ceph+rbd", || {
        let step = MakeStep {
            label: "ceph and rbd",
            dir: tree.clone(),
            extra_symbols: Some(tree.join("net/ceph/Module.symvers")),
            objects: kbuild::count_sources(&tree.join("fs/ceph"), None)
                + kbuild::count_sources(&tree.join("drivers/block"), Some("rbd.c")),
            log: logs.join("ceph-rbd.log"),
        };
        kbuild::run_make(headers, toolchain, &step, jobs, listener).map(|_| ((), false))
    })?;
    stages.run("strip", || {
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
        Ok(((), false))
    })?;
    // The object files are 10x the modules' size and never reused.
    std::fs::remove_dir_all(&tree).map_err(BuildError::io("remove", &tree))?;
    let record = BuildRecord {
        compiler: toolchain.clone(),
        series: series_report,
        stages: stages.0,
    };
    let path = staging.join("build.json");
    let json = serde_json::to_vec_pretty(&record).map_err(|e| BuildError::io("encode", &path)(std::io::Error::other(e)))?;
    std::fs::write(&path, json).map_err(BuildError::io("write", &path))
}

/// Writes `out` atomically: a sibling staging folder is filled and renamed over it.
fn publish(
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
            sha256: krbd_packages::hash::sha256_bytes(&bytes),
        });
    }
    let report = make_report(modules);
    let path = staging.join("build-report.json");
    let json = serde_json::to_vec_pretty(&report).map_err(|e| BuildError::io("encode", &path)(std::io::Error::other(e)))?;
    std::fs::write(&path, json).map_err(BuildError::io("write", &path))?;
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

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Releases that are already built in the cache, for `krbd-forge targets`.
pub fn cached_sysroots(cache: &Cache) -> Vec<String> {
    let dir = cache.root().join("sysroots");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for h in std::fs::read_dir(e.path().join("usr/src")).into_iter().flatten().flatten() {
            if let Some(rel) = h.file_name().to_string_lossy().strip_prefix("linux-headers-") {
                if !rel.ends_with("-common") {
                    out.push(rel.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[allow(dead_code)]
fn _assert_send(_: &DebianTarget) {}
