//! Any byte string: decode must return Ok or Err, never panic; what decodes must map and
//! re-encode without panicking. Mapping is bounded (`cheap_to_map`) so that a map asking
//! for billions of PGs or retries does not stall the fuzzer (slow is not a bug; a panic or
//! a hang is). The CRC check is skipped so that mutations reach the decoder behind it;
//! `tests/allocation_bounds.rs` runs this body without libfuzzer on the corpus and on
//! crafted inputs.
#![no_main]

use krbd_placement::encode::Flavor;
use krbd_placement::{CrcCheck, OsdMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = OsdMap::decode_with(data, CrcCheck::Skip) else { return };
    if krbd_placement_fuzz::cheap_to_map(&map) {
        let _ = map.map_all_threads(None, 1);
    }
    let _ = map.encode_wrapped(data, Flavor::Fork);
});
