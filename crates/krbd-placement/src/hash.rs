//! The Robert Jenkins 32-bit mixing hash that CRUSH and the PG pipeline use
//! (`CRUSH_HASH_RJENKINS1`, the only hash type Ceph defines), and `crush_ln`.

use crate::ln_table::{LL, RH_LH};

/// The only hash type CRUSH buckets use in practice.
pub const HASH_RJENKINS1: u8 = 0;

const SEED: u32 = 1_315_423_911;

#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    // Three rounds of subtract/xor-shift in the order of Jenkins' 1996 mix.
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 13);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 8);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 13);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 12);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 16);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 5);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 3);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 10);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 15);
}

/// Hash of two values.
#[inline(always)]
pub fn hash32_2(a: u32, b: u32) -> u32 {
    let (mut a, mut b) = (a, b);
    let mut h = SEED ^ a ^ b;
    let (mut x, mut y) = (231_232u32, 1232u32);
    mix(&mut a, &mut b, &mut h);
    mix(&mut x, &mut a, &mut h);
    mix(&mut b, &mut y, &mut h);
    h
}

/// Hash of three values.
#[inline(always)]
pub fn hash32_3(a: u32, b: u32, c: u32) -> u32 {
    let (mut a, mut b, mut c) = (a, b, c);
    let mut h = SEED ^ a ^ b ^ c;
    let (mut x, mut y) = (231_232u32, 1232u32);
    mix(&mut a, &mut b, &mut h);
    mix(&mut c, &mut x, &mut h);
    mix(&mut y, &mut a, &mut h);
    mix(&mut b, &mut x, &mut h);
    mix(&mut y, &mut c, &mut h);
    h
}

/// Hash of four values.
#[inline]
pub fn hash32_4(a: u32, b: u32, c: u32, d: u32) -> u32 {
    let (mut a, mut b, mut c, mut d) = (a, b, c, d);
    let mut h = SEED ^ a ^ b ^ c ^ d;
    let (mut x, mut y) = (231_232u32, 1232u32);
    mix(&mut a, &mut b, &mut h);
    mix(&mut c, &mut d, &mut h);
    mix(&mut a, &mut x, &mut h);
    mix(&mut y, &mut b, &mut h);
    mix(&mut c, &mut x, &mut h);
    mix(&mut y, &mut d, &mut h);
    h
}

/// Bucket hashes dispatch on the bucket's hash type; unknown types hash to 0 as in Ceph.
#[inline]
pub(crate) fn bucket_hash3(kind: u8, a: u32, b: u32, c: u32) -> u32 {
    if kind == HASH_RJENKINS1 {
        hash32_3(a, b, c)
    } else {
        0
    }
}

#[inline]
pub(crate) fn bucket_hash4(kind: u8, a: u32, b: u32, c: u32, d: u32) -> u32 {
    if kind == HASH_RJENKINS1 {
        hash32_4(a, b, c, d)
    } else {
        0
    }
}

/// 2^44 * log2(x + 1) in fixed point, for x in 0..=0xffff (straw2's draw; higher bits of
/// `xin` are ignored).
pub fn crush_ln(xin: u32) -> u64 {
    let mut x = (xin & 0xffff) + 1;
    let mut iexpon: i64 = 15;
    // Normalise so that bit 15 or 16 is the top bit.
    if x & 0x18000 == 0 {
        let bits = (x & 0x1ffff).leading_zeros() as i64 - 16;
        x <<= bits;
        iexpon = 15 - bits;
    }
    let index1 = ((x >> 8) << 1) as usize;
    let rh = RH_LH[index1 - 256];
    let lh = RH_LH[index1 + 1 - 256];
    let xl64 = (x as u64).wrapping_mul(rh) >> 48;
    let mut result = (iexpon as u64) << (12 + 32);
    let index2 = (xl64 & 0xff) as usize;
    let ll = LL[index2];
    let lh = lh.wrapping_add(ll) >> (48 - 12 - 32);
    result = result.wrapping_add(lh);
    result
}

/// A key that orders 16-bit straw2 hashes as `crush_ln` orders them: `crush_ln` is
/// nondecreasing on 0..=0xfffe, but its table puts 0xffff between 0xfffd and 0xfffe. Equal
/// keys mean equal logarithms, so the largest key has the largest logarithm.
#[inline(always)]
pub(crate) fn straw2_rank(u16bits: u32) -> u32 {
    if u16bits == 0xffff {
        2 * 0xfffd + 1
    } else {
        2 * u16bits
    }
}

/// `ceph_stable_mod`: maps x into [0, b) so that growing b splits PGs stably.
#[inline]
pub fn stable_mod(x: u32, b: u32, bmask: u32) -> u32 {
    if (x & bmask) < b {
        x & bmask
    } else {
        x & (bmask >> 1)
    }
}

/// The mask `(1 << bits(n-1)) - 1` that goes with `stable_mod`.
pub fn calc_mask(n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    let bits = 32 - (n - 1).leading_zeros();
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crush_ln_endpoints() {
        // log2(1) is 0; log2(0x10000) is just under 16 in 2^44 fixed point.
        assert_eq!(crush_ln(0), 0);
        assert_eq!(crush_ln(0xffff), 0xffff_f000_0000);
        // The tables carry small irregularities, but every value stays close to log2.
        for x in 0..0x10000u32 {
            let exact = ((x + 1) as f64).log2() * (1u64 << 44) as f64;
            let got = crush_ln(x) as f64;
            assert!((got - exact).abs() < (1u64 << 44) as f64 * 0.001, "crush_ln({x}) = {got}, log2 says {exact}");
        }
    }

    #[test]
    fn reciprocal_division_is_exact_for_every_straw2_draw() {
        use crate::crush::Recip;
        // Every possible dividend (one per 16-bit hash value) against a spread of weights,
        // including the extremes.
        let mut weights = vec![
            1u32,
            2,
            3,
            0x7fff,
            0x8000,
            0x8001,
            0xffff,
            0x10000,
            0x10001,
            0x3_0000,
            0x123_4567,
            u32::MAX - 1,
            u32::MAX,
        ];
        let mut x = 12345u32;
        for _ in 0..40 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            weights.push(x);
            weights.push(x >> 12);
        }
        for &w in &weights {
            let r = Recip::new(w);
            for u in 0..0x10000u32 {
                let ln = crush_ln(u) as i64 - 0x1_0000_0000_0000i64;
                assert_eq!(-(r.div(ln.unsigned_abs()) as i64), ln / w as i64, "u {u} w {w}");
            }
            assert_eq!(r.div((1u64 << 49) - 1), ((1u64 << 49) - 1) / w as u64);
        }
    }

    #[test]
    fn straw2_rank_orders_like_crush_ln() {
        for a in 0..0x10000u32 {
            for b in [0u32, 1, 0x7fff, 0xfffc, 0xfffd, 0xfffe, 0xffff, a.saturating_sub(1), (a + 1) & 0xffff] {
                let (ra, rb) = (straw2_rank(a), straw2_rank(b));
                let (la, lb) = (crush_ln(a), crush_ln(b));
                // A larger rank never has a smaller logarithm, and a larger logarithm always
                // has a larger rank.
                assert!(ra <= rb || la >= lb, "{a:#x} {b:#x}");
                assert!(la <= lb || ra > rb, "{a:#x} {b:#x}");
            }
        }
    }

    #[test]
    fn masks() {
        assert_eq!(calc_mask(1), 0);
        assert_eq!(calc_mask(8), 7);
        assert_eq!(calc_mask(24), 31);
        assert_eq!(stable_mod(29, 24, 31), 13);
    }
}
