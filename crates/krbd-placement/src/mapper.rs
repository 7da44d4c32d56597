//! The CRUSH mapping algorithm (`crush_do_rule` and the bucket choosers), bit-exact with
//! Ceph's `src/crush/mapper.c` as of Pacific. Malformed maps never panic here: where the C
//! code would read out of bounds, this code treats the item as unusable instead.

// The loops keep the shape of the reference algorithm (index loops, separate retry branches
// that happen to do the same thing, and functions as long as their C counterparts
// `crush_do_rule`, `crush_choose_firstn` and `crush_choose_indep`) so that they can be
// checked against it line by line.
#![allow(clippy::needless_range_loop, clippy::if_same_then_else, clippy::manual_is_multiple_of, clippy::too_many_lines)]

use crate::crush::{op, Bucket, BucketData, ChooseArg, CrushMap, ITEM_NONE, ITEM_UNDEF};
use crate::hash::{bucket_hash3, bucket_hash4, crush_ln, hash32_2, straw2_rank};

/// Scratch state reused across mappings: per-bucket permutations for uniform buckets
/// (and the fallback permutation search) plus the three result vectors.
#[derive(Default)]
pub struct Workspace {
    generation: u32,
    perms: Vec<PermState>,
    a: Vec<i32>,
    b: Vec<i32>,
    c: Vec<i32>,
}

#[derive(Default, Clone)]
struct PermState {
    generation: u32,
    perm_x: u32,
    perm_n: u32,
    perm: Vec<u32>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a fresh mapping: every bucket's permutation state reads as new.
    fn begin(&mut self, nbuckets: usize) {
        if self.perms.len() < nbuckets {
            self.perms.resize(nbuckets, PermState::default());
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            for p in &mut self.perms {
                p.generation = 0;
            }
            self.generation = 1;
        }
    }
}

struct Ctx<'a> {
    map: &'a CrushMap,
    weight: &'a [u32],
    choose_args: Option<&'a [ChooseArg]>,
    generation: u32,
    perms: &'a mut Vec<PermState>,
}

impl CrushMap {
    /// `crush_do_rule`: maps input `x` through rule `ruleno`, at most `result_max` items.
    pub fn do_rule(
        &self,
        ruleno: usize,
        x: i32,
        result_max: usize,
        weight: &[u32],
        choose_args: Option<&[ChooseArg]>,
        ws: &mut Workspace,
    ) -> Vec<i32> {
        let mut result = Vec::with_capacity(result_max);
        let Some(Some(rule)) = self.rules.get(ruleno) else { return result };
        ws.begin(self.buckets.len());
        let mut w = std::mem::take(&mut ws.a);
        let mut o = std::mem::take(&mut ws.b);
        let mut c = std::mem::take(&mut ws.c);
        for v in [&mut w, &mut o, &mut c] {
            v.clear();
            v.resize(result_max, 0);
        }
        let mut ctx = Ctx { map: self, weight, choose_args, generation: ws.generation, perms: &mut ws.perms };

        let t = &self.tunables;
        // The stored total is a count of retries; the algorithm wants tries.
        let mut choose_tries = (t.choose_total_tries as i32).wrapping_add(1);
        let mut choose_leaf_tries = 0i32;
        let mut local_retries = t.choose_local_tries as i32;
        let mut local_fallback_retries = t.choose_local_fallback_tries as i32;
        let mut vary_r = t.chooseleaf_vary_r as i32;
        let mut stable = t.chooseleaf_stable as i32;
        let max_buckets = self.buckets.len() as i64;
        let mut wsize = 0usize;

        for step in &rule.steps {
            let mut firstn = false;
            match step.op {
                op::TAKE => {
                    let a = step.arg1;
                    let valid = (a >= 0 && a < self.max_devices) || self.bucket(a).is_some();
                    if valid && result_max > 0 {
                        w[0] = a;
                        wsize = 1;
                    }
                }
                op::SET_CHOOSE_TRIES if step.arg1 > 0 => {
                    choose_tries = step.arg1;
                }
                op::SET_CHOOSELEAF_TRIES if step.arg1 > 0 => {
                    choose_leaf_tries = step.arg1;
                }
                op::SET_CHOOSE_LOCAL_TRIES if step.arg1 >= 0 => {
                    local_retries = step.arg1;
                }
                op::SET_CHOOSE_LOCAL_FALLBACK_TRIES if step.arg1 >= 0 => {
                    local_fallback_retries = step.arg1;
                }
                op::SET_CHOOSELEAF_VARY_R if step.arg1 >= 0 => {
                    vary_r = step.arg1;
                }
                op::SET_CHOOSELEAF_STABLE if step.arg1 >= 0 => {
                    stable = step.arg1;
                }
                op::CHOOSE_FIRSTN | op::CHOOSELEAF_FIRSTN | op::CHOOSE_INDEP | op::CHOOSELEAF_INDEP => {
                    if step.op == op::CHOOSE_FIRSTN || step.op == op::CHOOSELEAF_FIRSTN {
                        firstn = true;
                    }
                    if wsize == 0 {
                        continue;
                    }
                    let recurse_to_leaf = step.op == op::CHOOSELEAF_FIRSTN || step.op == op::CHOOSELEAF_INDEP;
                    let mut osize = 0usize;
                    for i in 0..wsize {
                        let mut numrep = step.arg1;
                        if numrep <= 0 {
                            numrep += result_max as i32;
                            if numrep <= 0 {
                                continue;
                            }
                        }
                        let bno = -1i64 - w[i] as i64;
                        if bno < 0 || bno >= max_buckets {
                            continue;
                        }
                        let Some(bucket) = self.buckets[bno as usize].as_ref() else { continue };
                        if firstn {
                            let recurse_tries = if choose_leaf_tries != 0 {
                                choose_leaf_tries
                            } else if t.chooseleaf_descend_once != 0 {
                                1
                            } else {
                                choose_tries
                            };
                            let (o_rest, c_rest) = (&mut o[osize..], &mut c[osize..]);
                            let out_size = result_max - osize;
                            osize += ctx.choose_firstn(
                                bucket,
                                x,
                                numrep,
                                step.arg2,
                                o_rest,
                                0,
                                out_size as i32,
                                choose_tries as u32,
                                recurse_tries as u32,
                                local_retries as u32,
                                local_fallback_retries as u32,
                                recurse_to_leaf,
                                vary_r as u32,
                                stable as u32,
                                Some(c_rest),
                                0,
                            ) as usize;
                        } else {
                            let out_size = (numrep as usize).min(result_max - osize);
                            let (o_rest, c_rest) = (&mut o[osize..], &mut c[osize..]);
                            ctx.choose_indep(
                                bucket,
                                x,
                                out_size as i32,
                                numrep,
                                step.arg2,
                                o_rest,
                                0,
                                choose_tries as u32,
                                if choose_leaf_tries != 0 { choose_leaf_tries as u32 } else { 1 },
                                recurse_to_leaf,
                                Some(c_rest),
                                0,
                            );
                            osize += out_size;
                        }
                    }
                    if recurse_to_leaf {
                        o[..osize].copy_from_slice(&c[..osize]);
                    }
                    std::mem::swap(&mut w, &mut o);
                    wsize = osize;
                }
                op::EMIT => {
                    for &item in &w[..wsize] {
                        if result.len() >= result_max {
                            break;
                        }
                        result.push(item);
                    }
                    wsize = 0;
                }
                _ => {}
            }
        }
        ws.a = w;
        ws.b = o;
        ws.c = c;
        result
    }
}

impl<'a> Ctx<'a> {
    fn bucket_of(&self, item: i32) -> Option<&'a Bucket> {
        self.map.bucket(item)
    }

    fn is_out(&self, item: i32, x: i32) -> bool {
        if item < 0 || item as usize >= self.weight.len() {
            return true;
        }
        let w = self.weight[item as usize];
        if w >= 0x10000 {
            return false;
        }
        if w == 0 {
            return true;
        }
        (hash32_2(x as u32, item as u32) & 0xffff) >= w
    }

    fn perm_choose(&mut self, b: &Bucket, x: i32, r: i32) -> i32 {
        let size = b.items.len() as u32;
        let Some(idx) = usize::try_from(-1i64 - b.id as i64).ok() else { return b.items[0] };
        if idx >= self.perms.len() {
            self.perms.resize(idx + 1, PermState::default());
        }
        let generation = self.generation;
        let st = &mut self.perms[idx];
        if st.generation != generation {
            st.generation = generation;
            st.perm_x = 0;
            st.perm_n = 0;
        }
        if st.perm.len() < size as usize {
            st.perm.resize(size as usize, 0);
        }
        let pr = (r as u32) % size;
        let s;
        if st.perm_x != x as u32 || st.perm_n == 0 {
            st.perm_x = x as u32;
            if pr == 0 {
                s = bucket_hash3(b.hash, x as u32, b.id as u32, 0) % size;
                st.perm[0] = s;
                st.perm_n = 0xffff;
                return b.items[s as usize];
            }
            for i in 0..size {
                st.perm[i as usize] = i;
            }
            st.perm_n = 0;
        } else if st.perm_n == 0xffff {
            for i in 1..size {
                st.perm[i as usize] = i;
            }
            let p0 = st.perm[0] as usize;
            st.perm[p0] = 0;
            st.perm_n = 1;
        }
        while st.perm_n <= pr {
            let p = st.perm_n;
            if p < size - 1 {
                let i = bucket_hash3(b.hash, x as u32, b.id as u32, p) % (size - p);
                if i != 0 {
                    st.perm.swap((p + i) as usize, p as usize);
                }
            }
            st.perm_n += 1;
        }
        s = st.perm[pr as usize];
        b.items[s as usize]
    }

    fn bucket_choose(&mut self, b: &'a Bucket, x: i32, r: i32, position: i32) -> i32 {
        let size = b.items.len();
        let (xu, ru, idu) = (x as u32, r as u32, b.id as u32);
        match &b.data {
            BucketData::Uniform { .. } => self.perm_choose(b, x, r),
            BucketData::List { item_weights, sum_weights } => {
                for i in (0..size).rev() {
                    let mut w = (bucket_hash4(b.hash, xu, b.items[i] as u32, ru, idu) & 0xffff) as u64;
                    w = (w * sum_weights[i] as u64) >> 16;
                    if w < item_weights[i] as u64 {
                        return b.items[i];
                    }
                }
                b.items[0]
            }
            BucketData::Tree { node_weights } => {
                let nw = |n: i32| node_weights.get(n as usize).copied().unwrap_or(0);
                let mut n = (node_weights.len() >> 1) as i32;
                if n == 0 {
                    return b.items[0];
                }
                while n & 1 == 0 {
                    let w = nw(n);
                    let t = ((bucket_hash4(b.hash, xu, n as u32, ru, idu) as u64) * (w as u64)) >> 32;
                    let h = n.trailing_zeros() as i32;
                    let l = n - (1 << (h - 1));
                    if t < nw(l) as u64 {
                        n = l;
                    } else {
                        n += 1 << (h - 1);
                    }
                }
                b.items.get((n >> 1) as usize).copied().unwrap_or(b.items[0])
            }
            BucketData::Straw { straws, .. } => {
                let mut high = 0usize;
                let mut high_draw = 0u64;
                for i in 0..size {
                    let mut draw = (bucket_hash3(b.hash, xu, b.items[i] as u32, ru) & 0xffff) as u64;
                    draw *= straws[i] as u64;
                    if i == 0 || draw > high_draw {
                        high = i;
                        high_draw = draw;
                    }
                }
                b.items[high]
            }
            BucketData::Straw2 { item_weights, recips } => {
                let arg = self.choose_args.and_then(|a| a.get((-1i64 - b.id as i64) as usize));
                let (weights, recips): (&[u32], &[crate::crush::Recip]) = match arg {
                    Some(a) if !a.weight_set.is_empty() => {
                        let pos = (position.max(0) as usize).min(a.weight_set.len() - 1);
                        (&a.weight_set[pos], a.weight_set_recips.get(pos).map(|v| v.as_slice()).unwrap_or(&[]))
                    }
                    _ => (item_weights, recips),
                };
                let ids: &[i32] = match arg {
                    Some(a) if !a.ids.is_empty() => &a.ids,
                    _ => &b.items,
                };
                if b.hash == crate::hash::HASH_RJENKINS1 {
                    if let Some(item) = straw2_equal_weights(b, ids, weights, xu, ru) {
                        return item;
                    }
                }
                straw2_general(b, ids, weights, recips, xu, ru)
            }
        }
    }

    /// Type of an item: 0 for devices; `None` for a bucket id that does not exist.
    fn item_type(&self, item: i32) -> Option<i32> {
        if item >= 0 {
            Some(0)
        } else {
            self.bucket_of(item).map(|b| b.type_id as i32)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn choose_firstn(
        &mut self,
        bucket: &'a Bucket,
        x: i32,
        numrep: i32,
        type_: i32,
        out: &mut [i32],
        mut outpos: i32,
        out_size: i32,
        tries: u32,
        recurse_tries: u32,
        local_retries: u32,
        local_fallback_retries: u32,
        recurse_to_leaf: bool,
        vary_r: u32,
        stable: u32,
        mut out2: Option<&mut [i32]>,
        parent_r: i32,
    ) -> i32 {
        let mut count = out_size;
        let mut item = 0i32;
        let mut rep = if stable != 0 { 0 } else { outpos };
        while rep < numrep && count > 0 {
            let mut ftotal: u32 = 0;
            let mut skip_rep = false;
            loop {
                // descent
                let mut retry_descent = false;
                let mut in_b = bucket;
                let mut flocal: u32 = 0;
                // A valid map's hierarchy is acyclic, so a descent visits each bucket at most
                // once; a corrupt map with a cycle must not hang the mapper.
                let mut depth = 0usize;
                loop {
                    let mut collide = false;
                    let mut retry_bucket = false;
                    let r = rep.wrapping_add(parent_r).wrapping_add(ftotal as i32);
                    let mut reject;
                    let in_size = in_b.items.len() as u32;
                    if in_size == 0 {
                        reject = true;
                    } else {
                        if local_fallback_retries > 0 && flocal >= (in_size >> 1) && flocal > local_fallback_retries {
                            item = self.perm_choose(in_b, x, r);
                        } else {
                            item = self.bucket_choose(in_b, x, r, outpos);
                        }
                        if item >= self.map.max_devices {
                            skip_rep = true;
                            break;
                        }
                        let Some(itemtype) = self.item_type(item) else {
                            skip_rep = true;
                            break;
                        };
                        if itemtype != type_ {
                            if item >= 0 {
                                skip_rep = true;
                                break;
                            }
                            depth += 1;
                            match self.bucket_of(item) {
                                Some(nb) if depth <= self.map.buckets.len() => {
                                    in_b = nb;
                                    continue;
                                }
                                _ => {
                                    skip_rep = true;
                                    break;
                                }
                            }
                        }
                        for &o in &out[..outpos as usize] {
                            if o == item {
                                collide = true;
                                break;
                            }
                        }
                        reject = false;
                        if !collide && recurse_to_leaf {
                            if item < 0 {
                                // Shift counts are masked to 5 bits, as the x86 instruction the C code compiles to does.
                                let sub_r = if vary_r != 0 { r.wrapping_shr(vary_r - 1) } else { 0 };
                                let sub = self.bucket_of(item);
                                let got = match (sub, out2.as_deref_mut()) {
                                    (Some(sb), Some(o2)) => self.choose_firstn(
                                        sb,
                                        x,
                                        if stable != 0 { 1 } else { outpos + 1 },
                                        0,
                                        o2,
                                        outpos,
                                        count,
                                        recurse_tries,
                                        0,
                                        local_retries,
                                        local_fallback_retries,
                                        false,
                                        vary_r,
                                        stable,
                                        None,
                                        sub_r,
                                    ),
                                    _ => outpos,
                                };
                                if got <= outpos {
                                    reject = true;
                                }
                            } else if let Some(o2) = out2.as_deref_mut() {
                                o2[outpos as usize] = item;
                            }
                        }
                        if !reject && !collide && itemtype == 0 {
                            reject = self.is_out(item, x);
                        }
                    }
                    if reject || collide {
                        ftotal += 1;
                        flocal += 1;
                        if collide && flocal <= local_retries {
                            retry_bucket = true;
                        } else if local_fallback_retries > 0 && flocal <= in_size.saturating_add(local_fallback_retries)
                        {
                            retry_bucket = true;
                        } else if ftotal < tries {
                            retry_descent = true;
                        } else {
                            skip_rep = true;
                        }
                    }
                    if !retry_bucket {
                        break;
                    }
                }
                if !retry_descent || skip_rep {
                    break;
                }
            }
            if !skip_rep {
                out[outpos as usize] = item;
                outpos += 1;
                count -= 1;
            }
            rep += 1;
        }
        outpos
    }

    #[allow(clippy::too_many_arguments)]
    fn choose_indep(
        &mut self,
        bucket: &'a Bucket,
        x: i32,
        left_in: i32,
        numrep: i32,
        type_: i32,
        out: &mut [i32],
        outpos: i32,
        tries: u32,
        recurse_tries: u32,
        recurse_to_leaf: bool,
        mut out2: Option<&mut [i32]>,
        parent_r: i32,
    ) {
        let mut left = left_in;
        let endpos = outpos + left;
        let (op_, ep) = (outpos as usize, endpos as usize);
        for rep in op_..ep {
            out[rep] = ITEM_UNDEF;
            if let Some(o2) = out2.as_deref_mut() {
                o2[rep] = ITEM_UNDEF;
            }
        }
        let mut ftotal: u32 = 0;
        while left > 0 && ftotal < tries {
            for rep in op_..ep {
                if out[rep] != ITEM_UNDEF {
                    continue;
                }
                let mut in_b = bucket;
                let mut depth = 0usize;
                loop {
                    let mut r = (rep as i32).wrapping_add(parent_r);
                    let in_size = in_b.items.len() as i32;
                    if in_b.alg == crate::crush::BucketAlg::Uniform && in_size != 0 && in_size % numrep == 0 {
                        r = r.wrapping_add((numrep + 1).wrapping_mul(ftotal as i32));
                    } else {
                        r = r.wrapping_add(numrep.wrapping_mul(ftotal as i32));
                    }
                    if in_size == 0 {
                        break;
                    }
                    let item = self.bucket_choose(in_b, x, r, outpos);
                    let set_none = |out: &mut [i32], out2: &mut Option<&mut [i32]>| {
                        out[rep] = ITEM_NONE;
                        if let Some(o2) = out2.as_deref_mut() {
                            o2[rep] = ITEM_NONE;
                        }
                    };
                    if item >= self.map.max_devices {
                        set_none(out, &mut out2);
                        left -= 1;
                        break;
                    }
                    let Some(itemtype) = self.item_type(item) else {
                        set_none(out, &mut out2);
                        left -= 1;
                        break;
                    };
                    if itemtype != type_ {
                        if item >= 0 {
                            set_none(out, &mut out2);
                            left -= 1;
                            break;
                        }
                        depth += 1;
                        match self.bucket_of(item) {
                            Some(nb) if depth <= self.map.buckets.len() => {
                                in_b = nb;
                                continue;
                            }
                            _ => {
                                set_none(out, &mut out2);
                                left -= 1;
                                break;
                            }
                        }
                    }
                    if out[op_..ep].contains(&item) {
                        break;
                    }
                    if recurse_to_leaf {
                        if item < 0 {
                            if let (Some(sb), Some(o2)) = (self.bucket_of(item), out2.as_deref_mut()) {
                                self.choose_indep(
                                    sb,
                                    x,
                                    1,
                                    numrep,
                                    0,
                                    o2,
                                    rep as i32,
                                    recurse_tries,
                                    0,
                                    false,
                                    None,
                                    r,
                                );
                                if o2[rep] == ITEM_NONE {
                                    break;
                                }
                            }
                        } else if let Some(o2) = out2.as_deref_mut() {
                            o2[rep] = item;
                        }
                    }
                    if itemtype == 0 && self.is_out(item, x) {
                        break;
                    }
                    out[rep] = item;
                    left -= 1;
                    break;
                }
            }
            ftotal += 1;
        }
        for rep in op_..ep {
            if out[rep] == ITEM_UNDEF {
                out[rep] = ITEM_NONE;
            }
            if let Some(o2) = out2.as_deref_mut() {
                if o2[rep] == ITEM_UNDEF {
                    o2[rep] = ITEM_NONE;
                }
            }
        }
    }
}

/// straw2 as Ceph computes it: every item draws `ln / weight` and the first largest draw wins.
fn straw2_general(b: &Bucket, ids: &[i32], weights: &[u32], recips: &[crate::crush::Recip], xu: u32, ru: u32) -> i32 {
    let size = b.items.len();
    let rjenkins = b.hash == crate::hash::HASH_RJENKINS1;
    let mut high = 0usize;
    let mut high_draw = 0i64;
    // Hash a block of items first: the hash is branch-free integer arithmetic that
    // the compiler vectorises, and it dominates the cost of a straw2 draw.
    const BLOCK: usize = 16;
    let mut u = [0u32; BLOCK];
    let mut base = 0;
    while base < size {
        let len = BLOCK.min(size - base);
        if rjenkins && ids.len() >= base + len {
            let idb = &ids[base..base + len];
            for (slot, &id) in u[..len].iter_mut().zip(idb) {
                *slot = crate::hash::hash32_3(xu, id as u32, ru);
            }
        } else {
            for (j, slot) in u[..len].iter_mut().enumerate() {
                let id = ids.get(base + j).copied().unwrap_or(b.items[base + j]);
                *slot = bucket_hash3(b.hash, xu, id as u32, ru);
            }
        }
        for j in 0..len {
            let i = base + j;
            let w = weights.get(i).copied().unwrap_or(0);
            let draw = if w != 0 {
                // ln <= 0 and |ln| <= 2^48: C's truncating division equals the
                // negated quotient of the magnitudes.
                let ln = crush_ln(u[j] & 0xffff) as i64 - 0x1_0000_0000_0000i64;
                match recips.get(i) {
                    Some(r) if r.d == w => -(r.div(ln.unsigned_abs()) as i64),
                    _ => ln / w as i64,
                }
            } else {
                i64::MIN
            };
            if i == 0 || draw > high_draw {
                high = i;
                high_draw = draw;
            }
        }
        base += len;
    }
    b.items[high]
}

/// The largest bucket the equal-weight straw2 shortcut handles (its hashes live on the stack).
const STRAW2_SHORTCUT_MAX: usize = 64;

/// straw2 for a bucket whose items all have the same nonzero weight `w`, the usual host and
/// rack bucket. Each item's draw is `-(|ln| / w)` and the first item with the largest draw
/// wins. The smallest `|ln|` belongs to the largest hash (ordered by `straw2_rank`), so one
/// division finds the winning quotient, and the winner is the first item whose `|ln|` is
/// below the next multiple of `w`: only the items up to the winner need a logarithm, and
/// none a division. Returns `None` (use the general loop) when the weights differ, an id
/// is missing, or the bucket is larger than the stack buffer.
#[inline]
fn straw2_equal_weights(b: &Bucket, ids: &[i32], weights: &[u32], xu: u32, ru: u32) -> Option<i32> {
    let size = b.items.len();
    if size == 0 || size > STRAW2_SHORTCUT_MAX || ids.len() < size || weights.len() < size {
        return None;
    }
    let w = weights[0];
    if w == 0 || weights[..size].iter().any(|&x| x != w) {
        return None;
    }
    let mut u = [0u32; STRAW2_SHORTCUT_MAX];
    let best = hash_draws(&mut u[..size], &ids[..size], xu, ru);
    let best_u = if best & 1 == 1 { 0xffff } else { best / 2 };
    const ONE: u64 = 0x1_0000_0000_0000;
    let w = w as u64;
    // |ln| <= 2^48 and w < 2^32: no overflow.
    let limit = ((ONE - crush_ln(best_u)) / w + 1) * w;
    u[..size].iter().position(|&h| ONE - crush_ln(h) < limit).map(|i| b.items[i])
}

/// Fills `out` with the 16-bit straw2 hashes of `ids` and returns their largest
/// `straw2_rank`. The hash is most of a draw's cost and is plain 32-bit lane arithmetic, so
/// this runs as AVX2 vector code (8 lanes) where the CPU has it, and as the baseline's SSE2
/// code (4 lanes) elsewhere.
#[inline]
fn hash_draws(out: &mut [u32], ids: &[i32], xu: u32, ru: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { hash_draws_avx2(out, ids, xu, ru) };
        }
    }
    hash_draws_portable(out, ids, xu, ru)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn hash_draws_avx2(out: &mut [u32], ids: &[i32], xu: u32, ru: u32) -> u32 {
    hash_draws_portable(out, ids, xu, ru)
}

#[inline(always)]
fn hash_draws_portable(out: &mut [u32], ids: &[i32], xu: u32, ru: u32) -> u32 {
    for (slot, &id) in out.iter_mut().zip(ids) {
        *slot = crate::hash::hash32_3(xu, id as u32, ru) & 0xffff;
    }
    out.iter().map(|&h| straw2_rank(h)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crush::{BucketAlg, Recip};

    fn straw2_bucket(items: Vec<i32>, weight: u32) -> (Bucket, Vec<u32>, Vec<Recip>) {
        let weights = vec![weight; items.len()];
        let recips = weights.iter().map(|&w| Recip::new(w)).collect();
        let bucket = Bucket {
            id: -7,
            type_id: 1,
            alg: BucketAlg::Straw2,
            hash: crate::hash::HASH_RJENKINS1,
            weight: weight.wrapping_mul(items.len() as u32),
            items,
            data: BucketData::Straw2 { item_weights: weights.clone(), recips: Vec::new() },
        };
        (bucket, weights, recips)
    }

    /// The equal-weight shortcut must pick exactly what Ceph's loop picks, including the ties
    /// that truncating division creates and the hash value 0xffff whose logarithm is out of
    /// order. Checked on every size the shortcut takes and on weights from tiny to huge
    /// (large weights make many quotients tie).
    #[test]
    fn equal_weight_shortcut_equals_the_general_loop() {
        let mut checked = 0u64;
        let mut seen_ffff = false;
        for size in 1..=STRAW2_SHORTCUT_MAX {
            let items: Vec<i32> = (0..size as i32).map(|i| i * 3 + 11 + 1000 * size as i32).collect();
            for &w in &[1u32, 0x100, 0x1_0000, 0x3_0000, 0x123_4567, 0x7fff_ffff, u32::MAX] {
                let (b, weights, recips) = straw2_bucket(items.clone(), w);
                for x in 0..300u32 {
                    let (xu, ru) = (x.wrapping_mul(2_654_435_761), x % 7);
                    let fast = straw2_equal_weights(&b, &b.items, &weights, xu, ru).expect("shortcut applies");
                    let slow = straw2_general(&b, &b.items, &weights, &recips, xu, ru);
                    assert_eq!(fast, slow, "size {size} weight {w:#x} x {xu} r {ru}");
                    seen_ffff |= b.items.iter().any(|&id| crate::hash::hash32_3(xu, id as u32, ru) & 0xffff == 0xffff);
                    checked += 1;
                }
            }
        }
        assert!(seen_ffff, "no draw hit the out-of-order hash 0xffff; widen the inputs");
        assert!(checked > 100_000);
    }

    #[test]
    fn shortcut_declines_unequal_or_zero_weights() {
        let (b, mut weights, _) = straw2_bucket(vec![1, 2, 3], 0x1_0000);
        weights[1] = 0x2_0000;
        assert_eq!(straw2_equal_weights(&b, &b.items, &weights, 5, 0), None);
        let zero = vec![0u32; 3];
        assert_eq!(straw2_equal_weights(&b, &b.items, &zero, 5, 0), None);
    }
}
