//! The whole build, stage by stage, each stage cached by the hash of what it depends on.

use crate::error::BuildError;
use crate::kbuild::{self, MakeStep, Toolchain, MODULES};
use crate::patch::{apply_series, Series, SeriesReport, SeriesSource};
use crate::report::{BuildReport, InputRecord, ModuleRecord, StageRecord, REPORT_FORMAT};
use crate::source;
use crate::sysroot::{self, Headers};
use crate::target::{self, DebianTarget, KernelRelease};
use krbd_fetch::apt::{self, AptPackage};
use krbd_fetch::cache::Cache;
use krbd_fetch::deb::DebArchive;
use krbd_fetch::hash::KeyHasher;
use krbd_kmod::set::{REPORT_FILE, STRIPPED_DIR};
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
    /// An RHEL-family kernel: its source RPM and kernel-devel RPM, from the vaults or given.
    Rhel(crate::rhel::prepare::RhelRequest),
}

/// A validated build request.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub inputs: Inputs,
    /// A kernel source tarball (or linux-source .deb) to use instead of apt's.
    pub source_tarball: Option<PathBuf>,
    /// The series to apply (its variant is picked for the release); `None`: unpatched.
    pub series: Option<SeriesSource>,
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

/// Stage timings, as the report lists them.
pub struct Stages(pub Vec<StageRecord>);

impl Stages {
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, bool), BuildError>) -> Result<T, BuildError> {
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
        signature: None,
    }
}

/// Runs the build and publishes `out_root/<release>/`.
pub fn build(opts: &BuildOptions, listener: &dyn Listener) -> Result<BuildOutcome, BuildError> {
    let mut stages = Stages(Vec::new());
    let mut inputs = Vec::new();
    let cache = &opts.cache;

    // 1. Resolve and fetch.
    let mut prepared_source: Option<(PathBuf, String)> = None;
    let mut prep: Option<serde_json::Value> = None;
    let (headers, sysroot_key, target, modules_dir) = match &opts.inputs {
        Inputs::Rhel(req) => {
            let prepared = crate::rhel::prepare::prepare_rhel(cache, req, &mut stages, listener)?;
            inputs.extend(prepared.inputs.iter().cloned());
            if prepared.headers.release.as_str() != req.release {
                return Err(BuildError::ReleaseMismatch {
                    requested: req.release.clone(),
                    found: prepared.headers.release.to_string(),
                    headers: prepared.headers.dir.clone(),
                });
            }
            prepared_source = Some((prepared.source_tree.clone(), prepared.source_key.clone()));
            prep = serde_json::to_value(&prepared.prep).ok();
            (prepared.headers, prepared.sysroot_key, None, None)
        }
        Inputs::Debian { release } => {
            let prepared =
                prepare_debian(cache, release.as_ref(), opts.source_tarball.is_none(), &mut stages, listener)?;
            let t = &prepared.target;
            for (role, p) in [
                ("headers", &t.headers),
                ("headers-common", &t.headers_common),
                ("kbuild", &t.kbuild),
                ("image", &t.image),
            ] {
                inputs.push(record(role, p));
            }
            if let Some(s) = &t.source {
                inputs.push(record("source", s));
            }
            (prepared.headers, prepared.sysroot_key, Some((prepared.target, prepared.debs)), Some(prepared.modules_dir))
        }
        Inputs::Local { headers_dir } => {
            let headers = Headers::open(headers_dir)?;
            let sha = krbd_fetch::hash::sha256_file(&headers.symvers(), |_| {})
                .map_err(BuildError::io("read", headers.symvers()))?;
            inputs.push(InputRecord {
                role: "headers-dir".into(),
                name: headers_dir.display().to_string(),
                version: None,
                sha256: sha.clone(),
                signature: None,
            });
            let key = KeyHasher::new(LAYOUT_VERSION).str(&sha).str(&headers.dir.display().to_string()).finish();
            (headers, key, None, None)
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

    // 2. Check the series, the configuration and the toolchain before spending time on sources.
    let series = match &opts.series {
        Some(src) => {
            let (series, variant) = src.select(release.as_str())?;
            if let Some(v) = variant {
                listener.info(&format!("series {} picked for {release}: {}", series.name, v.description));
            }
            Some(series)
        }
        None => None,
    };
    kbuild::check_config(&headers)?;
    let toolchain = kbuild::toolchain(&headers)?;

    // 3. The Ceph sources, cached by the tarball's hash (RHEL targets bring theirs, after
    // %prep, from the source RPM).
    let (subset, source_key) = match prepared_source {
        Some(prepared) => prepared,
        None => {
            let source_path: PathBuf;
            let source_sha: String;
            match (&opts.source_tarball, &target) {
                (Some(path), _) => {
                    source_path = path.clone();
                    let size = std::fs::metadata(path).map_err(BuildError::io("read", path))?.len();
                    listener.task_start("hash the source tarball", Some(size), krbd_progress::Unit::Bytes);
                    let sha = krbd_fetch::hash::sha256_file(path, |n| listener.task_progress(n));
                    listener.task_finish();
                    source_sha = sha.map_err(BuildError::io("read", path))?;
                    inputs.push(InputRecord {
                        role: "source".into(),
                        name: path.display().to_string(),
                        version: None,
                        sha256: source_sha.clone(),
                        signature: None,
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
            let subset = stages.run("extract", || cached_subset(cache, &source_path, &source_sha, listener))?;
            (subset, source_key)
        }
    };

    // 4-5. Patch and compile, cached by everything that shapes the modules.
    let mut key = KeyHasher::new(LAYOUT_VERSION);
    key.str(env!("CARGO_PKG_VERSION"))
        .str(&sysroot_key)
        .str(&source_key)
        .str(&toolchain.host_cc)
        .str(&series.as_ref().map(|s| s.sha256()).unwrap_or_default());
    let build_key = key.finish();
    let build_start = Instant::now();
    let (entry, hit) = cache.get_or_create("builds", &build_key, |staging| {
        compile(&headers, &toolchain, &subset, series.as_ref(), opts.jobs, staging, listener)
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

    // 6. Would the kernel load them? Decided offline by the loader's rules.
    let check = stages.run("check", || {
        let kos: Vec<PathBuf> = MODULES.iter().map(|m| entry.join("modules").join(format!("{}.ko", m.name))).collect();
        let report = check_modules(&kos, &headers, modules_dir.as_deref())?;
        Ok((report, false))
    })?;
    if !check.all_load() {
        return Err(BuildError::WouldNotLoad { release: release.to_string(), verdicts: check_summary(&check) });
    }
    let check_json = serde_json::to_value(&check).ok();

    // 7. Publish.
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
            prep: prep.clone(),
            stages,
            check: check_json.clone(),
            modules,
        }
    })?;
    Ok(BuildOutcome { out, report: modules })
}

/// A Debian target made ready: packages fetched, headers laid out, the image's modules
/// extracted.
pub struct PreparedTarget {
    pub target: DebianTarget,
    /// headers, headers-common, kbuild, image, then source (when asked for).
    pub debs: Vec<PathBuf>,
    pub headers: Headers,
    pub sysroot_key: String,
    /// `lib/modules/<release>` of the target's linux-image package.
    pub modules_dir: PathBuf,
}

/// Resolves, fetches and lays out a Debian target (`None`: the default one).
pub fn prepare_debian(
    cache: &Cache,
    release: Option<&KernelRelease>,
    with_source: bool,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedTarget, BuildError> {
    let target = stages.run("resolve", || Ok((target::resolve_cached(cache, release, with_source)?, false)))?;
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
    let mut key = KeyHasher::new(LAYOUT_VERSION);
    for p in target.headers_packages() {
        key.str(&p.sha256);
    }
    let sysroot_key = key.finish();
    let root = stages.run("headers", || {
        let headers_debs: Vec<DebArchive> = debs[..3].iter().map(DebArchive::open).collect::<Result<_, _>>()?;
        Ok(cache
            .get_or_create("sysroots", &sysroot_key, |staging| sysroot::lay_out(&headers_debs, staging, listener))?)
    })?;
    let headers = Headers::open(&root.join("usr/src").join(format!("linux-headers-{}", target.release)))?;
    let image_key = KeyHasher::new(LAYOUT_VERSION).str(&target.image.sha256).finish();
    let image_root = stages.run("image", || {
        let image = DebArchive::open(&debs[3])?;
        Ok(cache.get_or_create("images", &image_key, |staging| {
            listener.task_start("extract the kernel image package", None, krbd_progress::Unit::Files);
            let r = image.extract_data(staging, |rel| {
                (rel.starts_with("lib/modules") || rel.starts_with("boot")).then(|| rel.to_path_buf())
            });
            listener.task_finish();
            r.map(|_| ()).map_err(BuildError::from)
        })?)
    })?;
    let modules_dir = image_root.join("lib/modules").join(target.release.as_str());
    Ok(PreparedTarget { target, debs, headers, sysroot_key, modules_dir })
}

/// The loader's verdicts on `kos` as one set (libceph, ceph and rbd ship together).
pub fn check_modules(
    kos: &[PathBuf],
    headers: &Headers,
    modules_dir: Option<&Path>,
) -> Result<krbd_kmod::loader::SetReport, BuildError> {
    let options = krbd_kmod::loader::SetOptions {
        ship_together: MODULES.iter().map(|m| m.name.to_string()).collect(),
        ..Default::default()
    };
    Ok(krbd_kmod::check_files(
        kos,
        &krbd_kmod::TargetSpec::Headers { dir: headers.dir.clone() },
        modules_dir,
        &options,
    )?)
}

fn check_summary(r: &krbd_kmod::loader::SetReport) -> Vec<String> {
    let mut out = Vec::new();
    for m in &r.modules {
        if m.verdict != krbd_kmod::loader::Outcome::Loads {
            let first = m.log.first().map(|l| l.text.as_str()).unwrap_or("");
            out.push(format!("{}: refused: {first}", m.module));
        }
    }
    for f in &r.findings {
        out.push(format!("{f:?}"));
    }
    out
}

/// The Ceph sources of a kernel tarball (or linux-source .deb) with this sha256, extracted
/// once into the cache. `Ok((folder, true))` when they were already there.
pub fn cached_subset(
    cache: &Cache,
    archive: &Path,
    sha256: &str,
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    let key = KeyHasher::new(LAYOUT_VERSION).str(sha256).finish();
    cache.get_or_create("sources", &key, |staging| source::extract_from_file(archive, staging, listener).map(|_| ()))
}

/// How `patch check` names the source to check against.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// An unpacked kernel tree.
    Tree(PathBuf),
    /// A kernel tarball or linux-source .deb.
    Archive(PathBuf),
    /// A Debian release: its linux-source through apt.
    Release(KernelRelease),
}

/// A folder with the Ceph sources of `spec` (the tree itself, or the cache's extraction for
/// archives and releases; callers patch only copies), and a label for reports.
pub fn source_for(cache: &Cache, spec: &SourceSpec, listener: &dyn Listener) -> Result<(PathBuf, String), BuildError> {
    match spec {
        SourceSpec::Tree(dir) => {
            source::require_ceph_sources(dir, dir)?;
            Ok((dir.clone(), dir.display().to_string()))
        }
        SourceSpec::Archive(path) => {
            let sha = krbd_fetch::hash::sha256_file(path, |_| {}).map_err(BuildError::io("read", path))?;
            let (dir, _) = cached_subset(cache, path, &sha, listener)?;
            Ok((dir, path.display().to_string()))
        }
        SourceSpec::Release(release) => {
            let t = target::resolve_cached(cache, Some(release), true)?;
            let src = t.source.ok_or_else(|| BuildError::SourceUnavailable {
                release: release.to_string(),
                package: format!("linux-source-{}", release.major_minor()),
                version: t.headers.version.clone(),
            })?;
            let (deb, _) = apt::fetch(cache, &src, listener)?;
            let (dir, _) = cached_subset(cache, &deb, &src.sha256, listener)?;
            Ok((dir, format!("{} {}", src.name, src.version)))
        }
    }
}

/// Copies the Ceph files of `tree` to `dest` (so that checks never touch the original).
fn copy_ceph_files(tree: &Path, dest: &Path) -> Result<(), BuildError> {
    fn walk(root: &Path, dir: &Path, dest: &Path) -> Result<(), BuildError> {
        for e in std::fs::read_dir(dir).map_err(BuildError::io("read", dir))?.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if p.is_dir() {
                let r = rel.to_string_lossy();
                let wanted = source::CEPH_SOURCES
                    .iter()
                    .any(|c| c.starts_with(&format!("{r}/")) || r.starts_with(c.trim_end_matches('/')));
                if wanted {
                    walk(root, &p, dest)?;
                }
            } else if source::is_ceph_source(&rel) {
                let to = dest.join(&rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(BuildError::io("create folder", parent))?;
                }
                std::fs::copy(&p, &to).map_err(BuildError::io("copy to", &to))?;
            }
        }
        Ok(())
    }
    walk(tree, tree, dest)
}

/// One variant's result in `patch check`.
#[derive(Debug, Clone, Serialize)]
pub struct VariantCheck {
    pub series: String,
    pub variant: Option<crate::patch::Variant>,
    /// Every patch applied (hunks may be at an offset or fuzzed).
    pub applies: bool,
    /// Every hunk applied exactly where the diff says or at an offset, without fuzz.
    pub clean: bool,
    pub report: SeriesReport,
    /// The first failure, as the build would show it.
    pub failure: Option<String>,
}

/// Tries every variant of `series` on a scratch copy of the Ceph sources in `sources`.
pub fn check_variants(series: &SeriesSource, sources: &Path, cache: &Cache) -> Result<Vec<VariantCheck>, BuildError> {
    let mut out = Vec::new();
    for (s, variant) in series.all()? {
        let scratch = cache.staging("patch-check")?;
        copy_ceph_files(sources, scratch.path())?;
        let (report, failure) = match apply_series(&s, scratch.path()) {
            Ok(r) => (r, None),
            Err(e) => match e {
                crate::patch::SeriesError::DoesNotApply { ref report, .. } => (report.clone(), Some(e.to_string())),
                other => return Err(other.into()),
            },
        };
        // apply_series returns Ok only after every patch applied.
        let applies = failure.is_none();
        let clean = applies && report.count(crate::patch::HunkStatus::Fuzz) == 0;
        out.push(VariantCheck { series: s.name.clone(), variant, applies, clean, report, failure });
    }
    Ok(out)
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
    let record = BuildRecord { compiler: toolchain.clone(), series: series_report, stages: stages.0 };
    let path = staging.join("build.json");
    let json =
        serde_json::to_vec_pretty(&record).map_err(|e| BuildError::io("encode", &path)(std::io::Error::other(e)))?;
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
    copy_tree(&entry.join("stripped"), &staging.join(STRIPPED_DIR))?;
    copy_tree(&entry.join("logs"), &staging.join("logs"))?;
    let mut modules = Vec::new();
    for m in MODULES {
        let file = m.file_name();
        let path = staging.join(&file);
        let bytes = std::fs::read(&path).map_err(BuildError::io("read", &path))?;
        let parsed = krbd_kmod::KernelModule::parse(&bytes).map_err(|e| BuildError::CompileFailed {
            module: m.name.to_string(),
            log: path.clone(),
            first_errors: vec![e.to_string()],
        })?;
        let stripped = staging.join(m.stripped_file());
        modules.push(ModuleRecord {
            name: m.name.to_string(),
            file: file.clone(),
            stripped_file: m.stripped_file(),
            vermagic: parsed.vermagic().unwrap_or("").to_string(),
            srcversion: parsed.srcversion().unwrap_or("").to_string(),
            depends: parsed.info("depends").unwrap_or("").to_string(),
            size: bytes.len() as u64,
            stripped_size: std::fs::metadata(&stripped).map(|m| m.len()).unwrap_or(0),
            sha256: krbd_fetch::hash::sha256_bytes(&bytes),
        });
    }
    let report = make_report(modules);
    let path = staging.join(REPORT_FILE);
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| BuildError::io("encode", &path)(std::io::Error::other(e)))?;
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
