//! Any byte string: decode must return Ok or Err, never panic; what decodes must map and
//! re-encode without panicking. Mapping is bounded so that a map asking for billions of PGs
//! or retries does not stall the fuzzer (slow is not a bug; a panic or a hang is). The CRC
//! check is skipped so that mutations reach the decoder behind it; `tests/allocation_bounds.rs`
//! runs this body without libfuzzer on the corpus and on crafted inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = krbd_placement::OsdMap::decode_with(data, krbd_placement::CrcCheck::Skip) else { return };
    let pgs: u64 = map.pools.values().map(|p| p.pg_num as u64).sum();
    let t = &map.crush.tunables;
    let small = pgs <= 1024
        && t.choose_total_tries <= 100
        && t.choose_local_tries <= 100
        && t.choose_local_fallback_tries <= 100
        && map.crush.rules.iter().flatten().all(|r| r.steps.iter().all(|s| s.arg1 <= 100));
    if small {
        let _ = map.map_all_threads(None, 1);
    }
    let _ = map.encode_wrapped(data, krbd_placement::encode::Flavor::Fork);
});
