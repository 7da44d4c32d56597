//! Which Debian packages make up a kernel release.

use crate::error::BuildError;
use krbd_fetch::apt::{self, AptPackage};
use krbd_fetch::version;
use serde::Serialize;
use std::cmp::Ordering;

/// A kernel release as `uname -r` prints it (`6.1.0-56-amd64`, `6.12.117+deb12-amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String")]
pub struct KernelRelease(String);

impl KernelRelease {
    pub fn parse(s: &str) -> Result<KernelRelease, BuildError> {
        let bad = |reason: &str| BuildError::BadRelease { release: s.to_string(), reason: reason.to_string() };
        if s.is_empty() || s.len() > 64 {
            return Err(bad("expected something like 6.1.0-56-amd64"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c)) {
            return Err(bad("only letters, digits and . _ + - ~ may appear"));
        }
        let mut nums = s.split(['.', '-', '+']);
        let major = nums.next().and_then(|n| n.parse::<u32>().ok());
        let minor = nums.next().and_then(|n| n.parse::<u32>().ok());
        if major.is_none() || minor.is_none() {
            return Err(bad("it must start with the version, like 6.1 or 3.10"));
        }
        Ok(KernelRelease(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `6.12` of `6.12.117+deb12-amd64`: names the `linux-source-*` package.
    pub fn major_minor(&self) -> String {
        let mut it = self.0.split(['.', '-', '+']);
        format!("{}.{}", it.next().unwrap_or(""), it.next().unwrap_or(""))
    }
}

impl std::str::FromStr for KernelRelease {
    type Err = BuildError;
    fn from_str(s: &str) -> Result<KernelRelease, BuildError> {
        KernelRelease::parse(s)
    }
}

impl TryFrom<String> for KernelRelease {
    type Error = BuildError;
    fn try_from(s: String) -> Result<Self, BuildError> {
        KernelRelease::parse(&s)
    }
}

impl std::fmt::Display for KernelRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exact packages of one Debian kernel build.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DebianTarget {
    pub release: KernelRelease,
    pub headers: AptPackage,
    pub headers_common: AptPackage,
    pub kbuild: AptPackage,
    pub image: AptPackage,
    /// `None` when the source comes from elsewhere (`--source-tarball`).
    pub source: Option<AptPackage>,
}

impl DebianTarget {
    /// The headers packages, in the order they are laid into the sysroot.
    pub fn headers_packages(&self) -> [&AptPackage; 3] {
        [&self.headers, &self.headers_common, &self.kbuild]
    }
}

fn headers_name(release: &str) -> String {
    format!("linux-headers-{release}")
}

/// Resolves `release` through apt's index. `with_source`: also the matching linux-source.
pub fn resolve(release: &KernelRelease, with_source: bool) -> Result<DebianTarget, BuildError> {
    apt::require_lists()?;
    let headers = apt::show(&headers_name(release.as_str()), None).map_err(|_| BuildError::UnknownRelease {
        release: release.to_string(),
        near: near_releases(release.as_str()).unwrap_or_default(),
    })?;
    let v = headers.version.clone();
    let deps = headers.depends_on();
    let dep = |prefix: &str, suffix: &str| {
        deps.iter()
            .find(|(n, _)| n.starts_with(prefix) && n.ends_with(suffix))
            .map(|(n, pin)| (n.clone(), pin.clone().unwrap_or_else(|| v.clone())))
    };
    let (common_name, common_v) = dep("linux-headers-", "-common")
        .ok_or_else(|| BuildError::UnknownRelease { release: release.to_string(), near: vec![] })?;
    let (kbuild_name, kbuild_v) = dep("linux-kbuild-", "")
        .ok_or_else(|| BuildError::UnknownRelease { release: release.to_string(), near: vec![] })?;
    // One apt-cache call for the rest: every call parses all of apt's lists.
    let image_name = format!("linux-image-{release}");
    let source_name = format!("linux-source-{}", release.major_minor());
    let mut specs =
        vec![format!("{common_name}={common_v}"), format!("{kbuild_name}={kbuild_v}"), format!("{image_name}={v}")];
    if with_source {
        specs.push(format!("{source_name}={v}"));
    }
    let found = apt::show_many(&specs)?;
    let pick = |name: &str, version: &str| found.iter().find(|p| p.name == name && p.version == version).cloned();
    let missing = |spec: String| {
        BuildError::Fetch(krbd_fetch::FetchError::UnknownPackage {
            spec,
            hint: format!("; the headers of {release} depend on it"),
        })
    };
    let headers_common = pick(&common_name, &common_v).ok_or_else(|| missing(format!("{common_name}={common_v}")))?;
    let kbuild = pick(&kbuild_name, &kbuild_v).ok_or_else(|| missing(format!("{kbuild_name}={kbuild_v}")))?;
    let image = pick(&image_name, &v).ok_or_else(|| missing(format!("{image_name}={v}")))?;
    let source = if with_source {
        Some(pick(&source_name, &v).ok_or_else(|| BuildError::SourceUnavailable {
            release: release.to_string(),
            package: source_name.clone(),
            version: v.clone(),
        })?)
    } else {
        None
    };
    Ok(DebianTarget { release: release.clone(), headers, headers_common, kbuild, image, source })
}

/// A fingerprint of apt's package lists: changes whenever `apt-get update` brings news.
fn lists_fingerprint() -> String {
    let mut entries: Vec<(String, u64, u128)> = std::fs::read_dir(krbd_fetch::apt_config::current().lists_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("_Packages"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
            Some((e.file_name().to_string_lossy().into_owned(), m.len(), mtime))
        })
        .collect();
    entries.sort();
    let mut k = krbd_fetch::hash::KeyHasher::new("apt-lists");
    for (name, len, mtime) in entries {
        k.str(&name).str(&len.to_string()).str(&mtime.to_string());
    }
    k.finish()
}

/// [`resolve`] (of `release`, or of the default target), remembered in the cache until
/// apt's lists change: every apt-cache call parses all the lists, which costs seconds.
pub fn resolve_cached(
    cache: &krbd_fetch::cache::Cache,
    release: Option<&KernelRelease>,
    with_source: bool,
) -> Result<DebianTarget, BuildError> {
    apt::require_lists()?;
    let key = krbd_fetch::hash::KeyHasher::new("resolve-v1")
        .str(&lists_fingerprint())
        .str(release.map(|r| r.as_str()).unwrap_or("(default)"))
        .str(if with_source { "with-source" } else { "" })
        .finish();
    let path = cache.root().join("resolved").join(format!("{key}.json"));
    if let Some(t) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<DebianTarget>(&b).ok()) {
        return Ok(t);
    }
    let release = match release {
        Some(r) => r.clone(),
        None => default_release()?,
    };
    let target = resolve(&release, with_source)?;
    if let Ok(json) = serde_json::to_vec_pretty(&target) {
        // A failure to remember only costs time next run.
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")));
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(target)
}

/// A release apt can build, for `krbd-forge targets`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Available {
    pub release: KernelRelease,
    pub version: String,
    /// Whether apt also offers the exact linux-source for it.
    pub source_available: bool,
}

/// Every generic `-amd64` release apt offers headers for, newest first.
pub fn available() -> Result<Vec<Available>, BuildError> {
    apt::require_lists()?;
    let names = apt::search_names("^linux-headers-[0-9].*-amd64$")?;
    let mut out = Vec::new();
    let mut source_versions: std::collections::HashMap<String, Vec<String>> = Default::default();
    for p in apt::show_many(&names)? {
        let Some(rel) = p.name.strip_prefix("linux-headers-") else { continue };
        if !is_concrete_generic(rel) {
            continue;
        }
        let Ok(release) = KernelRelease::parse(rel) else { continue };
        let mm = release.major_minor();
        let versions = match source_versions.get(&mm) {
            Some(v) => v.clone(),
            None => {
                let v = apt::versions(&format!("linux-source-{mm}"))?;
                source_versions.insert(mm.clone(), v.clone());
                v
            }
        };
        out.push(Available { source_available: versions.contains(&p.version), version: p.version, release });
    }
    out.sort_by(newer_first);
    Ok(out)
}

fn newer_first(a: &Available, b: &Available) -> Ordering {
    let (ma, mb) = (a.release.major_minor(), b.release.major_minor());
    version::compare(&mb, &ma)
        .then_with(|| version::compare(&b.version, &a.version))
        .then_with(|| version::compare(b.release.as_str(), a.release.as_str()))
}

/// The default target: the newest `-amd64` release apt offers for the newest linux-source
/// branch, among those whose exact source apt also offers.
pub fn default_release() -> Result<KernelRelease, BuildError> {
    available()?
        .into_iter()
        .find(|a| a.source_available)
        .map(|a| a.release)
        .ok_or_else(|| BuildError::UnknownRelease { release: "(default)".into(), near: vec![] })
}

/// Up to three releases apt knows that look most like `release`.
pub fn near_releases(release: &str) -> Result<Vec<String>, BuildError> {
    let names = apt::search_names("^linux-headers-[0-9].*-amd64$")?;
    let releases: Vec<&str> =
        names.iter().filter_map(|n| n.strip_prefix("linux-headers-")).filter(|r| is_concrete_generic(r)).collect();
    Ok(rank_near(release, &releases))
}

/// A real ABI of the generic flavour: `6.1.0-56-amd64`, not the `6.12-amd64` meta package
/// nor the `-rt-`/`-cloud-` flavours.
fn is_concrete_generic(release: &str) -> bool {
    let numeric_dots = release
        .split(['-', '+'])
        .next()
        .map(|v| v.split('.').filter(|p| p.parse::<u32>().is_ok()).count())
        .unwrap_or(0);
    numeric_dots >= 3 && !release.contains("-rt-") && !release.contains("-cloud-")
}

/// Ranks candidates by edit distance to `wanted`, keeping the closest three.
pub fn rank_near(wanted: &str, candidates: &[&str]) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = candidates.iter().map(|c| (edit_distance(wanted, c), *c)).collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| version::compare(b.1, a.1)));
    scored.into_iter().take(3).map(|(_, c)| c.to_string()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_validated() {
        assert!(KernelRelease::parse("6.1.0-56-amd64").is_ok());
        assert!(KernelRelease::parse("3.10.0-957.el7.x86_64").is_ok());
        assert!(KernelRelease::parse("").is_err());
        assert!(KernelRelease::parse("../etc").is_err());
        assert!(KernelRelease::parse("latest").is_err());
        assert!(KernelRelease::parse("6.1 -amd64").is_err());
        assert_eq!(KernelRelease::parse("6.12.117+deb12-amd64").unwrap().major_minor(), "6.12");
        assert_eq!(KernelRelease::parse("6.1.0-56-amd64").unwrap().major_minor(), "6.1");
    }

    #[test]
    fn meta_and_other_flavours_are_not_targets() {
        assert!(is_concrete_generic("6.1.0-56-amd64"));
        assert!(is_concrete_generic("6.12.117+deb12-amd64"));
        assert!(!is_concrete_generic("6.12-amd64"));
        assert!(!is_concrete_generic("6.12.117+deb12-rt-amd64"));
        assert!(!is_concrete_generic("6.1.0-56-cloud-amd64"));
    }

    #[test]
    fn near_names_rank_by_similarity() {
        let c = ["6.1.0-54-amd64", "6.1.0-55-amd64", "6.1.0-56-amd64", "6.12.117+deb12-amd64"];
        let near = rank_near("6.1.0-57-amd64", &c);
        assert_eq!(near.len(), 3);
        assert!(near[..3].iter().all(|n| n.starts_with("6.1.0-5")), "{near:?}");
        assert_eq!(rank_near("6.12.118+deb12-amd64", &c)[0], "6.12.117+deb12-amd64");
    }
}
