//! A patch series: a folder with a quilt-style `series` file naming the patches in order.

use super::apply::{apply_file, FileOutcome, HunkReport, HunkStatus};
use super::parse::{ParseError, PatchFile};
use std::path::{Path, PathBuf};

/// GNU patch's default: at most two context lines dropped from each end.
pub const MAX_FUZZ: usize = 2;

#[derive(Debug, Clone)]
pub struct SeriesPatch {
    pub file_name: String,
    pub sha256: String,
    pub patch: PatchFile,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub dir: PathBuf,
    pub patches: Vec<SeriesPatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{dir}: cannot read the series ({source}); a series is a folder with a `series` file listing its patches")]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    BadVariants { file: PathBuf, reason: String },
    #[error("{series} has no variant for {release}, so no patched modules can be built for it; its variants fit: {}", known.join("; "))]
    NoVariant { series: String, release: String, known: Vec<String> },
    #[error("{dir}: the series lists no patches")]
    Empty { dir: PathBuf },
    #[error("{patch}: not a unified diff: {source}")]
    Malformed {
        patch: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error("{patch} touches {file:?}, which is outside the source tree")]
    UnsafePath { patch: String, file: String },
    #[error("{patch} does not apply: {file} hunk #{hunk} failed ({detail})\nlooked for it from line {line} on:\n{hunk_text}")]
    DoesNotApply {
        patch: String,
        file: String,
        hunk: usize,
        line: usize,
        detail: String,
        hunk_text: String,
        /// Every hunk's result up to and including the failing patch (boxed: it is large,
        /// and every `Result` that can carry this error would pay for it).
        report: Box<SeriesReport>,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

// The series' outcome types are part of the build report's schema.
pub use krbd_kmod::set::report::{PatchReport, SeriesReport};

impl Series {
    pub fn load(dir: &Path) -> Result<Series, SeriesError> {
        let unreadable = |source| SeriesError::Unreadable { dir: dir.to_path_buf(), source };
        let list = std::fs::read_to_string(dir.join("series")).map_err(unreadable)?;
        let mut patches = Vec::new();
        for line in list.lines() {
            let name = line.split('#').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(unreadable)?;
            let text = String::from_utf8_lossy(&bytes);
            let patch =
                PatchFile::parse(&text).map_err(|source| SeriesError::Malformed { patch: path.clone(), source })?;
            for f in &patch.files {
                let ok = matches!(krbd_formats::archive_path::entry_relative_path(Path::new(f.target())), Ok(Some(_)));
                if !ok {
                    return Err(SeriesError::UnsafePath { patch: name.to_string(), file: f.target().to_string() });
                }
            }
            patches.push(SeriesPatch {
                file_name: name.to_string(),
                sha256: krbd_formats::digest::sha256_hex(&bytes),
                patch,
            });
        }
        if patches.is_empty() {
            return Err(SeriesError::Empty { dir: dir.to_path_buf() });
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "series".into());
        Ok(Series { name, dir: dir.to_path_buf(), patches })
    }

    /// One hash over the patches' names and contents, in order.
    pub fn sha256(&self) -> String {
        let mut k = krbd_fetch::hash::KeyHasher::new("series");
        for p in &self.patches {
            k.str(&p.file_name).str(&p.sha256);
        }
        k.finish()
    }
}

/// One file's outcome, waiting to be written: the new path, the old path, the outcome.
type PendingFile = (PathBuf, PathBuf, FileOutcome);

/// Applies `series` to the files below `tree`, in place. Stops at the first patch with a
/// failed hunk (after trying all of that patch's hunks, so the report shows each).
pub fn apply_series(series: &Series, tree: &Path) -> Result<SeriesReport, SeriesError> {
    let mut report = SeriesReport { series: series.name.clone(), sha256: series.sha256(), patches: Vec::new() };
    for sp in &series.patches {
        let (hunks, pending) = try_patch(sp, tree)?;
        let failed = hunks.iter().find(|h| h.status == HunkStatus::Failed).cloned();
        report.patches.push(PatchReport {
            patch: sp.file_name.clone(),
            subject: sp.patch.subject.clone(),
            sha256: sp.sha256.clone(),
            hunks,
        });
        if let Some(f) = failed {
            return Err(does_not_apply(sp, f, report));
        }
        write_outcomes(pending)?;
    }
    Ok(report)
}

/// Every hunk of one patch tried against the tree, nothing written yet.
fn try_patch(sp: &SeriesPatch, tree: &Path) -> Result<(Vec<HunkReport>, Vec<PendingFile>), SeriesError> {
    let mut hunks = Vec::new();
    let mut pending = Vec::new();
    for fp in &sp.patch.files {
        let path = tree.join(fp.old_path.as_deref().unwrap_or(fp.target()));
        let original = match std::fs::read(&path) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(SeriesError::Io { op: "read", path, source }),
        };
        if original.is_none() && fp.old_path.is_some() {
            let h = &fp.hunks[0];
            hunks.push(HunkReport {
                file: fp.target().to_string(),
                hunk: 1,
                header: h.header.clone(),
                status: HunkStatus::Failed,
                line: h.old_start,
                offset: 0,
                fuzz: 0,
                detail: Some("the file is not in the source tree".into()),
            });
            continue;
        }
        let outcome = apply_file(fp, original.as_deref(), MAX_FUZZ);
        hunks.extend(outcome.hunks.iter().cloned());
        pending.push((tree.join(fp.target()), path, outcome));
    }
    Ok((hunks, pending))
}

/// The error for `failed`, the first failed hunk of `sp`, showing the hunk itself.
fn does_not_apply(sp: &SeriesPatch, failed: HunkReport, report: SeriesReport) -> SeriesError {
    let hunk_text = sp
        .patch
        .files
        .iter()
        .find(|fp| fp.target() == failed.file)
        .and_then(|fp| fp.hunks.get(failed.hunk - 1))
        .map(|h| h.text())
        .unwrap_or_default();
    SeriesError::DoesNotApply {
        patch: sp.file_name.clone(),
        file: failed.file,
        hunk: failed.hunk,
        line: failed.line,
        detail: failed.detail.unwrap_or_default(),
        hunk_text,
        report: Box::new(report),
    }
}

/// Writes a patch's new files (and removes renamed or deleted ones).
fn write_outcomes(pending: Vec<PendingFile>) -> Result<(), SeriesError> {
    for (new_path, old_path, outcome) in pending {
        match outcome.content {
            Some(text) => {
                if let Some(parent) = new_path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| SeriesError::Io {
                        op: "create folder",
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                std::fs::write(&new_path, text).map_err(|source| SeriesError::Io {
                    op: "write",
                    path: new_path.clone(),
                    source,
                })?;
                if old_path != new_path {
                    let _ = std::fs::remove_file(&old_path);
                }
            }
            None => {
                let _ = std::fs::remove_file(&old_path);
            }
        }
    }
    Ok(())
}
