//! YUM/DNF repository metadata: the packages a repository lists, read the way dnf reads it.
//!
//! A repository is a base URL with `repodata/repomd.xml`, which names its metadata files;
//! the `primary` one (gzip, xz, zstd or bzip2 compressed, by its magic bytes) lists every
//! package with its name, architecture, epoch:version-release, sha256 and location below
//! the base URL. `repomd.xml` is asked for afresh each time (it changes at the same URL);
//! the primary data goes through the cache under the sha256 `repomd.xml` gives for it, so
//! an unchanged repository costs one small request. With a key, `repomd.xml` must carry a
//! good detached signature (`repomd.xml.asc`, as dnf's `repo_gpgcheck` wants) by it; the
//! sha256 chain then covers the primary data and each package.

use crate::cache::Cache;
use crate::error::FetchError;
use crate::http::{self, FetchOutcome};
use crate::rpm::RpmKeyring;
use krbd_formats::compress::{self, Compression, XzThreads};
use krbd_progress::Listener;
use quick_xml::events::{BytesStart, Event};
use std::io::{BufRead, BufReader, Read};

/// `repomd.xml` larger than this is not a repository index.
const MAX_REPOMD: u64 = 4 << 20;

/// One package a repository's primary data lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoPackage {
    pub name: String,
    /// `x86_64`, `noarch`, `src`.
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    /// The package file's sha256 (lower-case hex).
    pub sha256: String,
    /// Its path below the repository's base URL (`Packages/k/kernel-devel-...rpm`).
    pub href: String,
    /// The source package it was built from (`kernel-5.14.0-284.11.1.el9_2.src.rpm`).
    pub source_rpm: Option<String>,
}

impl RepoPackage {
    /// `version-release.arch`: for kernel packages, the release as `uname -r` prints it.
    pub fn version_release_arch(&self) -> String {
        format!("{}-{}.{}", self.version, self.release, self.arch)
    }

    /// `epoch:version-release`, the epoch left out when it is 0, as rpm prints it.
    pub fn evr(&self) -> String {
        match self.epoch.as_str() {
            "" | "0" => format!("{}-{}", self.version, self.release),
            e => format!("{e}:{}-{}", self.version, self.release),
        }
    }

    /// The package's URL in the repository at `base`.
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.href.trim_start_matches('/'))
    }
}

/// A metadata file `repomd.xml` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFile {
    pub href: String,
    pub checksum_type: String,
    pub checksum: String,
}

fn bad(url: &str, reason: impl Into<String>) -> FetchError {
    FetchError::BadRepodata { url: url.to_string(), reason: reason.into() }
}

/// The packages named `names` that the repository at `base` lists, in its order. `key`:
/// `repomd.xml` must be signed by it.
pub fn packages(
    cache: &Cache,
    base: &str,
    names: &[&str],
    key: Option<&RpmKeyring>,
    listener: &dyn Listener,
) -> Result<Vec<RepoPackage>, FetchError> {
    let base = base.trim_end_matches('/');
    let repomd_url = format!("{base}/repodata/repomd.xml");
    let repomd = http::get(&repomd_url, MAX_REPOMD)?.ok_or_else(|| {
        bad(&repomd_url, "not found: is this the repository's base URL (the folder holding repodata/)?")
    })?;
    if let Some(key) = key {
        let sig_url = format!("{repomd_url}.asc");
        let signature = http::get(&sig_url, MAX_REPOMD)?.ok_or_else(|| FetchError::RepodataNotVerified {
            url: repomd_url.clone(),
            detail: format!("{sig_url} is not there: the repository is not signed"),
        })?;
        key.verify_detached(&signature, &repomd)
            .map_err(|detail| FetchError::RepodataNotVerified { url: repomd_url.clone(), detail })?;
        listener.info(&format!("{repomd_url}: signature verified with {}", key.source().display()));
    }
    let primary = parse_repomd(&repomd).map_err(|r| bad(&repomd_url, r))?;
    if primary.checksum_type != "sha256" {
        return Err(bad(
            &repomd_url,
            format!("the primary data's checksum is {}; only sha256 is read", primary.checksum_type),
        ));
    }
    let primary_url = format!("{base}/{}", primary.href.trim_start_matches('/'));
    let path = match http::fetch(cache, &primary_url, Some(&primary.checksum), listener)? {
        FetchOutcome::Fetched { path, .. } => path,
        FetchOutcome::NotFound => return Err(bad(&primary_url, "listed in repomd.xml but not there")),
    };
    let file = std::fs::File::open(&path).map_err(FetchError::io("open", &path))?;
    let mut raw = BufReader::new(file);
    let magic = raw.fill_buf().map_err(FetchError::io("read", &path))?.to_vec();
    let plain = compress::decoder(raw, Compression::sniff(&magic), XzThreads::Single)
        .map_err(FetchError::io("decompress", &path))?;
    parse_primary(BufReader::new(plain), |n| names.contains(&n)).map_err(|r| bad(&primary_url, r))
}

/// The text of an XML stream's events, as one reader over `R`.
struct Xml<R: BufRead> {
    reader: quick_xml::Reader<R>,
    buf: Vec<u8>,
}

fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    let a = e.try_get_attribute(name).ok()??;
    a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
}

/// The `primary` entry of `repomd.xml`.
pub fn parse_repomd(xml: &[u8]) -> Result<MetadataFile, String> {
    let mut x = Xml { reader: quick_xml::Reader::from_reader(xml), buf: Vec::new() };
    let (mut in_primary, mut href, mut checksum_type, mut checksum) = (false, None, None, None);
    let mut in_checksum = false;
    loop {
        let event = x.reader.read_event_into(&mut x.buf).map_err(|e| format!("repomd.xml: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().into_inner() {
                "data" => in_primary = attribute(&e, "type").as_deref() == Some("primary"),
                "location" if in_primary => href = attribute(&e, "href"),
                "checksum" if in_primary => {
                    checksum_type = attribute(&e, "type");
                    in_checksum = true;
                }
                _ => {}
            },
            Event::Text(t) if in_checksum => checksum = Some(t.trim().to_ascii_lowercase()),
            Event::End(e) => match e.local_name().into_inner() {
                "checksum" => in_checksum = false,
                "data" if in_primary => break,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        x.buf.clear();
    }
    match (href, checksum_type, checksum) {
        (Some(href), Some(checksum_type), Some(checksum)) if !checksum.is_empty() => {
            Ok(MetadataFile { href, checksum_type, checksum })
        }
        _ => Err("repomd.xml names no primary data with its location and checksum".into()),
    }
}

/// The package being read, field by field.
#[derive(Default)]
struct Partial {
    name: String,
    arch: String,
    epoch: String,
    version: String,
    release: String,
    sha256: Option<String>,
    href: Option<String>,
    source_rpm: Option<String>,
}

/// Every package of `primary.xml` whose name `wanted` accepts.
pub fn parse_primary<R: BufRead>(reader: R, wanted: impl Fn(&str) -> bool) -> Result<Vec<RepoPackage>, String> {
    let mut x = Xml { reader: quick_xml::Reader::from_reader(reader), buf: Vec::new() };
    let mut found = Vec::new();
    let mut p: Option<Partial> = None;
    let mut text = String::new();
    // The element whose text is being collected, and the checksum's type.
    let mut field: Option<String> = None;
    let mut checksum_is_sha256 = false;
    loop {
        let event = x.reader.read_event_into(&mut x.buf).map_err(|e| format!("primary data: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().into_inner().to_string();
                match (name.as_str(), p.as_mut()) {
                    ("package", _) => p = Some(Partial::default()),
                    ("version", Some(p)) => {
                        p.epoch = attribute(&e, "epoch").unwrap_or_default();
                        p.version = attribute(&e, "ver").unwrap_or_default();
                        p.release = attribute(&e, "rel").unwrap_or_default();
                    }
                    ("location", Some(p)) => p.href = attribute(&e, "href"),
                    ("checksum", Some(_)) => {
                        checksum_is_sha256 = attribute(&e, "type").as_deref() == Some("sha256");
                        field = Some(name);
                    }
                    ("name" | "arch" | "rpm:sourcerpm", Some(_)) => field = Some(name),
                    _ => {}
                }
                text.clear();
            }
            Event::Text(t) => text.push_str(&t),
            Event::GeneralRef(r) => text.push_str(match &*r {
                "amp" => "&",
                "lt" => "<",
                "gt" => ">",
                "quot" => "\"",
                "apos" => "'",
                _ => "",
            }),
            Event::End(e) => {
                if let (Some(f), Some(p)) = (field.take(), p.as_mut()) {
                    let value = text.trim().to_string();
                    match f.as_str() {
                        "name" => p.name = value,
                        "arch" => p.arch = value,
                        "checksum" if checksum_is_sha256 => p.sha256 = Some(value.to_ascii_lowercase()),
                        "rpm:sourcerpm" if !value.is_empty() => p.source_rpm = Some(value),
                        _ => {}
                    }
                }
                if e.name().into_inner() == "package" {
                    if let Some(done) = p.take().filter(|p| wanted(&p.name)) {
                        found.push(finish(done)?);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        x.buf.clear();
    }
    Ok(found)
}

fn finish(p: Partial) -> Result<RepoPackage, String> {
    let nvr = format!("{}-{}-{}.{}", p.name, p.version, p.release, p.arch);
    let sha256 = p.sha256.filter(|s| s.len() == 64).ok_or_else(|| format!("{nvr}: no sha256 checksum"))?;
    let href = p.href.ok_or_else(|| format!("{nvr}: no location"))?;
    if href.contains("..") || href.contains("://") {
        return Err(format!("{nvr}: its location {href:?} is not a path inside the repository"));
    }
    Ok(RepoPackage {
        name: p.name,
        arch: p.arch,
        epoch: p.epoch,
        version: p.version,
        release: p.release,
        sha256,
        href,
        source_rpm: p.source_rpm,
    })
}

/// Reads at most `limit` bytes of `reader`; more is an error.
pub(crate) fn read_limited(mut reader: impl Read, limit: u64, what: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.by_ref().take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!("{what} is larger than {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1733480000</revision>
  <data type="filelists">
    <checksum type="sha256">1111111111111111111111111111111111111111111111111111111111111111</checksum>
    <location href="repodata/1111-filelists.xml.gz"/>
  </data>
  <data type="primary">
    <checksum type="sha256">ABCDEFabcdef0000000000000000000000000000000000000000000000000000</checksum>
    <open-checksum type="sha256">2222222222222222222222222222222222222222222222222222222222222222</open-checksum>
    <location href="repodata/abcd-primary.xml.zst"/>
    <size>1000</size>
  </data>
</repomd>"#;

    fn package(name: &str, arch: &str, rel: &str, sha: char) -> String {
        format!(
            r#"<package type="rpm">
  <name>{name}</name>
  <arch>{arch}</arch>
  <version epoch="0" ver="5.14.0" rel="{rel}"/>
  <checksum type="sha256" pkgid="YES">{}</checksum>
  <summary>Development package &amp; headers</summary>
  <location href="Packages/k/{name}-5.14.0-{rel}.{arch}.rpm"/>
  <format>
    <rpm:license>GPLv2</rpm:license>
    <rpm:sourcerpm>kernel-5.14.0-{rel}.src.rpm</rpm:sourcerpm>
    <rpm:provides><rpm:entry name="{name}" flags="EQ" epoch="0" ver="5.14.0" rel="{rel}"/></rpm:provides>
  </format>
</package>"#,
            sha.to_string().repeat(64)
        )
    }

    #[test]
    fn repomd_names_its_primary_data() {
        let m = parse_repomd(REPOMD.as_bytes()).unwrap();
        assert_eq!(m.href, "repodata/abcd-primary.xml.zst");
        assert_eq!(m.checksum_type, "sha256");
        assert_eq!(m.checksum, format!("abcdefabcdef{}", "0".repeat(52)));
        assert!(parse_repomd(REPOMD.replace("\"primary\"", "\"other\"").as_bytes()).is_err());
        assert!(parse_repomd(b"not xml <").is_err());
    }

    #[test]
    fn primary_lists_the_wanted_packages_with_their_sha256_and_location() {
        let xml = format!(
            "<metadata packages=\"3\">{}{}{}</metadata>",
            package("kernel-devel", "x86_64", "284.11.1.el9_2", 'a'),
            package("kernel-headers", "x86_64", "284.11.1.el9_2", 'b'),
            package("kernel-devel", "x86_64", "362.8.1.el9_3", 'c'),
        );
        let found = parse_primary(xml.as_bytes(), |n| n == "kernel-devel").unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].version_release_arch(), "5.14.0-284.11.1.el9_2.x86_64");
        assert_eq!(found[0].sha256, "a".repeat(64));
        assert_eq!(found[0].href, "Packages/k/kernel-devel-5.14.0-284.11.1.el9_2.x86_64.rpm");
        assert_eq!(found[0].source_rpm.as_deref(), Some("kernel-5.14.0-284.11.1.el9_2.src.rpm"));
        assert_eq!(found[0].evr(), "5.14.0-284.11.1.el9_2");
        assert_eq!(found[1].release, "362.8.1.el9_3");
        assert_eq!(
            found[1].url("http://h/repo/"),
            "http://h/repo/Packages/k/kernel-devel-5.14.0-362.8.1.el9_3.x86_64.rpm"
        );
        // A location outside the repository is refused, not followed.
        let evil = package("kernel-devel", "x86_64", "1.el9", 'd').replace("Packages/k/", "../../");
        let e = parse_primary(format!("<metadata>{evil}</metadata>").as_bytes(), |_| true).unwrap_err();
        assert!(e.contains("not a path inside the repository"), "{e}");
        let no_sha = package("kernel-devel", "x86_64", "1.el9", 'd').replace("sha256", "sha1");
        assert!(parse_primary(format!("<metadata>{no_sha}</metadata>").as_bytes(), |_| true).is_err());
    }
}
