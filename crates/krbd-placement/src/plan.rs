//! What a recovery_weight ramp does before an operator sets it, and what changes between
//! two maps.

use std::collections::BTreeMap;

use crate::osdmap::{OsdMap, PgId, OSD_IN};
use crate::placement::PgMapping;

/// A PG whose placement differs between two maps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PgDiff {
    pub before: PgMapping,
    pub after: PgMapping,
}

/// The result of comparing two maps.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MapDiff {
    pub compared: usize,
    pub changed: Vec<PgDiff>,
    /// Pools present in only one of the maps (their PGs are not compared).
    pub pools_only_in_a: Vec<i64>,
    pub pools_only_in_b: Vec<i64>,
}

/// PGs whose up or acting set (or primary) differ between `a` and `b`.
pub fn diff_maps(a: &OsdMap, b: &OsdMap) -> MapDiff {
    let ma: BTreeMap<i64, Vec<PgMapping>> = a.map_all(None).into_iter().map(|(id, _, v)| (id, v)).collect();
    let mb: BTreeMap<i64, Vec<PgMapping>> = b.map_all(None).into_iter().map(|(id, _, v)| (id, v)).collect();
    let mut d = MapDiff::default();
    for (id, pa) in &ma {
        let Some(pb) = mb.get(id) else {
            d.pools_only_in_a.push(*id);
            continue;
        };
        let by_pg: BTreeMap<PgId, &PgMapping> = pb.iter().map(|m| (m.pg, m)).collect();
        for x in pa {
            let Some(y) = by_pg.get(&x.pg) else { continue };
            d.compared += 1;
            if x.up != y.up
                || x.acting != y.acting
                || x.up_primary != y.up_primary
                || x.acting_primary != y.acting_primary
            {
                d.changed.push(PgDiff { before: x.clone(), after: (*y).clone() });
            }
        }
    }
    d.pools_only_in_b = mb.keys().filter(|k| !ma.contains_key(k)).copied().collect();
    d
}

/// One step of a ramp.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanStep {
    /// The recovery weight at this step (16.16).
    pub weight: u32,
    /// PGs whose up set gains the OSD compared with the previous step.
    pub gained: Vec<String>,
    /// PGs whose up set loses the OSD compared with the previous step.
    pub lost: Vec<String>,
    /// PGs whose up set has fewer OSDs than at the previous step.
    pub shrunk: Vec<String>,
    /// PGs whose up set is smaller than the pool size at this step.
    pub undersized: Vec<String>,
    /// How many PGs have the OSD in their up set at this step.
    pub holding: usize,
}

/// The placement before the first step, at the starting weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanStart {
    pub weight: u32,
    pub holding: usize,
    pub undersized: Vec<String>,
}

/// Quirks of the fork's rule that an operator should know before ramping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanWarning {
    /// `pg_num * weight` overflows u32 (pg_num >= 65536), so the threshold wraps around and
    /// far fewer PGs keep the OSD than the weight suggests.
    U32Wrap { pool: i64, pg_num: u32, weights: Vec<u32> },
    /// PG 0 of these pools is never filtered, even at weight 0.
    Pg0NeverFiltered { pools: Vec<i64> },
    /// EC pools ignore recovery_weight entirely.
    ErasurePoolsUntouched { pools: Vec<i64> },
    /// The OSD is down or out: recovery_weight changes nothing until it is up and in.
    OsdNotUpIn { osd: i32 },
}

impl std::fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanWarning::U32Wrap { pool, pg_num, weights } => write!(
                f,
                "pool {pool} has pg_num {pg_num}: pg_num x weight overflows 32 bits for weights {}, so the cluster (and the kernel) keep the OSD in far fewer PGs than the weight suggests",
                weights.iter().map(|w| format!("{:#x}", w)).collect::<Vec<_>>().join(", ")
            ),
            PlanWarning::Pg0NeverFiltered { pools } => write!(f, "PG 0 of pools {pools:?} keeps the OSD at every weight, even 0 (the rule compares with >)"),
            PlanWarning::ErasurePoolsUntouched { pools } => write!(f, "erasure-coded pools {pools:?} ignore recovery_weight"),
            PlanWarning::OsdNotUpIn { osd } => write!(f, "osd.{osd} is down or out: its recovery_weight has no effect until it is up and in"),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub osd: i32,
    pub start_weight: u32,
    pub start: PlanStart,
    pub steps: Vec<PlanStep>,
    pub warnings: Vec<PlanWarning>,
}

/// `count` evenly spaced weights from just after `from` up to `to` (16.16).
pub fn ramp_weights(from: u32, to: u32, count: u32) -> Vec<u32> {
    let count = count.max(1);
    (1..=count).map(|i| (from as i64 + (to as i64 - from as i64) * i as i64 / count as i64) as u32).collect()
}

/// Per PG: whether its up set holds `osd`, and how many live OSDs it has.
struct Holders {
    pgs: BTreeMap<PgId, (bool, usize)>,
    undersized: Vec<String>,
}

fn holders(map: &OsdMap, osd: i32) -> Holders {
    let mut pgs = BTreeMap::new();
    let mut undersized = Vec::new();
    for (id, _, mappings) in map.map_all(None) {
        let size = map.pools[&id].size as usize;
        for m in mappings {
            let live = m.up.iter().filter(|&&o| o != crate::crush::ITEM_NONE).count();
            if live < size {
                undersized.push(m.pg.to_string());
            }
            pgs.insert(m.pg, (m.up.contains(&osd), live));
        }
    }
    Holders { pgs, undersized }
}

/// What the fork's rule will surprise an operator with during this ramp.
fn plan_warnings(map: &OsdMap, osd: i32, start_weight: u32, weights: &[u32]) -> Vec<PlanWarning> {
    let mut warnings = Vec::new();
    if !map.is_up(osd) || map.osd_weight.get(osd as usize).copied().unwrap_or(0) == 0 {
        warnings.push(PlanWarning::OsdNotUpIn { osd });
    }
    let (mut ec, mut pg0) = (Vec::new(), Vec::new());
    for (&id, pool) in &map.pools {
        if !pool.can_shift_osds() {
            ec.push(id);
            continue;
        }
        let wraps: Vec<u32> =
            weights.iter().copied().filter(|&w| pool.pg_num as u64 * w as u64 > u32::MAX as u64).collect();
        if !wraps.is_empty() {
            warnings.push(PlanWarning::U32Wrap { pool: id, pg_num: pool.pg_num, weights: wraps });
        }
        if pool.pg_num > 0
            && std::iter::once(&start_weight).chain(weights).any(|&w| (pool.pg_num as u64 * w as u64) < OSD_IN as u64)
        {
            let mut ws = crate::mapper::Workspace::new();
            let (raw, _) = map.pg_to_raw_osds(pool, PgId { pool: id, seed: 0 }, &mut ws);
            if raw.contains(&osd) {
                pg0.push(id);
            }
        }
    }
    if !pg0.is_empty() {
        warnings.push(PlanWarning::Pg0NeverFiltered { pools: pg0 });
    }
    if !ec.is_empty() {
        warnings.push(PlanWarning::ErasurePoolsUntouched { pools: ec });
    }
    warnings
}

/// The PGs of `now` for which `pick(before, now)` holds, as strings.
fn pgs_where(prev: &Holders, now: &Holders, pick: impl Fn((bool, usize), (bool, usize)) -> bool) -> Vec<String> {
    now.pgs
        .iter()
        .filter(|(pg, &n)| pick(prev.pgs.get(pg).copied().unwrap_or((false, n.1)), n))
        .map(|(pg, _)| pg.to_string())
        .collect()
}

/// Simulates setting `osd`'s recovery weight to each of `weights` in turn.
pub fn plan_ramp(map: &OsdMap, osd: i32, weights: &[u32]) -> Plan {
    let start_weight = map.recovery_weight.as_ref().and_then(|rw| rw.get(osd as usize).copied()).unwrap_or(OSD_IN);
    let warnings = plan_warnings(map, osd, start_weight, weights);
    let mut prev = holders(map, osd);
    let start = PlanStart {
        weight: start_weight,
        holding: prev.pgs.values().filter(|h| h.0).count(),
        undersized: prev.undersized.clone(),
    };
    let mut steps = Vec::new();
    let mut m = map.clone();
    for &w in weights {
        m.set_recovery_weight(osd, w);
        let now = holders(&m, osd);
        steps.push(PlanStep {
            weight: w,
            gained: pgs_where(&prev, &now, |b, n| n.0 && !b.0),
            lost: pgs_where(&prev, &now, |b, n| !n.0 && b.0),
            shrunk: pgs_where(&prev, &now, |b, n| n.1 < b.1),
            undersized: now.undersized.clone(),
            holding: now.pgs.values().filter(|h| h.0).count(),
        });
        prev = now;
    }
    Plan { osd, start_weight, start, steps, warnings }
}
