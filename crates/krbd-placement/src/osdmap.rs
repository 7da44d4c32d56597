//! The OSDMap: decoded full maps (stock Ceph from 0.46 to Pacific, and the fork's format
//! with `recovery_weight`), and where in the file the fork's fields go.

use std::collections::BTreeMap;

use crate::crc::{verify_wrapper_crc, CrcCheck};
use crate::crush::CrushMap;
use crate::error::{DecodeError, Result};
use crate::hash::calc_mask;
use crate::reader::{Reader, Section};

pub const OSD_EXISTS: u32 = 1;
pub const OSD_UP: u32 = 2;
/// Weight 1.0 in 16.16 fixed point (`CEPH_OSD_IN`).
pub const OSD_IN: u32 = 0x10000;
pub const DEFAULT_PRIMARY_AFFINITY: u32 = 0x10000;
/// The fork marks its maps with this wrapper compat version (stock Ceph writes 7).
pub const FORK_WRAPPER_COMPAT: u8 = 8;
/// The most OSDs a map can have and still be used by the kernel client (15,790,320): its
/// `osdmap_set_max_osd` allocates the per-OSD address array (a 136-byte
/// `struct ceph_entity_addr` each) with kvmalloc, which refuses more than INT_MAX bytes, so
/// a larger max_osd fails with ENOMEM ("corrupt inc osdmap"). Ceph's monitors stop far
/// below (`mon_max_osd`, 10,000 by default; its QA grows a map to 60,000). A few bytes
/// claiming more must not make us allocate gigabytes.
pub const MAX_OSD_LIMIT: i32 = (i32::MAX as usize / 136) as i32;

pub const POOL_TYPE_REPLICATED: u8 = 1;
pub const POOL_TYPE_ERASURE: u8 = 3;
pub const POOL_FLAG_HASHPSPOOL: u64 = 1;

/// A placement group id: pool and seed (`pg_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgId {
    pub pool: i64,
    pub seed: u32,
}

impl std::fmt::Display for PgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

/// The parts of `pg_pool_t` that placement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub pool_type: u8,
    pub size: u8,
    pub crush_rule: u8,
    pub pg_num: u32,
    pub pgp_num: u32,
    pub pg_num_mask: u32,
    pub pgp_num_mask: u32,
    pub flags: u64,
}

impl Pool {
    /// Replicated pools compact their sets (a failed OSD shifts the rest left); EC pools
    /// keep positions and leave holes.
    pub fn can_shift_osds(&self) -> bool {
        self.pool_type == POOL_TYPE_REPLICATED
    }
}

/// Which encoding a map was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// Pre-Giant single-version encoding (`decode_classic`).
    Classic { version: u16 },
    /// `ENCODE_START` wrapper around a client and an OSD section.
    Wrapped { wrapper_version: u8, wrapper_compat: u8, client_version: u8 },
}

/// Where each re-encodable field of a wrapped map sits in the file (absolute byte ranges,
/// end exclusive). The encoder copies everything else byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub wrapper_start: usize,
    pub wrapper_body_start: usize,
    pub wrapper_end: usize,
    pub client_start: usize,
    pub client_body_start: usize,
    pub client_end: usize,
    pub pools: (usize, usize),
    /// Each pool's encoded `pg_pool_t` (including its section header).
    pub pool_blobs: BTreeMap<i64, (usize, usize)>,
    pub osd_state: (usize, usize),
    pub osd_weight: (usize, usize),
    /// The fork's array (empty range in stock maps).
    pub recovery_weight: (usize, usize),
    pub pg_temp: (usize, usize),
    pub primary_temp: (usize, usize),
    /// Empty range when the client section predates primary affinity (v1).
    pub primary_affinity: (usize, usize),
    /// Empty ranges when the client section predates upmap (v < 4).
    pub pg_upmap: (usize, usize),
    pub pg_upmap_items: (usize, usize),
}

#[derive(Debug, Clone)]
pub struct OsdMap {
    pub fsid: [u8; 16],
    pub epoch: u32,
    pub pools: BTreeMap<i64, Pool>,
    pub pool_names: BTreeMap<i64, String>,
    pub flags: u32,
    pub max_osd: i32,
    pub osd_state: Vec<u32>,
    pub osd_weight: Vec<u32>,
    /// The fork's per-OSD recovery weight (16.16), present only in fork-format maps.
    pub recovery_weight: Option<Vec<u32>>,
    pub pg_temp: BTreeMap<PgId, Vec<i32>>,
    pub primary_temp: BTreeMap<PgId, i32>,
    pub primary_affinity: Option<Vec<u32>>,
    pub crush: CrushMap,
    pub pg_upmap: BTreeMap<PgId, Vec<i32>>,
    pub pg_upmap_items: BTreeMap<PgId, Vec<(i32, i32)>>,
    pub encoding: Encoding,
    pub layout: Option<Layout>,
}

impl OsdMap {
    pub fn exists(&self, osd: i32) -> bool {
        osd >= 0 && osd < self.max_osd && self.osd_state.get(osd as usize).is_some_and(|s| s & OSD_EXISTS != 0)
    }

    pub fn is_up(&self, osd: i32) -> bool {
        self.exists(osd) && self.osd_state.get(osd as usize).is_some_and(|s| s & OSD_UP != 0)
    }

    pub fn is_fork_format(&self) -> bool {
        self.recovery_weight.is_some()
    }

    /// Decodes a full OSDMap as written by `ceph osd getmap` (any supported version),
    /// refusing it, as Ceph does, when its CRC does not match.
    pub fn decode(data: &[u8]) -> Result<OsdMap> {
        Self::decode_with(data, CrcCheck::Verify)
    }

    /// [`OsdMap::decode`] with the CRC check chosen by the caller. Maps before wrapper
    /// version 8 (Ceph 0.94) carry no CRC and are never checked.
    pub fn decode_with(data: &[u8], crc: CrcCheck) -> Result<OsdMap> {
        let mut r = Reader::new(data);
        let first = r.u8("osdmap version")?;
        let mut r = Reader::new(data);
        if first < 7 {
            return decode_classic(&mut r);
        }
        decode_wrapped(data, &mut r, crc)
    }
}

fn decode_pg(r: &mut Reader<'_>) -> Result<PgId> {
    let v = r.u8("pg_t version")?;
    if v != 1 {
        return Err(r.invalid("pg_t", format!("pg id encoding version {v}, expected 1")));
    }
    let pool = r.u64("pg_t pool")? as i64;
    let seed = r.u32("pg_t seed")?;
    let _preferred = r.i32("pg_t preferred")?;
    Ok(PgId { pool, seed })
}

/// Pre-v6 maps wrote pg ids raw: u16 preferred, u16 ps, u32 pool.
fn decode_old_pg(r: &mut Reader<'_>) -> Result<PgId> {
    let _preferred = r.u16("old pg preferred")?;
    let ps = r.u16("old pg ps")?;
    let pool = r.u32("old pg pool")?;
    Ok(PgId { pool: pool as i64, seed: ps as u32 })
}

fn decode_pg_vec_map(r: &mut Reader<'_>, what: &'static str, old: bool) -> Result<BTreeMap<PgId, Vec<i32>>> {
    let n = r.count(what, if old { 12 } else { 21 })?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let pg = if old { decode_old_pg(r)? } else { decode_pg(r)? };
        m.insert(pg, r.vec_i32(what)?);
    }
    Ok(m)
}

fn decode_pg_i32_map(r: &mut Reader<'_>, what: &'static str) -> Result<BTreeMap<PgId, i32>> {
    let n = r.count(what, 21)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let pg = decode_pg(r)?;
        m.insert(pg, r.i32(what)?);
    }
    Ok(m)
}

fn decode_pg_pairs_map(r: &mut Reader<'_>, what: &'static str) -> Result<BTreeMap<PgId, Vec<(i32, i32)>>> {
    let n = r.count(what, 21)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let pg = decode_pg(r)?;
        let k = r.count(what, 8)?;
        let mut v = Vec::with_capacity(k);
        for _ in 0..k {
            v.push((r.i32(what)?, r.i32(what)?));
        }
        m.insert(pg, v);
    }
    Ok(m)
}

pub(crate) fn decode_pool(r: &mut Reader<'_>) -> Result<Pool> {
    let start = r.offset();
    let v = r.u8("pg_pool_t version")?;
    let mut body;
    let br: &mut Reader<'_> = if v >= 5 {
        let _compat = r.u8("pg_pool_t compat")?;
        let len = r.u32("pg_pool_t length")? as usize;
        body = r.sub(len, "pg_pool_t")?;
        &mut body
    } else if v >= 1 {
        r
    } else {
        return Err(DecodeError::UnsupportedVersion {
            what: "pg_pool_t",
            offset: start,
            version: v,
            compat: 0,
            supported: "1 and newer",
        });
    };
    let pool_type = br.u8("pool type")?;
    let size = br.u8("pool size")?;
    let crush_rule = br.u8("pool crush_rule")?;
    let _object_hash = br.u8("pool object_hash")?;
    let pg_num = br.u32("pool pg_num")?;
    let pgp_num = br.u32("pool pgp_num")?;
    br.skip(8, "pool lpg_num")?;
    br.skip(4, "pool last_change")?;
    br.skip(8 + 4, "pool snap_seq")?;
    if v >= 3 {
        let n = br.count("pool snaps", 10)?;
        for _ in 0..n {
            br.skip(8, "pool snap id")?;
            // pool_snap_info_t: its own ENCODE_START section (v >= 2) or raw.
            let sv = br.u8("pool snap version")?;
            if sv >= 2 {
                br.skip(1, "pool snap compat")?;
                let len = br.u32("pool snap length")? as usize;
                br.skip(len, "pool snap")?;
            } else {
                return Err(br.invalid("pool snap", "snapshot records older than version 2 are not supported"));
            }
        }
        let n = br.count("pool removed_snaps", 16)?;
        br.skip(n * 16, "pool removed_snaps")?;
        br.skip(8, "pool auid")?;
    } else {
        let n = br.u32("pool num_snaps")? as usize;
        let m = br.u32("pool num_removed_snaps")? as usize;
        br.skip(8, "pool auid")?;
        if n > 0 || m > 0 {
            return Err(br.invalid("pool snaps", "pre-v3 pools with snapshots are not supported"));
        }
    }
    let flags = if v >= 4 {
        let f = br.u64("pool flags")?;
        br.skip(4, "pool crash_replay_interval")?;
        f
    } else {
        0
    };
    Ok(Pool {
        pool_type,
        size,
        crush_rule,
        pg_num,
        pgp_num,
        pg_num_mask: calc_mask(pg_num),
        pgp_num_mask: calc_mask(pgp_num),
        flags,
    })
}

/// Skips one `entity_addr_t` in either its legacy (marker 0) or versioned form.
pub(crate) fn skip_addr(r: &mut Reader<'_>) -> Result<()> {
    let marker = r.u8("entity_addr marker")?;
    match marker {
        0 => r.skip(135, "legacy entity_addr"),
        1 => {
            r.skip(2, "entity_addr version")?;
            let len = r.u32("entity_addr length")? as usize;
            r.skip(len, "entity_addr")
        }
        m => Err(r.invalid("entity_addr", format!("marker {m}"))),
    }
}

/// Skips one `entity_addrvec_t`.
pub(crate) fn skip_addrvec(r: &mut Reader<'_>) -> Result<()> {
    let marker = r.u8("entity_addrvec marker")?;
    match marker {
        0 => r.skip(135, "legacy entity_addr"),
        1 => {
            r.skip(2, "entity_addr version")?;
            let len = r.u32("entity_addr length")? as usize;
            r.skip(len, "entity_addr")
        }
        2 => {
            let n = r.count("entity_addrvec", 1)?;
            for _ in 0..n {
                skip_addr(r)?;
            }
            Ok(())
        }
        m => Err(r.invalid("entity_addrvec", format!("marker {m}"))),
    }
}

fn decode_pools(r: &mut Reader<'_>, blobs: &mut BTreeMap<i64, (usize, usize)>) -> Result<BTreeMap<i64, Pool>> {
    let n = r.count("pools", 14)?;
    let mut pools = BTreeMap::new();
    for _ in 0..n {
        let id = r.i64("pool id")?;
        let start = r.offset();
        pools.insert(id, decode_pool(r)?);
        blobs.insert(id, (start, r.offset()));
    }
    Ok(pools)
}

fn decode_pool_names(r: &mut Reader<'_>) -> Result<BTreeMap<i64, String>> {
    let n = r.count("pool names", 12)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let id = r.i64("pool name id")?;
        m.insert(id, r.string("pool name")?);
    }
    Ok(m)
}

fn decode_crush_blob(r: &mut Reader<'_>) -> Result<CrushMap> {
    let len = r.count("crush map", 1)?;
    let mut cr = r.sub(len, "crush map")?;
    CrushMap::decode(&mut cr)
}

fn check_max_osd(r: &Reader<'_>, max_osd: i32) -> Result<()> {
    if max_osd < 0 {
        return Err(r.invalid("max_osd", format!("negative max_osd {max_osd}")));
    }
    check_max_osd_limit("max_osd", r.offset() - 4, max_osd)
}

/// Refuses a max_osd above [`MAX_OSD_LIMIT`], the largest the kernel client can allocate.
pub(crate) fn check_max_osd_limit(what: &'static str, offset: usize, max_osd: i32) -> Result<()> {
    if max_osd > MAX_OSD_LIMIT {
        return Err(DecodeError::Invalid {
            what,
            offset,
            detail: format!(
                "{max_osd} OSDs, more than the {MAX_OSD_LIMIT} the kernel client can allocate (Ceph's kernel client refuses such a map with ENOMEM)"
            ),
        });
    }
    Ok(())
}

/// A per-OSD array must hold exactly `max_osd` entries, as Ceph's `set_max_osd` keeps them.
/// This is also what lets `max_osd` size later allocations (recovery weights, affinities):
/// each of its OSDs is paid for by bytes of the arrays.
fn check_per_osd(what: &'static str, offset: usize, len: usize, max_osd: i32) -> Result<()> {
    if len != max_osd as usize {
        return Err(DecodeError::Invalid {
            what,
            offset,
            detail: format!("{len} entries but max_osd is {max_osd}; Ceph keeps exactly max_osd"),
        });
    }
    Ok(())
}

fn decode_classic(r: &mut Reader<'_>) -> Result<OsdMap> {
    let start = r.offset();
    let v = r.u16("classic osdmap version")?;
    if v != 6 {
        return Err(DecodeError::UnsupportedVersion {
            what: "classic OSDMap",
            offset: start,
            version: v as u8,
            compat: 0,
            supported: "6 (Ceph 0.46 to 0.80), 7 and 8 (wrapped)",
        });
    }
    let mut fsid = [0u8; 16];
    fsid.copy_from_slice(r.bytes(16, "fsid")?);
    let epoch = r.u32("epoch")?;
    r.skip(16, "created/modified")?;
    let pools = decode_pools(r, &mut BTreeMap::new())?;
    let pool_names = decode_pool_names(r)?;
    let _pool_max = r.i32("pool_max")?;
    let flags = r.u32("flags")?;
    let max_osd = r.i32("max_osd")?;
    check_max_osd(r, max_osd)?;
    let s = r.offset();
    let n = r.count("osd_state", 1)?;
    let osd_state = r.bytes(n, "osd_state")?.iter().map(|&b| b as u32).collect();
    check_per_osd("osd_state", s, n, max_osd)?;
    let s = r.offset();
    let osd_weight = r.vec_u32("osd_weight")?;
    check_per_osd("osd_weight", s, osd_weight.len(), max_osd)?;
    let n = r.count("osd client addresses", 1)?;
    for _ in 0..n {
        skip_addr(r)?;
    }
    let pg_temp = decode_pg_vec_map(r, "pg_temp", false)?;
    let crush = decode_crush_blob(r)?;
    Ok(OsdMap {
        fsid,
        epoch,
        pools,
        pool_names,
        flags,
        max_osd,
        osd_state,
        osd_weight,
        recovery_weight: None,
        pg_temp,
        primary_temp: BTreeMap::new(),
        primary_affinity: None,
        crush,
        pg_upmap: BTreeMap::new(),
        pg_upmap_items: BTreeMap::new(),
        encoding: Encoding::Classic { version: v },
        layout: None,
    })
}

/// `OSDMap::decode` for wrapped maps: the wrapper, then its client section (everything a
/// client needs for placement); the OSD-only section that follows is not read.
fn decode_wrapped(data: &[u8], r: &mut Reader<'_>, crc: CrcCheck) -> Result<OsdMap> {
    let mut lay = Layout { wrapper_start: r.offset(), ..Default::default() };
    let wrapper = r.section("OSDMap wrapper")?;
    if wrapper.compat > FORK_WRAPPER_COMPAT {
        return Err(DecodeError::UnsupportedVersion {
            what: "OSDMap wrapper",
            offset: wrapper.start,
            version: wrapper.version,
            compat: wrapper.compat,
            supported: "compat 7 (stock) and 8 (fork with recovery_weight)",
        });
    }
    if crc == CrcCheck::Verify {
        verify_wrapper_crc(data, &wrapper, "OSDMap")?;
    }
    let fork = wrapper.compat == FORK_WRAPPER_COMPAT;
    lay.wrapper_body_start = wrapper.body.offset();
    lay.wrapper_end = wrapper.body.offset() + wrapper.body.remaining();
    let mut w = wrapper.body;
    lay.client_start = w.offset();
    let client = w.section("OSDMap client data")?;
    let encoding = Encoding::Wrapped {
        wrapper_version: wrapper.version,
        wrapper_compat: wrapper.compat,
        client_version: client.version,
    };
    let mut map = decode_client_data(client, fork, encoding, &mut lay)?;
    map.layout = Some(lay);
    Ok(map)
}

/// The client section's fields in their encoding order, recording where the re-encodable
/// ones sit in `lay`.
fn decode_client_data(client: Section<'_>, fork: bool, encoding: Encoding, lay: &mut Layout) -> Result<OsdMap> {
    let cv = client.version;
    let mut c = client.body;
    lay.client_body_start = c.offset();
    lay.client_end = c.offset() + c.remaining();
    let mut fsid = [0u8; 16];
    fsid.copy_from_slice(c.bytes(16, "fsid")?);
    let epoch = c.u32("epoch")?;
    c.skip(16, "created/modified")?;
    let s = c.offset();
    let pools = decode_pools(&mut c, &mut lay.pool_blobs)?;
    lay.pools = (s, c.offset());
    let pool_names = decode_pool_names(&mut c)?;
    let _pool_max = c.i32("pool_max")?;
    let flags = c.u32("flags")?;
    let max_osd = c.i32("max_osd")?;
    check_max_osd(&c, max_osd)?;
    let osd = decode_osd_arrays(&mut c, cv, fork, max_osd, lay)?;
    skip_client_addrs(&mut c, cv)?;
    let temps = decode_temps(&mut c, cv, max_osd, lay)?;
    let crush = decode_crush_blob(&mut c)?;
    if cv >= 3 {
        skip_erasure_code_profiles(&mut c)?;
    }
    let (pg_upmap, pg_upmap_items) = decode_upmaps(&mut c, cv, lay)?;
    Ok(OsdMap {
        fsid,
        epoch,
        pools,
        pool_names,
        flags,
        max_osd,
        osd_state: osd.state,
        osd_weight: osd.weight,
        recovery_weight: osd.recovery_weight,
        pg_temp: temps.pg_temp,
        primary_temp: temps.primary_temp,
        primary_affinity: temps.primary_affinity,
        crush,
        pg_upmap,
        pg_upmap_items,
        encoding,
        layout: None,
    })
}

/// The per-OSD arrays of the client section.
struct OsdArrays {
    state: Vec<u32>,
    weight: Vec<u32>,
    recovery_weight: Option<Vec<u32>>,
}

/// osd_state (bytes before client v5, u32s since), osd_weight, and in the fork's maps the
/// recovery_weight array, which must hold exactly `max_osd` entries.
fn decode_osd_arrays(c: &mut Reader<'_>, cv: u8, fork: bool, max_osd: i32, lay: &mut Layout) -> Result<OsdArrays> {
    let s = c.offset();
    let state = if cv >= 5 {
        c.vec_u32("osd_state")?
    } else {
        let n = c.count("osd_state", 1)?;
        c.bytes(n, "osd_state")?.iter().map(|&b| b as u32).collect()
    };
    check_per_osd("osd_state", s, state.len(), max_osd)?;
    lay.osd_state = (s, c.offset());
    let s = c.offset();
    let weight = c.vec_u32("osd_weight")?;
    check_per_osd("osd_weight", s, weight.len(), max_osd)?;
    lay.osd_weight = (s, c.offset());
    let s = c.offset();
    let recovery_weight = if fork {
        let rw = c.vec_u32("recovery_weight")?;
        if rw.len() != max_osd as usize {
            return Err(DecodeError::Invalid {
                what: "recovery_weight",
                offset: s,
                detail: format!("{} entries but max_osd is {}; the fork writes exactly max_osd", rw.len(), max_osd),
            });
        }
        Some(rw)
    } else {
        None
    };
    lay.recovery_weight = (s, c.offset());
    Ok(OsdArrays { state, weight, recovery_weight })
}

/// The OSDs' client addresses (entity_addrvec_t since client v8), which placement ignores.
fn skip_client_addrs(c: &mut Reader<'_>, cv: u8) -> Result<()> {
    let n = c.count("osd client addresses", 1)?;
    for _ in 0..n {
        if cv >= 8 {
            skip_addrvec(c)?
        } else {
            skip_addr(c)?
        }
    }
    Ok(())
}

/// The temporary overrides of the client section.
struct Temps {
    pg_temp: BTreeMap<PgId, Vec<i32>>,
    primary_temp: BTreeMap<PgId, i32>,
    primary_affinity: Option<Vec<u32>>,
}

/// pg_temp, primary_temp and (since client v2) primary affinity; an empty affinity array
/// means every OSD has the default, any other holds one entry per OSD.
fn decode_temps(c: &mut Reader<'_>, cv: u8, max_osd: i32, lay: &mut Layout) -> Result<Temps> {
    let s = c.offset();
    let pg_temp = decode_pg_vec_map(c, "pg_temp", false)?;
    lay.pg_temp = (s, c.offset());
    let s = c.offset();
    let primary_temp = decode_pg_i32_map(c, "primary_temp")?;
    lay.primary_temp = (s, c.offset());
    let s = c.offset();
    let primary_affinity = if cv >= 2 {
        let v = c.vec_u32("primary_affinity")?;
        if v.is_empty() {
            None
        } else {
            check_per_osd("primary_affinity", s, v.len(), max_osd)?;
            Some(v)
        }
    } else {
        None
    };
    lay.primary_affinity = (s, c.offset());
    Ok(Temps { pg_temp, primary_temp, primary_affinity })
}

/// erasure_code_profiles: map<string, map<string,string>>, which placement ignores.
fn skip_erasure_code_profiles(c: &mut Reader<'_>) -> Result<()> {
    let n = c.count("erasure_code_profiles", 8)?;
    for _ in 0..n {
        c.string("erasure code profile name")?;
        let m = c.count("erasure code profile", 8)?;
        for _ in 0..m {
            c.string("erasure code profile key")?;
            c.string("erasure code profile value")?;
        }
    }
    Ok(())
}

type Upmaps = (BTreeMap<PgId, Vec<i32>>, BTreeMap<PgId, Vec<(i32, i32)>>);

/// pg_upmap and pg_upmap_items (client v4 and newer; empty ranges before).
fn decode_upmaps(c: &mut Reader<'_>, cv: u8, lay: &mut Layout) -> Result<Upmaps> {
    let s = c.offset();
    lay.pg_upmap = (s, s);
    lay.pg_upmap_items = (s, s);
    if cv < 4 {
        return Ok((BTreeMap::new(), BTreeMap::new()));
    }
    let pg_upmap = decode_pg_vec_map(c, "pg_upmap", false)?;
    lay.pg_upmap = (s, c.offset());
    let s = c.offset();
    let pg_upmap_items = decode_pg_pairs_map(c, "pg_upmap_items")?;
    lay.pg_upmap_items = (s, c.offset());
    Ok((pg_upmap, pg_upmap_items))
}
