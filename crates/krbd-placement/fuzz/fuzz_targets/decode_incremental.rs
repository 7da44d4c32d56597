//! Any byte string: incremental decode returns Ok or Err, never panics; re-encoding what
//! decoded never panics either. The CRC check is skipped so that mutations reach the decoder
//! behind it.
#![no_main]

use krbd_placement::incremental::Incremental;
use krbd_placement::CrcCheck;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(inc) = Incremental::decode_with(data, CrcCheck::Skip) {
        let _ = inc.encode_with_recovery_weights(data, Some(&[(0, 0x8000)]));
    }
});
