//! Malformed input never panics: every truncation and thousands of byte mutations of real
//! maps and incrementals either decode or return an error; what decodes also maps.

use krbd_placement::incremental::Incremental;
use krbd_placement::{CrcCheck, OsdMap};

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus");
    let mut files = Vec::new();
    for v in std::fs::read_dir(&root).unwrap() {
        if let Ok(rd) = std::fs::read_dir(v.unwrap().path().join(kind)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Mapping is only attempted on maps small enough to map quickly (a mutation can ask for
/// billions of PGs or retries, which is slow but not wrong).
fn try_map(m: &OsdMap) {
    let pgs: u64 = m.pools.values().map(|p| p.pg_num as u64).sum();
    let t = &m.crush.tunables;
    if pgs <= 2048
        && t.choose_total_tries <= 100
        && t.choose_local_tries <= 100
        && t.choose_local_fallback_tries <= 100
        && m.crush.rules.iter().flatten().all(|r| r.steps.iter().all(|s| s.arg1 <= 100))
    {
        let _ = m.map_all_threads(None, 1);
    }
}

#[test]
fn truncated_and_mutated_maps_never_panic() {
    let maps = corpus("OSDMap");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut ok, mut err) = (0, 0);
    for data in maps.iter().step_by(3) {
        for cut in (0..data.len()).step_by(7) {
            match OsdMap::decode(&data[..cut]) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        for _ in 0..60 {
            let mut d = data.clone();
            for _ in 0..(1 + next() % 4) {
                let i = (next() % d.len() as u64) as usize;
                d[i] = next() as u8;
            }
            // Ceph refuses every changed wrapped map by its CRC; the decoder behind the check
            // must still survive the bytes when the check is skipped.
            if d != *data && data[0] >= 8 {
                assert!(OsdMap::decode(&d).is_err(), "a mutated map passed the CRC check");
            }
            match OsdMap::decode_with(&d, CrcCheck::Skip) {
                Ok(m) => {
                    ok += 1;
                    try_map(&m);
                }
                Err(e) => {
                    err += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    println!("{ok} decoded, {err} refused");
    assert!(err > 500);
}

#[test]
fn truncated_and_mutated_incrementals_never_panic() {
    let incs = corpus("OSDMap-Incremental");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for data in &incs {
        for cut in 0..data.len() {
            let _ = Incremental::decode(&data[..cut]);
        }
        for _ in 0..50 {
            let mut d = data.clone();
            let i = (next() % d.len() as u64) as usize;
            d[i] = next() as u8;
            let _ = Incremental::decode(&d);
            let _ = Incremental::decode_with(&d, CrcCheck::Skip);
        }
    }
}
