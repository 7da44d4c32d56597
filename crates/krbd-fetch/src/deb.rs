//! `.deb` files: an `ar` archive holding `debian-binary` ("2.0\n"), then `control.tar.*`,
//! then `data.tar.*` (xz, zstd, gzip or none).

use crate::compress::{self, Compression, XzThreads};
use crate::error::FetchError;
use crate::extract::{self, Extracted};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

const AR_MAGIC: &[u8] = b"!<arch>\n";

/// A `.deb` on disk. Opening checks the container; members are streamed on demand.
#[derive(Debug, Clone)]
pub struct DebArchive {
    path: PathBuf,
}

/// The `control` file's fields, in order (`Package`, `Version`, `Depends`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlFields(pub Vec<(String, String)>);

impl ControlFields {
    pub fn parse(text: &str) -> ControlFields {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        ControlFields(fields)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

impl DebArchive {
    pub fn open(path: impl Into<PathBuf>) -> Result<DebArchive, FetchError> {
        let path = path.into();
        let mut file = File::open(&path).map_err(FetchError::io("open", &path))?;
        let mut magic = [0u8; 8];
        if file.read_exact(&mut magic).is_err() || magic != AR_MAGIC {
            return Err(FetchError::NotADeb { path, reason: "no ar archive header".into() });
        }
        let deb = DebArchive { path };
        let mut version = Vec::new();
        deb.with_member(|name| name == "debian-binary", |_, r| r.take(64).read_to_end(&mut version).map(|_| ()))?;
        if !version.starts_with(b"2.") {
            return Err(FetchError::NotADeb {
                path: deb.path,
                reason: format!("debian-binary says {:?}, expected 2.x", String::from_utf8_lossy(&version).trim()),
            });
        }
        Ok(deb)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finds the first member whose name satisfies `want` and hands its reader to `read`.
    fn with_member<T>(
        &self,
        want: impl Fn(&str) -> bool,
        read: impl FnOnce(&str, &mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, FetchError> {
        let file = File::open(&self.path).map_err(FetchError::io("open", &self.path))?;
        let mut ar = ar::Archive::new(BufReader::with_capacity(1 << 20, file));
        while let Some(entry) = ar.next_entry() {
            let mut entry = entry.map_err(|e| self.not_a_deb(format!("bad ar member header: {e}")))?;
            let name = String::from_utf8_lossy(entry.header().identifier()).trim_end_matches('/').to_string();
            if want(&name) {
                return read(&name, &mut entry).map_err(|e| self.corrupt(&name, e));
            }
        }
        Err(self.not_a_deb("a required member is missing".into()))
    }

    fn not_a_deb(&self, reason: String) -> FetchError {
        FetchError::NotADeb { path: self.path.clone(), reason }
    }

    fn corrupt(&self, member: &str, e: std::io::Error) -> FetchError {
        FetchError::CorruptMember { path: self.path.clone(), member: member.to_string(), reason: e.to_string() }
    }

    /// The `control` file of `control.tar.*`.
    pub fn control(&self) -> Result<ControlFields, FetchError> {
        let text = self.with_member(
            |n| n.starts_with("control.tar"),
            |name, r| {
                let c = Compression::from_name(name).unwrap_or(Compression::None);
                let mut tar = tar::Archive::new(compress::decoder(r, c, XzThreads::Single)?);
                for entry in tar.entries()? {
                    let mut entry = entry?;
                    let p = entry.path()?.into_owned();
                    if p.file_name().is_some_and(|f| f == "control") {
                        let mut s = String::new();
                        entry.read_to_string(&mut s)?;
                        return Ok(Some(s));
                    }
                }
                Ok(None)
            },
        )?;
        match text {
            Some(t) => Ok(ControlFields::parse(&t)),
            None => Err(self.not_a_deb("control.tar has no control file".into())),
        }
    }

    /// Streams `data.tar.*` once, handing each entry to `visit` with its normalised path.
    /// `visit` returns `Ok(false)` to stop early.
    pub fn walk_data(
        &self,
        mut visit: impl FnMut(&Path, &mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<bool, FetchError>,
    ) -> Result<(), FetchError> {
        let mut failure: Option<FetchError> = None;
        let member = self.with_member(
            |n| n.starts_with("data.tar"),
            |name, r| {
                let c = Compression::from_name(name).unwrap_or(Compression::None);
                let mut tar = tar::Archive::new(compress::decoder(r, c, XzThreads::Single)?);
                for entry in tar.entries()? {
                    let mut entry = entry?;
                    let raw = entry.path()?.into_owned();
                    let rel = match crate::archive_path::entry_relative_path(&raw) {
                        Ok(Some(p)) => p,
                        Ok(None) => continue,
                        Err(why) => {
                            failure = Some(FetchError::UnsafeEntry {
                                path: self.path.clone(),
                                entry: raw.display().to_string(),
                                reason: why.to_string(),
                            });
                            return Ok(());
                        }
                    };
                    match visit(&rel, &mut entry) {
                        Ok(true) => {}
                        Ok(false) => return Ok(()),
                        Err(e) => {
                            failure = Some(e);
                            return Ok(());
                        }
                    }
                }
                Ok(())
            },
        );
        if let Some(e) = failure {
            return Err(e);
        }
        member.map_err(|e| match e {
            FetchError::CorruptMember { path, reason, .. } => {
                FetchError::CorruptMember { path, member: "data.tar".into(), reason }
            }
            other => other,
        })
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
                extract::write_entry(&self.path, dest, &target, entry, &mut out)?;
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a small but real .deb: ar container, gzip control tar, xz data tar.
    pub(crate) fn make_deb(data_entries: &[(&str, &[u8])]) -> Vec<u8> {
        fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (name, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                // set_path refuses '..'; write the raw name so tests can build hostile archives.
                let bytes = name.as_bytes();
                h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            b.into_inner().unwrap()
        }
        let control = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar_of(&[("./control", b"Package: demo\nVersion: 1.0-1\nDescription: a\n more\n")])).unwrap();
            gz.finish().unwrap()
        };
        let data = {
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
            xz.write_all(&tar_of(data_entries)).unwrap();
            xz.finish().unwrap()
        };
        let mut ar = ar::Builder::new(Vec::new());
        for (name, body) in [("debian-binary", b"2.0\n".to_vec()), ("control.tar.gz", control), ("data.tar.xz", data)] {
            let h = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
            ar.append(&h, &body[..]).unwrap();
        }
        ar.into_inner().unwrap()
    }

    fn write_tmp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_control_and_data() {
        let (_d, p) = write_tmp(&make_deb(&[("./usr/src/a.txt", b"A"), ("./usr/src/b/c.txt", b"C")]));
        let deb = DebArchive::open(&p).unwrap();
        let control = deb.control().unwrap();
        assert_eq!(control.get("package"), Some("demo"));
        assert_eq!(control.get("Description"), Some("a\nmore"));
        let mut seen = Vec::new();
        deb.walk_data(|rel, e| {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            seen.push((rel.display().to_string(), s));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![("usr/src/a.txt".into(), "A".into()), ("usr/src/b/c.txt".into(), "C".into())]);
    }

    #[test]
    fn truncated_deb_is_reported_as_corrupt() {
        let bytes = make_deb(&[("./big", &vec![7u8; 200_000])]);
        let (_d, p) = write_tmp(&bytes[..bytes.len() - 300]);
        let deb = DebArchive::open(&p).unwrap();
        let err = deb.walk_data(|_, _| Ok(true)).unwrap_err();
        assert!(matches!(err, FetchError::CorruptMember { .. } | FetchError::NotADeb { .. }), "{err:?}");
    }

    #[test]
    fn non_deb_is_refused() {
        let (_d, p) = write_tmp(b"PK\x03\x04 this is a zip");
        assert!(matches!(DebArchive::open(&p), Err(FetchError::NotADeb { .. })));
        let (_d2, p2) = write_tmp(b"");
        assert!(matches!(DebArchive::open(&p2), Err(FetchError::NotADeb { .. })));
    }

    #[test]
    fn escaping_entry_is_refused_and_nothing_is_written_outside() {
        let (dir, p) = write_tmp(&make_deb(&[("./ok.txt", b"fine"), ("../escape.txt", b"evil")]));
        let dest = dir.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let err = DebArchive::open(&p).unwrap().extract_data(&dest, |rel| Some(rel.to_path_buf())).unwrap_err();
        assert!(matches!(err, FetchError::UnsafeEntry { .. }), "{err:?}");
        assert!(!dir.path().join("escape.txt").exists());
    }
}
