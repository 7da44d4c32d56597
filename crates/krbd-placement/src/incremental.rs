//! OSDMap incrementals: the client-visible part of `OSDMap::Incremental` (stock Ceph from
//! 0.46 to Pacific, and the fork's `new_recovery_weight`), applying one to a full map, and
//! encoding fork-format incrementals for the kernel selftest.

use std::collections::BTreeMap;

use crate::crc::{verify_wrapper_crc, CrcCheck};
use crate::crush::CrushMap;
use crate::error::{DecodeError, Result};
use crate::osdmap::{
    check_max_osd_limit, decode_pool, skip_addrvec, OsdMap, PgId, Pool, DEFAULT_PRIMARY_AFFINITY, FORK_WRAPPER_COMPAT,
    OSD_EXISTS, OSD_IN, OSD_UP,
};
use crate::reader::Reader;

const OSD_AUTOOUT: u32 = 4;
const OSD_NEW: u32 = 8;

#[derive(Debug, Clone, Default)]
pub struct Incremental {
    pub fsid: [u8; 16],
    pub epoch: u32,
    pub new_pool_max: i64,
    pub new_flags: i32,
    /// A whole map carried inside the incremental (replaces everything).
    pub fullmap: Vec<u8>,
    pub crush: Option<CrushMap>,
    /// The new max_osd, or negative for no change (at most
    /// [`MAX_OSD_LIMIT`](crate::osdmap::MAX_OSD_LIMIT) once decoded).
    pub new_max_osd: i32,
    /// Offset of `new_max_osd` in the file.
    pub new_max_osd_at: usize,
    pub new_pools: BTreeMap<i64, Pool>,
    pub new_pool_names: BTreeMap<i64, String>,
    pub old_pools: Vec<i64>,
    /// OSDs that came up (their address is not needed for placement).
    pub new_up: Vec<i32>,
    /// State bits to toggle (XOR), per OSD.
    pub new_state: BTreeMap<i32, u32>,
    pub new_weight: BTreeMap<i32, u32>,
    /// The fork's recovery weight changes (present only with wrapper compat 8).
    pub new_recovery_weight: Option<Vec<(u32, u32)>>,
    pub new_pg_temp: BTreeMap<PgId, Vec<i32>>,
    pub new_primary_temp: BTreeMap<PgId, i32>,
    pub new_primary_affinity: BTreeMap<i32, u32>,
    pub new_pg_upmap: BTreeMap<PgId, Vec<i32>>,
    pub old_pg_upmap: Vec<PgId>,
    pub new_pg_upmap_items: BTreeMap<PgId, Vec<(i32, i32)>>,
    pub old_pg_upmap_items: Vec<PgId>,
    /// Offset just after `new_weight` (where the fork's list goes).
    pub after_new_weight: Option<usize>,
    /// Offset just after the fork's list (equal to `after_new_weight` in stock encodings).
    pub after_recovery_weight: usize,
    /// Set for wrapped encodings, which can be re-encoded.
    pub layout: Option<IncLayout>,
}

/// Where an incremental's parts sit in its file (absolute offsets, ends exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncLayout {
    pub wrapper_start: usize,
    pub wrapper_version: u8,
    pub client_start: usize,
    pub client_body_start: usize,
    pub client_end: usize,
    pub wrapper_end: usize,
    pub after_new_weight: usize,
    pub after_recovery_weight: usize,
}

impl Incremental {
    /// Re-encodes the incremental from `original` (the bytes it was decoded from) with the
    /// given recovery weight changes: `Some` writes the fork format (wrapper compat 8 and
    /// the list right after `new_weight`), `None` the stock format. CRCs are recomputed.
    pub fn encode_with_recovery_weights(
        &self,
        original: &[u8],
        list: Option<&[(u32, u32)]>,
    ) -> std::result::Result<Vec<u8>, crate::encode::EncodeError> {
        let lay = self.layout.ok_or(crate::encode::EncodeError::NoLayout)?;
        if original.len() < lay.wrapper_end {
            return Err(crate::encode::EncodeError::WrongOriginal { needed: lay.wrapper_end, got: original.len() });
        }
        let put = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
        let mut body = original[lay.client_body_start..lay.after_new_weight].to_vec();
        if let Some(list) = list {
            put(&mut body, list.len() as u32);
            for &(osd, w) in list {
                put(&mut body, osd);
                put(&mut body, w);
            }
        }
        body.extend_from_slice(&original[lay.after_recovery_weight..lay.client_end]);
        let mut wb = original[lay.client_start..lay.client_start + 2].to_vec();
        put(&mut wb, body.len() as u32);
        wb.extend_from_slice(&body);
        wb.extend_from_slice(&original[lay.client_end..lay.wrapper_end]);
        let mut out = original[..lay.wrapper_start].to_vec();
        out.push(lay.wrapper_version);
        out.push(if list.is_some() { FORK_WRAPPER_COMPAT } else { original[lay.wrapper_start + 1].min(7) });
        put(&mut out, wb.len() as u32);
        out.extend_from_slice(&wb);
        if lay.wrapper_version >= 8 && wb.len() >= 8 {
            // Incrementals end with their own CRC then the resulting full map's CRC; the
            // first covers everything before it and, after it, the second.
            let crc_at = out.len() - 8;
            let c = crate::encode::ceph_crc32c(0xffff_ffff, &out[lay.wrapper_start..crc_at]);
            let c = crate::encode::ceph_crc32c(c, &out[crc_at + 4..]);
            out[crc_at..crc_at + 4].copy_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(&original[lay.wrapper_end..]);
        Ok(out)
    }
}

fn pg(r: &mut Reader<'_>) -> Result<PgId> {
    let v = r.u8("pg_t version")?;
    if v != 1 {
        return Err(r.invalid("pg_t", format!("pg id encoding version {v}, expected 1")));
    }
    let pool = r.u64("pg_t pool")? as i64;
    let seed = r.u32("pg_t seed")?;
    r.skip(4, "pg_t preferred")?;
    Ok(PgId { pool, seed })
}

fn i32_u32_map(r: &mut Reader<'_>, what: &'static str) -> Result<BTreeMap<i32, u32>> {
    let n = r.count(what, 8)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let k = r.i32(what)?;
        m.insert(k, r.u32(what)?);
    }
    Ok(m)
}

fn pg_vec_map(r: &mut Reader<'_>, what: &'static str) -> Result<BTreeMap<PgId, Vec<i32>>> {
    let n = r.count(what, 21)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let p = pg(r)?;
        m.insert(p, r.vec_i32(what)?);
    }
    Ok(m)
}

fn pg_set(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<PgId>> {
    let n = r.count(what, 17)?;
    (0..n).map(|_| pg(r)).collect()
}

fn blob<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Reader<'a>> {
    let n = r.count(what, 1)?;
    r.sub(n, what)
}

impl Incremental {
    /// Decodes an OSDMap incremental (any supported version), refusing it, as Ceph does,
    /// when its CRC does not match.
    pub fn decode(data: &[u8]) -> Result<Incremental> {
        Self::decode_with(data, CrcCheck::Verify)
    }

    /// [`Incremental::decode`] with the CRC check chosen by the caller (incrementals before
    /// wrapper version 8 carry none).
    pub fn decode_with(data: &[u8], crc: CrcCheck) -> Result<Incremental> {
        let first = Reader::new(data).u8("incremental version")?;
        let mut r = Reader::new(data);
        if first < 7 {
            return decode_classic(&mut r);
        }
        let wrapper = r.section("incremental wrapper")?;
        if wrapper.compat > FORK_WRAPPER_COMPAT {
            return Err(DecodeError::UnsupportedVersion {
                what: "incremental wrapper",
                offset: wrapper.start,
                version: wrapper.version,
                compat: wrapper.compat,
                supported: "compat 7 (stock) and 8 (fork)",
            });
        }
        if crc == CrcCheck::Verify {
            verify_wrapper_crc(data, &wrapper, "incremental")?;
        }
        let fork = wrapper.compat == FORK_WRAPPER_COMPAT;
        let mut w = wrapper.body;
        let client = w.section("incremental client data")?;
        let cv = client.version;
        let mut c = client.body;
        let mut inc = Incremental::default();
        inc.fsid.copy_from_slice(c.bytes(16, "fsid")?);
        inc.epoch = c.u32("epoch")?;
        c.skip(8, "modified")?;
        inc.new_pool_max = c.i64("new_pool_max")?;
        inc.new_flags = c.i32("new_flags")?;
        let n = c.count("fullmap", 1)?;
        inc.fullmap = c.bytes(n, "fullmap")?.to_vec();
        decode_common(&mut c, &mut inc, cv, fork, false)?;
        inc.layout = Some(IncLayout {
            wrapper_start: wrapper.start,
            wrapper_version: wrapper.version,
            client_start: client.start,
            client_body_start: client.start + 6,
            client_end: c.offset() + c.remaining(),
            wrapper_end: w.offset() + w.remaining(),
            after_new_weight: inc.after_new_weight.unwrap_or(0),
            after_recovery_weight: inc.after_recovery_weight,
        });
        Ok(inc)
    }

    /// Applies this incremental to `map` the way `OSDMap::apply_incremental` does for the
    /// fields placement depends on.
    pub fn apply(&self, map: &mut OsdMap) -> Result<()> {
        if !self.fullmap.is_empty() {
            *map = OsdMap::decode(&self.fullmap)?;
            return Ok(());
        }
        if let Some(c) = &self.crush {
            map.crush = c.clone();
        }
        if self.new_flags >= 0 {
            map.flags = self.new_flags as u32;
        }
        if self.new_max_osd >= 0 {
            check_max_osd_limit("new_max_osd", self.new_max_osd_at, self.new_max_osd)?;
            set_max_osd(map, self.new_max_osd);
        }
        self.apply_pools(map);
        self.apply_osd_states(map);
        self.apply_weights(map);
        self.apply_temps_and_upmaps(map);
        if map.primary_affinity.as_ref().is_some_and(|pa| pa.iter().all(|&a| a == DEFAULT_PRIMARY_AFFINITY)) {
            map.primary_affinity = None;
        }
        map.epoch = self.epoch;
        Ok(())
    }

    fn apply_pools(&self, map: &mut OsdMap) {
        for (&id, p) in &self.new_pools {
            map.pools.insert(id, p.clone());
        }
        for (&id, n) in &self.new_pool_names {
            map.pool_names.insert(id, n.clone());
        }
        for id in &self.old_pools {
            map.pools.remove(id);
            map.pool_names.remove(id);
        }
    }

    /// State bits toggle (a zero means "up"), except that toggling EXISTS on an existing
    /// OSD destroys it; then the OSDs that came up.
    fn apply_osd_states(&self, map: &mut OsdMap) {
        for (&osd, &state) in &self.new_state {
            let Some(slot) = map.osd_state.get_mut(osd as usize) else { continue };
            let s = if state != 0 { state } else { OSD_UP };
            if *slot & OSD_EXISTS != 0 && s & OSD_EXISTS != 0 {
                // The OSD was destroyed: everything about it resets.
                *slot = 0;
                if let Some(pa) = map.primary_affinity.as_mut() {
                    if let Some(a) = pa.get_mut(osd as usize) {
                        *a = DEFAULT_PRIMARY_AFFINITY;
                    }
                }
            } else {
                *slot ^= s;
            }
        }
        for &osd in &self.new_up {
            if let Some(slot) = map.osd_state.get_mut(osd as usize) {
                *slot |= OSD_EXISTS | OSD_UP;
            }
        }
    }

    /// Reweights, the fork's recovery weights, and primary affinities.
    fn apply_weights(&self, map: &mut OsdMap) {
        for (&osd, &w) in &self.new_weight {
            if let Some(slot) = map.osd_weight.get_mut(osd as usize) {
                *slot = w;
            }
            if w != 0 {
                // Marking an OSD in clears its AUTOOUT and NEW bits.
                if let Some(st) = map.osd_state.get_mut(osd as usize) {
                    *st &= !(OSD_AUTOOUT | OSD_NEW);
                }
            }
        }
        if let Some(list) = &self.new_recovery_weight {
            for &(osd, w) in list {
                // Out-of-range OSDs are ignored, as the fork's kernel patch does.
                if (osd as i64) < map.max_osd as i64 {
                    map.set_recovery_weight(osd as i32, w);
                }
            }
        }
        for (&osd, &a) in &self.new_primary_affinity {
            if osd < 0 || osd >= map.max_osd {
                continue;
            }
            let n = map.max_osd as usize;
            let pa = map.primary_affinity.get_or_insert_with(|| vec![DEFAULT_PRIMARY_AFFINITY; n]);
            pa[osd as usize] = a;
        }
    }

    /// pg_temp and primary_temp (an empty set or -1 removes the entry), then the upmaps.
    fn apply_temps_and_upmaps(&self, map: &mut OsdMap) {
        for (pg, osds) in &self.new_pg_temp {
            if osds.is_empty() {
                map.pg_temp.remove(pg);
            } else {
                map.pg_temp.insert(*pg, osds.clone());
            }
        }
        for (pg, &p) in &self.new_primary_temp {
            if p == -1 {
                map.primary_temp.remove(pg);
            } else {
                map.primary_temp.insert(*pg, p);
            }
        }
        for (pg, v) in &self.new_pg_upmap {
            map.pg_upmap.insert(*pg, v.clone());
        }
        for pg in &self.old_pg_upmap {
            map.pg_upmap.remove(pg);
        }
        for (pg, v) in &self.new_pg_upmap_items {
            map.pg_upmap_items.insert(*pg, v.clone());
        }
        for pg in &self.old_pg_upmap_items {
            map.pg_upmap_items.remove(pg);
        }
    }
}

fn set_max_osd(map: &mut OsdMap, n: i32) {
    let n = n.max(0) as usize;
    map.osd_state.resize(n, 0);
    map.osd_weight.resize(n, 0);
    if let Some(pa) = map.primary_affinity.as_mut() {
        pa.resize(n, DEFAULT_PRIMARY_AFFINITY);
    }
    if let Some(rw) = map.recovery_weight.as_mut() {
        rw.resize(n, OSD_IN);
    }
    map.max_osd = n as i32;
}

/// The fields shared by classic and wrapped encodings, from `crush` on.
fn decode_common(c: &mut Reader<'_>, inc: &mut Incremental, cv: u8, fork: bool, classic: bool) -> Result<()> {
    let cr = blob(c, "incremental crush")?;
    if cr.remaining() > 0 {
        let mut cr = cr;
        inc.crush = Some(CrushMap::decode(&mut cr)?);
    }
    inc.new_max_osd_at = c.offset();
    inc.new_max_osd = c.i32("new_max_osd")?;
    // Growing a map costs memory that no bytes of the incremental pay for (Ceph's QA grows
    // one from 8 to 60,000 OSDs with 4-byte changes): bounded by what the kernel can hold.
    check_max_osd_limit("new_max_osd", inc.new_max_osd_at, inc.new_max_osd)?;
    decode_pool_changes(c, inc)?;
    decode_osd_changes(c, inc, !classic && cv >= 5)?;
    inc.after_new_weight = Some(c.offset());
    inc.after_recovery_weight = c.offset();
    if fork {
        let n = c.count("new_recovery_weight", 8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((c.u32("recovery weight osd")?, c.u32("recovery weight")?));
        }
        inc.new_recovery_weight = Some(v);
        inc.after_recovery_weight = c.offset();
    }
    inc.new_pg_temp = pg_vec_map(c, "new_pg_temp")?;
    if classic {
        return Ok(());
    }
    let n = c.count("new_primary_temp", 21)?;
    for _ in 0..n {
        let p = pg(c)?;
        inc.new_primary_temp.insert(p, c.i32("new_primary_temp")?);
    }
    if cv >= 2 {
        inc.new_primary_affinity = i32_u32_map(c, "new_primary_affinity")?;
    }
    if cv >= 3 {
        skip_erasure_code_profile_changes(c)?;
    }
    if cv >= 4 {
        decode_upmap_changes(c, inc)?;
    }
    Ok(())
}

/// new_pools, new_pool_names, old_pools.
fn decode_pool_changes(c: &mut Reader<'_>, inc: &mut Incremental) -> Result<()> {
    let n = c.count("new_pools", 14)?;
    for _ in 0..n {
        let id = c.i64("new pool id")?;
        inc.new_pools.insert(id, decode_pool(c)?);
    }
    let n = c.count("new_pool_names", 12)?;
    for _ in 0..n {
        let id = c.i64("new pool name id")?;
        inc.new_pool_names.insert(id, c.string("new pool name")?);
    }
    let n = c.count("old_pools", 8)?;
    for _ in 0..n {
        inc.old_pools.push(c.i64("old pool")?);
    }
    Ok(())
}

/// new_up_client (OSD and address), new_state (u8 bits before client v5, u32 since, as
/// `wide_state` says) and new_weight.
fn decode_osd_changes(c: &mut Reader<'_>, inc: &mut Incremental, wide_state: bool) -> Result<()> {
    let n = c.count("new_up_client", 5)?;
    for _ in 0..n {
        inc.new_up.push(c.i32("new_up_client osd")?);
        skip_addrvec(c)?;
    }
    if wide_state {
        inc.new_state = i32_u32_map(c, "new_state")?;
    } else {
        let n = c.count("new_state", 5)?;
        for _ in 0..n {
            let k = c.i32("new_state osd")?;
            inc.new_state.insert(k, c.u8("new_state bits")? as u32);
        }
    }
    inc.new_weight = i32_u32_map(c, "new_weight")?;
    Ok(())
}

/// new_erasure_code_profiles and old_erasure_code_profiles, which placement ignores.
fn skip_erasure_code_profile_changes(c: &mut Reader<'_>) -> Result<()> {
    let n = c.count("new_erasure_code_profiles", 8)?;
    for _ in 0..n {
        c.string("profile name")?;
        let m = c.count("profile", 8)?;
        for _ in 0..m {
            c.string("profile key")?;
            c.string("profile value")?;
        }
    }
    let n = c.count("old_erasure_code_profiles", 4)?;
    for _ in 0..n {
        c.string("old profile")?;
    }
    Ok(())
}

/// new_pg_upmap, old_pg_upmap, new_pg_upmap_items, old_pg_upmap_items.
fn decode_upmap_changes(c: &mut Reader<'_>, inc: &mut Incremental) -> Result<()> {
    inc.new_pg_upmap = pg_vec_map(c, "new_pg_upmap")?;
    inc.old_pg_upmap = pg_set(c, "old_pg_upmap")?;
    let n = c.count("new_pg_upmap_items", 21)?;
    for _ in 0..n {
        let p = pg(c)?;
        let k = c.count("upmap items", 8)?;
        let mut v = Vec::with_capacity(k);
        for _ in 0..k {
            v.push((c.i32("upmap from")?, c.i32("upmap to")?));
        }
        inc.new_pg_upmap_items.insert(p, v);
    }
    inc.old_pg_upmap_items = pg_set(c, "old_pg_upmap_items")?;
    Ok(())
}

fn decode_classic(r: &mut Reader<'_>) -> Result<Incremental> {
    let start = r.offset();
    let v = r.u16("classic incremental version")?;
    if v != 6 {
        return Err(DecodeError::UnsupportedVersion {
            what: "classic incremental",
            offset: start,
            version: v as u8,
            compat: 0,
            supported: "6, and wrapped 7/8",
        });
    }
    let mut inc = Incremental::default();
    inc.fsid.copy_from_slice(r.bytes(16, "fsid")?);
    inc.epoch = r.u32("epoch")?;
    r.skip(8, "modified")?;
    inc.new_pool_max = r.i64("new_pool_max")?;
    inc.new_flags = r.i32("new_flags")?;
    let n = r.count("fullmap", 1)?;
    inc.fullmap = r.bytes(n, "fullmap")?.to_vec();
    decode_common(r, &mut inc, 0, false, true)?;
    Ok(inc)
}
