//! `.deb` files: an `ar` archive holding `debian-binary` ("2.0\n"), then `control.tar.*`,
//! then `data.tar.*` (xz, zstd, gzip or none).
//!
//! [`DebReader`] checks the container when it opens a package and streams members on
//! demand; every `data.tar` entry name goes through [`crate::archive_path`] before a
//! caller sees it. [`write_deb`] assembles a package from its two tars.

use crate::archive_path::{entry_relative_path, Refusal};
use crate::compress::{self, Compression, XzThreads};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

const AR_MAGIC: &[u8] = b"!<arch>\n";

/// The first member's content: the format version this writer produces and readers expect
/// (any `2.x`).
pub const DEBIAN_BINARY: &[u8] = b"2.0\n";

/// What is wrong with a file that is not a readable `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum Defect {
    #[error("no ar archive header")]
    NoArHeader,
    #[error("bad ar member header: {source}")]
    BadMemberHeader {
        #[source]
        source: io::Error,
    },
    #[error("debian-binary says {found:?}, expected 2.x")]
    DebianBinary { found: String },
    #[error("it has no {member} member")]
    MissingMember { member: &'static str },
    #[error("control.tar has no control file")]
    NoControlFile,
}

/// Why a `.deb` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a Debian package ({defect})")]
    NotADeb { path: PathBuf, defect: Defect },
    #[error("{path}: member {member} is corrupt or truncated: {source}")]
    CorruptMember {
        path: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: archive entry {entry:?} would land outside its folder ({refusal})")]
    UnsafeEntry { path: PathBuf, entry: String, refusal: Refusal },
}

/// A `.deb` on disk. Opening checks the container; members are streamed on demand.
#[derive(Debug, Clone)]
pub struct DebReader {
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

impl DebReader {
    /// Opens `path`, checking the ar magic and that `debian-binary` says 2.x.
    pub fn open(path: impl Into<PathBuf>) -> Result<DebReader, DebError> {
        let path = path.into();
        let mut file = File::open(&path).map_err(|source| DebError::Io { op: "open", path: path.clone(), source })?;
        let mut magic = [0u8; 8];
        if file.read_exact(&mut magic).is_err() || magic != AR_MAGIC {
            return Err(DebError::NotADeb { path, defect: Defect::NoArHeader });
        }
        let deb = DebReader { path };
        let mut version = Vec::new();
        deb.with_member(
            "debian-binary",
            |name| name == "debian-binary",
            |_, r| r.take(64).read_to_end(&mut version).map(drop),
        )?;
        if !version.starts_with(b"2.") {
            let found = String::from_utf8_lossy(&version).trim().to_string();
            return Err(deb.not_a_deb(Defect::DebianBinary { found }));
        }
        Ok(deb)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn not_a_deb(&self, defect: Defect) -> DebError {
        DebError::NotADeb { path: self.path.clone(), defect }
    }

    /// Finds the first member whose name satisfies `want` and hands its reader to `read`.
    /// `member` names the wanted member in errors.
    fn with_member<T>(
        &self,
        member: &'static str,
        want: impl Fn(&str) -> bool,
        read: impl FnOnce(&str, &mut dyn Read) -> io::Result<T>,
    ) -> Result<T, DebError> {
        let file =
            File::open(&self.path).map_err(|source| DebError::Io { op: "open", path: self.path.clone(), source })?;
        let mut ar = ar::Archive::new(BufReader::with_capacity(1 << 20, file));
        while let Some(entry) = ar.next_entry() {
            let mut entry = entry.map_err(|source| self.not_a_deb(Defect::BadMemberHeader { source }))?;
            let name = String::from_utf8_lossy(entry.header().identifier()).trim_end_matches('/').to_string();
            if want(&name) {
                return read(&name, &mut entry).map_err(|source| DebError::CorruptMember {
                    path: self.path.clone(),
                    member: name,
                    source,
                });
            }
        }
        Err(self.not_a_deb(Defect::MissingMember { member }))
    }

    /// The `control` file of `control.tar.*`.
    pub fn control(&self) -> Result<ControlFields, DebError> {
        let text = self.with_member(
            "control.tar",
            |n| n.starts_with("control.tar"),
            |name, r| {
                let mut tar = tar::Archive::new(member_decoder(name, r)?);
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
            None => Err(self.not_a_deb(Defect::NoControlFile)),
        }
    }

    /// Streams `data.tar.*` once, handing each entry to `visit` with its normalised path
    /// (see [`entry_relative_path`]; the archive root itself is skipped, an escaping name
    /// ends the walk with [`DebError::UnsafeEntry`]). `visit` returns `Ok(false)` to stop
    /// early; its errors end the walk and are returned as they are.
    pub fn walk_data<E: From<DebError>>(
        &self,
        mut visit: impl FnMut(&Path, &mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut failure: Option<E> = None;
        let walked = self.with_member(
            "data.tar",
            |n| n.starts_with("data.tar"),
            |name, r| {
                let mut tar = tar::Archive::new(member_decoder(name, r)?);
                for entry in tar.entries()? {
                    let mut entry = entry?;
                    let raw = entry.path()?.into_owned();
                    let rel = match entry_relative_path(&raw) {
                        Ok(Some(p)) => p,
                        Ok(None) => continue,
                        Err(refusal) => {
                            let entry = raw.display().to_string();
                            failure = Some(DebError::UnsafeEntry { path: self.path.clone(), entry, refusal }.into());
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
        walked.map_err(|e| match e {
            DebError::CorruptMember { path, source, .. } => {
                DebError::CorruptMember { path, member: "data.tar".into(), source }
            }
            other => other,
        })?;
        Ok(())
    }
}

/// The decoder for a `control.tar.*` or `data.tar.*` member, by its name's ending.
fn member_decoder<'a>(name: &str, r: &'a mut dyn Read) -> io::Result<Box<dyn Read + 'a>> {
    let c = Compression::from_name(name).unwrap_or(Compression::None);
    compress::decoder(r, c, XzThreads::Single)
}

/// A `control.tar.*` or `data.tar.*` member for [`write_deb`], already compressed as its
/// name says.
#[derive(Debug, Clone, Copy)]
pub struct TarMember<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Assembles a `.deb`: `debian-binary`, `control`, then `data`, each member with mode 0644
/// and time `mtime` (so the same members give the same bytes).
pub fn write_deb(control: TarMember<'_>, data: TarMember<'_>, mtime: u64) -> io::Result<Vec<u8>> {
    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in [("debian-binary", DEBIAN_BINARY), (control.name, control.bytes), (data.name, data.bytes)] {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        h.set_mtime(mtime);
        h.set_mode(0o100644);
        ar.append(&h, bytes)?;
    }
    ar.into_inner()
}

#[cfg(test)]
mod tests;
