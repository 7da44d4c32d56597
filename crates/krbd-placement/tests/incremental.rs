//! Incrementals: every corpus incremental decodes; wrapped ones re-encode byte-identically
//! (CRCs included) and survive a fork round trip; a chain of real incrementals applied to
//! real full maps reproduces the next epoch's placement.

use std::path::PathBuf;

use krbd_placement::incremental::Incremental;
use krbd_placement::OsdMap;

fn corpus(kind: &str) -> Vec<PathBuf> {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus");
    let mut out = Vec::new();
    for v in std::fs::read_dir(&root).unwrap() {
        if let Ok(rd) = std::fs::read_dir(v.unwrap().path().join(kind)) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_corpus_incremental_decodes_and_reencodes() {
    let incs = corpus("OSDMap-Incremental");
    assert!(incs.len() >= 80, "expected ~90 corpus incrementals, found {}", incs.len());
    let mut wrapped = 0;
    for p in &incs {
        let data = std::fs::read(p).unwrap();
        let inc = Incremental::decode(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if inc.layout.is_none() {
            continue;
        }
        wrapped += 1;
        let same = inc.encode_with_recovery_weights(&data, None).unwrap();
        assert!(same == data, "{}: stock re-encode differs", p.display());
        let list = [(0u32, 0x8000u32), (3, 0), (1_000_000, 0x10000)];
        let fork = inc.encode_with_recovery_weights(&data, Some(&list)).unwrap();
        assert_eq!(fork[1], 8, "fork incrementals carry wrapper compat 8");
        let back = Incremental::decode(&fork).unwrap();
        assert_eq!(back.new_recovery_weight.as_deref(), Some(&list[..]));
        assert_eq!(back.new_weight, inc.new_weight);
        assert_eq!(back.new_pg_temp, inc.new_pg_temp);
        assert!(back.encode_with_recovery_weights(&fork, None).unwrap() == data, "{}", p.display());
    }
    println!("{} incrementals decoded, {wrapped} re-encoded byte-identically", incs.len());
    assert!(wrapped >= 40);
}

#[test]
fn real_incremental_chain_reproduces_each_epoch() {
    // 0.46's corpus holds full maps 1..8 and the incrementals between them.
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus").join("0.46-add-osd-uuid");
    let mut map = OsdMap::decode(&std::fs::read(root.join("OSDMap/1")).unwrap()).unwrap();
    for e in 2..=8 {
        let inc = Incremental::decode(&std::fs::read(root.join(format!("OSDMap-Incremental/{e}"))).unwrap()).unwrap();
        assert_eq!(inc.epoch, e);
        inc.apply(&mut map).unwrap();
        let want = OsdMap::decode(&std::fs::read(root.join(format!("OSDMap/{e}"))).unwrap()).unwrap();
        assert_eq!(map.epoch, want.epoch);
        assert_eq!(map.osd_state, want.osd_state, "epoch {e}: osd_state");
        assert_eq!(map.osd_weight, want.osd_weight, "epoch {e}: osd_weight");
        assert_eq!(map.pg_temp, want.pg_temp, "epoch {e}: pg_temp");
        assert_eq!(map.map_all(None), want.map_all(None), "epoch {e}: placement");
    }
}

#[test]
fn fork_incremental_applies_recovery_weights() {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus").join("16.2.0-90-g50f1821b4c");
    let full = std::fs::read(root.join("OSDMap/2a53d6a9e9e3450cb83844a8a73866b7")).unwrap();
    let mut map = OsdMap::decode(&full).unwrap();
    let incs = corpus("OSDMap-Incremental");
    let p = incs.iter().find(|p| p.to_string_lossy().contains("16.2.0")).unwrap();
    let data = std::fs::read(p).unwrap();
    let inc = Incremental::decode(&data).unwrap();
    let fork =
        Incremental::decode(&inc.encode_with_recovery_weights(&data, Some(&[(1, 0x4000), (99, 0)])).unwrap()).unwrap();
    // Apply only the recovery part onto an unrelated map: out-of-range osd 99 is ignored.
    let only_rw = Incremental {
        new_recovery_weight: fork.new_recovery_weight.clone(),
        new_max_osd: -1,
        new_flags: -1,
        epoch: map.epoch,
        ..Default::default()
    };
    only_rw.apply(&mut map).unwrap();
    let rw = map.recovery_weight.clone().unwrap();
    assert_eq!(rw.len(), map.max_osd as usize);
    assert_eq!(rw[1], 0x4000);
    assert!(rw.iter().enumerate().all(|(i, &w)| i == 1 || w == 0x10000));
}
