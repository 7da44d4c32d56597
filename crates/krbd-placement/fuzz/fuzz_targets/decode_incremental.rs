//! Any byte string: incremental decode returns Ok or Err, never panics; re-encoding what
//! decoded never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(inc) = krbd_placement::incremental::Incremental::decode(data) {
        let _ = inc.encode_with_recovery_weights(data, Some(&[(0, 0x8000)]));
    }
});
