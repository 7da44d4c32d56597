//! Re-encoding a decoded stock map without changes gives back the same bytes (including
//! Ceph's wrapper CRC), for every wrapped OSDMap of the shared corpus.

use krbd_placement::encode::Flavor;
use krbd_placement::osdmap::Encoding;
use krbd_placement::OsdMap;

fn corpus_maps() -> Vec<std::path::PathBuf> {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus");
    let mut out = Vec::new();
    for v in std::fs::read_dir(&root).expect("corpus folder") {
        let d = v.unwrap().path().join("OSDMap");
        if let Ok(rd) = std::fs::read_dir(&d) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    assert!(out.len() >= 40, "expected the corpus's ~49 OSDMaps, found {}", out.len());
    out
}

#[test]
fn stock_reencode_is_byte_identical() {
    let mut wrapped = 0;
    for p in corpus_maps() {
        let data = std::fs::read(&p).unwrap();
        let map = OsdMap::decode(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Encoding::Classic { .. } = map.encoding {
            continue;
        }
        let again = map.encode_wrapped(&data, Flavor::Stock).unwrap();
        assert!(again == data, "{}: re-encoding changed the bytes", p.display());
        wrapped += 1;
    }
    println!("{wrapped} wrapped maps re-encode byte-identically");
    assert!(wrapped >= 30);
}

#[test]
fn fork_encoding_round_trips_and_is_marked() {
    for p in corpus_maps() {
        let data = std::fs::read(&p).unwrap();
        let mut map = OsdMap::decode(&data).unwrap();
        if let Encoding::Classic { .. } = map.encoding {
            continue;
        }
        if map.max_osd > 0 {
            map.set_recovery_weight(map.max_osd - 1, 0x4000);
        }
        let fork = map.encode_wrapped(&data, Flavor::Fork).unwrap();
        assert_eq!(fork[1], 8, "fork maps carry wrapper compat 8");
        let back = OsdMap::decode(&fork).unwrap();
        let n = map.max_osd.max(0) as usize;
        let expect = map.recovery_weight.clone().unwrap_or_else(|| vec![0x10000; n]);
        assert_eq!(back.recovery_weight.as_deref(), Some(expect.as_slice()), "{}", p.display());
        assert_eq!(back.map_all(None), map.map_all(None), "{}", p.display());
        // And back to stock: identical to the original file.
        let mut stock = back.clone();
        stock.recovery_weight = None;
        assert!(stock.encode_wrapped(&fork, Flavor::Stock).unwrap() == data, "{}", p.display());
    }
}
