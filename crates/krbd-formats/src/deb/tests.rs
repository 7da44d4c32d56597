use super::*;
use std::io::Write;

/// A tar of regular files. The names are written raw (`set_path` refuses `..`), so tests
/// can build hostile archives.
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A small but real .deb: gzip control tar, xz data tar.
fn make_deb(data_entries: &[(&str, &[u8])]) -> Vec<u8> {
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
    write_deb(
        TarMember { name: "control.tar.gz", bytes: &control },
        TarMember { name: "data.tar.xz", bytes: &data },
        1_700_000_000,
    )
    .unwrap()
}

fn write_tmp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.deb");
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn data_of(deb: &DebReader) -> Result<Vec<(String, String)>, DebError> {
    let mut seen = Vec::new();
    deb.walk_data(|rel, e| {
        let mut s = String::new();
        e.read_to_string(&mut s).map_err(|source| DebError::CorruptMember {
            path: deb.path().into(),
            member: rel.display().to_string(),
            source,
        })?;
        seen.push((rel.display().to_string(), s));
        Ok::<_, DebError>(true)
    })?;
    Ok(seen)
}

#[test]
fn reads_control_and_data() {
    let (_d, p) = write_tmp(&make_deb(&[("./usr/src/a.txt", b"A"), ("./usr/src/b/c.txt", b"C")]));
    let deb = DebReader::open(&p).unwrap();
    let control = deb.control().unwrap();
    assert_eq!(control.get("package"), Some("demo"));
    assert_eq!(control.get("Description"), Some("a\nmore"));
    let seen = data_of(&deb).unwrap();
    assert_eq!(seen, vec![("usr/src/a.txt".into(), "A".into()), ("usr/src/b/c.txt".into(), "C".into())]);
}

#[test]
fn written_members_are_in_dpkg_order_with_fixed_times() {
    let bytes = make_deb(&[("./x", b"x")]);
    assert_eq!(make_deb(&[("./x", b"x")]), bytes);
    let mut ar = ar::Archive::new(&bytes[..]);
    let mut names = Vec::new();
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().mtime(), 1_700_000_000);
        names.push(String::from_utf8_lossy(entry.header().identifier()).into_owned());
        if names.len() == 1 {
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            assert_eq!(body, DEBIAN_BINARY);
        }
    }
    assert_eq!(names, ["debian-binary", "control.tar.gz", "data.tar.xz"]);
}

#[test]
fn truncated_deb_is_reported_as_corrupt() {
    let bytes = make_deb(&[("./big", &vec![7u8; 200_000])]);
    let (_d, p) = write_tmp(&bytes[..bytes.len() - 300]);
    let deb = DebReader::open(&p).unwrap();
    let err = deb.walk_data(|_, _| Ok::<_, DebError>(true)).unwrap_err();
    assert!(matches!(err, DebError::CorruptMember { .. } | DebError::NotADeb { .. }), "{err:?}");
}

#[test]
fn non_deb_is_refused() {
    let (_d, p) = write_tmp(b"PK\x03\x04 this is a zip");
    assert!(matches!(DebReader::open(&p), Err(DebError::NotADeb { defect: Defect::NoArHeader, .. })));
    let (_d2, p2) = write_tmp(b"");
    assert!(matches!(DebReader::open(&p2), Err(DebError::NotADeb { .. })));
    let (d3, _) = write_tmp(b"");
    let err = DebReader::open(d3.path().join("missing.deb")).unwrap_err();
    assert!(matches!(&err, DebError::Io { op: "open", source, .. } if source.kind() == io::ErrorKind::NotFound));
    assert!(err.to_string().contains("cannot open"), "{err}");
}

#[test]
fn debian_binary_must_say_2_x() {
    let ar_of = |members: &[(&str, &[u8])]| {
        let mut ar = ar::Builder::new(Vec::new());
        for (name, body) in members {
            ar.append(&ar::Header::new(name.as_bytes().to_vec(), body.len() as u64), *body).unwrap();
        }
        ar.into_inner().unwrap()
    };
    let (_d, p) = write_tmp(&ar_of(&[("debian-binary", b"3.0\n"), ("data.tar", &tar_of(&[("./a", b"a")]))]));
    let err = DebReader::open(&p).unwrap_err();
    assert!(
        matches!(&err, DebError::NotADeb { defect: Defect::DebianBinary { found }, .. } if found == "3.0"),
        "{err}"
    );
    // A plain ar archive (a static library) has no debian-binary at all.
    let (_d, p) = write_tmp(&ar_of(&[("libx.o", b"\x7fELF")]));
    let err = DebReader::open(&p).unwrap_err();
    assert!(
        matches!(err, DebError::NotADeb { defect: Defect::MissingMember { member: "debian-binary" }, .. }),
        "{err}"
    );
}

#[test]
fn escaping_entry_is_refused_before_the_visitor_sees_it() {
    let (_d, p) = write_tmp(&make_deb(&[("./ok.txt", b"fine"), ("../escape.txt", b"evil")]));
    let deb = DebReader::open(&p).unwrap();
    let mut visited = Vec::new();
    let err = deb
        .walk_data(|rel, _| {
            visited.push(rel.to_path_buf());
            Ok::<_, DebError>(true)
        })
        .unwrap_err();
    assert!(
        matches!(&err, DebError::UnsafeEntry { entry, refusal: Refusal::ParentDir, .. } if entry == "../escape.txt"),
        "{err:?}"
    );
    assert_eq!(visited, [PathBuf::from("ok.txt")]);
}

#[test]
fn visitor_errors_end_the_walk_unchanged() {
    #[derive(Debug)]
    enum Mine {
        Stop,
        Deb,
    }
    impl From<DebError> for Mine {
        fn from(_: DebError) -> Mine {
            Mine::Deb
        }
    }
    let (_d, p) = write_tmp(&make_deb(&[("./a", b"a"), ("./b", b"b")]));
    let mut seen = 0;
    let err = DebReader::open(&p)
        .unwrap()
        .walk_data(|_, _| {
            seen += 1;
            Err::<bool, _>(Mine::Stop)
        })
        .unwrap_err();
    assert!(matches!(err, Mine::Stop));
    assert_eq!(seen, 1);
    let _ = Mine::Deb;
}
