//! The typed views of the main header ([`RpmInfo`]) and the signature header
//! ([`SignatureInfo`]): the tags krbd-forge reads, decoded.

use krbd_formats::rpm::header::Header;
use krbd_formats::rpm::tag::*;
use serde::Serialize;

/// A `Requires:` or `Provides:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub name: String,
    /// `= 3.10.0-957.el7`, `>= 1.2`, or empty.
    pub constraint: String,
}

/// One file the header lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// As the header names it: `/usr/src/kernels/...` in binary packages, a bare name in
    /// source packages.
    pub path: String,
    pub size: u64,
    pub mode: u32,
    /// Hex digest in the header's file digest algorithm; empty for folders and links.
    pub digest: String,
    pub link_to: String,
}

/// The typed view of a main header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpmInfo {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<u64>,
    pub arch: String,
    /// A source package: it has no `SOURCERPM` tag (binary packages name theirs).
    pub is_source: bool,
    pub source_rpm: Option<String>,
    pub requires: Vec<Dependency>,
    pub provides: Vec<Dependency>,
    pub files: Vec<FileInfo>,
    /// `cpio` in every RPM written by rpm 4.
    pub payload_format: String,
    /// `gzip` when the tag is absent (rpm's own default).
    pub payload_compressor: String,
    /// Hex digest of the compressed payload, when the builder recorded one (rpm >= 4.14).
    pub payload_digest: Option<String>,
    pub payload_digest_algo: Option<u64>,
}

impl RpmInfo {
    /// `name-version-release.arch`
    pub fn nvra(&self) -> String {
        format!("{}-{}-{}.{}", self.name, self.version, self.release, self.arch)
    }

    pub fn from_header(h: &Header) -> Result<RpmInfo, String> {
        let need = |tag: u32, what: &str| h.string(tag).map(String::from).ok_or_else(|| format!("no {what} tag"));
        let files = file_list(h)?;
        Ok(RpmInfo {
            name: need(NAME, "name")?,
            version: need(VERSION, "version")?,
            release: need(RELEASE, "release")?,
            epoch: h.int(EPOCH),
            arch: h.string(ARCH).unwrap_or("").to_string(),
            is_source: h.get(SOURCERPM).is_none(),
            source_rpm: h.string(SOURCERPM).map(String::from),
            requires: dependencies(h, REQUIRENAME, REQUIREFLAGS, REQUIREVERSION),
            provides: dependencies(h, PROVIDENAME, PROVIDEFLAGS, PROVIDEVERSION),
            files,
            payload_format: h.string(PAYLOADFORMAT).unwrap_or("cpio").to_string(),
            payload_compressor: h.string(PAYLOADCOMPRESSOR).unwrap_or("gzip").to_string(),
            payload_digest: h.string(PAYLOADDIGEST).map(String::from),
            payload_digest_algo: h.int(PAYLOADDIGESTALGO),
        })
    }
}

fn dependencies(h: &Header, names: u32, flags: u32, versions: u32) -> Vec<Dependency> {
    let (n, f, v) = (h.strings(names), h.ints(flags), h.strings(versions));
    n.into_iter()
        .enumerate()
        .map(|(i, name)| {
            let flag = f.get(i).copied().unwrap_or(0);
            let version = v.get(i).cloned().unwrap_or_default();
            let op = sense_operator(flag as u32);
            let constraint =
                if op.is_empty() || version.is_empty() { String::new() } else { format!("{op} {version}") };
            Dependency { name, constraint }
        })
        .collect()
}

/// The file list: `DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]` (or the pre-4.0 `OLDFILENAMES`).
fn file_list(h: &Header) -> Result<Vec<FileInfo>, String> {
    let paths: Vec<String> = if h.get(BASENAMES).is_some() {
        let (base, dirs, idx) = (h.strings(BASENAMES), h.strings(DIRNAMES), h.ints(DIRINDEXES));
        if idx.len() != base.len() {
            return Err(format!("{} basenames but {} dir indexes", base.len(), idx.len()));
        }
        base.iter()
            .zip(&idx)
            .map(|(b, i)| {
                dirs.get(*i as usize)
                    .map(|d| format!("{d}{b}"))
                    .ok_or_else(|| format!("dir index {i} of {} dirs", dirs.len()))
            })
            .collect::<Result<_, _>>()?
    } else {
        h.strings(OLDFILENAMES)
    };
    let (sizes, modes, digests, links) =
        (h.ints(FILESIZES), h.ints(FILEMODES), h.strings(FILEDIGESTS), h.strings(FILELINKTOS));
    Ok(paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| FileInfo {
            path,
            size: sizes.get(i).copied().unwrap_or(0),
            mode: modes.get(i).copied().unwrap_or(0) as u32,
            digest: digests.get(i).cloned().unwrap_or_default(),
            link_to: links.get(i).cloned().unwrap_or_default(),
        })
        .collect())
}

/// The typed view of the signature header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignatureInfo {
    /// Header plus compressed payload, in bytes.
    pub size: Option<u64>,
    /// Uncompressed payload size.
    pub payload_size: Option<u64>,
    /// MD5 over header plus payload (legacy, hex).
    pub md5: Option<String>,
    /// SHA-1 over the main header (hex, as stored).
    pub sha1: Option<String>,
    /// SHA-256 over the main header (hex, as stored).
    pub sha256: Option<String>,
    /// Which OpenPGP signatures the package carries (verified by [`super::signature`] when a key is given).
    pub signatures: Vec<&'static str>,
}

impl SignatureInfo {
    pub fn from_header(h: &Header) -> SignatureInfo {
        let signatures = [(SIG_RSA, "rsa"), (SIG_DSA, "dsa"), (SIG_PGP, "pgp"), (SIG_GPG, "gpg")]
            .into_iter()
            .filter(|(t, _)| h.get(*t).is_some())
            .map(|(_, n)| n)
            .collect();
        SignatureInfo {
            size: h.int(SIG_LONGSIZE).or_else(|| h.int(SIG_SIZE)),
            payload_size: h.int(SIG_PAYLOADSIZE),
            md5: h.bin(SIG_MD5).map(hex::encode),
            sha1: h.string(SIG_SHA1).map(|s| s.to_ascii_lowercase()),
            sha256: h.string(SIG_SHA256).map(|s| s.to_ascii_lowercase()),
            signatures,
        }
    }
}
