//! RPM packages (binary and source), read without `rpm`.
//!
//! The file is laid out as the format is (krbd-formats' [`krbd_formats::rpm`] knows the lead,
//! the header structure and the tags), and this module reads it in that order:
//! - the lead: 96 bytes, mostly historic.
//! - the signature header (padded to 8 bytes): sizes and digests ([`info::SignatureInfo`]),
//!   OpenPGP signatures.
//! - the main header: name, version, requires/provides, the file list, how the payload is
//!   compressed ([`info::RpmInfo`]).
//! - the payload ([`payload`]): a compressed cpio newc stream, read entry by entry.
//!
//! Opening reads and checks the headers (and the SHA-256 of the main header when the
//! signature header has one). The payload is only streamed on demand; a walk that reads it
//! to the end also checks the payload digest (rpm >= 4.14) and the legacy MD5 over header
//! and payload. OpenPGP signatures are checked against a given key by [`signature`].

pub mod info;
pub mod payload;
pub mod signature;

use crate::error::FetchError;
use crate::extract::Extracted;
pub use info::{Dependency, FileInfo, RpmInfo, SignatureInfo};
use krbd_formats::archive_path::{contained_link_target, entry_relative_path};
use krbd_formats::cpio::{CpioHeader, CpioReader, EntryKind};
use krbd_formats::rpm::header::{self, Header};
use krbd_formats::rpm::{lead, tag};
use md5::Md5;
use payload::PayloadCompressor;
use sha2::{Digest, Sha256, Sha512};
pub use signature::{PackageSignature, RpmKeyring, SignatureStatus};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An RPM on disk, its headers read and checked.
#[derive(Debug, Clone)]
pub struct RpmPackage {
    path: PathBuf,
    pub lead: lead::Lead,
    pub signature: SignatureInfo,
    pub info: RpmInfo,
    /// The signature header, for the OpenPGP signature packets it holds.
    signature_header: Header,
    header: Header,
    compressor: PayloadCompressor,
    /// Where the payload starts in the file.
    payload_offset: u64,
}

/// Which digests a full read of the package checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DigestsChecked {
    pub header_sha256: bool,
    pub payload_digest: bool,
    pub md5: bool,
}

/// One payload entry during a walk: its header, its safe relative path, and its data.
pub struct PayloadEntry<'a> {
    pub header: &'a CpioHeader,
    /// The stored name made relative (`./usr/src/x` -> `usr/src/x`); unsafe names never
    /// reach the visitor.
    pub path: &'a Path,
    data: &'a mut dyn Read,
}

impl Read for PayloadEntry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

/// Hashes the compressed payload as it is read, for the digests checked at the end.
struct Digesting<R> {
    inner: R,
    payload: Option<(u64, Sha256, Sha512)>,
    md5: Option<Md5>,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((_, a, b)) = &mut self.payload {
            a.update(&buf[..n]);
            b.update(&buf[..n]);
        }
        if let Some(m) = &mut self.md5 {
            m.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl RpmPackage {
    pub fn open(path: impl Into<PathBuf>) -> Result<RpmPackage, FetchError> {
        let path = path.into();
        let file = File::open(&path).map_err(FetchError::io("open", &path))?;
        let file_len = file.metadata().map_err(FetchError::io("stat", &path))?.len();
        let mut r = BufReader::new(file);
        let not_rpm = |reason: String| FetchError::NotAnRpm { path: path.clone(), reason };
        let corrupt = |part: &'static str, reason: String| FetchError::CorruptRpm { path: path.clone(), part, reason };
        let mut lead_bytes = [0u8; lead::LEAD_SIZE];
        r.read_exact(&mut lead_bytes)
            .map_err(|_| not_rpm(format!("shorter than the {}-byte lead", lead::LEAD_SIZE)))?;
        let lead = lead::parse(&lead_bytes).map_err(|e| not_rpm(e.to_string()))?;
        let sig = Header::read(&mut r).map_err(|e| corrupt("signature header", e.to_string()))?;
        let padding = header::signature_padding(sig.len());
        let mut pad = [0u8; 8];
        r.read_exact(&mut pad[..padding]).map_err(|e| corrupt("signature header", format!("padding: {e}")))?;
        let header_offset = (lead::LEAD_SIZE + sig.len() + padding) as u64;
        let header = Header::read(&mut r).map_err(|e| corrupt("header", e.to_string()))?;
        let payload_offset = header_offset + header.len() as u64;
        let signature = SignatureInfo::from_header(&sig);
        let info = RpmInfo::from_header(&header).map_err(|e| corrupt("header", e))?;
        if info.payload_format != "cpio" {
            return Err(FetchError::UnsupportedRpm {
                path,
                reason: format!("payload format {:?} (only cpio)", info.payload_format),
            });
        }
        let compressor =
            PayloadCompressor::from_tag(&info.payload_compressor).ok_or_else(|| FetchError::UnsupportedRpm {
                path: path.clone(),
                reason: format!("payload compressor {:?}", info.payload_compressor),
            })?;
        let pkg = RpmPackage {
            lead,
            signature,
            info,
            signature_header: sig,
            header,
            compressor,
            payload_offset,
            path: path.clone(),
        };
        pkg.check_header_digest()?;
        if let Some(size) = pkg.signature.size {
            let actual = file_len - header_offset;
            if actual < size {
                return Err(corrupt(
                    "payload",
                    format!("header and payload are {actual} bytes, the signature says {size}"),
                ));
            }
        }
        Ok(pkg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn compressor(&self) -> PayloadCompressor {
        self.compressor
    }

    /// Checks the signature header's SHA-256 of the main header. `Ok(false)`: there is none.
    fn check_header_digest(&self) -> Result<bool, FetchError> {
        let Some(expected) = &self.signature.sha256 else { return Ok(false) };
        let actual = krbd_formats::digest::sha256_hex(&self.header.raw);
        if &actual != expected {
            return Err(FetchError::DigestMismatch {
                path: self.path.clone(),
                digest: "header SHA-256",
                expected: expected.clone(),
                actual,
            });
        }
        Ok(true)
    }

    /// Streams the payload, handing each entry to `visit` (return `Ok(false)` to stop).
    /// When the walk reaches the end, the payload digest and MD5 are checked and the
    /// result says which were; a walk stopped early returns `None`.
    pub fn walk_payload(
        &self,
        mut visit: impl FnMut(&mut PayloadEntry<'_>) -> Result<bool, FetchError>,
    ) -> Result<Option<DigestsChecked>, FetchError> {
        let corrupt = |e: std::io::Error| FetchError::CorruptRpm {
            path: self.path.clone(),
            part: "payload",
            reason: e.to_string(),
        };
        let mut file = File::open(&self.path).map_err(FetchError::io("open", &self.path))?;
        file.seek(SeekFrom::Start(self.payload_offset)).map_err(FetchError::io("seek", &self.path))?;
        let algo = self.info.payload_digest_algo.unwrap_or(tag::HASH_SHA256.into());
        let payload_digest = self.info.payload_digest.as_ref().map(|_| (algo, Sha256::new(), Sha512::new()));
        let md5 = self.signature.md5.as_ref().map(|_| {
            let mut m = Md5::new();
            m.update(&self.header.raw);
            m
        });
        let mut hashing = Digesting { inner: BufReader::with_capacity(1 << 20, file), payload: payload_digest, md5 };
        {
            let decoder = self.compressor.decoder(&mut hashing).map_err(corrupt)?;
            let mut cpio = CpioReader::new(decoder);
            while let Some(h) = cpio.next_header().map_err(corrupt)? {
                let rel = match entry_relative_path(Path::new(&h.name)) {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(why) => {
                        return Err(FetchError::UnsafeEntry {
                            path: self.path.clone(),
                            entry: h.name.clone(),
                            reason: why.to_string(),
                        })
                    }
                };
                let mut entry = PayloadEntry { header: &h, path: &rel, data: &mut cpio };
                if !visit(&mut entry)? {
                    return Ok(None);
                }
            }
            // The compressed stream goes on past the trailer (block padding): drain it so
            // the digests cover all of it.
            let mut rest = cpio.into_inner();
            std::io::copy(&mut rest, &mut std::io::sink()).map_err(corrupt)?;
        }
        std::io::copy(&mut hashing.inner, &mut std::io::sink()).map_err(FetchError::io("read", &self.path))?;
        self.finish_digests(hashing).map(Some)
    }

    /// Checks every digest the package carries over its bytes as stored (the payload is
    /// not decompressed: the digests are over the compressed stream).
    pub fn verify(&self) -> Result<DigestsChecked, FetchError> {
        let mut file = File::open(&self.path).map_err(FetchError::io("open", &self.path))?;
        file.seek(SeekFrom::Start(self.payload_offset)).map_err(FetchError::io("seek", &self.path))?;
        let algo = self.info.payload_digest_algo.unwrap_or(tag::HASH_SHA256.into());
        let mut hashing = Digesting {
            inner: BufReader::with_capacity(1 << 20, file),
            payload: self.info.payload_digest.as_ref().map(|_| (algo, Sha256::new(), Sha512::new())),
            md5: self.signature.md5.as_ref().map(|_| {
                let mut m = Md5::new();
                m.update(&self.header.raw);
                m
            }),
        };
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(FetchError::io("read", &self.path))?;
        self.finish_digests(hashing)
    }

    fn finish_digests<R>(&self, hashing: Digesting<R>) -> Result<DigestsChecked, FetchError> {
        let mut checked = DigestsChecked { header_sha256: self.signature.sha256.is_some(), ..Default::default() };
        if let (Some(expected), Some((algo, sha256, sha512))) = (&self.info.payload_digest, hashing.payload) {
            let actual = match u32::try_from(algo) {
                Ok(tag::HASH_SHA256) => hex::encode(sha256.finalize()),
                Ok(tag::HASH_SHA512) => hex::encode(sha512.finalize()),
                _ => {
                    return Err(FetchError::UnsupportedRpm {
                        path: self.path.clone(),
                        reason: format!("payload digest algorithm {algo} (SHA-256 and SHA-512 are read)"),
                    })
                }
            };
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(FetchError::DigestMismatch {
                    path: self.path.clone(),
                    digest: "payload digest",
                    expected: expected.clone(),
                    actual,
                });
            }
            checked.payload_digest = true;
        }
        if let (Some(expected), Some(md5)) = (&self.signature.md5, hashing.md5) {
            let actual = hex::encode(md5.finalize());
            if &actual != expected {
                return Err(FetchError::DigestMismatch {
                    path: self.path.clone(),
                    digest: "MD5 of header and payload",
                    expected: expected.clone(),
                    actual,
                });
            }
            checked.md5 = true;
        }
        Ok(checked)
    }

    /// Extracts the entries for which `select` returns a destination (relative to `dest`).
    /// Folders, files, symlinks (absolute targets re-rooted at `dest`, escaping ones
    /// refused) and hard links (cpio stores the data with the last name only) are written.
    pub fn extract(
        &self,
        dest: &Path,
        mut select: impl FnMut(&Path) -> Option<PathBuf>,
    ) -> Result<(Extracted, DigestsChecked), FetchError> {
        let mut out = Extracted::default();
        // Hard-linked names waiting for the entry that carries their data, by inode.
        let mut pending: HashMap<u32, Vec<PathBuf>> = HashMap::new();
        let checked = self.walk_payload(|entry| {
            let h = entry.header;
            let linked = h.nlink > 1 && h.kind() == EntryKind::File;
            let Some(rel) = select(entry.path) else { return Ok(true) };
            if linked && h.size == 0 {
                pending.entry(h.ino).or_default().push(rel);
                return Ok(true);
            }
            self.write_entry(dest, &rel, entry, &mut out)?;
            if linked {
                for other in pending.remove(&h.ino).unwrap_or_default() {
                    let to = dest.join(&other);
                    if let Some(p) = to.parent() {
                        std::fs::create_dir_all(p).map_err(FetchError::io("create folder", p))?;
                    }
                    let _ = std::fs::remove_file(&to);
                    std::fs::hard_link(dest.join(&rel), &to).map_err(FetchError::io("create hard link", &to))?;
                    out.files.push(other);
                }
            }
            Ok(true)
        })?;
        Ok((out, checked.unwrap_or_default()))
    }

    fn write_entry(
        &self,
        dest: &Path,
        rel: &Path,
        entry: &mut PayloadEntry<'_>,
        out: &mut Extracted,
    ) -> Result<(), FetchError> {
        let target = dest.join(rel);
        let corrupt = |e: std::io::Error| FetchError::CorruptRpm {
            path: self.path.clone(),
            part: "payload",
            reason: format!("{}: {e}", rel.display()),
        };
        match entry.header.kind() {
            EntryKind::Dir => {
                std::fs::create_dir_all(&target).map_err(FetchError::io("create folder", &target))?;
                return Ok(());
            }
            EntryKind::Other => return Ok(()),
            _ => {}
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(FetchError::io("create folder", parent))?;
        }
        let _ = std::fs::remove_file(&target);
        if entry.header.kind() == EntryKind::Symlink {
            let mut link = Vec::new();
            entry.take(4096).read_to_end(&mut link).map_err(corrupt)?;
            let link = PathBuf::from(String::from_utf8_lossy(&link).into_owned());
            let to = contained_link_target(rel, &link).map_err(|why| FetchError::UnsafeEntry {
                path: self.path.clone(),
                entry: format!("{} -> {}", rel.display(), link.display()),
                reason: why.to_string(),
            })?;
            std::os::unix::fs::symlink(&to, &target).map_err(FetchError::io("create symlink", &target))?;
        } else {
            let mode = entry.header.mode & 0o777;
            out.bytes += crate::extract::write_member(entry, &target, mode, corrupt)?;
        }
        out.files.push(rel.to_path_buf());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
