//! Any byte string that decodes as an incremental, applied to a real cluster map (epoch 39
//! of the fixtures, whose incrementals seed the corpus): `apply` returns Ok or Err, never
//! panics, and allocates only within the kernel client's own limit on max_osd (an
//! incremental claiming 2^31 OSDs once made it allocate 16 GB); the result maps without
//! panicking. The CRC check is skipped so that mutations reach the decoder behind it.
#![no_main]

use std::sync::OnceLock;

use krbd_placement::incremental::Incremental;
use krbd_placement::{CrcCheck, OsdMap};
use libfuzzer_sys::fuzz_target;

static BASE: &[u8] = include_bytes!("../../tests/fixtures/cluster/full-39.osdmap");

fn base() -> &'static OsdMap {
    static MAP: OnceLock<OsdMap> = OnceLock::new();
    MAP.get_or_init(|| OsdMap::decode(BASE).expect("the fixture map decodes"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(inc) = Incremental::decode_with(data, CrcCheck::Skip) else { return };
    let mut map = base().clone();
    if inc.apply(&mut map).is_ok() && krbd_placement_fuzz::cheap_to_map(&map) {
        let _ = map.map_all_threads(None, 1);
    }
});
