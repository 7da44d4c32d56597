//! The PG pipeline of `OSDMap::_pg_to_up_acting_osds`: raw CRUSH placement, upmaps,
//! raw-to-up (down/nonexistent OSDs, and the fork's recovery_weight filter), primary
//! affinity, then pg_temp and primary_temp.

use crate::crush::ITEM_NONE;
use crate::hash::{hash32_2, stable_mod};
use crate::mapper::Workspace;
use crate::osdmap::{OsdMap, PgId, Pool, DEFAULT_PRIMARY_AFFINITY, OSD_IN, POOL_FLAG_HASHPSPOOL};
use krbd_progress::{Listener, Unit};

/// PGs one thread maps per round of [`OsdMap::map_streaming`]: large enough to amortize
/// starting threads, small enough that a round's results stay a few megabytes.
const PGS_PER_THREAD: usize = 4096;

/// What [`OsdMap::map_streaming`] hands its sink.
#[derive(Debug)]
pub enum MapEvent<'a> {
    /// A pool begins; its PGs follow.
    Pool { id: i64, pg_num: u32 },
    /// The next PGs of the current pool, in PG order. The sink may take them (`append`):
    /// the buffer is refilled for the next chunk either way, so a collecting sink moves
    /// each mapping instead of cloning its three sets.
    Pgs(&'a mut Vec<PgMapping>),
}

/// Where one PG lives: the raw CRUSH result, the up set and the acting set, each with its
/// primary (-1 when there is none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PgMapping {
    #[serde(rename = "pgid", serialize_with = "pg_as_string")]
    pub pg: PgId,
    pub raw: Vec<i32>,
    pub raw_primary: i32,
    pub up: Vec<i32>,
    pub up_primary: i32,
    pub acting: Vec<i32>,
    pub acting_primary: i32,
}

impl PgMapping {
    /// One line exactly as `osdmaptool --test-map-pgs-dump-all` prints it.
    pub fn osdmaptool_line(&self) -> String {
        let mut s = String::with_capacity(96);
        self.write_osdmaptool_line(&mut s);
        s
    }

    /// Appends the `osdmaptool` line (without newline) to `s`.
    pub fn write_osdmaptool_line(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = write!(s, "{} raw (", self.pg);
        fmt_set(s, &self.raw);
        let _ = write!(s, ", p{}) up (", self.raw_primary);
        fmt_set(s, &self.up);
        let _ = write!(s, ", p{}) acting (", self.up_primary);
        fmt_set(s, &self.acting);
        let _ = write!(s, ", p{})", self.acting_primary);
    }
}

fn pg_as_string<S: serde::Serializer>(pg: &PgId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(pg)
}

fn fmt_set(s: &mut String, v: &[i32]) {
    use std::fmt::Write;
    s.push('[');
    for (i, o) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{o}");
    }
    s.push(']');
}

fn pick_primary(osds: &[i32]) -> i32 {
    osds.iter().copied().find(|&o| o != ITEM_NONE).unwrap_or(-1)
}

impl Pool {
    /// The placement seed CRUSH hashes (`raw_pg_to_pps`).
    pub fn pps(&self, pg: PgId) -> u32 {
        let ps = stable_mod(pg.seed, self.pgp_num, self.pgp_num_mask);
        if self.flags & POOL_FLAG_HASHPSPOOL != 0 {
            hash32_2(ps, pg.pool as u32)
        } else {
            ps.wrapping_add(pg.pool as u32)
        }
    }

    /// The PG a raw seed folds into (`raw_pg_to_pg`).
    pub fn raw_pg_to_pg(&self, pg: PgId) -> PgId {
        PgId { pool: pg.pool, seed: stable_mod(pg.seed, self.pg_num, self.pg_num_mask) }
    }
}

impl OsdMap {
    /// Raw CRUSH output with nonexistent OSDs removed (replicated) or blanked (EC).
    pub fn pg_to_raw_osds(&self, pool: &Pool, pg: PgId, ws: &mut Workspace) -> (Vec<i32>, u32) {
        let pps = pool.pps(pg);
        let size = pool.size as usize;
        let mut raw = match self.crush.find_rule(pool.crush_rule as i32, pool.pool_type as i32, size as i32) {
            Some(rule) => {
                self.crush.do_rule(rule, pps as i32, size, &self.osd_weight, self.crush.choose_args_for(pg.pool), ws)
            }
            None => Vec::new(),
        };
        if pool.can_shift_osds() {
            raw.retain(|&o| self.exists(o));
        } else {
            for o in raw.iter_mut() {
                if !self.exists(*o) {
                    *o = ITEM_NONE;
                }
            }
        }
        (raw, pps)
    }

    fn osd_out(&self, osd: i32) -> bool {
        osd != ITEM_NONE
            && osd >= 0
            && osd < self.max_osd
            && self.osd_weight.get(osd as usize).copied().unwrap_or(0) == 0
    }

    fn apply_upmap(&self, pool: &Pool, raw_pg: PgId, raw: &mut Vec<i32>) {
        let pg = pool.raw_pg_to_pg(raw_pg);
        if let Some(targets) = self.pg_upmap.get(&pg) {
            // An explicit mapping onto an OSD that is out is ignored as a whole.
            if targets.iter().any(|&o| self.osd_out(o)) {
                return;
            }
            *raw = targets.clone();
        }
        if let Some(items) = self.pg_upmap_items.get(&pg) {
            for &(from, to) in items {
                let mut exists = false;
                let mut pos: Option<usize> = None;
                for (i, &osd) in raw.iter().enumerate() {
                    if osd == to {
                        exists = true;
                        break;
                    }
                    if osd == from && pos.is_none() && !self.osd_out(to) {
                        pos = Some(i);
                    }
                }
                if let (false, Some(p)) = (exists, pos) {
                    raw[p] = to;
                }
            }
        }
    }

    /// The fork's rule: a replicated PG drops an OSD whose recovery weight does not yet
    /// cover the PG's (stable-modded) number, computed in u32 exactly as the cluster does.
    fn recovery_filtered(&self, pool: &Pool, pg: PgId, osd: i32) -> bool {
        let Some(rw) = &self.recovery_weight else { return false };
        let Some(&w) = rw.get(osd as usize) else { return false };
        let ps = stable_mod(pg.seed, pool.pg_num, pool.pg_num_mask);
        ps > pool.pg_num.wrapping_mul(w) / OSD_IN
    }

    fn raw_to_up(&self, pool: &Pool, pg: PgId, raw: &[i32]) -> Vec<i32> {
        if pool.can_shift_osds() {
            raw.iter()
                .copied()
                .filter(|&o| self.exists(o) && self.is_up(o) && !self.recovery_filtered(pool, pg, o))
                .collect()
        } else {
            raw.iter().map(|&o| if self.exists(o) && self.is_up(o) { o } else { ITEM_NONE }).collect()
        }
    }

    fn apply_primary_affinity(&self, pps: u32, pool: &Pool, osds: &mut [i32], primary: &mut i32) {
        let Some(aff) = &self.primary_affinity else { return };
        let affinity = |o: i32| aff.get(o as usize).copied().unwrap_or(DEFAULT_PRIMARY_AFFINITY);
        if !osds.iter().any(|&o| o != ITEM_NONE && affinity(o) != DEFAULT_PRIMARY_AFFINITY) {
            return;
        }
        let mut pos: Option<usize> = None;
        for (i, &o) in osds.iter().enumerate() {
            if o == ITEM_NONE {
                continue;
            }
            let a = affinity(o);
            if a < DEFAULT_PRIMARY_AFFINITY && (hash32_2(pps, o as u32) >> 16) >= a {
                // Passed over as primary, but remembered in case nobody else qualifies.
                if pos.is_none() {
                    pos = Some(i);
                }
            } else {
                pos = Some(i);
                break;
            }
        }
        let Some(pos) = pos else { return };
        *primary = osds[pos];
        if pool.can_shift_osds() && pos > 0 {
            osds[..=pos].rotate_right(1);
        }
    }

    fn temp_osds(&self, pool: &Pool, pg: PgId) -> (Vec<i32>, i32) {
        let pg = pool.raw_pg_to_pg(pg);
        let mut temp = Vec::new();
        if let Some(t) = self.pg_temp.get(&pg) {
            for &o in t {
                if !self.exists(o) || !self.is_up(o) {
                    if !pool.can_shift_osds() {
                        temp.push(ITEM_NONE);
                    }
                } else {
                    temp.push(o);
                }
            }
        }
        let primary = match self.primary_temp.get(&pg) {
            Some(&p) => p,
            None => pick_primary(&temp),
        };
        (temp, primary)
    }

    /// Everything `osdmaptool --test-map-pgs-dump-all` prints for one PG.
    pub fn map_pg(&self, pool: &Pool, pg: PgId, ws: &mut Workspace) -> PgMapping {
        let (raw, pps) = self.pg_to_raw_osds(pool, pg, ws);
        let raw_primary = pick_primary(&raw);
        let (mut acting, mut acting_primary) = self.temp_osds(pool, pg);
        let mut up = if self.pg_upmap.is_empty() && self.pg_upmap_items.is_empty() {
            self.raw_to_up(pool, pg, &raw)
        } else {
            let mut upmapped = raw.clone();
            self.apply_upmap(pool, pg, &mut upmapped);
            self.raw_to_up(pool, pg, &upmapped)
        };
        let mut up_primary = pick_primary(&up);
        self.apply_primary_affinity(pps, pool, &mut up, &mut up_primary);
        if acting.is_empty() {
            acting = up.clone();
            if acting_primary == -1 {
                acting_primary = up_primary;
            }
        }
        PgMapping { pg, raw, raw_primary, up, up_primary, acting, acting_primary }
    }

    /// Maps every PG of every pool (or of one pool), in pool then PG order.
    pub fn map_all(&self, only_pool: Option<i64>) -> Vec<(i64, u32, Vec<PgMapping>)> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        self.map_all_threads(only_pool, threads)
    }

    /// `map_all` on a chosen number of threads (each PG is independent; results are
    /// identical for any thread count).
    pub fn map_all_threads(&self, only_pool: Option<i64>, threads: usize) -> Vec<(i64, u32, Vec<PgMapping>)> {
        let mut out: Vec<(i64, u32, Vec<PgMapping>)> = Vec::new();
        let collect = |event: MapEvent<'_>| -> Result<(), std::convert::Infallible> {
            match event {
                MapEvent::Pool { id, pg_num } => {
                    out.push((id, pg_num, Vec::with_capacity(pg_num.min(1 << 16) as usize)))
                }
                MapEvent::Pgs(pgs) => {
                    let (_, pg_num, mapped) = out.last_mut().expect("a pool precedes its PGs");
                    // Sized once the pool's first PGs exist, so no growth copies the mappings.
                    mapped.reserve_exact((*pg_num as usize).saturating_sub(mapped.len()));
                    mapped.append(pgs)
                }
            }
            Ok(())
        };
        let Ok(()) = self.map_streaming(only_pool, threads, &krbd_progress::Silent, collect);
        out
    }

    /// Maps every PG of every pool (or of one pool) and hands the results to `sink` as they
    /// are computed: each pool's header, then its PGs in order, a chunk at a time. Memory
    /// stays bounded by the chunk size however many PGs a pool claims. Reports one task,
    /// "mapping PGs", counted in PGs. Stops at the first error `sink` returns.
    pub fn map_streaming<E>(
        &self,
        only_pool: Option<i64>,
        threads: usize,
        listener: &dyn Listener,
        mut sink: impl FnMut(MapEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let pools: Vec<(i64, &Pool)> =
            self.pools.iter().filter(|(id, _)| only_pool.is_none_or(|p| p == **id)).map(|(&id, p)| (id, p)).collect();
        let total: u64 = pools.iter().map(|(_, p)| p.pg_num as u64).sum();
        listener.task_start("mapping PGs", Some(total), Unit::Steps);
        let mut done = 0u64;
        let result = pools.iter().try_for_each(|&(id, pool)| {
            sink(MapEvent::Pool { id, pg_num: pool.pg_num })?;
            let threads = threads.clamp(1, 64).min((pool.pg_num as usize / PGS_PER_THREAD).max(1));
            let mut buf = Vec::new();
            let mut seed = 0u32;
            while seed < pool.pg_num {
                let end = seed.saturating_add((PGS_PER_THREAD * threads) as u32).min(pool.pg_num);
                self.map_range(id, pool, seed..end, threads, &mut buf);
                sink(MapEvent::Pgs(&mut buf))?;
                done += (end - seed) as u64;
                listener.task_progress(done);
                seed = end;
            }
            Ok(())
        });
        listener.task_finish();
        result
    }

    /// Maps the PGs `seeds` of one pool into `out` (replacing its contents), split over
    /// `threads` threads.
    fn map_range(&self, id: i64, pool: &Pool, seeds: std::ops::Range<u32>, threads: usize, out: &mut Vec<PgMapping>) {
        out.clear();
        let map_seeds = |seeds: std::ops::Range<u32>| {
            let mut ws = Workspace::new();
            seeds.map(|seed| self.map_pg(pool, PgId { pool: id, seed }, &mut ws)).collect::<Vec<_>>()
        };
        if threads == 1 {
            *out = map_seeds(seeds);
            return;
        }
        let chunk = (seeds.end - seeds.start).div_ceil(threads as u32);
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads as u32)
                .map(|t| {
                    let lo = (seeds.start + t * chunk).min(seeds.end);
                    let hi = (lo + chunk).min(seeds.end);
                    sc.spawn(move || map_seeds(lo..hi))
                })
                .collect();
            for h in handles {
                // A mapping thread cannot panic on any map (see mapper.rs); if it did,
                // re-raising keeps the failure visible instead of hiding PGs.
                match h.join() {
                    Ok(v) => out.extend(v),
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
        });
    }

    /// Sets (or creates) the fork's recovery weights; missing entries default to 1.0.
    pub fn set_recovery_weight(&mut self, osd: i32, weight: u32) {
        let n = self.max_osd.max(0) as usize;
        let rw = self.recovery_weight.get_or_insert_with(|| vec![OSD_IN; n]);
        if let Some(slot) = rw.get_mut(osd as usize) {
            *slot = weight;
        }
    }
}
