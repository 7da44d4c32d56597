//! The whole build, stage by stage, each stage cached by the hash of what it depends on.

mod compile;
mod publish;

use crate::debian::prepare_debian;
use crate::error::BuildError;
use crate::json_file;
use crate::kbuild::{self, MODULES};
use crate::patch::{Series, SeriesSource};
use crate::report::{BuildReport, InputRecord, REPORT_FORMAT};
use crate::rhel::prepare::{prepare_rhel, RhelRequest};
use crate::source;
use crate::stages::{Stages, LAYOUT_VERSION};
use crate::sysroot::Headers;
use crate::target::{self, KernelRelease};
use compile::{BuildRecord, CompileInputs};
use krbd_fetch::apt::{self, AptPackage};
use krbd_fetch::cache::Cache;
use krbd_fetch::hash::KeyHasher;
use krbd_progress::Listener;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the kernel comes from.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// A Debian release through apt; `None` is the default target.
    Debian { release: Option<KernelRelease> },
    /// Local files: a headers folder, with the source tarball given or fetched through apt.
    Local { headers_dir: PathBuf },
    /// An RHEL-family kernel: its source RPM and kernel-devel RPM, from the vaults or given.
    Rhel(RhelRequest),
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

impl BuildOptions {
    /// Refuses, before anything is fetched, a request naming a file that is not there.
    pub fn require_given_files(&self) -> Result<(), BuildError> {
        let rhel_files = match &self.inputs {
            Inputs::Rhel(req) => [&req.srpm, &req.devel_rpm],
            _ => [&None, &None],
        };
        for path in rhel_files.into_iter().chain([&self.source_tarball]).flatten() {
            if !path.is_file() {
                return Err(BuildError::InputNotFound { path: path.clone() });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub out: PathBuf,
    pub report: BuildReport,
}

/// Where the Ceph sources come from, as far as the target's preparation got.
enum SourceOrigin {
    /// Already extracted, with the key its build is cached under (RHEL: after `%prep`).
    Extracted { tree: PathBuf, key: String },
    /// The target's own linux-source package, fetched with its other packages.
    Fetched { deb: PathBuf, sha256: String },
    /// Not fetched yet: the given tarball, or else apt's linux-source for the release.
    Elsewhere,
}

/// The target made ready, whatever kind it is.
struct PreparedInputs {
    headers: Headers,
    sysroot_key: String,
    source: SourceOrigin,
    /// Debian targets: `lib/modules/<release>` of the image, for the loader check.
    modules_dir: Option<PathBuf>,
    /// RHEL targets: what `%prep` did, for the report.
    prep: Option<serde_json::Value>,
    inputs: Vec<InputRecord>,
}

/// A build entry in the cache, made now or earlier.
struct CachedBuild {
    entry: PathBuf,
    key: String,
    hit: bool,
    record: BuildRecord,
}

/// Runs the build and publishes `out_root/<release>/`.
pub fn build(opts: &BuildOptions, listener: &dyn Listener) -> Result<BuildOutcome, BuildError> {
    opts.require_given_files()?;
    // 0. RHEL-family targets: what the release alone decides, before any download.
    let early_series = match &opts.inputs {
        Inputs::Rhel(req) => Some(decide_before_download(opts.series.as_ref(), req, listener)?),
        _ => None,
    };
    let mut stages = Stages::default();
    // 1. Resolve and fetch.
    let PreparedInputs { headers, sysroot_key, source, modules_dir, prep, mut inputs } =
        prepare_inputs(opts, &mut stages, listener)?;
    let release = headers.release.clone();
    // 2. Check the series, the configuration and the toolchain before spending time on sources
    // (prepare_inputs made sure the headers are those of a release asked for).
    let series = match early_series {
        Some(series) => series,
        None => pick_series(opts.series.as_ref(), &release, listener)?,
    };
    kbuild::check_config(&headers)?;
    let toolchain = kbuild::toolchain(&headers)?;
    // 3. The Ceph sources, cached by the tarball's hash (RHEL targets bring theirs, after
    // %prep, from the source RPM).
    let (subset, source_key) = ceph_sources(opts, source, &release, &mut inputs, &mut stages, listener)?;
    // 4-5. Patch and compile, cached by everything that shapes the modules.
    let compile_inputs = CompileInputs {
        headers: &headers,
        toolchain: &toolchain,
        subset: &subset,
        series: series.as_ref(),
        jobs: opts.jobs,
    };
    let built = compile_cached(&opts.cache, &compile_inputs, &sysroot_key, &source_key, &mut stages, listener)?;
    // 6. Would the kernel load them? Decided offline by the loader's rules.
    let check = stages.run("check", || {
        let kos: Vec<PathBuf> =
            MODULES.iter().map(|m| built.entry.join("modules").join(format!("{}.ko", m.name))).collect();
        Ok((check_modules(&kos, &headers, modules_dir.as_deref())?, false))
    })?;
    if !check.all_load() {
        return Err(BuildError::WouldNotLoad { release: release.to_string(), verdicts: check_summary(&check) });
    }
    // 7. Publish.
    let out = opts.out_root.join(release.as_str());
    let publish_start = Instant::now();
    let report = publish::publish(&built.entry, &out, |modules| {
        let mut stages = stages.clone();
        stages.record("publish", publish_start, false);
        BuildReport {
            format: REPORT_FORMAT,
            tool: format!("krbd-forge {}", env!("CARGO_PKG_VERSION")),
            release: release.to_string(),
            build_key: built.key.clone(),
            cache_hit: built.hit,
            inputs,
            compiler: built.record.compiler.clone(),
            jobs: opts.jobs,
            series: built.record.series.clone(),
            prep,
            stages: stages.into_records(),
            check: serde_json::to_value(&check).ok(),
            modules,
        }
    })?;
    Ok(BuildOutcome { out, report })
}

/// What an RHEL-family release decides before anything is downloaded (the RPMs are large
/// and the vaults slow): that the catalog knows it (when a package is to be fetched), the
/// series' variant, and the distribution's compiler.
fn decide_before_download(
    series: Option<&SeriesSource>,
    req: &RhelRequest,
    listener: &dyn Listener,
) -> Result<Option<Series>, BuildError> {
    if req.srpm.is_none() || req.devel_rpm.is_none() {
        crate::rhel::catalog::resolve(req.release.as_str(), &req.mirrors, req.distro)?;
    }
    let series = pick_series(series, &req.release, listener)?;
    require_distribution_compiler(&req.release)?;
    Ok(series)
}

/// An RHEL-family kernel of the distribution's own line needs the distribution's compiler;
/// without it on this host, nothing is downloaded.
fn require_distribution_compiler(release: &KernelRelease) -> Result<(), BuildError> {
    let Ok(rhel) = crate::rhel::catalog::RhelRelease::parse(release.as_str()) else { return Ok(()) };
    match rhel.distribution_compiler() {
        Some((prefix, wanted)) => kbuild::require_distribution_compiler(release, prefix, wanted),
        None => Ok(()),
    }
}

/// Resolves and fetches the target, and checks that it is the release asked for.
fn prepare_inputs(
    opts: &BuildOptions,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedInputs, BuildError> {
    let (prepared, requested) = match &opts.inputs {
        Inputs::Rhel(req) => (prepare_rhel_inputs(&opts.cache, req, stages, listener)?, Some(&req.release)),
        Inputs::Debian { release } => {
            let with_source = opts.source_tarball.is_none();
            (prepare_debian_inputs(&opts.cache, release.as_ref(), with_source, stages, listener)?, release.as_ref())
        }
        Inputs::Local { headers_dir } => (prepare_local_inputs(headers_dir)?, None),
    };
    if let Some(requested) = requested.filter(|r| **r != prepared.headers.release) {
        return Err(BuildError::ReleaseMismatch {
            requested: requested.to_string(),
            found: prepared.headers.release.to_string(),
            headers: prepared.headers.dir.clone(),
        });
    }
    Ok(prepared)
}

fn prepare_rhel_inputs(
    cache: &Cache,
    req: &RhelRequest,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedInputs, BuildError> {
    let prepared = prepare_rhel(cache, req, stages, listener)?;
    Ok(PreparedInputs {
        source: SourceOrigin::Extracted { tree: prepared.source_tree, key: prepared.source_key },
        prep: serde_json::to_value(&prepared.prep).ok(),
        headers: prepared.headers,
        sysroot_key: prepared.sysroot_key,
        modules_dir: None,
        inputs: prepared.inputs,
    })
}

fn prepare_debian_inputs(
    cache: &Cache,
    release: Option<&KernelRelease>,
    with_source: bool,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedInputs, BuildError> {
    let prepared = prepare_debian(cache, release, with_source, stages, listener)?;
    let t = &prepared.target;
    let mut inputs: Vec<InputRecord> =
        [("headers", &t.headers), ("headers-common", &t.headers_common), ("kbuild", &t.kbuild), ("image", &t.image)]
            .into_iter()
            .map(|(role, p)| record(role, p, t.relations.get(role)))
            .collect();
    inputs.extend(t.source.iter().map(|s| record("source", s, None)));
    let source = match (prepared.debs.source, &t.source) {
        (Some(deb), Some(package)) => SourceOrigin::Fetched { deb, sha256: package.sha256.clone() },
        _ => SourceOrigin::Elsewhere,
    };
    Ok(PreparedInputs {
        headers: prepared.headers,
        sysroot_key: prepared.sysroot_key,
        source,
        modules_dir: Some(prepared.modules_dir),
        prep: None,
        inputs,
    })
}

fn prepare_local_inputs(headers_dir: &Path) -> Result<PreparedInputs, BuildError> {
    let headers = Headers::open(headers_dir)?;
    let sha = krbd_formats::digest::sha256_file(&headers.symvers(), |_| {})
        .map_err(BuildError::io("read", headers.symvers()))?;
    let key = KeyHasher::new(LAYOUT_VERSION).str(&sha).str(&headers.dir.display().to_string()).finish();
    let input = InputRecord {
        role: "headers-dir".into(),
        name: headers_dir.display().to_string(),
        version: None,
        relation: None,
        sha256: sha,
        signature: None,
    };
    Ok(PreparedInputs {
        headers,
        sysroot_key: key,
        source: SourceOrigin::Elsewhere,
        modules_dir: None,
        prep: None,
        inputs: vec![input],
    })
}

fn record(role: &str, p: &AptPackage, relation: Option<&String>) -> InputRecord {
    InputRecord {
        role: role.to_string(),
        name: p.name.clone(),
        version: Some(p.version.clone()),
        relation: relation.cloned(),
        sha256: p.sha256.clone(),
        signature: None,
    }
}

/// The series to apply to `release`: the variant of `source` that fits it.
fn pick_series(
    source: Option<&SeriesSource>,
    release: &KernelRelease,
    listener: &dyn Listener,
) -> Result<Option<Series>, BuildError> {
    let Some(source) = source else { return Ok(None) };
    let (series, variant) = source.select(release.as_str())?;
    if let Some(v) = variant {
        listener.info(&format!("series {} picked for {release}: {}", series.name, v.description));
    }
    Ok(Some(series))
}

/// The folder with the Ceph sources and the key builds from them are cached under.
fn ceph_sources(
    opts: &BuildOptions,
    origin: SourceOrigin,
    release: &KernelRelease,
    inputs: &mut Vec<InputRecord>,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<(PathBuf, String), BuildError> {
    let (archive, sha256) = match origin {
        SourceOrigin::Extracted { tree, key } => return Ok((tree, key)),
        SourceOrigin::Fetched { deb, sha256 } => (deb, sha256),
        SourceOrigin::Elsewhere => match &opts.source_tarball {
            Some(path) => given_tarball(path, inputs, listener)?,
            None => apt_source(&opts.cache, release, inputs, listener)?,
        },
    };
    let key = KeyHasher::new(LAYOUT_VERSION).str(&sha256).finish();
    let subset = stages.run("extract", || source::cached_subset(&opts.cache, &archive, &sha256, listener))?;
    Ok((subset, key))
}

/// `--source-tarball`: hashed (with progress: it is large) and recorded as an input.
fn given_tarball(
    path: &Path,
    inputs: &mut Vec<InputRecord>,
    listener: &dyn Listener,
) -> Result<(PathBuf, String), BuildError> {
    let size = std::fs::metadata(path).map_err(BuildError::io("read", path))?.len();
    listener.task_start("hash the source tarball", Some(size), krbd_progress::Unit::Bytes);
    let sha = krbd_formats::digest::sha256_file(path, |n| listener.task_progress(n));
    listener.task_finish();
    let sha = sha.map_err(BuildError::io("read", path))?;
    inputs.push(InputRecord {
        role: "source".into(),
        name: path.display().to_string(),
        version: None,
        relation: None,
        sha256: sha.clone(),
        signature: None,
    });
    Ok((path.to_path_buf(), sha))
}

/// apt's linux-source for `release` (a headers folder's targets), fetched and recorded.
fn apt_source(
    cache: &Cache,
    release: &KernelRelease,
    inputs: &mut Vec<InputRecord>,
    listener: &dyn Listener,
) -> Result<(PathBuf, String), BuildError> {
    let t = target::resolve(release, true)?;
    let src = t.source.ok_or_else(|| BuildError::SourceUnavailable {
        release: release.to_string(),
        package: format!("linux-source-{}", release.major_minor()),
        version: t.headers.version.clone(),
    })?;
    let (path, _) = apt::fetch(cache, &src, listener)?;
    inputs.push(record("source", &src, None));
    Ok((path, src.sha256))
}

/// Patches and compiles, or finds the build of the same inputs in the cache.
fn compile_cached(
    cache: &Cache,
    inputs: &CompileInputs<'_>,
    sysroot_key: &str,
    source_key: &str,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<CachedBuild, BuildError> {
    let mut key = KeyHasher::new(LAYOUT_VERSION);
    key.str(env!("CARGO_PKG_VERSION"))
        .str(sysroot_key)
        .str(source_key)
        .str(&inputs.toolchain.host_cc)
        .str(&inputs.series.map(|s| s.sha256()).unwrap_or_default());
    let key = key.finish();
    let start = Instant::now();
    let (entry, hit) = cache.get_or_create("builds", &key, |staging| compile::compile(inputs, staging, listener))?;
    let record: BuildRecord = json_file::read(&entry.join("build.json"))?;
    if hit {
        stages.record("build", start, true);
    } else {
        stages.extend(record.stages.iter().cloned());
    }
    Ok(CachedBuild { entry, key, hit, record })
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

/// One line per module the loader refuses, and one per finding about the set.
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
