//! A kmod RPM (format v3 lead, v4 headers), written directly: lead, signature header with
//! the digests and sizes `rpm -K` checks, the main header, and a cpio newc payload
//! compressed with xz or gzip.
//!
//! Headers are an index of (tag, type, offset, count) entries over a data store; both are
//! big-endian. Each header starts with its "immutable region" entry (tag 62 for the
//! signature header, 63 for the main header) whose trailer, at the end of the data store,
//! points back over the whole index: rpm 4.x refuses headers without it.

use crate::error::ShipError;
use crate::input::{sha256_hex, BuildSet};
use crate::layout::{self, Naming};
use crate::Compression;
use krbd_vm::cpio::CpioWriter;
use md5::{Digest as _, Md5};
use std::io::Write;

const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

// Tag types.
const T_INT16: u32 = 3;
const T_INT32: u32 = 4;
const T_STRING: u32 = 6;
const T_BIN: u32 = 7;
const T_STRING_ARRAY: u32 = 8;
const T_I18NSTRING: u32 = 9;

// Region tags.
const TAG_HEADERSIGNATURES: u32 = 62;
const TAG_HEADERIMMUTABLE: u32 = 63;
const TAG_HEADERI18NTABLE: u32 = 100;

// Signature tags.
const SIG_SHA256: u32 = 273;
const SIG_SIZE: u32 = 1000;
const SIG_MD5: u32 = 1004;
const SIG_PAYLOADSIZE: u32 = 1007;

// Main header tags.
const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const SUMMARY: u32 = 1004;
const DESCRIPTION: u32 = 1005;
const BUILDTIME: u32 = 1006;
const BUILDHOST: u32 = 1007;
const SIZE: u32 = 1009;
const LICENSE: u32 = 1014;
const GROUP: u32 = 1016;
const OS: u32 = 1021;
const ARCH: u32 = 1022;
const POSTIN: u32 = 1024;
const POSTUN: u32 = 1026;
const FILESIZES: u32 = 1028;
const FILEMODES: u32 = 1030;
const FILERDEVS: u32 = 1033;
const FILEMTIMES: u32 = 1034;
const FILEDIGESTS: u32 = 1035;
const FILELINKTOS: u32 = 1036;
const FILEFLAGS: u32 = 1037;
const FILEUSERNAME: u32 = 1039;
const FILEGROUPNAME: u32 = 1040;
const SOURCERPM: u32 = 1044;
const FILEVERIFYFLAGS: u32 = 1045;
const PROVIDENAME: u32 = 1047;
const REQUIREFLAGS: u32 = 1048;
const REQUIRENAME: u32 = 1049;
const REQUIREVERSION: u32 = 1050;
const RPMVERSION: u32 = 1064;
const POSTINPROG: u32 = 1086;
const POSTUNPROG: u32 = 1088;
const FILEDEVICES: u32 = 1095;
const FILEINODES: u32 = 1096;
const FILELANGS: u32 = 1097;
const PROVIDEFLAGS: u32 = 1112;
const PROVIDEVERSION: u32 = 1113;
const DIRINDEXES: u32 = 1116;
const BASENAMES: u32 = 1117;
const DIRNAMES: u32 = 1118;
const PAYLOADFORMAT: u32 = 1124;
const PAYLOADCOMPRESSOR: u32 = 1125;
const PAYLOADFLAGS: u32 = 1126;
const FILEDIGESTALGO: u32 = 5011;
const PAYLOADDIGEST: u32 = 5092;
const PAYLOADDIGESTALGO: u32 = 5093;

// Dependency flags.
const SENSE_LESS: u32 = 1 << 1;
const SENSE_EQUAL: u32 = 1 << 3;
const SENSE_INTERP: u32 = 1 << 8;
const SENSE_SCRIPT_POST: u32 = 1 << 10;
const SENSE_SCRIPT_POSTUN: u32 = 1 << 12;
const SENSE_RPMLIB: u32 = 1 << 24;

const PGPHASHALGO_SHA256: u32 = 8;
const RPMFILE_DOC: u32 = 1 << 1;

/// A header value.
enum Value {
    Int16(Vec<u16>),
    Int32(Vec<u32>),
    Str(String),
    Bin(Vec<u8>),
    StrArray(Vec<String>),
    I18n(String),
}

impl Value {
    fn type_and_count(&self) -> (u32, u32) {
        match self {
            Value::Int16(v) => (T_INT16, v.len() as u32),
            Value::Int32(v) => (T_INT32, v.len() as u32),
            Value::Str(_) => (T_STRING, 1),
            Value::Bin(b) => (T_BIN, b.len() as u32),
            Value::StrArray(v) => (T_STRING_ARRAY, v.len() as u32),
            Value::I18n(_) => (T_I18NSTRING, 1),
        }
    }
    fn alignment(&self) -> usize {
        match self {
            Value::Int16(_) => 2,
            Value::Int32(_) => 4,
            _ => 1,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        let cstr = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        match self {
            Value::Int16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            Value::Int32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            Value::Str(s) | Value::I18n(s) => cstr(out, s),
            Value::Bin(b) => out.extend_from_slice(b),
            Value::StrArray(v) => v.iter().for_each(|s| cstr(out, s)),
        }
    }
}

/// Serialises a header: the region entry first, then the tags in ascending order.
fn encode_header(region_tag: u32, mut tags: Vec<(u32, Value)>) -> Vec<u8> {
    tags.sort_by_key(|(t, _)| *t);
    let count = tags.len() + 1;
    let mut index = Vec::with_capacity(count * 16);
    let mut store = Vec::new();
    let push_entry = |index: &mut Vec<u8>, tag: u32, ty: u32, offset: i32, n: u32| {
        index.extend_from_slice(&tag.to_be_bytes());
        index.extend_from_slice(&ty.to_be_bytes());
        index.extend_from_slice(&offset.to_be_bytes());
        index.extend_from_slice(&n.to_be_bytes());
    };
    let mut entries = Vec::new();
    for (tag, value) in &tags {
        let align = value.alignment();
        while store.len() % align != 0 {
            store.push(0);
        }
        let (ty, n) = value.type_and_count();
        entries.push((*tag, ty, store.len() as i32, n));
        value.encode(&mut store);
    }
    // The region trailer: an index entry stored as data, whose negative offset spans the
    // whole index.
    let trailer_at = store.len() as i32;
    push_entry(&mut index, region_tag, T_BIN, trailer_at, 16);
    for (tag, ty, off, n) in entries {
        push_entry(&mut index, tag, ty, off, n);
    }
    let mut trailer = Vec::with_capacity(16);
    push_entry(&mut trailer, region_tag, T_BIN, -((count * 16) as i32), 16);
    store.extend_from_slice(&trailer);

    let mut out = Vec::with_capacity(16 + index.len() + store.len());
    out.extend_from_slice(&HEADER_MAGIC);
    out.extend_from_slice(&(count as u32).to_be_bytes());
    out.extend_from_slice(&(store.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&store);
    out
}

fn lead(name: &str) -> Vec<u8> {
    let mut l = Vec::with_capacity(96);
    l.extend_from_slice(&LEAD_MAGIC);
    l.extend_from_slice(&[3, 0]); // format 3.0
    l.extend_from_slice(&0u16.to_be_bytes()); // binary package
    l.extend_from_slice(&1u16.to_be_bytes()); // arch: x86
    let mut n = [0u8; 66];
    let bytes = name.as_bytes();
    let len = bytes.len().min(65);
    n[..len].copy_from_slice(&bytes[..len]);
    l.extend_from_slice(&n);
    l.extend_from_slice(&1u16.to_be_bytes()); // os: Linux
    l.extend_from_slice(&5u16.to_be_bytes()); // signature type: header-style
    l.extend_from_slice(&[0u8; 16]);
    l
}

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

fn dep(name: impl Into<String>, flags: u32, version: impl Into<String>) -> (String, u32, String) {
    (name.into(), flags, version.into())
}

fn render_dep((n, f, v): &(String, u32, String)) -> String {
    if v.is_empty() {
        n.clone()
    } else {
        let op = if f & SENSE_LESS != 0 { "<=" } else { "=" };
        format!("{n} {op} {v}")
    }
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
    let release = set.release();
    let name = naming.rpm_name.clone();
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
        path: format!("{}/build-report.json", layout::doc_dir(&name)),
        mode: 0o100644,
        data: set.report_bytes.clone(),
        flags: RPMFILE_DOC,
    });
    // rpm wants the file list sorted by path (it binary-searches it).
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let module_paths: Vec<String> = set.modules.iter().map(|m| layout::module_path(release, &m.file_name())).collect();

    // Payload: newc with "./"-prefixed names, in header order.
    let mut cpio = CpioWriter::new(Vec::new());
    for f in &files {
        cpio.file(&format!(".{}", f.path), (f.mode & 0o7777) as u32, &f.data).map_err(|e| ShipError::Io {
            action: "write the payload of",
            path: f.path.clone().into(),
            source: e,
        })?;
    }
    let archive = cpio.finish().map_err(ShipError::io("finish the payload of", std::path::Path::new(&name)))?;
    let payload = crate::compress(&archive, compression)?;

    // Dependencies.
    let mut requires = vec![
        dep("/bin/sh", SENSE_INTERP | SENSE_SCRIPT_POST, ""),
        dep("/bin/sh", SENSE_INTERP | SENSE_SCRIPT_POSTUN, ""),
        dep("kernel-uname-r", SENSE_EQUAL, release),
    ];
    for s in set.kernel_requirements() {
        requires.push(dep(format!("kernel({})", s.name), SENSE_EQUAL, format!("0x{:08x}", s.crc)));
    }
    requires.push(dep("rpmlib(CompressedFileNames)", SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL, "3.0.4-1"));
    requires.push(dep("rpmlib(FileDigests)", SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL, "4.6.0-1"));
    requires.push(dep("rpmlib(PayloadFilesHavePrefix)", SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL, "4.0-1"));
    if compression == Compression::Xz {
        requires.push(dep("rpmlib(PayloadIsXz)", SENSE_RPMLIB | SENSE_LESS | SENSE_EQUAL, "5.2-1"));
    }
    let evr = format!("{}-{}", naming.version, naming.revision);
    let mut provides =
        vec![dep(name.clone(), SENSE_EQUAL, evr.clone()), dep(format!("{name}(x86-64)"), SENSE_EQUAL, evr)];
    for m in &set.modules {
        provides.push(dep(format!("kmod({})", m.file_name()), 0, ""));
    }
    for s in set.exports() {
        provides.push(dep(format!("ksym({})", s.name), SENSE_EQUAL, format!("0x{:08x}", s.crc)));
    }

    // File tables: directory + basename pairs.
    let mut dirnames: Vec<String> = Vec::new();
    let mut dirindexes = Vec::new();
    let mut basenames = Vec::new();
    for f in &files {
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
    let n = files.len();
    let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
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
    let split3 = |v: &[(String, u32, String)]| {
        (
            Value::StrArray(v.iter().map(|d| d.0.clone()).collect()),
            Value::Int32(v.iter().map(|d| d.1).collect()),
            Value::StrArray(v.iter().map(|d| d.2.clone()).collect()),
        )
    };
    let (rn, rf, rv) = split3(&requires);
    let (pn, pf, pv) = split3(&provides);
    let compressor = match compression {
        Compression::Xz => "xz",
        Compression::Gzip => "gzip",
    };
    let tags = vec![
        (TAG_HEADERI18NTABLE, Value::StrArray(vec!["C".into()])),
        (NAME, Value::Str(name.clone())),
        (VERSION, Value::Str(naming.version.clone())),
        (RELEASE, Value::Str(naming.revision.clone())),
        (SUMMARY, Value::I18n(summary)),
        (DESCRIPTION, Value::I18n(description)),
        (BUILDTIME, Value::Int32(vec![mtime])),
        (BUILDHOST, Value::Str("krbd-forge".into())),
        (SIZE, Value::Int32(vec![total as u32])),
        (LICENSE, Value::Str("GPL-2.0-only".into())),
        (GROUP, Value::I18n("System Environment/Kernel".into())),
        (OS, Value::Str("linux".into())),
        (ARCH, Value::Str("x86_64".into())),
        (POSTIN, Value::Str(post_script(release, &module_paths))),
        (POSTUN, Value::Str(postun_script(release, &module_paths))),
        (POSTINPROG, Value::Str("/bin/sh".into())),
        (POSTUNPROG, Value::Str("/bin/sh".into())),
        (FILESIZES, Value::Int32(files.iter().map(|f| f.data.len() as u32).collect())),
        (FILEMODES, Value::Int16(files.iter().map(|f| f.mode).collect())),
        (FILERDEVS, Value::Int16(vec![0; n])),
        (FILEMTIMES, Value::Int32(vec![mtime; n])),
        (FILEDIGESTS, Value::StrArray(files.iter().map(|f| sha256_hex(&f.data)).collect())),
        (FILELINKTOS, Value::StrArray(vec![String::new(); n])),
        (FILEFLAGS, Value::Int32(files.iter().map(|f| f.flags).collect())),
        (FILEUSERNAME, Value::StrArray(vec!["root".into(); n])),
        (FILEGROUPNAME, Value::StrArray(vec!["root".into(); n])),
        (SOURCERPM, Value::Str(format!("{name}-{}-{}.src.rpm", naming.version, naming.revision))),
        (FILEVERIFYFLAGS, Value::Int32(vec![u32::MAX; n])),
        (PROVIDENAME, pn),
        (REQUIREFLAGS, rf),
        (REQUIRENAME, rn),
        (REQUIREVERSION, rv),
        (RPMVERSION, Value::Str("4.11.3".into())),
        (FILEDEVICES, Value::Int32(vec![1; n])),
        (FILEINODES, Value::Int32((1..=n as u32).collect())),
        (FILELANGS, Value::StrArray(vec![String::new(); n])),
        (PROVIDEFLAGS, pf),
        (PROVIDEVERSION, pv),
        (DIRINDEXES, Value::Int32(dirindexes)),
        (BASENAMES, Value::StrArray(basenames)),
        (DIRNAMES, Value::StrArray(dirnames)),
        (PAYLOADFORMAT, Value::Str("cpio".into())),
        (PAYLOADCOMPRESSOR, Value::Str(compressor.into())),
        (PAYLOADFLAGS, Value::Str(if compression == Compression::Xz { "6" } else { "9" }.into())),
        (FILEDIGESTALGO, Value::Int32(vec![PGPHASHALGO_SHA256])),
        (PAYLOADDIGEST, Value::StrArray(vec![sha256_hex(&payload)])),
        (PAYLOADDIGESTALGO, Value::Int32(vec![PGPHASHALGO_SHA256])),
    ];
    let header = encode_header(TAG_HEADERIMMUTABLE, tags);

    let mut md5 = Md5::new();
    md5.update(&header);
    md5.update(&payload);
    let signature = encode_header(
        TAG_HEADERSIGNATURES,
        vec![
            (SIG_SHA256, Value::Str(sha256_hex(&header))),
            (SIG_SIZE, Value::Int32(vec![(header.len() + payload.len()) as u32])),
            (SIG_MD5, Value::Bin(md5.finalize().to_vec())),
            (SIG_PAYLOADSIZE, Value::Int32(vec![archive.len() as u32])),
        ],
    );

    let nevr = format!("{name}-{}-{}", naming.version, naming.revision);
    let mut out = lead(&nevr);
    out.extend_from_slice(&signature);
    // The signature header is padded to 8 bytes; the main header follows unpadded.
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out.write_all(&header)
        .and_then(|_| out.write_all(&payload))
        .map_err(ShipError::io("assemble", std::path::Path::new(&name)))?;
    let meta = RpmMetadata {
        name,
        version: naming.version,
        release: naming.revision,
        requires: requires.iter().filter(|d| d.1 & SENSE_RPMLIB == 0).map(render_dep).collect(),
        provides: provides.iter().map(render_dep).collect(),
        files: files.iter().map(|f| f.path.clone()).collect(),
    };
    Ok((out, meta))
}
