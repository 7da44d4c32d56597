//! `patch check`: which variants of a series apply to a kernel source, and how, without
//! building anything. Each variant is tried on a scratch copy of the Ceph sources.
//!
//! A release needs only its source: Debian's linux-source package (no headers, kbuild or
//! image), or an RHEL-family kernel's source RPM from the vaults (no kernel-devel), after
//! what its `%prep` applies. For an RHEL-family release only the series' variant for that
//! release is checked, and a series without one is refused before anything is downloaded.

use crate::error::BuildError;
use crate::patch::{apply_series, HunkStatus, Series, SeriesError, SeriesReport, SeriesSource, Variant};
use crate::rhel::catalog::{self, Distro, Mirrors};
use crate::rhel::prepare;
use crate::source;
use crate::target::{self, KernelRelease};
use krbd_fetch::apt;
use krbd_fetch::cache::Cache;
use krbd_progress::Listener;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The source a series is checked against.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// An unpacked kernel tree.
    Tree(PathBuf),
    /// A kernel tarball or linux-source .deb.
    Archive(PathBuf),
    /// A Debian release: its linux-source through apt.
    Release(KernelRelease),
    /// An RHEL-family release: its source RPM through the catalog, from these vaults.
    Rhel { release: KernelRelease, mirrors: Mirrors, distro: Option<Distro> },
}

impl SourceSpec {
    /// What a `--source` argument names: an existing folder is a tree, an existing file
    /// an archive, and anything else a release (RHEL family, fetched from `mirrors`, or
    /// Debian). An argument that can only be a path (it has a `/`, which no release has,
    /// or an archive's file extension) and is not there is [`BuildError::InputNotFound`],
    /// not a malformed release.
    pub fn from_arg(arg: &str, mirrors: &Mirrors, distro: Option<Distro>) -> Result<SourceSpec, BuildError> {
        let path = Path::new(arg);
        if path.is_dir() {
            return Ok(SourceSpec::Tree(path.to_path_buf()));
        }
        if path.is_file() {
            return Ok(SourceSpec::Archive(path.to_path_buf()));
        }
        const ARCHIVE_ENDINGS: [&str; 6] = [".tar", ".tar.xz", ".tar.gz", ".tgz", ".tar.zst", ".deb"];
        if arg.contains('/') || ARCHIVE_ENDINGS.iter().any(|ending| arg.ends_with(ending)) {
            return Err(BuildError::InputNotFound { path: path.to_path_buf() });
        }
        let release = KernelRelease::parse(arg)?;
        if catalog::is_rhel_release(arg) {
            return Ok(SourceSpec::Rhel { release, mirrors: mirrors.clone(), distro });
        }
        Ok(SourceSpec::Release(release))
    }
}

/// The variants of `series` to check against `spec`: the one for the release of an
/// RHEL-family source (an error when there is none), every variant otherwise. Decided
/// before anything is fetched.
pub fn variants_to_check(
    series: &SeriesSource,
    spec: &SourceSpec,
) -> Result<Vec<(Series, Option<Variant>)>, BuildError> {
    match spec {
        SourceSpec::Rhel { release, .. } => Ok(vec![series.select(release.as_str())?]),
        _ => Ok(series.all()?),
    }
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
            let sha = krbd_formats::digest::sha256_file(path, |_| {}).map_err(BuildError::io("read", path))?;
            let (dir, _) = source::cached_subset(cache, path, &sha, listener)?;
            Ok((dir, path.display().to_string()))
        }
        SourceSpec::Release(release) => {
            let src = target::resolve_source(release)?;
            let (deb, _) = apt::fetch(cache, &src, listener)?;
            let (dir, _) = source::cached_subset(cache, &deb, &src.sha256, listener)?;
            Ok((dir, format!("{} {}", src.name, src.version)))
        }
        SourceSpec::Rhel { release, mirrors, distro } => {
            let (dir, prep) = prepare::source_rpm_sources(cache, release, mirrors, *distro, listener)?;
            let applied = prep.patches.iter().filter(|p| p.outcome == "applied").count();
            Ok((dir, format!("{} (after %prep: {applied} of its patches touch Ceph files)", prep.srpm)))
        }
    }
}

/// One variant's result in `patch check`.
#[derive(Debug, Clone, Serialize)]
pub struct VariantCheck {
    pub series: String,
    pub variant: Option<Variant>,
    /// Every patch applied (hunks may be at an offset or fuzzed).
    pub applies: bool,
    /// Every hunk applied exactly where the diff says or at an offset, without fuzz.
    pub clean: bool,
    pub report: SeriesReport,
    /// The first failure, as the build would show it.
    pub failure: Option<String>,
}

/// Tries each of `variants` (from [`variants_to_check`]) on a scratch copy of the Ceph
/// sources in `sources`.
pub fn check_variants(
    variants: Vec<(Series, Option<Variant>)>,
    sources: &Path,
    cache: &Cache,
) -> Result<Vec<VariantCheck>, BuildError> {
    let mut out = Vec::new();
    for (s, variant) in variants {
        let scratch = cache.staging("patch-check")?;
        copy_ceph_files(sources, scratch.path())?;
        let (report, failure) = match apply_series(&s, scratch.path()) {
            Ok(r) => (r, None),
            Err(e) => {
                let failure = e.to_string();
                match e {
                    SeriesError::DoesNotApply { report, .. } => (*report, Some(failure)),
                    other => return Err(other.into()),
                }
            }
        };
        // apply_series returns Ok only after every patch applied.
        let applies = failure.is_none();
        let clean = applies && report.count(HunkStatus::Fuzz) == 0;
        out.push(VariantCheck { series: s.name.clone(), variant, applies, clean, report, failure });
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_argument_is_a_tree_an_archive_or_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("linux.tar.xz");
        std::fs::write(&tarball, b"").unwrap();
        let arg = |p: &Path| p.to_str().unwrap().to_string();
        let from_arg = |a: &str| SourceSpec::from_arg(a, &Mirrors::default(), None);
        assert!(matches!(from_arg(&arg(dir.path())), Ok(SourceSpec::Tree(_))));
        assert!(matches!(from_arg(&arg(&tarball)), Ok(SourceSpec::Archive(_))));
        let release = from_arg("6.12.117+deb12-amd64");
        assert!(matches!(release, Ok(SourceSpec::Release(r)) if r.as_str() == "6.12.117+deb12-amd64"));
        let rhel = from_arg("3.10.0-327.el7.x86_64");
        assert!(matches!(rhel, Ok(SourceSpec::Rhel { release, .. }) if release.as_str() == "3.10.0-327.el7.x86_64"));
        assert!(matches!(from_arg("6.12 bad"), Err(BuildError::BadRelease { .. })));
    }

    #[test]
    fn an_rhel_release_checks_only_its_variant_and_refuses_before_fetching_without_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../patches/recovery-weight");
        let series = SeriesSource::open(&dir).unwrap();
        let spec = |r: &str| SourceSpec::from_arg(r, &Mirrors::default(), None).unwrap();
        let picked = variants_to_check(&series, &spec("3.10.0-327.el7.x86_64")).unwrap();
        let names: Vec<String> = picked.iter().map(|(s, _)| s.name.clone()).collect();
        assert_eq!(names, ["recovery-weight/el7-327"]);
        match variants_to_check(&series, &spec("4.18.0-372.9.1.el8_6.x86_64")) {
            Err(BuildError::Series(SeriesError::NoVariant { series, known, .. })) => {
                assert_eq!(series, "recovery-weight");
                assert!(known.iter().any(|k| k.starts_with("el7-327")), "{known:?}");
            }
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        // Debian releases and trees: every variant, as before.
        assert_eq!(
            variants_to_check(&series, &spec("6.12.117+deb12-amd64")).unwrap().len(),
            series.all().unwrap().len()
        );
    }

    #[test]
    fn a_missing_path_is_no_such_file_not_a_bad_release() {
        for missing in ["/no/such/dir", "no/such/dir", "missing.tar.xz", "linux-source-6.12.deb"] {
            match SourceSpec::from_arg(missing, &Mirrors::default(), None) {
                Err(BuildError::InputNotFound { path }) => assert_eq!(path, Path::new(missing)),
                other => panic!("{missing}: {other:?}"),
            }
        }
    }
}
