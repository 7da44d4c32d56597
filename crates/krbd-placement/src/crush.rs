//! The CRUSH map: its decoded form and the decoder for `CrushWrapper`'s encoding.

use std::collections::BTreeMap;

use crate::error::{DecodeError, Result};
use crate::reader::Reader;

pub const CRUSH_MAGIC: u32 = 0x0001_0000;
/// "No item here" in CRUSH results (EC holes print as 2147483647).
pub const ITEM_NONE: i32 = 0x7fff_ffff;
pub(crate) const ITEM_UNDEF: i32 = 0x7fff_fffe;
/// The choose_args key that applies to pools without their own weight set.
pub const DEFAULT_CHOOSE_ARGS: i64 = -1;

/// Bucket algorithms, with their on-disk numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketAlg {
    Uniform = 1,
    List = 2,
    Tree = 3,
    Straw = 4,
    Straw2 = 5,
}

#[derive(Debug, Clone)]
pub enum BucketData {
    Uniform { item_weight: u32 },
    List { item_weights: Vec<u32>, sum_weights: Vec<u32> },
    Tree { node_weights: Vec<u32> },
    Straw { item_weights: Vec<u32>, straws: Vec<u32> },
    Straw2 { item_weights: Vec<u32>, recips: Vec<Recip> },
}

/// A precomputed exact reciprocal for dividing straw2's (negated) logarithm, which is below
/// 2^49, by a 16.16 weight: `n / d == (n * m) >> shift` for every n < 2^49
/// (Granlund–Montgomery, with m = floor(2^(49+l) / d) + 1 and l = ceil(log2 d)).
/// `d` is kept so that a stale reciprocal (weights edited after `finalize`) is never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recip {
    pub d: u32,
    pub m: u64,
    pub shift: u32,
}

impl Recip {
    pub const DIVIDEND_BITS: u32 = 49;

    pub fn new(d: u32) -> Recip {
        if d == 0 {
            return Recip { d, m: 0, shift: 0 };
        }
        let l = 32 - (d - 1).leading_zeros(); // ceil(log2 d); 0 for d == 1
        let shift = Self::DIVIDEND_BITS + l;
        let m = ((1u128 << shift) / d as u128 + 1) as u64;
        Recip { d, m, shift }
    }

    /// `n / d` for `n < 2^49`.
    #[inline(always)]
    pub fn div(&self, n: u64) -> u64 {
        ((n as u128 * self.m as u128) >> self.shift) as u64
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub id: i32,
    pub type_id: u16,
    pub alg: BucketAlg,
    pub hash: u8,
    pub weight: u32,
    pub items: Vec<i32>,
    pub data: BucketData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleStep {
    pub op: u32,
    pub arg1: i32,
    pub arg2: i32,
}

pub mod op {
    pub const NOOP: u32 = 0;
    pub const TAKE: u32 = 1;
    pub const CHOOSE_FIRSTN: u32 = 2;
    pub const CHOOSE_INDEP: u32 = 3;
    pub const EMIT: u32 = 4;
    pub const CHOOSELEAF_FIRSTN: u32 = 6;
    pub const CHOOSELEAF_INDEP: u32 = 7;
    pub const SET_CHOOSE_TRIES: u32 = 8;
    pub const SET_CHOOSELEAF_TRIES: u32 = 9;
    pub const SET_CHOOSE_LOCAL_TRIES: u32 = 10;
    pub const SET_CHOOSE_LOCAL_FALLBACK_TRIES: u32 = 11;
    pub const SET_CHOOSELEAF_VARY_R: u32 = 12;
    pub const SET_CHOOSELEAF_STABLE: u32 = 13;
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub ruleset: u8,
    pub rule_type: u8,
    pub min_size: u8,
    pub max_size: u8,
    pub steps: Vec<RuleStep>,
}

/// The tunables that change placement. Defaults are the "legacy" (argonaut) values that
/// apply to maps encoded before a tunable existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Tunables {
    pub choose_local_tries: u32,
    pub choose_local_fallback_tries: u32,
    pub choose_total_tries: u32,
    pub chooseleaf_descend_once: u32,
    pub chooseleaf_vary_r: u8,
    pub chooseleaf_stable: u8,
    pub straw_calc_version: u8,
    pub allowed_bucket_algs: u32,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            choose_local_tries: 2,
            choose_local_fallback_tries: 5,
            choose_total_tries: 19,
            chooseleaf_descend_once: 0,
            chooseleaf_vary_r: 0,
            chooseleaf_stable: 0,
            straw_calc_version: 0,
            allowed_bucket_algs: (1 << 1) | (1 << 2) | (1 << 4),
        }
    }
}

/// Per-bucket override of straw2 weights (one set per result position) and item ids.
#[derive(Debug, Clone, Default)]
pub struct ChooseArg {
    pub weight_set: Vec<Vec<u32>>,
    pub ids: Vec<i32>,
    /// Reciprocals of `weight_set`, filled by `CrushMap::finalize`.
    pub weight_set_recips: Vec<Vec<Recip>>,
}

#[derive(Debug, Clone, Default)]
pub struct CrushMap {
    /// Indexed by `-1 - bucket id`.
    pub buckets: Vec<Option<Bucket>>,
    pub rules: Vec<Option<Rule>>,
    /// One past the highest device id any bucket holds.
    pub max_devices: i32,
    pub tunables: Tunables,
    pub type_names: BTreeMap<i32, String>,
    pub item_names: BTreeMap<i32, String>,
    pub rule_names: BTreeMap<i32, String>,
    /// Keyed by pool id (or `DEFAULT_CHOOSE_ARGS`); each vector is indexed like `buckets` and
    /// ends after the last bucket it overrides (buckets past its end have no override).
    pub choose_args: BTreeMap<i64, Vec<ChooseArg>>,
    /// Every rule's ruleset equals its index: rules can then be looked up directly.
    pub have_uniform_rules: bool,
}

impl CrushMap {
    pub fn bucket(&self, id: i32) -> Option<&Bucket> {
        let idx = bucket_index(id)?;
        self.buckets.get(idx).and_then(|b| b.as_ref())
    }

    /// Ceph's `CrushWrapper::find_rule`: the rule a pool's `crush_rule` selects.
    pub fn find_rule(&self, ruleset: i32, rule_type: i32, size: i32) -> Option<usize> {
        if self.have_uniform_rules && ruleset >= 0 {
            if let Some(Some(r)) = self.rules.get(ruleset as usize) {
                if r.rule_type as i32 == rule_type {
                    return Some(ruleset as usize);
                }
            }
        }
        self.rules.iter().position(|r| {
            r.as_ref().is_some_and(|r| {
                r.ruleset as i32 == ruleset
                    && r.rule_type as i32 == rule_type
                    && r.min_size as i32 <= size
                    && r.max_size as i32 >= size
            })
        })
    }

    /// The choose_args a pool uses: its own, else the default set, else none.
    pub fn choose_args_for(&self, pool: i64) -> Option<&[ChooseArg]> {
        self.choose_args.get(&pool).or_else(|| self.choose_args.get(&DEFAULT_CHOOSE_ARGS)).map(|v| v.as_slice())
    }

    /// Decodes `CrushWrapper::encode` output, in its order: header, buckets, rules, the three
    /// name maps, then the optional tails each newer Ceph appended (tunables, device
    /// classes, choose_args).
    pub fn decode(r: &mut Reader<'_>) -> Result<CrushMap> {
        let (max_buckets, max_rules) = decode_header(r)?;
        let mut map = CrushMap { tunables: Tunables::default(), ..Default::default() };
        for slot in 0..max_buckets {
            let bucket = decode_bucket(r)?;
            if let Some(b) = &bucket {
                check_bucket_id(r, b.id, slot, max_buckets)?;
            }
            map.buckets.push(bucket);
        }
        for _ in 0..max_rules {
            map.rules.push(decode_rule(r)?);
        }
        map.type_names = decode_name_map(r, "crush type names")?;
        map.item_names = decode_name_map(r, "crush item names")?;
        map.rule_names = decode_name_map(r, "crush rule names")?;
        decode_tunables(r, &mut map.tunables)?;
        if !r.is_empty() {
            skip_device_classes(r)?;
        }
        if !r.is_empty() {
            map.choose_args = decode_choose_args(r, &map.buckets)?;
        }
        map.finalize();
        Ok(map)
    }

    /// What Ceph's `crush_finalize` and `CrushWrapper::finalize` recompute after decoding.
    pub fn finalize(&mut self) {
        let mut max_devices = 0i32;
        for b in self.buckets.iter().flatten() {
            for &it in &b.items {
                if it >= max_devices {
                    max_devices = it.saturating_add(1);
                }
            }
        }
        self.max_devices = max_devices;
        for b in self.buckets.iter_mut().flatten() {
            if let BucketData::Straw2 { item_weights, recips } = &mut b.data {
                *recips = item_weights.iter().map(|&w| Recip::new(w)).collect();
            }
        }
        for args in self.choose_args.values_mut() {
            for a in args.iter_mut() {
                a.weight_set_recips =
                    a.weight_set.iter().map(|ws| ws.iter().map(|&w| Recip::new(w)).collect()).collect();
            }
        }
        self.have_uniform_rules =
            self.rules.iter().enumerate().all(|(i, r)| r.as_ref().is_none_or(|r| r.ruleset as usize == i));
    }
}

/// A bucket's id must name a slot of the map: CRUSH keeps each bucket's working state at
/// `-1 - id` in an array of `max_buckets` (Ceph's `crush_do_rule` indexes it unchecked), so
/// an id outside `-1..=-max_buckets` is a corrupt map, refused before anything is sized by it.
fn check_bucket_id(r: &Reader<'_>, id: i32, slot: u32, max_buckets: u32) -> Result<()> {
    if bucket_index(id).is_none_or(|idx| idx >= max_buckets as usize) {
        return Err(r.invalid(
            "crush bucket id",
            format!("the bucket in slot {slot} has id {id}, outside -1..=-{max_buckets}; the CRUSH map is corrupt"),
        ));
    }
    Ok(())
}

fn bucket_index(id: i32) -> Option<usize> {
    if id < 0 {
        Some((-1i64 - id as i64) as usize)
    } else {
        None
    }
}

/// The magic and the bucket and rule slot counts, checked against the bytes left.
fn decode_header(r: &mut Reader<'_>) -> Result<(u32, u32)> {
    let offset = r.offset();
    let magic = r.u32("crush magic")?;
    if magic != CRUSH_MAGIC {
        return Err(DecodeError::BadCrushMagic { offset, found: magic });
    }
    let max_buckets = r.i32("crush max_buckets")?;
    let max_rules = r.u32("crush max_rules")?;
    let _max_devices = r.i32("crush max_devices")?;
    if max_buckets < 0 {
        return Err(r.invalid("crush max_buckets", format!("negative bucket count {max_buckets}")));
    }
    // Each bucket slot takes at least 4 bytes (its algorithm), each rule slot 4.
    let need = (max_buckets as u64) * 4 + (max_rules as u64) * 4;
    if need > r.remaining() as u64 {
        return Err(DecodeError::CountTooLarge {
            what: "crush buckets and rules",
            offset,
            count: max_buckets as u64 + max_rules as u64,
            available: r.remaining(),
        });
    }
    Ok((max_buckets as u32, max_rules))
}

/// One rule slot: a presence word, then the rule's header and steps.
fn decode_rule(r: &mut Reader<'_>) -> Result<Option<Rule>> {
    let yes = r.u32("crush rule present")?;
    if yes == 0 {
        return Ok(None);
    }
    let len = r.count("crush rule length", 12)?;
    let ruleset = r.u8("crush rule ruleset")?;
    let rule_type = r.u8("crush rule type")?;
    let min_size = r.u8("crush rule min_size")?;
    let max_size = r.u8("crush rule max_size")?;
    let mut steps = Vec::with_capacity(len);
    for _ in 0..len {
        steps.push(RuleStep {
            op: r.u32("crush rule step op")?,
            arg1: r.i32("crush rule step arg1")?,
            arg2: r.i32("crush rule step arg2")?,
        });
    }
    Ok(Some(Rule { ruleset, rule_type, min_size, max_size, steps }))
}

/// The tunables, each group present only if the encoder was new enough to write it; absent
/// ones keep their legacy defaults.
fn decode_tunables(r: &mut Reader<'_>, t: &mut Tunables) -> Result<()> {
    if !r.is_empty() {
        t.choose_local_tries = r.u32("choose_local_tries")?;
        t.choose_local_fallback_tries = r.u32("choose_local_fallback_tries")?;
        t.choose_total_tries = r.u32("choose_total_tries")?;
    }
    if !r.is_empty() {
        t.chooseleaf_descend_once = r.u32("chooseleaf_descend_once")?;
    }
    if !r.is_empty() {
        t.chooseleaf_vary_r = r.u8("chooseleaf_vary_r")?;
    }
    if !r.is_empty() {
        t.straw_calc_version = r.u8("straw_calc_version")?;
    }
    if !r.is_empty() {
        t.allowed_bucket_algs = r.u32("allowed_bucket_algs")?;
    }
    if !r.is_empty() {
        t.chooseleaf_stable = r.u8("chooseleaf_stable")?;
    }
    Ok(())
}

/// Device classes: class_map<i32,i32>, class_name<i32,string>,
/// class_bucket<i32, map<i32,i32>>. Placement does not need them: the shadow trees they
/// describe are ordinary buckets already.
fn skip_device_classes(r: &mut Reader<'_>) -> Result<()> {
    let n = r.count("crush class map", 8)?;
    r.skip(n * 8, "crush class map")?;
    let n = r.count("crush class names", 8)?;
    for _ in 0..n {
        r.skip(4, "crush class name id")?;
        let _ = r.string("crush class name")?;
    }
    let n = r.count("crush class buckets", 8)?;
    for _ in 0..n {
        r.skip(4, "crush class bucket id")?;
        let m = r.count("crush class bucket map", 8)?;
        r.skip(m * 8, "crush class bucket map")?;
    }
    Ok(())
}

/// choose_args: map<i64, map<bucket index, (weight_set, ids)>>. Each set becomes a vector
/// indexed like the buckets, as long as the highest bucket index it lists (missing entries
/// mean "no override"). Ceph allocates a slot for every bucket in every set; here the slots
/// of all sets together are also limited to the bucket count plus one per byte of the
/// encoded sets, so that a few bytes naming many sets cannot demand a quadratic allocation.
/// Real maps list every straw2 bucket in each set (12 bytes or more apiece) and stay far
/// below the limit.
fn decode_choose_args(r: &mut Reader<'_>, buckets: &[Option<Bucket>]) -> Result<BTreeMap<i64, Vec<ChooseArg>>> {
    let mut all = BTreeMap::new();
    let offset = r.offset();
    let section_bytes = r.remaining();
    let slot_budget = buckets.len().saturating_add(section_bytes);
    let mut slots = 0usize;
    let n = r.count("crush choose_args", 12)?;
    for _ in 0..n {
        let key = r.i64("choose_args index")?;
        let mut args: Vec<ChooseArg> = Vec::new();
        let size = r.count("choose_args bucket count", 12)?;
        for _ in 0..size {
            let bi = r.u32("choose_args bucket index")? as usize;
            if bi >= buckets.len() {
                return Err(r.invalid(
                    "choose_args bucket index",
                    format!("bucket index {bi} but the map has {} buckets", buckets.len()),
                ));
            }
            if bi >= args.len() {
                slots += bi + 1 - args.len();
                if slots > slot_budget {
                    return Err(DecodeError::CountTooLarge {
                        what: "crush choose_args bucket slots",
                        offset,
                        count: slots as u64,
                        available: section_bytes,
                    });
                }
                args.resize(bi + 1, ChooseArg::default());
            }
            let bucket_size = buckets[bi].as_ref().map(|b| b.items.len()).unwrap_or(0);
            args[bi] = decode_choose_arg(r, bucket_size)?;
        }
        all.insert(key, args);
    }
    Ok(all)
}

/// One bucket's weight set (one vector per result position) and optional replacement ids.
fn decode_choose_arg(r: &mut Reader<'_>, bucket_size: usize) -> Result<ChooseArg> {
    let positions = r.count("choose_args weight_set positions", 4)?;
    let mut weight_set = Vec::with_capacity(positions);
    for _ in 0..positions {
        weight_set.push(r.vec_u32("choose_args weight_set")?);
    }
    let ids = r.vec_i32("choose_args ids")?;
    if !ids.is_empty() && ids.len() != bucket_size {
        return Err(r.invalid("choose_args ids", format!("{} ids for a bucket of {} items", ids.len(), bucket_size)));
    }
    Ok(ChooseArg { weight_set, ids, weight_set_recips: Vec::new() })
}

fn decode_name_map(r: &mut Reader<'_>, what: &'static str) -> Result<BTreeMap<i32, String>> {
    let n = r.count(what, 8)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let key = r.i32(what)?;
        let mut len = r.u32(what)?;
        if len == 0 {
            // Some old encoders wrote the key as 64 bits: its high half reads as an empty
            // string length, and the real length follows. Names are never empty.
            len = r.u32(what)?;
        }
        let s = r.bytes(len as usize, what)?;
        m.insert(key, String::from_utf8_lossy(s).into_owned());
    }
    Ok(m)
}

fn decode_bucket(r: &mut Reader<'_>) -> Result<Option<Bucket>> {
    let alg_word = r.u32("crush bucket algorithm")?;
    if alg_word == 0 {
        return Ok(None);
    }
    let alg = match alg_word {
        1 => BucketAlg::Uniform,
        2 => BucketAlg::List,
        3 => BucketAlg::Tree,
        4 => BucketAlg::Straw,
        5 => BucketAlg::Straw2,
        other => return Err(r.invalid("crush bucket algorithm", format!("unknown bucket algorithm {other}"))),
    };
    let id = r.i32("crush bucket id")?;
    let type_id = r.u16("crush bucket type")?;
    let alg2 = r.u8("crush bucket alg")?;
    if alg2 as u32 != alg_word {
        return Err(r.invalid("crush bucket alg", format!("bucket {id} says algorithm {alg_word} then {alg2}")));
    }
    let hash = r.u8("crush bucket hash")?;
    let weight = r.u32("crush bucket weight")?;
    let items = r.vec_i32("crush bucket items")?;
    let data = decode_bucket_data(r, alg, items.len())?;
    Ok(Some(Bucket { id, type_id, alg, hash, weight, items, data }))
}

/// The algorithm-specific part of a bucket of `size` items.
fn decode_bucket_data(r: &mut Reader<'_>, alg: BucketAlg, size: usize) -> Result<BucketData> {
    Ok(match alg {
        BucketAlg::Uniform => BucketData::Uniform { item_weight: r.u32("uniform item weight")? },
        BucketAlg::List => {
            let [item_weights, sum_weights] =
                decode_weight_pairs(r, size, "list bucket weights", ["list item weight", "list sum weight"])?;
            BucketData::List { item_weights, sum_weights }
        }
        BucketAlg::Tree => {
            let n = r.u8("tree num_nodes")? as usize;
            let mut nw = Vec::with_capacity(n);
            for _ in 0..n {
                nw.push(r.u32("tree node weight")?);
            }
            BucketData::Tree { node_weights: nw }
        }
        BucketAlg::Straw => {
            let [item_weights, straws] =
                decode_weight_pairs(r, size, "straw bucket weights", ["straw item weight", "straw straw"])?;
            BucketData::Straw { item_weights, straws }
        }
        BucketAlg::Straw2 => {
            if size * 4 > r.remaining() {
                return Err(DecodeError::CountTooLarge {
                    what: "straw2 bucket weights",
                    offset: r.offset(),
                    count: size as u64,
                    available: r.remaining(),
                });
            }
            let mut iw = Vec::with_capacity(size);
            for _ in 0..size {
                iw.push(r.u32("straw2 item weight")?);
            }
            BucketData::Straw2 { item_weights: iw, recips: Vec::new() }
        }
    })
}

/// `size` interleaved pairs of u32s (list and straw buckets), split into two vectors.
fn decode_weight_pairs(
    r: &mut Reader<'_>,
    size: usize,
    what: &'static str,
    names: [&'static str; 2],
) -> Result<[Vec<u32>; 2]> {
    if size * 8 > r.remaining() {
        return Err(DecodeError::CountTooLarge {
            what,
            offset: r.offset(),
            count: size as u64,
            available: r.remaining(),
        });
    }
    let mut first = Vec::with_capacity(size);
    let mut second = Vec::with_capacity(size);
    for _ in 0..size {
        first.push(r.u32(names[0])?);
        second.push(r.u32(names[1])?);
    }
    Ok([first, second])
}
