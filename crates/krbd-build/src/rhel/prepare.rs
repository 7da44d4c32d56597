//! An RHEL-family target made ready for the pipeline: the source RPM's Ceph files (after
//! what `%prep` applies to them) and the kernel-devel RPM laid out as a headers sysroot.

use super::catalog::{self, Distro, Location, MirrorUrl, Mirrors, Resolved};
use super::spec::{self, PrepPatch};
use crate::error::{BuildError, MirrorFailure};
use crate::json_file;
use crate::patch::series::SeriesPatch;
use crate::patch::{apply_series, PatchFile, Series, SeriesReport};
use crate::report::{InputRecord, SignatureRecord, SignerRecord};
use crate::source;
use crate::stages::Stages;
use crate::sysroot::Headers;
use crate::target::KernelRelease;
use krbd_fetch::cache::Cache;
use krbd_fetch::hash::KeyHasher;
use krbd_fetch::http::{self, FetchOutcome};
use krbd_fetch::rpm::{RpmKeyring, RpmPackage, SignatureStatus};
use krbd_fetch::FetchError;
use krbd_formats::compress::Compression;
use krbd_progress::Listener;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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
    pub release: KernelRelease,
    pub mirrors: Mirrors,
    /// Only this distro's vaults.
    pub distro: Option<Distro>,
    /// Local files instead of the vaults.
    pub srpm: Option<PathBuf>,
    pub devel_rpm: Option<PathBuf>,
    /// When given, every RPM used must carry a good signature by one of its keys.
    pub rpm_key: Option<std::sync::Arc<RpmKeyring>>,
    /// YUM repositories (base URLs, the folder holding `repodata/`) whose primary data is
    /// searched for the source RPM and the kernel-devel RPM before the vaults: a kernel
    /// the distribution ships today is in its repositories long before a vault has it.
    pub repos: Vec<MirrorUrl>,
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
    let release = req.release.as_str();
    let resolved = stages.run("resolve", || Ok((resolve_for(req, listener)?, false)))?;
    if let Some(r) = &resolved {
        listener.info(&format!("target {release} (el{}, {})", r.release.el, r.os_minor));
    }
    let (srpm_path, devel_path) = stages.run("fetch", || fetch_rpms(cache, req, resolved.as_ref(), listener))?;
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
    let srpm_input = rpm_input("srpm", &srpm_path, &srpm, srpm_signature)?;
    let devel_input = rpm_input("kernel-devel", &devel_path, &devel, devel_signature)?;

    let sysroot_key = KeyHasher::new(LAYOUT).str(&devel_input.sha256).finish();
    let root = stages.run("headers", || {
        cache.get_or_create("sysroots", &sysroot_key, |staging| devel_sysroot(&devel, release, staging, listener))
    })?;
    let headers = Headers::open(&root.join("usr/src/kernels").join(release))?;

    let (source_tree, source_key, prep) =
        stages.run("extract", || cached_srpm_sources(cache, &srpm, &srpm_input.sha256, listener))?;
    let inputs = vec![srpm_input, devel_input];
    Ok(PreparedRhel { headers, sysroot_key, source_tree, source_key, inputs, prep })
}

/// The Ceph sources of a source RPM after what its `%prep` applies to them, extracted once
/// into the cache by the package's sha256: the tree, the key builds from it are cached
/// under, what `%prep` did, and whether it was already there.
fn cached_srpm_sources(
    cache: &Cache,
    srpm: &RpmPackage,
    srpm_sha256: &str,
    listener: &dyn Listener,
) -> Result<((PathBuf, String, PrepReport), bool), BuildError> {
    let source_key = KeyHasher::new(LAYOUT).str(srpm_sha256).finish();
    let (entry, hit) = cache.get_or_create("srpm-sources", &source_key, |staging| {
        let report = srpm_ceph_sources(srpm, &staging.join("tree"), listener)?;
        json_file::write(&staging.join("prep.json"), &report)
    })?;
    let prep: PrepReport = json_file::read(&entry.join("prep.json"))?;
    for p in &prep.patches {
        listener.info(&format!("%prep {}: {}", p.name, p.outcome));
    }
    Ok(((entry.join("tree"), source_key, prep), hit))
}

/// The source RPM of `release` from the first catalogued place that has it (nothing else:
/// no kernel-devel), its Ceph sources after `%prep`, and the package's file name. What
/// `patch check` needs of an RHEL-family release.
pub fn source_rpm_sources(
    cache: &Cache,
    release: &KernelRelease,
    mirrors: &Mirrors,
    distro: Option<Distro>,
    listener: &dyn Listener,
) -> Result<(PathBuf, PrepReport), BuildError> {
    let resolved = catalog::resolve(release.as_str(), mirrors, distro)?;
    listener.info(&format!("target {release} (el{}, {})", resolved.release.el, resolved.os_minor));
    let (path, _) = fetch_first(cache, release.as_str(), "the source RPM", &resolved.srpm, listener)?;
    let srpm = RpmPackage::open(&path)?;
    if !srpm.info.is_source {
        return Err(BuildError::BadSourceRpm {
            package: path.clone(),
            reason: format!("{} is a binary package, not the kernel's .src.rpm", srpm.info.nvra()),
        });
    }
    let sha256 = krbd_formats::digest::sha256_file(&path, |_| {}).map_err(BuildError::io("read", &path))?;
    let ((tree, _, prep), _) = cached_srpm_sources(cache, &srpm, &sha256, listener)?;
    Ok((tree, prep))
}

/// The source RPM and the kernel-devel RPM: each the given file (checked against its own
/// digests), or else the one the repositories list, or else the first of its catalogued
/// locations that has it. `true` when nothing was downloaded.
fn fetch_rpms(
    cache: &Cache,
    req: &RhelRequest,
    resolved: Option<&Resolved>,
    listener: &dyn Listener,
) -> Result<((PathBuf, PathBuf), bool), BuildError> {
    let [listed_srpm, listed_devel] = repo_packages(cache, req, listener)?;
    let srpm_at = resolved.map(|r| r.srpm.as_slice());
    let devel_at = resolved.map(|r| r.devel_rpm.as_slice());
    let (srpm, a) = fetch_one(cache, req, req.srpm.as_ref(), "the source RPM", listed_srpm, srpm_at, listener)?;
    let (devel, b) =
        fetch_one(cache, req, req.devel_rpm.as_ref(), "the kernel-devel RPM", listed_devel, devel_at, listener)?;
    Ok(((srpm, devel), a && b))
}

/// One package: the given file, else where a repository lists it, else the first catalogued
/// location that has it; and whether nothing was downloaded.
fn fetch_one(
    cache: &Cache,
    req: &RhelRequest,
    given: Option<&PathBuf>,
    what: &'static str,
    listed: Option<(String, String)>,
    locations: Option<&[Location]>,
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    if let Some(path) = given {
        RpmPackage::open(path)?.verify()?;
        return Ok((path.clone(), true));
    }
    let mut tried = Vec::new();
    if let Some((url, sha256)) = &listed {
        if let Some(found) = fetch_listed(cache, url, sha256, listener)? {
            return Ok(found);
        }
        tried.push(format!("{url} (listed in the repository's primary data, not there)"));
    }
    match locations {
        Some(locations) => fetch_first(cache, req.release.as_str(), what, locations, listener),
        None if !req.repos.is_empty() => {
            let repos: Vec<&str> = req.repos.iter().map(MirrorUrl::as_str).collect();
            if listed.is_none() {
                tried.push(format!("{} (the repositories list no such package)", repos.join(", ")));
            }
            Err(BuildError::PackageNotFound { release: req.release.to_string(), what, tried })
        }
        None => Err(BuildError::NotCatalogued {
            release: req.release.to_string(),
            reason: "nothing to fetch it from".into(),
        }),
    }
}

/// The catalog's places for the request's packages; `None` when both are given as files,
/// or when the catalog does not know the release but repositories are given.
fn resolve_for(req: &RhelRequest, listener: &dyn Listener) -> Result<Option<Resolved>, BuildError> {
    if req.srpm.is_some() && req.devel_rpm.is_some() {
        return Ok(None);
    }
    let release = req.release.as_str();
    match catalog::resolve(release, &req.mirrors, req.distro) {
        Ok(resolved) => Ok(Some(resolved)),
        // The repositories may have both packages of a release no vault is known for.
        Err(BuildError::NotCatalogued { reason, .. }) if !req.repos.is_empty() => {
            listener.info(&format!("{release}: not in the vault catalog ({reason}); only the repositories"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The headers of an RHEL-family release alone (its kernel-devel RPM laid out in the
/// cache, as the build lays it out): what `check --kernel` needs of such a release.
pub fn rhel_headers(cache: &Cache, req: &RhelRequest, listener: &dyn Listener) -> Result<Headers, BuildError> {
    let release = req.release.as_str();
    let resolved = if req.devel_rpm.is_some() { None } else { resolve_for(req, listener)? };
    let [_, listed] = repo_packages(cache, req, listener)?;
    let at = resolved.as_ref().map(|r| r.devel_rpm.as_slice());
    let (path, _) = fetch_one(cache, req, req.devel_rpm.as_ref(), "the kernel-devel RPM", listed, at, listener)?;
    let devel = RpmPackage::open(&path)?;
    let sha256 = krbd_formats::digest::sha256_file(&path, |_| {}).map_err(BuildError::io("read", &path))?;
    let key = KeyHasher::new(LAYOUT).str(&sha256).finish();
    let (root, _) =
        cache.get_or_create("sysroots", &key, |staging| devel_sysroot(&devel, release, staging, listener))?;
    Headers::open(&root.join("usr/src/kernels").join(release))
}

/// The URL and sha256 of the release's source RPM and of its kernel-devel RPM in the first
/// of the request's repositories that lists each.
fn repo_packages(
    cache: &Cache,
    req: &RhelRequest,
    listener: &dyn Listener,
) -> Result<[Option<(String, String)>; 2], BuildError> {
    let mut found: [Option<(String, String)>; 2] = [None, None];
    if req.repos.is_empty() || (req.srpm.is_some() && req.devel_rpm.is_some()) {
        return Ok(found);
    }
    let release = catalog::RhelRelease::parse(req.release.as_str())?;
    let version_release = format!("{}-{}", release.version, release.rpm_release);
    for repo in &req.repos {
        let packages =
            krbd_fetch::repodata::packages(cache, repo.as_str(), &["kernel", "kernel-devel"], None, listener)?;
        for p in packages {
            let evr_matches = format!("{}-{}", p.version, p.release) == version_release;
            let slot = match (p.name.as_str(), p.arch.as_str()) {
                ("kernel", "src") if evr_matches => 0,
                ("kernel-devel", arch) if evr_matches && arch == release.arch => 1,
                _ => continue,
            };
            if found[slot].is_none() {
                found[slot] = Some((p.url(repo.as_str()), p.sha256));
            }
        }
    }
    Ok(found)
}

/// A package a repository lists, fetched and checked against the sha256 listed for it;
/// `None` when the server does not have it.
fn fetch_listed(
    cache: &Cache,
    url: &str,
    sha256: &str,
    listener: &dyn Listener,
) -> Result<Option<(PathBuf, bool)>, BuildError> {
    match http::fetch(cache, url, Some(sha256), listener)? {
        FetchOutcome::Fetched { path, cached, .. } => {
            if !cached {
                if let Err(e) = RpmPackage::open(&path).and_then(|r| r.verify()) {
                    http::forget(cache, url);
                    return Err(e.into());
                }
            }
            Ok(Some((path, cached)))
        }
        FetchOutcome::NotFound => Ok(None),
    }
}

/// The report's record of one RPM used.
fn rpm_input(role: &str, path: &Path, rpm: &RpmPackage, signature: SignatureRecord) -> Result<InputRecord, BuildError> {
    Ok(InputRecord {
        role: role.into(),
        name: file_name(path, rpm),
        version: Some(format!("{}-{}", rpm.info.version, rpm.info.release)),
        relation: None,
        sha256: krbd_formats::digest::sha256_file(path, |_| {}).map_err(BuildError::io("read", path))?,
        signature: Some(signature),
    })
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
/// must pass its own digests; one that does not is forgotten so it is fetched again. When
/// none has it and some could not be asked, each failing mirror is named once.
fn fetch_first(
    cache: &Cache,
    release: &str,
    what: &'static str,
    locations: &[Location],
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    let mut not_found = Vec::new();
    let mut failed: Vec<MirrorFailure> = Vec::new();
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
            Ok(FetchOutcome::NotFound) => not_found.push(loc.url.clone()),
            Err(FetchError::DownloadFailed { url, detail }) => {
                let origin = url_origin(&url).to_string();
                match failed.iter_mut().find(|f| f.origin == origin && f.detail == detail) {
                    Some(f) => f.urls.push(url),
                    None => failed.push(MirrorFailure { site: loc.distro.name(), origin, detail, urls: vec![url] }),
                }
            }
            // The cache, not the mirror: no other location would fare better.
            Err(e) => return Err(e.into()),
        }
    }
    if !failed.is_empty() {
        return Err(BuildError::MirrorFailed { release: release.to_string(), what, failed, not_found });
    }
    let tried = not_found.into_iter().map(|url| format!("{url} (not found)")).collect();
    Err(BuildError::PackageNotFound { release: release.to_string(), what, tried })
}

/// `http://127.0.0.1:8080` of `http://127.0.0.1:8080/rocky/9.2/...`.
fn url_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |i| &url[..after_scheme + i])
}

/// The releases whose headers a kernel-devel RPM holds (`/usr/src/kernels/<release>/`).
fn kernels_held(devel: &RpmPackage) -> BTreeSet<String> {
    devel
        .info
        .files
        .iter()
        .filter_map(|f| f.path.strip_prefix("/usr/src/kernels/"))
        .filter_map(|r| r.split('/').next())
        .map(String::from)
        .collect()
}

/// The release of the headers a kernel-devel RPM holds, when it holds one release's.
pub fn devel_rpm_release(path: &Path) -> Result<KernelRelease, BuildError> {
    if !path.is_file() {
        return Err(BuildError::InputNotFound { path: path.to_path_buf() });
    }
    let held = kernels_held(&RpmPackage::open(path)?);
    match held.first() {
        Some(release) if held.len() == 1 => KernelRelease::parse(release),
        _ => Err(BuildError::BadHeaders {
            headers: path.to_path_buf(),
            reason: format!(
                "it holds headers for {} releases under /usr/src/kernels; name one with --kernel",
                held.len()
            ),
        }),
    }
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
        let held: Vec<String> = kernels_held(devel).into_iter().collect();
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
            sha256: krbd_formats::digest::sha256_hex(bytes),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_is_named_by_its_origin() {
        assert_eq!(url_origin("http://127.0.0.1:8080/rocky/9.2/BaseOS/x.rpm"), "http://127.0.0.1:8080");
        assert_eq!(url_origin("https://vault.centos.org/7.2.1511/os/x.rpm"), "https://vault.centos.org");
        assert_eq!(url_origin("https://vault.centos.org"), "https://vault.centos.org");
    }

    #[test]
    fn a_failing_mirror_is_said_once_for_all_its_urls() {
        let e = BuildError::MirrorFailed {
            release: "3.10.0-327.el7.x86_64".into(),
            what: "the source RPM",
            failed: vec![MirrorFailure {
                site: "centos",
                origin: "http://127.0.0.1:9".into(),
                detail: "io: Connection refused (os error 111)".into(),
                urls: vec!["http://127.0.0.1:9/a.rpm".into(), "http://127.0.0.1:9/b.rpm".into()],
            }],
            not_found: vec!["http://127.0.0.1:8/c.rpm".into()],
        };
        let text = e.to_string();
        assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
        assert!(text.contains("the centos mirror http://127.0.0.1:9 failed"), "{text}");
        assert!(
            text.contains("\n    http://127.0.0.1:9/b.rpm") && text.contains("not found: http://127.0.0.1:8/c.rpm")
        );
    }
}
