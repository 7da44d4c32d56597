//! What the fuzz targets share: which decoded maps are cheap enough to map every PG of.

use krbd_placement::OsdMap;

/// Whether mapping every PG of `map` stays fast: at most 1,024 PGs and no CRUSH retry or
/// step count above 100. A map asking for billions of PGs or retries is slow, not wrong
/// (`placement map` streams it); the fuzzer is after panics and hangs.
pub fn cheap_to_map(map: &OsdMap) -> bool {
    let pgs: u64 = map.pools.values().map(|p| u64::from(p.pg_num)).sum();
    let t = &map.crush.tunables;
    pgs <= 1024
        && t.choose_total_tries <= 100
        && t.choose_local_tries <= 100
        && t.choose_local_fallback_tries <= 100
        && map.crush.rules.iter().flatten().all(|r| r.steps.iter().all(|s| s.arg1 <= 100))
}
