//! The per-OSD tally `osdmaptool --test-map-pgs` prints after mapping: for every OSD that is
//! in, how many acting sets hold it, how many it heads, how many it is primary of, its CRUSH
//! and reweight weights; then the spread, and how many PGs have each acting-set size.

use std::fmt::Write;

use crate::crush::{BucketData, CrushMap, ITEM_NONE};
use crate::osdmap::{OsdMap, OSD_IN};
use crate::placement::PgMapping;

/// Counts gathered PG by PG, in any order.
#[derive(Debug, Clone, Default)]
pub struct OsdStats {
    count: Vec<u64>,
    first: Vec<u64>,
    primary: Vec<u64>,
    /// PGs per acting-set size.
    sizes: Vec<u64>,
}

impl OsdStats {
    pub fn new(map: &OsdMap) -> OsdStats {
        let n = map.max_osd.max(0) as usize;
        OsdStats { count: vec![0; n], first: vec![0; n], primary: vec![0; n], sizes: Vec::new() }
    }

    /// Counts one PG's acting set and primary.
    pub fn add(&mut self, m: &PgMapping) {
        let size = m.acting.len();
        if self.sizes.len() <= size {
            self.sizes.resize(size + 1, 0);
        }
        self.sizes[size] += 1;
        for &o in &m.acting {
            if let Some(c) = slot(&mut self.count, o) {
                *c += 1;
            }
        }
        if let Some(&head) = m.acting.first() {
            if let Some(c) = slot(&mut self.first, head) {
                *c += 1;
            }
        }
        if let Some(c) = slot(&mut self.primary, m.acting_primary) {
            *c += 1;
        }
    }

    /// The table exactly as osdmaptool prints it, numbers formatted the way C++ streams
    /// format them.
    pub fn osdmaptool_table(&self, map: &OsdMap) -> String {
        let mut s = String::from("#osd\tcount\tfirst\tprimary\tc wt\twt\n");
        let (mut total, mut in_count) = (0u64, 0u64);
        let (mut min_osd, mut max_osd): (Option<usize>, Option<usize>) = (None, None);
        let ins: Vec<usize> = (0..self.count.len()).filter(|&o| is_in(map, o)).collect();
        for &o in &ins {
            let c = self.count[o];
            let crush_weight = item_weight(&map.crush, o as i32) as f64 / OSD_IN as f64;
            let weight = map.osd_weight[o] as f64 / OSD_IN as f64;
            let _ = writeln!(
                s,
                "osd.{o}\t{c}\t{}\t{}\t{}\t{}",
                self.first[o],
                self.primary[o],
                cpp_double(crush_weight),
                cpp_double(weight)
            );
            total += c;
            in_count += 1;
            if c > 0 && min_osd.is_none_or(|m| c < self.count[m]) {
                min_osd = Some(o);
            }
            if c > 0 && max_osd.is_none_or(|m| c > self.count[m]) {
                max_osd = Some(o);
            }
        }
        self.write_spread(&mut s, &ins, total, in_count);
        for (label, o) in [("min", min_osd), ("max", max_osd)] {
            if let Some(o) = o {
                let _ = writeln!(s, " {label} osd.{o} {}", self.count[o]);
            }
        }
        for (size, &n) in self.sizes.iter().enumerate().filter(|(_, &n)| n > 0) {
            let _ = writeln!(s, "size {size}\t{n}");
        }
        s
    }

    /// ` in N` and the average with its standard deviation and the one expected of a
    /// uniform placement, computed as osdmaptool does (integer average).
    fn write_spread(&self, s: &mut String, ins: &[usize], total: u64, in_count: u64) {
        let _ = writeln!(s, " in {in_count}");
        let avg = total.checked_div(in_count).unwrap_or(0);
        let squares: f64 = ins.iter().map(|&o| (avg.abs_diff(self.count[o]) as f64).powi(2)).sum();
        let dev = (squares / in_count as f64).sqrt();
        let n = in_count as f64;
        let edev = (total as f64 / n * (1.0 - 1.0 / n)).sqrt();
        let avg_f = avg as f64;
        let _ = writeln!(
            s,
            " avg {avg} stddev {} ({}x) (expected {} {}x))",
            cpp_double(dev),
            cpp_double(dev / avg_f),
            cpp_double(edev),
            cpp_double(edev / avg_f)
        );
    }
}

fn slot(v: &mut [u64], osd: i32) -> Option<&mut u64> {
    if osd < 0 || osd == ITEM_NONE {
        return None;
    }
    v.get_mut(osd as usize)
}

/// `OSDMap::is_in`: the OSD exists and its reweight is not 0.
fn is_in(map: &OsdMap, osd: usize) -> bool {
    map.exists(osd as i32) && map.osd_weight.get(osd).is_some_and(|&w| w != 0)
}

/// `CrushWrapper::get_item_weight`: the weight of `item` in the first bucket (by index)
/// that holds it, 0 if none does.
fn item_weight(crush: &CrushMap, item: i32) -> u32 {
    for b in crush.buckets.iter().flatten() {
        if b.id == item {
            return b.weight;
        }
        if let Some(j) = b.items.iter().position(|&i| i == item) {
            let w = match &b.data {
                BucketData::Uniform { item_weight } => Some(*item_weight),
                BucketData::List { item_weights, .. }
                | BucketData::Straw { item_weights, .. }
                | BucketData::Straw2 { item_weights, .. } => item_weights.get(j).copied(),
                // Tree buckets keep leaf weights at odd node indices: leaf j is node 2j+1.
                BucketData::Tree { node_weights } => node_weights.get(2 * j + 1).copied(),
            };
            return w.unwrap_or(0);
        }
    }
    0
}

/// A double as `std::ostream << double` writes it by default (`%g`, 6 significant digits;
/// glibc spells an x86 NaN from 0/0 `-nan`).
pub fn cpp_double(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    trim_fraction(&format!("{v:.*}", (5 - exp) as usize)).to_string()
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::cpp_double;

    #[test]
    fn doubles_print_like_cpp_streams() {
        assert_eq!(cpp_double(0.098587), "0.098587");
        assert_eq!(cpp_double(1.0), "1");
        assert_eq!(cpp_double(18.850_331), "18.8503");
        assert_eq!(cpp_double(0.035_366_4), "0.0353664");
        assert_eq!(cpp_double(1_234_567.0), "1.23457e+06");
        assert_eq!(cpp_double(0.000_012_5), "1.25e-05");
        assert_eq!(cpp_double(999_999.5), "1e+06");
        assert_eq!(cpp_double(f64::NAN.copysign(-1.0)), "-nan");
    }
}
