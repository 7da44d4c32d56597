//! Every allocation the decoders make is paid for by bytes of the input: on real maps, on
//! their CRC-less mutations, and on small inputs that claim huge counts, the peak of live
//! heap memory while decoding stays within a fixed multiple of the input's size. This is
//! the bounded stand-in for the cargo-fuzz targets in `fuzz/` (which need nightly and
//! libfuzzer): it runs their bodies on the corpus and on crafted inputs of the kind the
//! fuzzer found (a 1,609-byte map that made the decoder allocate 2.68 GB at once).
//! Growing a map through an incremental costs memory no input bytes pay for; it is bounded
//! by the kernel client's own limit (`MAX_OSD_LIMIT`) instead.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use krbd_placement::crc::ceph_crc32c;
use krbd_placement::crush::CrushMap;
use krbd_placement::encode::Flavor;
use krbd_placement::incremental::Incremental;
use krbd_placement::osdmap::MAX_OSD_LIMIT;
use krbd_placement::reader::Reader;
use krbd_placement::{CrcCheck, OsdMap};

/// Counts live heap bytes and their peak, and refuses any single allocation above
/// [`MALLOC_LIMIT`] as libFuzzer's `-malloc_limit_mb` does in CI (the process aborts with
/// "memory allocation of N bytes failed" instead of touching gigabytes of a shared machine).
struct Counting;

const MALLOC_LIMIT: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MALLOC_LIMIT {
            return std::ptr::null_mut();
        }
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

/// Held by each test (each allocates): the counters are global, so tests take turns.
static MEASURING: Mutex<()> = Mutex::new(());

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
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
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

fn cluster_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A real (wrapped, CRC-carrying) incremental with its new_max_osd set to `n`, both of its
/// CRCs fixed up: what a monitor would send after `ceph osd setmaxosd n`.
fn with_new_max_osd(data: &[u8], n: i32) -> Vec<u8> {
    let inc = Incremental::decode(data).unwrap();
    let lay = inc.layout.expect("a wrapped incremental");
    assert!(lay.wrapper_version >= 8, "the fixture carries CRCs");
    let mut d = data.to_vec();
    d[inc.new_max_osd_at..inc.new_max_osd_at + 4].copy_from_slice(&n.to_le_bytes());
    // The incremental's own CRC covers everything before it and the full map's CRC after it.
    let crc_at = lay.wrapper_end - 8;
    let crc = ceph_crc32c(ceph_crc32c(0xffff_ffff, &d[lay.wrapper_start..crc_at]), &d[crc_at + 4..lay.wrapper_end]);
    d[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    d
}

/// `ceph osd setmaxosd N` is a 4-byte change that grows every per-OSD array: no input bytes
/// pay for it, so a crafted incremental claiming 2^31 OSDs once made `apply` allocate
/// 16 GB. Growth is bounded by what the kernel client can hold (it refuses more with
/// ENOMEM); legitimate growth (Ceph's krbd QA grows a map 8 -> 60,000 OSDs) still applies.
#[test]
fn incremental_max_osd_growth_is_bounded_by_the_kernel_limit() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let full = cluster_fixture("full-39.osdmap");
    let base = OsdMap::decode(&full).unwrap();
    let real = cluster_fixture("inc-40.bin");
    let expected = {
        let mut m = base.clone();
        Incremental::decode(&real).unwrap().apply(&mut m).unwrap();
        m
    };

    // Refused while decoding, with or without the CRC check, naming the field and the limit.
    for n in [MAX_OSD_LIMIT + 1, 0x2800_0000, i32::MAX] {
        let crafted = with_new_max_osd(&real, n);
        for crc in [CrcCheck::Verify, CrcCheck::Skip] {
            let mut result = None;
            let peak = peak_during(|| result = Some(Incremental::decode_with(&crafted, crc)));
            let err = result.unwrap().expect_err("an incremental claiming too many OSDs is refused");
            let text = err.to_string();
            assert!(text.contains("new_max_osd") && text.contains(&MAX_OSD_LIMIT.to_string()), "{text}");
            assert!(peak < FIXED_ALLOWANCE, "{peak} heap bytes to refuse max_osd {n}");
        }
    }
    // Refused by apply too, for an incremental built in code, leaving the map unchanged.
    let mut map = base.clone();
    let huge = Incremental { new_max_osd: i32::MAX, new_flags: -1, epoch: base.epoch + 1, ..Default::default() };
    let peak = peak_during(|| assert!(huge.apply(&mut map).is_err()));
    assert!(peak < FIXED_ALLOWANCE, "{peak} heap bytes to refuse applying max_osd {}", i32::MAX);
    assert_eq!((map.max_osd, map.epoch), (base.max_osd, base.epoch));

    // Legitimate growth applies: the real incremental's changes, arrays grown, placement kept.
    for n in [8, 60, 600, 6_000, 60_000, MAX_OSD_LIMIT] {
        let mut map = base.clone();
        Incremental::decode(&with_new_max_osd(&real, n)).unwrap().apply(&mut map).unwrap();
        assert_eq!((map.max_osd, map.osd_state.len(), map.osd_weight.len()), (n, n as usize, n as usize));
        let old = expected.max_osd as usize;
        assert_eq!(map.osd_state[..old], expected.osd_state[..]);
        assert!(map.osd_state[old..].iter().all(|&s| s == 0), "new OSD slots do not exist");
        if n <= 60_000 {
            assert_eq!(map.map_all(None), expected.map_all(None), "max_osd {n}: placement");
        }
    }
}

/// An 843-byte incremental found by `apply_incremental` (committed as a regression seed):
/// its CRUSH map holds a bucket whose id lies far outside the map's bucket slots, and
/// mapping with it sized the per-bucket working state by that id (671 MB at once). The
/// decoder now refuses such a bucket, as it is a slot index in Ceph's `crush_do_rule`.
#[test]
fn a_crush_bucket_id_outside_its_slots_is_refused() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_incremental/regression-crush-bucket-id");
    let data = std::fs::read(&path).unwrap();
    let err = Incremental::decode_with(&data, CrcCheck::Skip).expect_err("a bucket id outside its slots is refused");
    assert!(err.to_string().contains("crush bucket id"), "{err}");
    // Every real map's buckets sit in their slots: all of the corpus still decodes.
    for data in corpus("OSDMap") {
        OsdMap::decode(&data).unwrap();
    }
}
