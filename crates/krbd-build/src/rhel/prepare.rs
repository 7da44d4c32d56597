//! An RHEL-family target made ready for the pipeline: the source RPM's Ceph files (after
//! what `%prep` applies to them) and the kernel-devel RPM laid out as a headers sysroot.

use super::catalog::{self, Distro, Location, Mirrors};
use super::spec::{self, PrepPatch};
use crate::error::BuildError;
use crate::patch::series::SeriesPatch;
use crate::patch::{apply_series, PatchFile, Series, SeriesReport};
use crate::pipeline::Stages;
use crate::report::{InputRecord, SignatureRecord, SignerRecord};
use crate::source;
use crate::sysroot::Headers;
use krbd_fetch::cache::Cache;
use krbd_fetch::compress::Compression;
use krbd_fetch::hash::KeyHasher;
use krbd_fetch::http::{self, FetchOutcome};
use krbd_fetch::rpm::{RpmKeyring, RpmPackage, SignatureStatus};
use krbd_fetch::FetchError;
use krbd_progress::Listener;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Raised when the layout of the RHEL cache entries changes.
const LAYOUT: &str = "krbd-forge-rhel-v1";

/// Patch files larger than this are not kept in memory; no %prep patch of a kernel that
/// ships its tarball already patched comes near it.
const MAX_PATCH: u64 = 256 << 20;

/// What to build an RHEL-family kernel from.
#[derive(Debug, Clone)]
pub struct RhelRequest {
    /// `uname -r`: `3.10.0-957.el7.x86_64`.
    pub release: String,
    pub mirrors: Mirrors,
    /// Only this distro's vaults.
    pub distro: Option<Distro>,
    /// Local files instead of the vaults.
    pub srpm: Option<PathBuf>,
    pub devel_rpm: Option<PathBuf>,
    /// When given, every RPM used must carry a good signature by one of its keys.
    pub rpm_key: Option<std::sync::Arc<RpmKeyring>>,
}

/// What happened to one patch of `%prep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepOutcome {
    pub name: String,
    pub line: usize,
    /// `applied`, `no-ceph-files`, `empty`, `missing-optional`.
    pub outcome: String,
    /// The Ceph files it changed.
    pub ceph_files: Vec<String>,
}

/// How the Ceph sources were taken from the source RPM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepReport {
    pub srpm: String,
    pub spec: String,
    pub tarball: String,
    pub patches: Vec<PrepOutcome>,
    /// Hunk by hunk, for the patches that touched Ceph files.
    pub series: Option<SeriesReport>,
}

/// The target, ready for the pipeline.
pub struct PreparedRhel {
    pub headers: Headers,
    pub sysroot_key: String,
    /// The Ceph sources after `%prep`.
    pub source_tree: PathBuf,
    pub source_key: String,
    pub inputs: Vec<InputRecord>,
    pub prep: PrepReport,
}

/// Resolves, fetches and lays out the target.
pub fn prepare_rhel(
    cache: &Cache,
    req: &RhelRequest,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedRhel, BuildError> {
    let resolved = stages.run("resolve", || {
        if req.srpm.is_some() && req.devel_rpm.is_some() {
            return Ok((None, false));
        }
        Ok((Some(catalog::resolve(&req.release, &req.mirrors, req.distro)?), false))
    })?;
    if let Some(r) = &resolved {
        listener.info(&format!("target {} (el{}, {})", req.release, r.release.el, r.os_minor));
    }
    let (srpm_path, devel_path) = stages.run("fetch", || {
        let mut all_cached = true;
        let mut get =
            |local: &Option<PathBuf>, what: &'static str, pick: fn(&catalog::Resolved) -> &Vec<Location>| match (
                local, &resolved,
            ) {
                (Some(p), _) => {
                    let rpm = RpmPackage::open(p)?;
                    rpm.verify()?;
                    Ok::<_, BuildError>(p.clone())
                }
                (None, Some(r)) => {
                    let (p, cached) = fetch_first(cache, &req.release, what, pick(r), listener)?;
                    all_cached &= cached;
                    Ok(p)
                }
                (None, None) => unreachable_inputs(&req.release),
            };
        let srpm = get(&req.srpm, "the source RPM", |r| &r.srpm)?;
        let devel = get(&req.devel_rpm, "the kernel-devel RPM", |r| &r.devel_rpm)?;
        Ok(((srpm, devel), all_cached))
    })?;
    let srpm = RpmPackage::open(&srpm_path)?;
    let devel = RpmPackage::open(&devel_path)?;
    if !srpm.info.is_source {
        return Err(BuildError::BadSourceRpm {
            package: srpm_path.clone(),
            reason: format!("{} is a binary package; --srpm wants the kernel's .src.rpm", srpm.info.nvra()),
        });
    }
    let srpm_signature = signature_status(&srpm, req.rpm_key.as_deref(), listener)?;
    let devel_signature = signature_status(&devel, req.rpm_key.as_deref(), listener)?;
    let srpm_sha = sha(&srpm_path)?;
    let devel_sha = sha(&devel_path)?;
    let inputs = vec![
        InputRecord {
            role: "srpm".into(),
            name: file_name(&srpm_path, &srpm),
            version: Some(format!("{}-{}", srpm.info.version, srpm.info.release)),
            sha256: srpm_sha.clone(),
            signature: Some(srpm_signature),
        },
        InputRecord {
            role: "kernel-devel".into(),
            name: file_name(&devel_path, &devel),
            version: Some(format!("{}-{}", devel.info.version, devel.info.release)),
            sha256: devel_sha.clone(),
            signature: Some(devel_signature),
        },
    ];

    let sysroot_key = KeyHasher::new(LAYOUT).str(&devel_sha).finish();
    let root = stages.run("headers", || {
        cache.get_or_create("sysroots", &sysroot_key, |staging| devel_sysroot(&devel, &req.release, staging, listener))
    })?;
    let headers = Headers::open(&root.join("usr/src/kernels").join(&req.release))?;

    let source_key = KeyHasher::new(LAYOUT).str(&srpm_sha).finish();
    let entry = stages.run("extract", || {
        cache.get_or_create("srpm-sources", &source_key, |staging| {
            let report = srpm_ceph_sources(&srpm, &staging.join("tree"), listener)?;
            let path = staging.join("prep.json");
            let json = serde_json::to_vec_pretty(&report)
                .map_err(|e| BuildError::io("encode", &path)(std::io::Error::other(e)))?;
            std::fs::write(&path, json).map_err(BuildError::io("write", &path))
        })
    })?;
    let prep_path = entry.join("prep.json");
    let prep: PrepReport =
        std::fs::read(&prep_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
            BuildError::io("read", &prep_path)(std::io::Error::other("unreadable; delete the cache entry"))
        })?;
    for p in &prep.patches {
        listener.info(&format!("%prep {}: {}", p.name, p.outcome));
    }
    Ok(PreparedRhel { headers, sysroot_key, source_tree: entry.join("tree"), source_key, inputs, prep })
}

/// With a key: the package's signature must be good (else the error). Without: its
/// signatures are listed for the report, unverified.
fn signature_status(
    rpm: &RpmPackage,
    key: Option<&RpmKeyring>,
    listener: &dyn Listener,
) -> Result<SignatureRecord, BuildError> {
    let name = file_name(rpm.path(), rpm);
    let Some(key) = key else {
        let status = rpm.unverified_signature_status();
        let ids: Vec<String> = status.signatures.iter().filter_map(|s| s.key_id.clone()).collect();
        if !ids.is_empty() {
            listener.info(&format!("{name}: signed by key {} (not verified: no --rpm-key)", ids.join(", ")));
        }
        return Ok(signature_record(status));
    };
    let status = rpm.verify_signature(key)?;
    listener.info(&format!("{name}: signature verified with {}", key.source().display()));
    Ok(signature_record(status))
}

/// The build report's record of what the RPM check found.
fn signature_record(status: SignatureStatus) -> SignatureRecord {
    SignatureRecord {
        status: status.status,
        signatures: status.signatures.into_iter().map(|s| SignerRecord { tag: s.tag, key_id: s.key_id }).collect(),
    }
}

fn unreachable_inputs(release: &str) -> Result<PathBuf, BuildError> {
    Err(BuildError::NotCatalogued { release: release.to_string(), reason: "nothing to fetch it from".into() })
}

fn sha(path: &Path) -> Result<String, BuildError> {
    krbd_fetch::hash::sha256_file(path, |_| {}).map_err(BuildError::io("read", path))
}

/// The name the package is known by: its download name, or its NVRA for cache files.
fn file_name(path: &Path, rpm: &RpmPackage) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.len() == 68 && name.ends_with(".rpm") {
        if rpm.info.is_source {
            format!("{}-{}-{}.src.rpm", rpm.info.name, rpm.info.version, rpm.info.release)
        } else {
            format!("{}.rpm", rpm.info.nvra())
        }
    } else {
        name
    }
}

/// Tries each location in order; the first that has the file wins. The downloaded file
/// must pass its own digests; one that does not is forgotten so it is fetched again.
fn fetch_first(
    cache: &Cache,
    release: &str,
    what: &'static str,
    locations: &[Location],
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    let mut tried = Vec::new();
    let mut first_failure: Option<FetchError> = None;
    for loc in locations {
        match http::fetch(cache, &loc.url, None, listener) {
            Ok(FetchOutcome::Fetched { path, cached, .. }) => {
                if !cached {
                    let checked = RpmPackage::open(&path).and_then(|r| r.verify());
                    if let Err(e) = checked {
                        http::forget(cache, &loc.url);
                        return Err(e.into());
                    }
                }
                return Ok((path, cached));
            }
            Ok(FetchOutcome::NotFound) => tried.push(format!("{} (not found)", loc.url)),
            Err(e) => {
                tried.push(format!("{} ({e})", loc.url));
                first_failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_failure {
        listener.warning(&format!("tried: {}", tried.join("; ")));
        return Err(e.into());
    }
    Err(BuildError::PackageNotFound { release: release.to_string(), what, tried })
}

/// Lays `usr/src/kernels/<release>/` of a kernel-devel RPM out below `staging`.
pub fn devel_sysroot(
    devel: &RpmPackage,
    release: &str,
    staging: &Path,
    listener: &dyn Listener,
) -> Result<(), BuildError> {
    let prefix = format!("/usr/src/kernels/{release}");
    if !devel.info.files.iter().any(|f| f.path == prefix)
        && !devel.info.files.iter().any(|f| f.path.starts_with(&format!("{prefix}/")))
    {
        let held: Vec<String> = devel
            .info
            .files
            .iter()
            .filter_map(|f| f.path.strip_prefix("/usr/src/kernels/"))
            .filter_map(|r| r.split('/').next())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        return Err(BuildError::BadHeaders {
            headers: devel.path().to_path_buf(),
            reason: format!(
                "{} has no {prefix}; it holds the headers of {}. Is it the kernel-devel of another release?",
                devel.info.nvra(),
                if held.is_empty() { "no kernel".to_string() } else { held.join(", ") }
            ),
        });
    }
    let keep = Path::new("usr/src/kernels").join(release);
    listener.task_start("lay out kernel-devel", Some(devel.info.files.len() as u64), krbd_progress::Unit::Files);
    let result = devel.extract(staging, |rel| rel.starts_with(&keep).then(|| rel.to_path_buf()));
    listener.task_finish();
    result?;
    Ok(())
}

/// Streams the source RPM once: the kernel tarball's Ceph files go to `tree`, the spec and
/// the patch files are kept; then what `%prep` applies is applied to the Ceph files.
pub fn srpm_ceph_sources(srpm: &RpmPackage, tree: &Path, listener: &dyn Listener) -> Result<PrepReport, BuildError> {
    let bad = |reason: String| BuildError::BadSourceRpm { package: srpm.path().to_path_buf(), reason };
    let mut spec: Option<(String, String)> = None;
    let mut tarball: Option<String> = None;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut extract_error: Option<BuildError> = None;
    srpm.walk_payload(|entry| {
        let name = entry.path.to_string_lossy().into_owned();
        let size = entry.header.size;
        if name.ends_with(".spec") && size <= 16 << 20 {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| rpm_corrupt(srpm, &name, e))?;
            spec = Some((name, text));
        } else if is_kernel_tarball(&name) {
            if tarball.is_some() {
                extract_error = Some(bad(format!(
                    "it holds two kernel tarballs ({} and {name})",
                    tarball.clone().unwrap_or_default()
                )));
                return Ok(false);
            }
            let compression = Compression::from_name(&name).unwrap_or(Compression::None);
            let label = srpm.path().join(&name);
            if let Err(e) = source::extract_ceph_sources(&label, entry, compression, Some(size), tree, listener) {
                extract_error = Some(e);
                return Ok(false);
            }
            tarball = Some(name);
        } else if (name.ends_with(".patch") || name.ends_with(".diff")) && size <= MAX_PATCH {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| rpm_corrupt(srpm, &name, e))?;
            files.insert(name, bytes);
        }
        Ok(true)
    })?;
    if let Some(e) = extract_error {
        return Err(e);
    }
    let tarball =
        tarball.ok_or_else(|| bad("no kernel tarball (linux-*.tar.*) in it; is it a kernel source RPM?".into()))?;
    let (spec_name, spec_text) = spec.ok_or_else(|| bad("no .spec file in it".into()))?;
    let steps = spec::prep_patches(&spec_text)
        .map_err(|e| bad(format!("{spec_name}: {e}; krbd-forge refuses rather than guess what %prep does")))?;
    let (series, outcomes) = prep_series(srpm, &steps, &files)?;
    let series_report = match &series {
        Some(s) => Some(apply_series(s, tree)?),
        None => None,
    };
    Ok(PrepReport {
        srpm: format!("{}-{}-{}.src.rpm", srpm.info.name, srpm.info.version, srpm.info.release),
        spec: spec_name,
        tarball,
        patches: outcomes,
        series: series_report,
    })
}

fn rpm_corrupt(srpm: &RpmPackage, name: &str, e: std::io::Error) -> FetchError {
    FetchError::CorruptRpm { path: srpm.path().to_path_buf(), part: "payload", reason: format!("{name}: {e}") }
}

/// `linux-3.10.0-957.el7.tar.xz` and the like.
fn is_kernel_tarball(name: &str) -> bool {
    name.starts_with("linux-") && !name.contains('/') && Compression::from_name(name).is_some() && name.contains(".tar")
}

/// The %prep patches as a series restricted to the Ceph files, and what became of each.
fn prep_series(
    srpm: &RpmPackage,
    steps: &[PrepPatch],
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(Option<Series>, Vec<PrepOutcome>), BuildError> {
    let mut outcomes = Vec::new();
    let mut patches = Vec::new();
    for step in steps {
        let outcome = |o: &str, ceph_files: Vec<String>| PrepOutcome {
            name: step.name.clone(),
            line: step.line,
            outcome: o.to_string(),
            ceph_files,
        };
        let Some(bytes) = files.get(&step.name) else {
            if step.optional {
                outcomes.push(outcome("missing-optional", vec![]));
                continue;
            }
            return Err(BuildError::BadSourceRpm {
                package: srpm.path().to_path_buf(),
                reason: format!("%prep line {} applies {}, which is not in the package", step.line, step.name),
            });
        };
        let text = String::from_utf8_lossy(bytes);
        if !text.lines().any(|l| l.starts_with("+++ ")) {
            outcomes.push(outcome("empty", vec![]));
            continue;
        }
        let mut parsed = PatchFile::parse(&text).map_err(|e| {
            BuildError::Series(crate::patch::SeriesError::Malformed { patch: srpm.path().join(&step.name), source: e })
        })?;
        parsed.files.retain(|f| source::is_ceph_source(Path::new(f.target())));
        if parsed.files.is_empty() {
            outcomes.push(outcome("no-ceph-files", vec![]));
            continue;
        }
        let touched = parsed.files.iter().map(|f| f.target().to_string()).collect();
        outcomes.push(outcome("applied", touched));
        patches.push(SeriesPatch {
            file_name: step.name.clone(),
            sha256: krbd_fetch::hash::sha256_bytes(bytes),
            patch: parsed,
        });
    }
    if patches.is_empty() {
        return Ok((None, outcomes));
    }
    Ok((
        Some(Series { name: format!("%prep of {}", srpm.info.nvra()), dir: srpm.path().to_path_buf(), patches }),
        outcomes,
    ))
}
