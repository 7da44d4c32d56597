//! Every allocation the decoders make is paid for by bytes of the input: on real maps, on
//! their CRC-less mutations, and on small inputs that claim huge counts, the peak of live
//! heap memory while decoding stays within a fixed multiple of the input's size. This is
//! the bounded stand-in for the cargo-fuzz targets in `fuzz/` (which need nightly and
//! libfuzzer): it runs their bodies on the corpus and on crafted inputs of the kind the
//! fuzzer found (a 1,609-byte map that made the decoder allocate 2.68 GB at once).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use krbd_placement::crc::ceph_crc32c;
use krbd_placement::crush::CrushMap;
use krbd_placement::encode::Flavor;
use krbd_placement::incremental::Incremental;
use krbd_placement::reader::Reader;
use krbd_placement::{CrcCheck, OsdMap};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes a decoder may hold per input byte (a bucket slot of 4 bytes becomes a
/// ~100-byte `Option<Bucket>`, a choose_args slot 72 bytes), plus a fixed allowance.
const BYTES_PER_INPUT_BYTE: usize = 128;
const FIXED_ALLOWANCE: usize = 1 << 20;

/// Runs `f` and returns the peak of heap memory it added.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

fn assert_bounded(label: &str, input_len: usize, f: impl FnOnce()) {
    let peak = peak_during(f);
    let bound = input_len * BYTES_PER_INPUT_BYTE + FIXED_ALLOWANCE;
    assert!(peak <= bound, "{label}: {peak} heap bytes for a {input_len}-byte input (bound {bound})");
}

/// The body of `fuzz/fuzz_targets/decode_osdmap.rs`, without the mapping (whose memory is
/// per PG, not per input byte; `placement map` streams it instead).
fn fuzz_osdmap(data: &[u8]) {
    for crc in [CrcCheck::Verify, CrcCheck::Skip] {
        if let Ok(map) = OsdMap::decode_with(data, crc) {
            let _ = map.encode_wrapped(data, Flavor::Fork);
        }
    }
}

/// The body of `fuzz/fuzz_targets/decode_incremental.rs`.
fn fuzz_incremental(data: &[u8]) {
    for crc in [CrcCheck::Verify, CrcCheck::Skip] {
        if let Ok(inc) = Incremental::decode_with(data, crc) {
            let _ = inc.encode_with_recovery_weights(data, Some(&[(0, 0x8000)]));
        }
    }
}

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let root = krbd_testsupport::shared_dir().expect("../shared").join("ceph-object-corpus");
    let mut files = Vec::new();
    for v in std::fs::read_dir(&root).unwrap() {
        if let Ok(rd) = std::fs::read_dir(v.unwrap().path().join(kind)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Rewrites the CRC of a wrapped full map (its last 4 bytes) to match its contents.
fn fix_crc(d: &mut [u8]) {
    let n = d.len() - 4;
    let crc = ceph_crc32c(0xffff_ffff, &d[..n]);
    d[n..].copy_from_slice(&crc.to_le_bytes());
}

/// A small real map with a chosen u32 field overwritten, CRC fixed up.
fn with_u32(base: &[u8], offset: usize, value: u32) -> Vec<u8> {
    let mut d = base.to_vec();
    d[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    fix_crc(&mut d);
    d
}

/// Maps that claim huge counts in a few bytes: max_osd (the 1,609-byte fuzzer find made the
/// fork encoder allocate `max_osd` recovery weights), and every u32 count field of the
/// client section set to 0xffffffff in turn.
fn huge_count_maps() -> Vec<(String, Vec<u8>)> {
    let base = corpus("OSDMap")
        .into_iter()
        .find(|d| d.len() < 2000 && d[0] >= 8 && OsdMap::decode(d).is_ok_and(|m| m.max_osd > 0))
        .expect("a small wrapped corpus map with OSDs");
    let lay = OsdMap::decode(&base).unwrap().layout.unwrap();
    let max_osd_at = lay.osd_state.0 - 4;
    let mut out = vec![
        ("max_osd 0x28000000".to_string(), with_u32(&base, max_osd_at, 0x2800_0000)),
        ("max_osd i32::MAX".to_string(), with_u32(&base, max_osd_at, i32::MAX as u32)),
    ];
    for offset in lay.client_body_start..lay.client_end - 4 {
        out.push((format!("u32 at {offset} = 0xffffffff"), with_u32(&base, offset, u32::MAX)));
    }
    out
}

/// A CRUSH map of `buckets` empty bucket slots whose choose_args name `keys` weight sets,
/// each overriding only the last bucket: 24 bytes per set, a dense slot vector per set.
fn crush_with_sparse_weight_sets(buckets: u32, keys: u32) -> Vec<u8> {
    let mut d = Vec::new();
    let mut put = |v: &[u8]| d.extend_from_slice(v);
    put(&0x0001_0000u32.to_le_bytes());
    put(&buckets.to_le_bytes());
    put(&0u32.to_le_bytes()); // rules
    put(&0u32.to_le_bytes()); // max_devices
    for _ in 0..buckets {
        put(&0u32.to_le_bytes());
    }
    for _ in 0..3 {
        put(&0u32.to_le_bytes()); // name maps
    }
    put(&[0u8; 4 * 3 + 4 + 1 + 1 + 4 + 1]); // tunables
    put(&[0u8; 12]); // device classes
    put(&keys.to_le_bytes());
    for k in 0..keys {
        put(&(k as i64).to_le_bytes());
        put(&1u32.to_le_bytes());
        put(&(buckets - 1).to_le_bytes());
        put(&0u32.to_le_bytes()); // weight_set positions
        put(&0u32.to_le_bytes()); // ids
    }
    d
}

#[test]
fn decoding_allocates_only_what_the_input_pays_for() {
    for data in corpus("OSDMap") {
        assert_bounded("corpus map", data.len(), || fuzz_osdmap(&data));
        for cut in (0..data.len()).step_by(97) {
            assert_bounded("truncated corpus map", cut, || fuzz_osdmap(&data[..cut]));
        }
    }
    for data in corpus("OSDMap-Incremental") {
        assert_bounded("corpus incremental", data.len(), || fuzz_incremental(&data));
    }
    let mut refused = 0;
    for (label, data) in huge_count_maps() {
        assert_bounded(&label, data.len(), || fuzz_osdmap(&data));
        refused += usize::from(OsdMap::decode(&data).is_err());
    }
    assert!(refused > 0);
    assert!(OsdMap::decode(&huge_count_maps()[0].1).is_err(), "max_osd without the arrays to back it is refused");
    for (buckets, keys) in [(1_000, 1_000), (20_000, 5_000)] {
        let crush = crush_with_sparse_weight_sets(buckets, keys);
        assert_bounded(&format!("{keys} sparse weight sets over {buckets} buckets"), crush.len(), || {
            let _ = CrushMap::decode(&mut Reader::new(&crush));
        });
    }
}
