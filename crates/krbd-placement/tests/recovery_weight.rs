//! The fork's recovery_weight rule (KNOWLEDGE §1): replicated pools only, applied after the
//! down test, `stable_mod(ps) > pg_num * w / 0x10000` in u32 arithmetic.

use std::path::Path;
use std::process::Command;

use krbd_placement::mapper::Workspace;
use krbd_placement::osdmap::{OSD_IN, POOL_TYPE_ERASURE};
use krbd_placement::{OsdMap, PgId};

/// A 12-OSD, 768-PG map made by osdmaptool (all OSDs up and in).
fn simple_map(dir: &Path) -> OsdMap {
    let st = Command::new("osdmaptool")
        .args(["--createsimple", "12", "--pg-bits", "6", "--with-default-pool", "--clobber", "m", "--mark-up-in"])
        .current_dir(dir)
        .output()
        .expect("osdmaptool (ceph-base) is installed");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    OsdMap::decode(&std::fs::read(dir.join("m")).unwrap()).unwrap()
}

fn holders(map: &OsdMap, osd: i32, set: impl Fn(&krbd_placement::PgMapping) -> &Vec<i32>) -> Vec<u32> {
    let mut ws = Workspace::new();
    let (&id, pool) = map.pools.iter().next().unwrap();
    (0..pool.pg_num).filter(|&s| set(&map.map_pg(pool, PgId { pool: id, seed: s }, &mut ws)).contains(&osd)).collect()
}

#[test]
fn full_weight_is_stock_placement() {
    let tmp = tempfile::tempdir().unwrap();
    let stock = simple_map(tmp.path());
    let mut fork = stock.clone();
    for o in 0..12 {
        fork.set_recovery_weight(o, OSD_IN);
    }
    assert_eq!(stock.map_all(None), fork.map_all(None));
}

#[test]
fn ramp_keeps_the_lowest_pgs_and_never_filters_pg_0() {
    let tmp = tempfile::tempdir().unwrap();
    let base = simple_map(tmp.path());
    let osd = 5;
    let raw_holders = holders(&base, osd, |m| &m.raw);
    let pg_num = base.pools.values().next().unwrap().pg_num;
    assert!(raw_holders.len() > 50);
    let mut last = 0;
    for w in [0u32, 0x1000, 0x4000, 0x8000, 0xc000, 0xffff, 0x10000] {
        let mut m = base.clone();
        m.set_recovery_weight(osd, w);
        let up = holders(&m, osd, |p| &p.up);
        let limit = pg_num.wrapping_mul(w) / OSD_IN;
        let want: Vec<u32> = raw_holders.iter().copied().filter(|&s| s <= limit).collect();
        assert_eq!(up, want, "weight {w:#x}: the OSD stays exactly in PGs numbered <= {limit}");
        assert!(up.len() >= last, "the set only grows as the weight ramps");
        last = up.len();
        // Raw placement never changes: only the up set is filtered.
        assert_eq!(holders(&m, osd, |p| &p.raw), raw_holders);
    }
    // At weight 0 only PG 0 could keep it.
    let mut m = base.clone();
    m.set_recovery_weight(osd, 0);
    assert!(holders(&m, osd, |p| &p.up).iter().all(|&s| s == 0));
}

#[test]
fn erasure_coded_pools_are_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let mut base = simple_map(tmp.path());
    for r in base.crush.rules.iter_mut().flatten() {
        r.rule_type = POOL_TYPE_ERASURE;
    }
    for p in base.pools.values_mut() {
        p.pool_type = POOL_TYPE_ERASURE;
    }
    let mut m = base.clone();
    m.set_recovery_weight(3, 0);
    let before = base.map_all(None);
    assert!(before[0].2.iter().filter(|p| p.up.contains(&3)).count() > 50, "osd.3 holds EC shards");
    assert_eq!(before, m.map_all(None));
}

#[test]
fn u32_product_wraps_at_pg_num_65536() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = simple_map(tmp.path());
    for p in m.pools.values_mut() {
        p.pg_num = 65536;
        p.pgp_num = 65536;
        p.pg_num_mask = 0xffff;
        p.pgp_num_mask = 0xffff;
    }
    // 65536 * 0x10000 wraps to 0 in u32: even full recovery weight keeps only PG 0.
    m.set_recovery_weight(2, OSD_IN);
    let up = holders(&m, 2, |p| &p.up);
    assert!(up.iter().all(|&s| s == 0), "wrapped product filters every PG but 0");
    assert!(!holders(&m, 2, |p| &p.raw).is_empty());
}
