//! The Ceph part of a kernel source tree.
//!
//! A kernel tarball is 1.3-1.5 GB unpacked; the three modules need about 95 files of it.
//! The tarball is streamed once through liblzma's multi-threaded decoder and only the
//! files below are written.

use crate::error::BuildError;
use crate::stages::LAYOUT_VERSION;
use krbd_fetch::cache::Cache;
use krbd_fetch::deb::DebArchive;
use krbd_fetch::extract::{self, Extracted};
use krbd_fetch::hash::KeyHasher;
use krbd_fetch::FetchError;
use krbd_formats::compress::{self, Compression, XzThreads};
use krbd_progress::{Listener, Unit};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Folders (ending in `/`, taken recursively) and files of the tree that the Ceph modules
/// are built from.
pub const CEPH_SOURCES: [&str; 6] = [
    "net/ceph/",
    "fs/ceph/",
    "drivers/block/rbd.c",
    "drivers/block/rbd_types.h",
    "include/linux/ceph/",
    "include/linux/crush/",
];

/// Files without which the tarball cannot be a kernel tree with Ceph in it.
pub const REQUIRED: [&str; 4] =
    ["net/ceph/osdmap.c", "fs/ceph/super.c", "drivers/block/rbd.c", "include/linux/ceph/osdmap.h"];

/// Top-level folders of a kernel tree: an entry starting with one of them has no
/// leading `linux-x.y/` folder to strip.
const TREE_TOP: [&str; 6] = ["net", "fs", "drivers", "include", "arch", "kernel"];

/// Whether `rel` (relative to the tree's top) is one of the Ceph sources.
pub fn is_ceph_source(rel: &Path) -> bool {
    let Some(s) = rel.to_str() else { return false };
    CEPH_SOURCES.iter().any(|p| match p.strip_suffix('/') {
        Some(dir) => s.starts_with(p) && s.len() > p.len() || s == dir,
        None => s == *p,
    })
}

/// The entry's path inside the kernel tree: `linux-source-6.1/net/ceph/x.c` -> `net/ceph/x.c`.
pub fn tree_relative(entry: &Path) -> Option<PathBuf> {
    let mut comps = entry.components().filter(|c| matches!(c, Component::Normal(_)));
    let first = comps.next()?;
    let first_str = first.as_os_str().to_str()?;
    if TREE_TOP.contains(&first_str) {
        return Some(entry.to_path_buf());
    }
    let rest: PathBuf = comps.collect();
    (!rest.as_os_str().is_empty()).then_some(rest)
}

/// Counts bytes read, for progress on the compressed stream.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    listener: &'a dyn Listener,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n > 0 && (self.done >> 20) != ((self.done - n as u64) >> 20) {
            self.listener.task_progress(self.done);
        }
        Ok(n)
    }
}

/// Streams a compressed kernel tarball, writing the Ceph sources below `dest`.
pub fn extract_ceph_sources<R: Read>(
    archive_name: &Path,
    compressed: R,
    compression: Compression,
    total: Option<u64>,
    dest: &Path,
    listener: &dyn Listener,
) -> Result<Extracted, BuildError> {
    let corrupt = |e: std::io::Error| {
        BuildError::Fetch(FetchError::CorruptMember {
            path: archive_name.to_path_buf(),
            member: "kernel source tarball".into(),
            reason: e.to_string(),
        })
    };
    listener.task_start("extract the Ceph sources", total, Unit::Bytes);
    let counting = Counting { inner: compressed, done: 0, listener };
    let result = (|| {
        let decoder = compress::decoder(counting, compression, XzThreads::all_cores()).map_err(corrupt)?;
        let mut tar = tar::Archive::new(decoder);
        let mut out = Extracted::default();
        for entry in tar.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let raw = entry.path().map_err(corrupt)?.into_owned();
            let rel = match krbd_formats::archive_path::entry_relative_path(&raw) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(why) => {
                    return Err(BuildError::Fetch(FetchError::UnsafeEntry {
                        path: archive_name.to_path_buf(),
                        entry: raw.display().to_string(),
                        reason: why.to_string(),
                    }))
                }
            };
            let Some(tree_rel) = tree_relative(&rel) else { continue };
            if is_ceph_source(&tree_rel) {
                extract::write_entry(archive_name, dest, &tree_rel, &mut entry, &mut out)?;
            }
        }
        Ok(out)
    })();
    listener.task_finish();
    let out = result?;
    require_ceph_sources(dest, archive_name)?;
    Ok(out)
}

/// Errors out, naming what is missing, unless `tree` holds the [`REQUIRED`] files;
/// `origin` is what the tree came from, for the message.
pub fn require_ceph_sources(tree: &Path, origin: &Path) -> Result<(), BuildError> {
    let missing: Vec<String> = REQUIRED.iter().filter(|r| !tree.join(r).is_file()).map(|r| r.to_string()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(BuildError::NoCephSources { archive: origin.to_path_buf(), missing })
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
    cache.get_or_create("sources", &key, |staging| extract_from_file(archive, staging, listener).map(|_| ()))
}

/// A kernel source tarball given directly (`--source-tarball`), or inside a
/// `linux-source-*` .deb.
pub fn extract_from_file(path: &Path, dest: &Path, listener: &dyn Listener) -> Result<Extracted, BuildError> {
    let mut file = std::fs::File::open(path).map_err(BuildError::io("open", path))?;
    let mut magic = [0u8; 8];
    let n = file.read(&mut magic).map_err(BuildError::io("read", path))?;
    if magic[..n].starts_with(b"!<arch>\n") {
        return extract_from_source_deb(&DebArchive::open(path)?, dest, listener);
    }
    drop(file);
    let file = std::fs::File::open(path).map_err(BuildError::io("open", path))?;
    let total = file.metadata().ok().map(|m| m.len());
    let compression = Compression::sniff(&magic[..n]);
    extract_ceph_sources(path, std::io::BufReader::new(file), compression, total, dest, listener)
}

/// The `linux-source-X` package holds `usr/src/linux-source-X.tar.xz`.
pub fn extract_from_source_deb(
    deb: &DebArchive,
    dest: &Path,
    listener: &dyn Listener,
) -> Result<Extracted, BuildError> {
    let mut result: Option<Result<Extracted, BuildError>> = None;
    deb.walk_data(|rel, entry| {
        let name = rel.to_string_lossy();
        let is_tarball = name.starts_with("usr/src/linux-source-") && name.contains(".tar");
        if !is_tarball {
            return Ok(true);
        }
        let compression = Compression::from_name(&name).unwrap_or(Compression::None);
        let total = Some(entry.header().size().unwrap_or(0));
        result = Some(extract_ceph_sources(deb.path(), entry, compression, total, dest, listener));
        Ok(false)
    })?;
    result.unwrap_or_else(|| {
        Err(BuildError::NoCephSources {
            archive: deb.path().to_path_buf(),
            missing: vec!["usr/src/linux-source-*.tar.*".into()],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceph_paths_are_selected() {
        for yes in [
            "net/ceph/osdmap.c",
            "net/ceph/crush/mapper.c",
            "fs/ceph/super.c",
            "drivers/block/rbd.c",
            "drivers/block/rbd_types.h",
            "include/linux/ceph/osdmap.h",
            "include/linux/crush/crush.h",
        ] {
            assert!(is_ceph_source(Path::new(yes)), "{yes}");
        }
        for no in [
            "net/cephx.c",
            "net/core/dev.c",
            "drivers/block/rbd2.c",
            "drivers/block/loop.c",
            "include/linux/cephalopod.h",
            "fs/ceph_old/x.c",
            "Makefile",
        ] {
            assert!(!is_ceph_source(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn top_folder_is_stripped_once() {
        assert_eq!(tree_relative(Path::new("linux-source-6.1/net/ceph/x.c")), Some(PathBuf::from("net/ceph/x.c")));
        assert_eq!(tree_relative(Path::new("net/ceph/x.c")), Some(PathBuf::from("net/ceph/x.c")));
        assert_eq!(tree_relative(Path::new("linux-source-6.1")), None);
    }

    fn tarball(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_path(name).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 0);
        std::io::Write::write_all(&mut xz, &tar).unwrap();
        xz.finish().unwrap()
    }

    #[test]
    fn only_ceph_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let t = tarball(&[
            ("linux-6.1/Makefile", b"top"),
            ("linux-6.1/net/ceph/osdmap.c", b"osdmap"),
            ("linux-6.1/fs/ceph/super.c", b"super"),
            ("linux-6.1/drivers/block/rbd.c", b"rbd"),
            ("linux-6.1/drivers/block/loop.c", b"loop"),
            ("linux-6.1/include/linux/ceph/osdmap.h", b"h"),
        ]);
        let out = extract_ceph_sources(
            Path::new("t.tar.xz"),
            &t[..],
            Compression::Xz,
            None,
            dir.path(),
            &krbd_progress::Silent,
        )
        .unwrap();
        assert_eq!(out.files.len(), 4);
        assert!(dir.path().join("net/ceph/osdmap.c").is_file());
        assert!(!dir.path().join("drivers/block/loop.c").exists());
        assert!(!dir.path().join("Makefile").exists());
    }

    #[test]
    fn tarball_without_ceph_is_refused_with_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let t = tarball(&[("linux-6.1/Makefile", b"top"), ("linux-6.1/drivers/block/rbd.c", b"rbd")]);
        let err = extract_ceph_sources(
            Path::new("t.tar.xz"),
            &t[..],
            Compression::Xz,
            None,
            dir.path(),
            &krbd_progress::Silent,
        )
        .unwrap_err();
        match err {
            BuildError::NoCephSources { missing, .. } => {
                assert!(missing.contains(&"net/ceph/osdmap.c".to_string()));
                assert!(!missing.contains(&"drivers/block/rbd.c".to_string()));
            }
            other => panic!("{other:?}"),
        }
    }
}
