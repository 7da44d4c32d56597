//! `.deb` files, read with krbd-formats' [`DebReader`] (the container, the `debian-binary`
//! check, member decompression, safe entry names) and extracted onto disk here.

use crate::error::FetchError;
use crate::extract::{self, Extracted};
pub use krbd_formats::deb::ControlFields;
use krbd_formats::deb::{DebError, DebReader};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A `.deb` on disk. Opening checks the container; members are streamed on demand.
#[derive(Debug, Clone)]
pub struct DebArchive {
    reader: DebReader,
}

impl DebArchive {
    pub fn open(path: impl Into<PathBuf>) -> Result<DebArchive, FetchError> {
        Ok(DebArchive { reader: DebReader::open(path)? })
    }

    pub fn path(&self) -> &Path {
        self.reader.path()
    }

    /// The `control` file of `control.tar.*`.
    pub fn control(&self) -> Result<ControlFields, FetchError> {
        Ok(self.reader.control()?)
    }

    /// Streams `data.tar.*` once, handing each entry to `visit` with its normalised path.
    /// `visit` returns `Ok(false)` to stop early.
    pub fn walk_data(
        &self,
        visit: impl FnMut(&Path, &mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<bool, FetchError>,
    ) -> Result<(), FetchError> {
        self.reader.walk_data(visit)
    }

    /// Extracts the data entries for which `select` returns a destination (relative to
    /// `dest`); absolute symlinks are re-rooted at `dest`.
    pub fn extract_data(
        &self,
        dest: &Path,
        mut select: impl FnMut(&Path) -> Option<PathBuf>,
    ) -> Result<Extracted, FetchError> {
        let mut out = Extracted::default();
        self.walk_data(|rel, entry| {
            if let Some(target) = select(rel) {
                extract::write_entry(self.path(), dest, &target, entry, &mut out)?;
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

impl From<DebError> for FetchError {
    fn from(e: DebError) -> FetchError {
        match e {
            DebError::Io { op, path, source } => FetchError::Io { op, path, source },
            DebError::NotADeb { path, defect } => FetchError::NotADeb { path, reason: defect.to_string() },
            DebError::CorruptMember { path, member, source } => {
                FetchError::CorruptMember { path, member, reason: source.to_string() }
            }
            DebError::UnsafeEntry { path, entry, refusal } => {
                FetchError::UnsafeEntry { path, entry, reason: refusal.to_string() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krbd_formats::deb::{write_deb, TarMember};

    /// A .deb whose data.tar holds `entries` as regular files, names written raw (the tar
    /// crate's `set_path` refuses `..`, and the point is a hostile archive).
    fn make_deb(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let data = b.into_inner().unwrap();
        let control = TarMember { name: "control.tar", bytes: &[0; 1024] };
        write_deb(control, TarMember { name: "data.tar", bytes: &data }, 0).unwrap()
    }

    #[test]
    fn escaping_entry_is_refused_and_nothing_is_written_outside() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, make_deb(&[("./ok.txt", b"fine"), ("../escape.txt", b"evil")])).unwrap();
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let err = DebArchive::open(&p).unwrap().extract_data(&dest, |rel| Some(rel.to_path_buf())).unwrap_err();
        assert!(matches!(err, FetchError::UnsafeEntry { .. }), "{err:?}");
        assert!(!dir.path().join("escape.txt").exists());
        assert_eq!(std::fs::read(dest.join("ok.txt")).unwrap(), b"fine");
    }

    #[test]
    fn format_errors_keep_their_fetch_variants() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, b"PK\x03\x04 this is a zip").unwrap();
        assert!(matches!(DebArchive::open(&p), Err(FetchError::NotADeb { .. })));
        let err = DebArchive::open(dir.path().join("none.deb")).unwrap_err();
        assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotFound));
    }
}
