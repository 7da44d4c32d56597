//! A kmod RPM (format v3 lead, v4 headers), written directly: lead, signature header with
//! the digests and sizes `rpm -K` checks, the main header, and a cpio newc payload
//! compressed with xz or gzip. The format itself (lead, header encoding with its region
//! entries, tag numbers, cpio) is krbd-formats'; this module decides what goes in.

use crate::error::ShipError;
use crate::input::BuildSet;
use crate::layout::{self, Naming};
use crate::Compression;
use krbd_formats::cpio::CpioWriter;
use krbd_formats::digest::sha256_hex;
use krbd_formats::rpm::header::{self, Value};
use krbd_formats::rpm::lead::Lead;
use krbd_formats::rpm::tag;
use md5::{Digest as _, Md5};
use std::path::Path;

/// One file of the package.
struct RpmFile {
    path: String,
    mode: u16,
    data: Vec<u8>,
    flags: u32,
}

/// The metadata the RPM carries, for reports and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RpmMetadata {
    pub name: String,
    pub version: String,
    pub release: String,
    pub requires: Vec<String>,
    pub provides: Vec<String>,
    pub files: Vec<String>,
}

/// A dependency: name, `RPMSENSE_*` flags, version.
type Dep = (String, u32, String);

fn dep(name: impl Into<String>, flags: u32, version: impl Into<String>) -> Dep {
    (name.into(), flags, version.into())
}

/// The shell text of `%post`: refresh weak-modules' links (RHEL) and the module index.
fn post_script(release: &str, paths: &[String]) -> String {
    format!(
        "# krbd-forge: make the new modules known to the kernel {release}\n\
         if [ -x /usr/sbin/weak-modules ]; then\n    printf '%s\\n' {} | /usr/sbin/weak-modules --add-modules || true\nfi\n{}",
        paths.join(" "),
        layout::depmod_lines(release, "")
    )
}

fn postun_script(release: &str, paths: &[String]) -> String {
    format!(
        "# krbd-forge: forget the removed modules\n\
         if [ -x /usr/sbin/weak-modules ]; then\n    printf '%s\\n' {} | /usr/sbin/weak-modules --remove-modules || true\nfi\n{}",
        paths.join(" "),
        layout::depmod_lines(release, "")
    )
}

/// Writes the kmod RPM of `set`; returns its bytes and metadata.
pub fn build_rpm(set: &BuildSet, compression: Compression, mtime: u32) -> Result<(Vec<u8>, RpmMetadata), ShipError> {
    let naming = Naming::of(set);
    let name = naming.rpm_name.clone();
    let files = package_files(set, &name);
    let (archive_len, payload) = payload(&files, compression, &name)?;
    let (requires, provides) = dependencies(set, &naming, compression);
    let contents = Contents { files: &files, requires: &requires, provides: &provides, compression, mtime };
    let header = header::encode(Some(tag::HEADERIMMUTABLE), main_header_tags(set, &naming, &contents, &payload));
    let signature = signature_header(&header, &payload, archive_len);

    let nevr = format!("{name}-{}-{}", naming.version, naming.revision);
    let mut out = Lead::binary(&nevr).to_bytes().to_vec();
    out.extend_from_slice(&signature);
    // The signature header is padded to 8 bytes; the main header follows unpadded.
    out.resize(out.len() + header::signature_padding(signature.len()), 0);
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    let render = |d: &Dep| tag::render_dependency(&d.0, d.1, &d.2);
    let meta = RpmMetadata {
        name,
        version: naming.version,
        release: naming.revision,
        requires: requires.iter().filter(|d| d.1 & tag::SENSE_RPMLIB == 0).map(render).collect(),
        provides: provides.iter().map(render).collect(),
        files: files.iter().map(|f| f.path.clone()).collect(),
    };
    Ok((out, meta))
}

/// What the main header describes besides the set's own metadata.
struct Contents<'a> {
    files: &'a [RpmFile],
    requires: &'a [Dep],
    provides: &'a [Dep],
    compression: Compression,
    mtime: u32,
}

/// The modules and the build report, sorted by path (rpm binary-searches the file list).
fn package_files(set: &BuildSet, name: &str) -> Vec<RpmFile> {
    let release = set.release();
    let mut files: Vec<RpmFile> = set
        .modules
        .iter()
        .map(|m| RpmFile {
            path: layout::module_path(release, &m.file_name()),
            mode: 0o100644,
            data: m.bytes.clone(),
            flags: 0,
        })
        .collect();
    files.push(RpmFile {
        path: format!("{}/build-report.json", layout::doc_dir(name)),
        mode: 0o100644,
        data: set.report_bytes.clone(),
        flags: tag::FILE_DOC,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The payload: newc with "./"-prefixed names, in header order, compressed. Returns the
/// uncompressed size too (the signature header records it).
fn payload(files: &[RpmFile], compression: Compression, name: &str) -> Result<(usize, Vec<u8>), ShipError> {
    let mut cpio = CpioWriter::new(Vec::new());
    for f in files {
        cpio.file(&format!(".{}", f.path), (f.mode & 0o7777) as u32, &f.data).map_err(|e| ShipError::Io {
            action: "write the payload of",
            path: f.path.clone().into(),
            source: e,
        })?;
    }
    let archive = cpio.finish().map_err(ShipError::io("finish the payload of", Path::new(name)))?;
    Ok((archive.len(), crate::compress(&archive, compression)?))
}

/// Requires (the shell for the scripts, the exact kernel, every kernel symbol with its CRC,
/// the rpmlib features used) and provides (the package, its modules and their symbols).
fn dependencies(set: &BuildSet, naming: &Naming, compression: Compression) -> (Vec<Dep>, Vec<Dep>) {
    let rpmlib = tag::SENSE_RPMLIB | tag::SENSE_LESS | tag::SENSE_EQUAL;
    let mut requires = vec![
        dep("/bin/sh", tag::SENSE_INTERP | tag::SENSE_SCRIPT_POST, ""),
        dep("/bin/sh", tag::SENSE_INTERP | tag::SENSE_SCRIPT_POSTUN, ""),
        dep("kernel-uname-r", tag::SENSE_EQUAL, set.release()),
    ];
    for s in set.kernel_requirements() {
        requires.push(dep(format!("kernel({})", s.name), tag::SENSE_EQUAL, format!("0x{:08x}", s.crc)));
    }
    requires.push(dep("rpmlib(CompressedFileNames)", rpmlib, "3.0.4-1"));
    requires.push(dep("rpmlib(FileDigests)", rpmlib, "4.6.0-1"));
    requires.push(dep("rpmlib(PayloadFilesHavePrefix)", rpmlib, "4.0-1"));
    if compression == Compression::Xz {
        requires.push(dep("rpmlib(PayloadIsXz)", rpmlib, "5.2-1"));
    }
    let name = &naming.rpm_name;
    let evr = format!("{}-{}", naming.version, naming.revision);
    let mut provides =
        vec![dep(name.clone(), tag::SENSE_EQUAL, evr.clone()), dep(format!("{name}(x86-64)"), tag::SENSE_EQUAL, evr)];
    for m in &set.modules {
        provides.push(dep(format!("kmod({})", m.file_name()), 0, ""));
    }
    for s in set.exports() {
        provides.push(dep(format!("ksym({})", s.name), tag::SENSE_EQUAL, format!("0x{:08x}", s.crc)));
    }
    (requires, provides)
}

/// The file list as directory + basename pairs: `DIRNAMES`, `DIRINDEXES`, `BASENAMES`.
fn file_tables(files: &[RpmFile]) -> (Vec<String>, Vec<u32>, Vec<String>) {
    let mut dirnames: Vec<String> = Vec::new();
    let mut dirindexes = Vec::new();
    let mut basenames = Vec::new();
    for f in files {
        let (dir, base) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        let dir = format!("{dir}/");
        let idx = match dirnames.iter().position(|d| *d == dir) {
            Some(i) => i,
            None => {
                dirnames.push(dir);
                dirnames.len() - 1
            }
        };
        dirindexes.push(idx as u32);
        basenames.push(base.to_string());
    }
    (dirnames, dirindexes, basenames)
}

/// `SUMMARY` and `DESCRIPTION`.
fn summary_and_description(set: &BuildSet) -> (String, String) {
    let release = set.release();
    let summary = format!("Ceph kernel client modules (libceph, ceph, rbd) for kernel {release}");
    let series = set
        .report
        .series
        .as_ref()
        .map(|s| format!("patch series {}", s.series))
        .unwrap_or_else(|| "no patch series (stock sources)".into());
    let description = format!(
        "libceph.ko, ceph.ko and rbd.ko rebuilt by krbd-forge for exactly {release}, with {series}.\n\
         Installed under {}, which depmod searches before the in-tree modules.\nBuild key {}.",
        layout::module_dir(release),
        set.report.build_key
    );
    (summary, description)
}

/// The main header's tags: the package's identity and scripts, then the file list, the
/// dependencies and the payload's format and digest.
fn main_header_tags(set: &BuildSet, naming: &Naming, contents: &Contents<'_>, payload: &[u8]) -> Vec<(u32, Value)> {
    let release = set.release();
    let name = &naming.rpm_name;
    let module_paths: Vec<String> = set.modules.iter().map(|m| layout::module_path(release, &m.file_name())).collect();
    let total: u64 = contents.files.iter().map(|f| f.data.len() as u64).sum();
    let (summary, description) = summary_and_description(set);
    let text = |s: &str| Value::String(s.to_string());
    let mut tags = vec![
        (tag::HEADERI18NTABLE, Value::StringArray(vec!["C".into()])),
        (tag::NAME, text(name)),
        (tag::VERSION, text(&naming.version)),
        (tag::RELEASE, text(&naming.revision)),
        (tag::SUMMARY, Value::I18nString(vec![summary])),
        (tag::DESCRIPTION, Value::I18nString(vec![description])),
        (tag::BUILDTIME, Value::Int32(vec![contents.mtime])),
        (tag::BUILDHOST, text("krbd-forge")),
        (tag::SIZE, Value::Int32(vec![total as u32])),
        (tag::LICENSE, text("GPL-2.0-only")),
        (tag::GROUP, Value::I18nString(vec!["System Environment/Kernel".into()])),
        (tag::OS, text("linux")),
        (tag::ARCH, text("x86_64")),
        (tag::POSTIN, Value::String(post_script(release, &module_paths))),
        (tag::POSTUN, Value::String(postun_script(release, &module_paths))),
        (tag::POSTINPROG, text("/bin/sh")),
        (tag::POSTUNPROG, text("/bin/sh")),
        (tag::SOURCERPM, Value::String(format!("{name}-{}-{}.src.rpm", naming.version, naming.revision))),
        (tag::RPMVERSION, text("4.11.3")),
    ];
    tags.extend(file_list_tags(contents.files, contents.mtime));
    tags.extend(dependency_tags(contents.requires, tag::REQUIRENAME, tag::REQUIREFLAGS, tag::REQUIREVERSION));
    tags.extend(dependency_tags(contents.provides, tag::PROVIDENAME, tag::PROVIDEFLAGS, tag::PROVIDEVERSION));
    tags.extend(payload_tags(payload, contents.compression));
    tags
}

/// The payload's tags: a cpio archive, how it is compressed, and its digest.
fn payload_tags(payload: &[u8], compression: Compression) -> [(u32, Value); 5] {
    let (compressor, level) = match compression {
        Compression::Xz => ("xz", "6"),
        Compression::Gzip => ("gzip", "9"),
    };
    [
        (tag::PAYLOADFORMAT, Value::String("cpio".into())),
        (tag::PAYLOADCOMPRESSOR, Value::String(compressor.into())),
        (tag::PAYLOADFLAGS, Value::String(level.into())),
        (tag::PAYLOADDIGEST, Value::StringArray(vec![sha256_hex(payload)])),
        (tag::PAYLOADDIGESTALGO, Value::Int32(vec![tag::HASH_SHA256])),
    ]
}

/// The per-file tags, one entry per file in the header's order.
fn file_list_tags(files: &[RpmFile], mtime: u32) -> Vec<(u32, Value)> {
    let n = files.len();
    let (dirnames, dirindexes, basenames) = file_tables(files);
    vec![
        (tag::FILESIZES, Value::Int32(files.iter().map(|f| f.data.len() as u32).collect())),
        (tag::FILEMODES, Value::Int16(files.iter().map(|f| f.mode).collect())),
        (tag::FILERDEVS, Value::Int16(vec![0; n])),
        (tag::FILEMTIMES, Value::Int32(vec![mtime; n])),
        (tag::FILEDIGESTS, Value::StringArray(files.iter().map(|f| sha256_hex(&f.data)).collect())),
        (tag::FILELINKTOS, Value::StringArray(vec![String::new(); n])),
        (tag::FILEFLAGS, Value::Int32(files.iter().map(|f| f.flags).collect())),
        (tag::FILEUSERNAME, Value::StringArray(vec!["root".into(); n])),
        (tag::FILEGROUPNAME, Value::StringArray(vec!["root".into(); n])),
        (tag::FILEVERIFYFLAGS, Value::Int32(vec![u32::MAX; n])),
        (tag::FILEDEVICES, Value::Int32(vec![1; n])),
        (tag::FILEINODES, Value::Int32((1..=n as u32).collect())),
        (tag::FILELANGS, Value::StringArray(vec![String::new(); n])),
        (tag::DIRINDEXES, Value::Int32(dirindexes)),
        (tag::BASENAMES, Value::StringArray(basenames)),
        (tag::DIRNAMES, Value::StringArray(dirnames)),
        (tag::FILEDIGESTALGO, Value::Int32(vec![tag::HASH_SHA256])),
    ]
}

/// A dependency list as its three parallel tags: names, flags, versions.
fn dependency_tags(deps: &[Dep], names: u32, flags: u32, versions: u32) -> [(u32, Value); 3] {
    [
        (names, Value::StringArray(deps.iter().map(|d| d.0.clone()).collect())),
        (flags, Value::Int32(deps.iter().map(|d| d.1).collect())),
        (versions, Value::StringArray(deps.iter().map(|d| d.2.clone()).collect())),
    ]
}

/// The signature header: SHA-256 of the main header, the size of header and payload, the
/// MD5 over both, and the uncompressed payload size.
fn signature_header(header: &[u8], payload: &[u8], archive_len: usize) -> Vec<u8> {
    let mut md5 = Md5::new();
    md5.update(header);
    md5.update(payload);
    header::encode(
        Some(tag::HEADERSIGNATURES),
        vec![
            (tag::SIG_SHA256, Value::String(sha256_hex(header))),
            (tag::SIG_SIZE, Value::Int32(vec![(header.len() + payload.len()) as u32])),
            (tag::SIG_MD5, Value::Bin(md5.finalize().to_vec())),
            (tag::SIG_PAYLOADSIZE, Value::Int32(vec![archive_len as u32])),
        ],
    )
}

/// The host package's RPM: `krbd-forge-host-<version>-1.x86_64`, the given files with
/// their own modes, no scripts.
pub fn build_host_rpm(
    files: &[crate::host::HostFile],
    version: &str,
    compression: Compression,
    mtime: u32,
) -> Result<Vec<u8>, ShipError> {
    let name = crate::host::HOST_PACKAGE;
    let release = "1";
    let files: Vec<RpmFile> = files
        .iter()
        .map(|f| RpmFile {
            path: f.path.clone(),
            mode: 0o100000 | (f.mode & 0o7777) as u16,
            data: f.data.clone(),
            flags: if f.config { tag::FILE_CONFIG | tag::FILE_NOREPLACE } else { 0 },
        })
        .collect();
    let (archive_len, payload) = payload(&files, compression, name)?;
    let rpmlib = tag::SENSE_RPMLIB | tag::SENSE_LESS | tag::SENSE_EQUAL;
    let mut requires = vec![
        dep("/bin/sh", 0, ""),
        dep("rpmlib(CompressedFileNames)", rpmlib, "3.0.4-1"),
        dep("rpmlib(FileDigests)", rpmlib, "4.6.0-1"),
        dep("rpmlib(PayloadFilesHavePrefix)", rpmlib, "4.0-1"),
    ];
    if compression == Compression::Xz {
        requires.push(dep("rpmlib(PayloadIsXz)", rpmlib, "5.2-1"));
    }
    let evr = format!("{version}-{release}");
    let provides =
        vec![dep(name, tag::SENSE_EQUAL, evr.clone()), dep(format!("{name}(x86-64)"), tag::SENSE_EQUAL, evr)];
    let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    let text = |s: &str| Value::String(s.to_string());
    let mut tags = vec![
        (tag::HEADERI18NTABLE, Value::StringArray(vec!["C".into()])),
        (tag::NAME, text(name)),
        (tag::VERSION, text(version)),
        (tag::RELEASE, text(release)),
        (tag::SUMMARY, Value::I18nString(vec!["krbd-forge's host tool and kernel-install check".into()])),
        (tag::DESCRIPTION, Value::I18nString(vec![crate::host::DESCRIPTION.replace('\n', " ")])),
        (tag::BUILDTIME, Value::Int32(vec![mtime])),
        (tag::BUILDHOST, text("krbd-forge")),
        (tag::SIZE, Value::Int32(vec![total as u32])),
        (tag::LICENSE, text("GPL-2.0-only")),
        (tag::GROUP, Value::I18nString(vec!["System Environment/Base".into()])),
        (tag::OS, text("linux")),
        (tag::ARCH, text("x86_64")),
        (tag::SOURCERPM, Value::String(format!("{name}-{version}-{release}.src.rpm"))),
        (tag::RPMVERSION, text("4.11.3")),
    ];
    tags.extend(file_list_tags(&files, mtime));
    tags.extend(dependency_tags(&requires, tag::REQUIRENAME, tag::REQUIREFLAGS, tag::REQUIREVERSION));
    tags.extend(dependency_tags(&provides, tag::PROVIDENAME, tag::PROVIDEFLAGS, tag::PROVIDEVERSION));
    tags.extend(payload_tags(&payload, compression));
    let header = header::encode(Some(tag::HEADERIMMUTABLE), tags);
    let signature = signature_header(&header, &payload, archive_len);
    let mut out = Lead::binary(&format!("{name}-{version}-{release}")).to_bytes().to_vec();
    out.extend_from_slice(&signature);
    out.resize(out.len() + header::signature_padding(signature.len()), 0);
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(out)
}
