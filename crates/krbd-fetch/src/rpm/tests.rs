//! RPMs assembled here byte by byte (lead, signature header, header, cpio payload), so
//! each part can be damaged on purpose. Real rpmbuild output is read in tests/rpm_real.rs.

use super::*;
use krbd_formats::cpio::CpioWriter;
use krbd_formats::digest::sha256_hex;
use krbd_formats::rpm::header::{encode, Value};
use std::io::Write;

fn strs(v: &[&str]) -> Value {
    Value::StringArray(v.iter().map(|s| s.to_string()).collect())
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

struct Built {
    bytes: Vec<u8>,
    header_offset: usize,
    payload_offset: usize,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A newc archive of (name, mode, data) entries, by the entries' file types.
fn newc(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut w = CpioWriter::new(Vec::new());
    for (name, mode, data) in files {
        match mode & 0o170000 {
            0o040000 => w.directory(name, *mode),
            0o120000 => w.symlink(name, std::str::from_utf8(data).unwrap()),
            _ => w.file(name, *mode, data),
        }
        .unwrap();
    }
    w.finish().unwrap()
}

/// A binary package of `files` (name, mode, data), gzip payload, with SHA-256 header
/// digest, payload digest and MD5.
fn build(files: &[(&str, u32, &[u8])]) -> Built {
    let payload = gzip(&newc(files));
    let names: Vec<&str> = files.iter().map(|f| f.0.trim_start_matches('.')).collect();
    let header = encode(
        None,
        vec![
            (tag::NAME, string("kernel-devel")),
            (tag::VERSION, string("3.10.0")),
            (tag::RELEASE, string("957.el7")),
            (tag::ARCH, string("x86_64")),
            (tag::OLDFILENAMES, strs(&names)),
            (tag::SOURCERPM, string("kernel-3.10.0-957.el7.src.rpm")),
            (tag::PROVIDENAME, strs(&["kernel-devel-x86_64"])),
            (tag::PROVIDEFLAGS, Value::Int32(vec![tag::SENSE_EQUAL])),
            (tag::PROVIDEVERSION, strs(&["3.10.0-957.el7"])),
            (tag::PAYLOADFORMAT, string("cpio")),
            (tag::PAYLOADCOMPRESSOR, string("gzip")),
            (tag::PAYLOADDIGEST, strs(&[&sha256_hex(&payload)])),
            (tag::PAYLOADDIGESTALGO, Value::Int32(vec![tag::HASH_SHA256])),
        ],
    );
    let mut md5 = Md5::new();
    md5.update(&header);
    md5.update(&payload);
    let sig = encode(
        None,
        vec![
            (tag::SIG_SHA256, string(&sha256_hex(&header))),
            (tag::SIG_SIZE, Value::Int32(vec![(header.len() + payload.len()) as u32])),
            (tag::SIG_MD5, Value::Bin(md5.finalize().to_vec())),
        ],
    );
    let mut bytes = lead::Lead::binary("kernel-devel-3.10.0-957.el7").to_bytes().to_vec();
    bytes.extend(&sig);
    bytes.resize(bytes.len() + header::signature_padding(sig.len()), 0);
    let header_offset = bytes.len();
    bytes.extend(&header);
    let payload_offset = bytes.len();
    bytes.extend(&payload);
    Built { bytes, header_offset, payload_offset }
}

fn sample() -> Built {
    build(&[
        ("./usr/src/kernels/3.10.0-957.el7.x86_64", 0o040755, b""),
        ("./usr/src/kernels/3.10.0-957.el7.x86_64/Makefile", 0o100644, b"VERSION = 3\n"),
        ("./usr/src/kernels/3.10.0-957.el7.x86_64/.config", 0o100644, &b"CONFIG_CEPH_LIB=m\n".repeat(300)),
        ("./lib/modules/3.10.0-957.el7.x86_64/build", 0o120777, b"/usr/src/kernels/3.10.0-957.el7.x86_64"),
    ])
}

fn write(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.rpm");
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

#[test]
fn typed_tags_and_all_digests() {
    let (_d, p) = write(&sample().bytes);
    let rpm = RpmPackage::open(&p).unwrap();
    assert_eq!(rpm.info.nvra(), "kernel-devel-3.10.0-957.el7.x86_64");
    assert!(!rpm.info.is_source);
    assert_eq!(rpm.info.source_rpm.as_deref(), Some("kernel-3.10.0-957.el7.src.rpm"));
    assert_eq!(
        rpm.info.provides,
        vec![Dependency { name: "kernel-devel-x86_64".into(), constraint: "= 3.10.0-957.el7".into() }]
    );
    assert_eq!(rpm.info.files.len(), 4);
    assert_eq!(rpm.info.files[1].path, "/usr/src/kernels/3.10.0-957.el7.x86_64/Makefile");
    assert_eq!(rpm.compressor(), PayloadCompressor::Gzip);
    assert_eq!(rpm.verify().unwrap(), DigestsChecked { header_sha256: true, payload_digest: true, md5: true });
}

#[test]
fn extracts_only_what_is_selected_with_links_rerooted() {
    let (d, p) = write(&sample().bytes);
    let rpm = RpmPackage::open(&p).unwrap();
    let dest = d.path().join("root");
    let (out, _) = rpm.extract(&dest, |rel| (!rel.ends_with(".config")).then(|| rel.to_path_buf())).unwrap();
    assert_eq!(out.files.len(), 2);
    let k = dest.join("usr/src/kernels/3.10.0-957.el7.x86_64");
    assert_eq!(std::fs::read_to_string(k.join("Makefile")).unwrap(), "VERSION = 3\n");
    assert!(!k.join(".config").exists());
    let link = std::fs::read_link(dest.join("lib/modules/3.10.0-957.el7.x86_64/build")).unwrap();
    assert_eq!(link, PathBuf::from("../../../usr/src/kernels/3.10.0-957.el7.x86_64"));
}

#[test]
fn walk_can_stop_early() {
    let (_d, p) = write(&sample().bytes);
    let rpm = RpmPackage::open(&p).unwrap();
    let mut seen = 0;
    let r = rpm
        .walk_payload(|_| {
            seen += 1;
            Ok(seen < 2)
        })
        .unwrap();
    assert_eq!((seen, r), (2, None));
}

#[test]
fn escaping_entries_are_refused() {
    let b = build(&[("./ok", 0o100644, b"x"), ("../../etc/evil", 0o100644, b"y")]);
    let (d, p) = write(&b.bytes);
    let err = RpmPackage::open(&p).unwrap().extract(&d.path().join("r"), |r| Some(r.to_path_buf())).unwrap_err();
    assert!(matches!(err, FetchError::UnsafeEntry { .. }), "{err}");
    let b = build(&[("./lnk", 0o120777, b"../../../../etc")]);
    let (d, p) = write(&b.bytes);
    let err = RpmPackage::open(&p).unwrap().extract(&d.path().join("r"), |r| Some(r.to_path_buf())).unwrap_err();
    assert!(matches!(err, FetchError::UnsafeEntry { .. }), "{err}");
}

#[test]
fn damaged_header_fails_its_digest() {
    let mut b = sample();
    // A byte inside the main header's data store (the release string).
    let at = b.bytes[b.header_offset..b.payload_offset].windows(7).position(|w| w == b"957.el7").unwrap();
    b.bytes[b.header_offset + at] = b'8';
    let (_d, p) = write(&b.bytes);
    let err = RpmPackage::open(&p).unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { digest: "header SHA-256", .. }), "{err}");
}

#[test]
fn damaged_payload_fails_its_digest_or_decoding() {
    let mut b = sample();
    let last = b.bytes.len() - 10;
    // The gzip trailer's CRC: decompression still "works" up to it.
    b.bytes[last] ^= 0xff;
    let (_d, p) = write(&b.bytes);
    let err = RpmPackage::open(&p).unwrap().verify().unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { .. } | FetchError::CorruptRpm { .. }), "{err}");
}

#[test]
fn every_truncation_is_a_clear_error_never_a_panic() {
    let b = sample();
    for cut in (0..b.bytes.len()).step_by(7) {
        let (_d, p) = write(&b.bytes[..cut]);
        let result = RpmPackage::open(&p).and_then(|r| r.verify());
        match result {
            Err(FetchError::NotAnRpm { .. } | FetchError::CorruptRpm { .. } | FetchError::DigestMismatch { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn random_damage_never_panics() {
    // A fixed-seed generator: deterministic, yet many differently damaged files.
    let b = sample();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..400 {
        let mut bytes = b.bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        let p = dir.path().join(format!("{i}.rpm"));
        std::fs::write(&p, &bytes).unwrap();
        let dest = dir.path().join(format!("out{i}"));
        // Either reads (the damage hit padding) or fails with an error: never panics.
        let _ = RpmPackage::open(&p).and_then(|r| r.extract(&dest, |r| Some(r.to_path_buf())));
    }
}

#[test]
fn non_rpm_is_refused() {
    let (_d, p) = write(b"!<arch>\ndebian-binary");
    assert!(matches!(RpmPackage::open(&p), Err(FetchError::NotAnRpm { .. })));
}
