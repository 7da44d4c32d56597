//! Which Debian packages make up a kernel release.

use crate::error::BuildError;
use krbd_fetch::apt::{self, AptPackage};
use krbd_fetch::relation::Relation;
use krbd_fetch::version;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

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
    /// The headers' `Depends` relation each package was chosen to satisfy, by role
    /// (`headers-common`, `kbuild`), as Debian wrote it. The image and the source carry
    /// the headers' own version and are looked up exactly.
    #[serde(default)]
    pub relations: BTreeMap<String, String>,
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

/// What the headers package of a release leads to: the relations apt follows when it
/// installs the headers, and the exact image and source of the same Debian version.
struct Wanted {
    release: KernelRelease,
    headers: AptPackage,
    common: Relation,
    kbuild: Relation,
    image: String,
    source: String,
}

impl Wanted {
    fn of(release: &KernelRelease, headers: AptPackage) -> Result<Wanted, BuildError> {
        let relations = headers.depends()?;
        let find = |what: &'static str, wanted: &dyn Fn(&str) -> bool| {
            relations
                .iter()
                .find(|r| r.names(wanted))
                .cloned()
                .ok_or_else(|| BuildError::NoRelation { release: release.to_string(), what })
        };
        let common = find("linux-headers-*-common", &|n| n.starts_with("linux-headers-") && n.ends_with("-common"))?;
        let kbuild = find("linux-kbuild-*", &|n| n.starts_with("linux-kbuild-"))?;
        Ok(Wanted {
            release: release.clone(),
            headers,
            common,
            kbuild,
            image: format!("linux-image-{release}"),
            source: format!("linux-source-{}", release.major_minor()),
        })
    }

    /// Every package name whose versions the choice looks at.
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        let related = self.common.alternatives.iter().chain(&self.kbuild.alternatives).map(|a| a.name.clone());
        related.chain([self.image.clone(), self.source.clone()])
    }

    /// The target, choosing among `known` (every version apt holds of [`Wanted::names`])
    /// what apt would: the highest version that satisfies each relation.
    fn choose(self, known: &[AptPackage], with_source: bool) -> Result<DebianTarget, BuildError> {
        let release = self.release.to_string();
        let satisfy = |relation: &Relation| {
            relation.choose(known).cloned().ok_or_else(|| BuildError::Unsatisfiable {
                release: release.clone(),
                relation: relation.to_string(),
                known: known.iter().filter(|p| relation.names(|n| n == p.name)).map(AptPackage::spec).collect(),
            })
        };
        let headers_common = satisfy(&self.common)?;
        let kbuild = satisfy(&self.kbuild)?;
        let v = &self.headers.version;
        let exact = |name: &str| known.iter().find(|p| p.name == name && &p.version == v).cloned();
        let image = exact(&self.image).ok_or_else(|| {
            BuildError::Fetch(krbd_fetch::FetchError::UnknownPackage {
                spec: format!("{}={v}", self.image),
                hint: format!("; it is the kernel of {release}"),
            })
        })?;
        let source = match with_source {
            true => Some(exact(&self.source).ok_or_else(|| BuildError::SourceUnavailable {
                release: release.clone(),
                package: self.source.clone(),
                version: v.clone(),
            })?),
            false => None,
        };
        let relations = BTreeMap::from([
            ("headers-common".to_string(), self.common.to_string()),
            ("kbuild".to_string(), self.kbuild.to_string()),
        ]);
        Ok(DebianTarget {
            release: self.release,
            headers: self.headers,
            headers_common,
            kbuild,
            image,
            source,
            relations,
        })
    }
}

/// Resolves `release` through apt's index, following the headers package's relations as
/// apt does. `with_source`: also the matching linux-source.
pub fn resolve(release: &KernelRelease, with_source: bool) -> Result<DebianTarget, BuildError> {
    apt::require_lists()?;
    let headers = apt::show(&headers_name(release.as_str()), None).map_err(|_| BuildError::UnknownRelease {
        release: release.to_string(),
        near: near_releases(release.as_str()).unwrap_or_default(),
    })?;
    let wanted = Wanted::of(release, headers)?;
    // One apt-cache call for the rest: every call parses all of apt's lists.
    let known = apt::show_all_versions(&wanted.names().collect::<Vec<_>>())?;
    wanted.choose(&known, with_source)
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
    let key = krbd_fetch::hash::KeyHasher::new("resolve-v2")
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

/// A release apt offers headers for, for `krbd-forge targets`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Available {
    pub release: KernelRelease,
    pub version: String,
    /// Whether apt also offers the exact linux-source for it.
    pub source_available: bool,
    /// Whether `build` can resolve every package it needs (headers, their relations, the
    /// image, the source) from apt's index as it is.
    pub buildable: bool,
    /// Why not, when it is not buildable: the resolution's error, with what to do.
    pub why: Option<String>,
    /// The kbuild package chosen (`name=version`) and the relation it satisfies.
    pub kbuild: Option<String>,
    pub kbuild_relation: Option<String>,
}

/// Every generic `-amd64` release apt offers headers for, newest first, each resolved as
/// `build` would resolve it. Three apt-cache calls in all, however many releases.
pub fn available() -> Result<Vec<Available>, BuildError> {
    apt::require_lists()?;
    let names = apt::search_names("^linux-headers-[0-9].*-amd64$")?;
    let mut wanted = Vec::new();
    for p in apt::show_many(&names)? {
        let Some(rel) = p.name.strip_prefix("linux-headers-") else { continue };
        if !is_concrete_generic(rel) {
            continue;
        }
        let Ok(release) = KernelRelease::parse(rel) else { continue };
        wanted.push((release.clone(), p.version.clone(), Wanted::of(&release, p)));
    }
    let all_names: BTreeSet<String> =
        wanted.iter().filter_map(|(_, _, w)| w.as_ref().ok()).flat_map(Wanted::names).collect();
    let known = apt::show_all_versions(&all_names.into_iter().collect::<Vec<_>>())?;
    let mut out: Vec<Available> = wanted
        .into_iter()
        .map(|(release, version, w)| {
            let source = format!("linux-source-{}", release.major_minor());
            let source_available = known.iter().any(|p| p.name == source && p.version == version);
            let resolved = w.and_then(|w| w.choose(&known, true));
            Available {
                release,
                version,
                source_available,
                buildable: resolved.is_ok(),
                kbuild: resolved.as_ref().ok().map(|t| t.kbuild.spec()),
                kbuild_relation: resolved.as_ref().ok().and_then(|t| t.relations.get("kbuild").cloned()),
                why: resolved.err().map(|e| e.to_string()),
            }
        })
        .collect();
    out.sort_by(newer_first);
    Ok(out)
}

fn newer_first(a: &Available, b: &Available) -> Ordering {
    let (ma, mb) = (a.release.major_minor(), b.release.major_minor());
    version::compare(&mb, &ma)
        .then_with(|| version::compare(&b.version, &a.version))
        .then_with(|| version::compare(b.release.as_str(), a.release.as_str()))
}

/// The default target: the newest buildable `-amd64` release apt offers for the newest
/// linux-source branch.
pub fn default_release() -> Result<KernelRelease, BuildError> {
    default_target().map(|a| a.release)
}

/// The default target as `targets` lists it, with its Debian version (what the tests that
/// need one real kernel's packages use, so that none names a release the archive may drop).
pub fn default_target() -> Result<Available, BuildError> {
    available()?
        .into_iter()
        .find(|a| a.buildable)
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

/// Only the linux-source package of `release` (what `patch check` needs): the headers
/// package gives the Debian version, and apt must offer linux-source at exactly that
/// version. Unlike [`resolve`], no kbuild, headers-common or image package is looked up,
/// so a release whose build packages apt cannot satisfy can still be checked.
pub fn resolve_source(release: &KernelRelease) -> Result<AptPackage, BuildError> {
    apt::require_lists()?;
    let headers = apt::show(&headers_name(release.as_str()), None).map_err(|_| BuildError::UnknownRelease {
        release: release.to_string(),
        near: near_releases(release.as_str()).unwrap_or_default(),
    })?;
    let source_name = format!("linux-source-{}", release.major_minor());
    apt::show(&source_name, Some(&headers.version)).map_err(|_| BuildError::SourceUnavailable {
        release: release.to_string(),
        package: source_name.clone(),
        version: headers.version.clone(),
    })
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

    fn pkg(name: &str, version: &str, depends: &str) -> AptPackage {
        AptPackage {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            sha256: format!("sha-of-{name}={version}"),
            size: 1,
            depends: depends.into(),
            source: "linux".into(),
        }
    }

    /// The headers of the oldest 6.1 ABI as Debian wrote them, and the archive apt indexes
    /// once newer point releases replaced its kbuild.
    fn oldest_six_one(kbuild_relation: &str) -> (KernelRelease, AptPackage, Vec<AptPackage>) {
        let release = KernelRelease::parse("6.1.0-47-amd64").unwrap();
        let depends =
            format!("linux-headers-6.1.0-47-common (= 6.1.170-3), {kbuild_relation}, linux-compiler-gcc-12-x86");
        let headers = pkg("linux-headers-6.1.0-47-amd64", "6.1.170-3", &depends);
        let known = vec![
            pkg("linux-headers-6.1.0-47-common", "6.1.170-3", ""),
            pkg("linux-kbuild-6.1", "6.1.176-1", ""),
            pkg("linux-kbuild-6.1", "6.1.192-3", ""),
            pkg("linux-image-6.1.0-47-amd64", "6.1.170-3", ""),
            pkg("linux-source-6.1", "6.1.170-3", ""),
            pkg("linux-source-6.1", "6.1.192-3", ""),
        ];
        (release, headers, known)
    }

    #[test]
    fn relations_are_followed_and_recorded_exact_ones_stay_exact() {
        let (release, headers, known) = oldest_six_one("linux-kbuild-6.1 (>= 6.1.170-3)");
        let t = Wanted::of(&release, headers).unwrap().choose(&known, true).unwrap();
        assert_eq!(t.kbuild.spec(), "linux-kbuild-6.1=6.1.192-3", "the highest kbuild satisfying >=");
        assert_eq!(t.relations["kbuild"], "linux-kbuild-6.1 (>= 6.1.170-3)");
        assert_eq!(t.headers_common.spec(), "linux-headers-6.1.0-47-common=6.1.170-3");
        assert_eq!(t.relations["headers-common"], "linux-headers-6.1.0-47-common (= 6.1.170-3)");
        // The image and the source are the headers' own version, not the newest.
        assert_eq!(t.image.spec(), "linux-image-6.1.0-47-amd64=6.1.170-3");
        assert_eq!(t.source.as_ref().map(AptPackage::spec).as_deref(), Some("linux-source-6.1=6.1.170-3"));

        let (release, headers, known) = oldest_six_one("linux-kbuild-6.1 (<< 6.1.192-3)");
        let t = Wanted::of(&release, headers).unwrap().choose(&known, false).unwrap();
        assert_eq!(t.kbuild.spec(), "linux-kbuild-6.1=6.1.176-1");
        assert!(t.source.is_none());
    }

    #[test]
    fn an_unsatisfiable_relation_names_itself_and_what_apt_knows() {
        let (release, headers, known) = oldest_six_one("linux-kbuild-6.1 (= 6.1.170-3)");
        let e = Wanted::of(&release, headers).unwrap().choose(&known, true).unwrap_err();
        match &e {
            BuildError::Unsatisfiable { relation, known, .. } => {
                assert_eq!(relation, "linux-kbuild-6.1 (= 6.1.170-3)");
                assert_eq!(known, &["linux-kbuild-6.1=6.1.176-1", "linux-kbuild-6.1=6.1.192-3"]);
            }
            other => panic!("expected Unsatisfiable, got {other:?}"),
        }
        assert!(e.to_string().contains("krbd-forge targets"), "{e}");

        // No kbuild relation at all, and an image apt does not have.
        let (release, headers, _) = oldest_six_one("gcc-12");
        assert!(matches!(Wanted::of(&release, headers), Err(BuildError::NoRelation { what: "linux-kbuild-*", .. })));
        let (release, headers, mut known) = oldest_six_one("linux-kbuild-6.1");
        known.retain(|p| !p.name.starts_with("linux-image-"));
        let e = Wanted::of(&release, headers).unwrap().choose(&known, true).unwrap_err();
        assert!(e.to_string().contains("linux-image-6.1.0-47-amd64=6.1.170-3"), "{e}");
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
