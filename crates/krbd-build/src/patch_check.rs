//! `patch check`: which variants of a series apply to a kernel source, and how, without
//! building anything. Each variant is tried on a scratch copy of the Ceph sources.

use crate::error::BuildError;
use crate::patch::{apply_series, HunkStatus, SeriesError, SeriesReport, SeriesSource, Variant};
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
            let t = target::resolve_cached(cache, Some(release), true)?;
            let src = t.source.ok_or_else(|| BuildError::SourceUnavailable {
                release: release.to_string(),
                package: format!("linux-source-{}", release.major_minor()),
                version: t.headers.version.clone(),
            })?;
            let (deb, _) = apt::fetch(cache, &src, listener)?;
            let (dir, _) = source::cached_subset(cache, &deb, &src.sha256, listener)?;
            Ok((dir, format!("{} {}", src.name, src.version)))
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

/// Tries every variant of `series` on a scratch copy of the Ceph sources in `sources`.
pub fn check_variants(series: &SeriesSource, sources: &Path, cache: &Cache) -> Result<Vec<VariantCheck>, BuildError> {
    let mut out = Vec::new();
    for (s, variant) in series.all()? {
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
