//! Re-encoding wrapped OSDMaps: a decoded map's placement fields (pools, OSD state and
//! weights, the fork's recovery weights, pg_temp, primary_temp, primary affinity, upmaps)
//! are written back into the original bytes; every other byte is copied unchanged, lengths
//! are fixed up and the wrapper CRC is recomputed the way Ceph does.
//!
//! Uses: fork-format maps (stock map + recovery weights, wrapper compat 8) for the kernel
//! selftest, and stock maps with chosen temps/upmaps/affinities as oracle inputs for
//! `osdmaptool`.

use std::collections::BTreeMap;

use crate::osdmap::{Encoding, Layout, OsdMap, PgId, FORK_WRAPPER_COMPAT};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "only wrapped maps (Ceph 0.80 and newer) can be re-encoded; this one uses the classic v{version} encoding"
    )]
    ClassicEncoding { version: u16 },
    #[error("the map was not decoded from bytes (no layout); decode the original file first")]
    NoLayout,
    #[error("the original bytes do not match the decoded layout (expected at least {needed} bytes, got {got}); pass the same file that was decoded")]
    WrongOriginal { needed: usize, got: usize },
    #[error("{field} has {len} entries but max_osd is {max_osd}; the encoding needs exactly max_osd")]
    WrongLength { field: &'static str, len: usize, max_osd: i32 },
    #[error("pool {pool} has no encoded template to copy (the map has no pools to model it on)")]
    NoPoolTemplate { pool: i64 },
    #[error("the client section (v{version}) cannot hold {field}; use a map from a newer Ceph")]
    FieldUnsupported { version: u8, field: &'static str },
}

/// Which wrapper marker to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Stock Ceph: compat 7, no recovery_weight array.
    Stock,
    /// The fork: compat 8 and a recovery_weight array after osd_weight (all 1.0 if the
    /// map has none).
    Fork,
}

pub use crate::crc::ceph_crc32c;

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_pg(v: &mut Vec<u8>, pg: PgId) {
    v.push(1);
    v.extend_from_slice(&(pg.pool as u64).to_le_bytes());
    put_u32(v, pg.seed);
    v.extend_from_slice(&(-1i32).to_le_bytes());
}

fn put_vec_u32(v: &mut Vec<u8>, xs: &[u32]) {
    put_u32(v, xs.len() as u32);
    for &x in xs {
        put_u32(v, x);
    }
}

fn put_vec_i32(v: &mut Vec<u8>, xs: &[i32]) {
    put_u32(v, xs.len() as u32);
    for &x in xs {
        v.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_pg_map<T>(v: &mut Vec<u8>, m: &BTreeMap<PgId, T>, mut f: impl FnMut(&mut Vec<u8>, &T)) {
    put_u32(v, m.len() as u32);
    for (pg, val) in m {
        put_pg(v, *pg);
        f(v, val);
    }
}

impl OsdMap {
    /// Encodes this map into the layout of `original` (the bytes it was decoded from).
    pub fn encode_wrapped(&self, original: &[u8], flavor: Flavor) -> Result<Vec<u8>, EncodeError> {
        let (wrapper_version, client_version, lay) = self.check_encodable(original)?;
        let body = self.encode_client_body(original, lay, client_version, flavor)?;
        Ok(encode_wrapper(original, lay, wrapper_version, flavor, &body))
    }

    /// The encoding, layout and array lengths the encoder relies on, checked up front.
    fn check_encodable(&self, original: &[u8]) -> Result<(u8, u8, &Layout), EncodeError> {
        let (wrapper_version, client_version) = match self.encoding {
            Encoding::Classic { version } => return Err(EncodeError::ClassicEncoding { version }),
            Encoding::Wrapped { wrapper_version, client_version, .. } => (wrapper_version, client_version),
        };
        let lay = self.layout.as_ref().ok_or(EncodeError::NoLayout)?;
        if original.len() < lay.wrapper_end {
            return Err(EncodeError::WrongOriginal { needed: lay.wrapper_end, got: original.len() });
        }
        let n = self.max_osd.max(0) as usize;
        for (field, len) in [("osd_state", self.osd_state.len()), ("osd_weight", self.osd_weight.len())] {
            if len != n {
                return Err(EncodeError::WrongLength { field, len, max_osd: self.max_osd });
            }
        }
        if let Some(pa) = &self.primary_affinity {
            if pa.len() != n {
                return Err(EncodeError::WrongLength {
                    field: "primary_affinity",
                    len: pa.len(),
                    max_osd: self.max_osd,
                });
            }
            if client_version < 2 {
                return Err(EncodeError::FieldUnsupported { version: client_version, field: "primary_affinity" });
            }
        }
        if client_version < 4 && (!self.pg_upmap.is_empty() || !self.pg_upmap_items.is_empty()) {
            return Err(EncodeError::FieldUnsupported { version: client_version, field: "pg_upmap" });
        }
        Ok((wrapper_version, client_version, lay))
    }

    /// The client section's body: the placement fields written from this map, the bytes
    /// between them copied from `original`.
    fn encode_client_body(
        &self,
        original: &[u8],
        lay: &Layout,
        client_version: u8,
        flavor: Flavor,
    ) -> Result<Vec<u8>, EncodeError> {
        let n = self.max_osd.max(0) as usize;
        let mut body = Vec::with_capacity(lay.client_end - lay.client_body_start + 64 + 4 * n);
        let copy = |body: &mut Vec<u8>, a: usize, b: usize| body.extend_from_slice(&original[a..b]);
        copy(&mut body, lay.client_body_start, lay.pools.0);
        self.encode_pools(&mut body, original, lay)?;
        copy(&mut body, lay.pools.1, lay.osd_state.0);
        self.encode_osd_arrays(&mut body, client_version, flavor)?;
        copy(&mut body, lay.recovery_weight.1, lay.pg_temp.0);
        put_pg_map(&mut body, &self.pg_temp, |v, osds| put_vec_i32(v, osds));
        put_pg_map(&mut body, &self.primary_temp, |v, p| v.extend_from_slice(&p.to_le_bytes()));
        if client_version >= 2 {
            put_vec_u32(&mut body, self.primary_affinity.as_deref().unwrap_or(&[]));
        }
        copy(&mut body, lay.primary_affinity.1, lay.pg_upmap.0);
        if client_version >= 4 {
            put_pg_map(&mut body, &self.pg_upmap, |v, osds| put_vec_i32(v, osds));
            put_pg_map(&mut body, &self.pg_upmap_items, |v, pairs| {
                put_u32(v, pairs.len() as u32);
                for &(a, b) in pairs {
                    v.extend_from_slice(&a.to_le_bytes());
                    v.extend_from_slice(&b.to_le_bytes());
                }
            });
        }
        copy(&mut body, lay.pg_upmap_items.1, lay.client_end);
        Ok(body)
    }

    /// Every pool re-encoded from its own blob (or the first pool's, for new ones), with the
    /// placement fields patched at their fixed offsets inside pg_pool_t.
    fn encode_pools(&self, body: &mut Vec<u8>, original: &[u8], lay: &Layout) -> Result<(), EncodeError> {
        let template = lay.pool_blobs.values().next().copied();
        put_u32(body, self.pools.len() as u32);
        for (&id, pool) in &self.pools {
            let (a, b) =
                lay.pool_blobs.get(&id).copied().or(template).ok_or(EncodeError::NoPoolTemplate { pool: id })?;
            body.extend_from_slice(&id.to_le_bytes());
            let mut blob = original[a..b].to_vec();
            // v, compat, u32 len, then type, size, crush_rule, object_hash, pg_num, pgp_num.
            if blob.len() >= 18 && blob[0] >= 5 {
                blob[6] = pool.pool_type;
                blob[7] = pool.size;
                blob[8] = pool.crush_rule;
                blob[10..14].copy_from_slice(&pool.pg_num.to_le_bytes());
                blob[14..18].copy_from_slice(&pool.pgp_num.to_le_bytes());
            }
            body.extend_from_slice(&blob);
        }
        Ok(())
    }

    /// osd_state (bytes before client v5), osd_weight, and for the fork the recovery
    /// weights (all 1.0 if the map has none).
    fn encode_osd_arrays(&self, body: &mut Vec<u8>, client_version: u8, flavor: Flavor) -> Result<(), EncodeError> {
        let n = self.max_osd.max(0) as usize;
        if client_version >= 5 {
            put_vec_u32(body, &self.osd_state);
        } else {
            put_u32(body, n as u32);
            body.extend(self.osd_state.iter().map(|&s| s as u8));
        }
        put_vec_u32(body, &self.osd_weight);
        if flavor == Flavor::Fork {
            match &self.recovery_weight {
                Some(rw) if rw.len() == n => put_vec_u32(body, rw),
                Some(rw) => {
                    return Err(EncodeError::WrongLength {
                        field: "recovery_weight",
                        len: rw.len(),
                        max_osd: self.max_osd,
                    })
                }
                None => put_vec_u32(body, &vec![crate::osdmap::OSD_IN; n]),
            }
        }
        Ok(())
    }
}

/// The whole file: the bytes before the wrapper, the wrapper header with the flavor's
/// compat version, the client section around `client_body`, the rest of the wrapper copied,
/// the CRC recomputed, and the bytes after the wrapper.
fn encode_wrapper(original: &[u8], lay: &Layout, wrapper_version: u8, flavor: Flavor, client_body: &[u8]) -> Vec<u8> {
    let mut wrapper_body = Vec::with_capacity(client_body.len() + (lay.wrapper_end - lay.client_end) + 8);
    wrapper_body.extend_from_slice(&original[lay.client_start..lay.client_start + 2]);
    put_u32(&mut wrapper_body, client_body.len() as u32);
    wrapper_body.extend_from_slice(client_body);
    wrapper_body.extend_from_slice(&original[lay.client_end..lay.wrapper_end]);

    let compat = match flavor {
        Flavor::Fork => FORK_WRAPPER_COMPAT,
        Flavor::Stock => original[lay.wrapper_start + 1].min(7),
    };
    let mut out = Vec::with_capacity(wrapper_body.len() + 6 + original.len() - lay.wrapper_end);
    out.extend_from_slice(&original[..lay.wrapper_start]);
    out.push(wrapper_version);
    out.push(compat);
    put_u32(&mut out, wrapper_body.len() as u32);
    out.extend_from_slice(&wrapper_body);
    if wrapper_version >= 8 && wrapper_body.len() >= 4 {
        // The CRC covers the wrapper from its version byte up to the CRC itself, which
        // is the wrapper's last field.
        let crc_at = out.len() - 4;
        let crc = ceph_crc32c(0xffff_ffff, &out[lay.wrapper_start..crc_at]);
        out[crc_at..].copy_from_slice(&crc.to_le_bytes());
    }
    out.extend_from_slice(&original[lay.wrapper_end..]);
    out
}
