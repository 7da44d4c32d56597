//! Ceph's CRC32C and the CRC that wrapped OSDMaps and incrementals (wrapper version 8 and
//! newer) carry, checked the way `OSDMap::decode` and `OSDMap::Incremental::decode` do.

use crate::error::{DecodeError, Result};
use crate::reader::Section;

/// Whether a decoder checks the wrapper CRC. Ceph always does; skipping is for reading a
/// damaged map on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrcCheck {
    #[default]
    Verify,
    Skip,
}

fn crc32c_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            }
            *e = c;
        }
        t
    })
}

/// Ceph's `ceph_crc32c(seed, data)`: Castagnoli CRC without the customary pre/post inversion.
pub fn ceph_crc32c(seed: u32, data: &[u8]) -> u32 {
    let t = crc32c_table();
    let mut c = seed;
    for &b in data {
        c = t[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// Checks the CRC of a wrapper (version 8 and newer) whose header starts at byte
/// `wrapper.start` of `data`. The CRC field follows the client and OSD sections; it covers
/// the wrapper from its version byte up to the field, then whatever follows the field up to
/// the wrapper's end (an incremental's full-map CRC; nothing in a full map).
pub(crate) fn verify_wrapper_crc(data: &[u8], wrapper: &Section<'_>, what: &'static str) -> Result<()> {
    if wrapper.version < 8 {
        return Ok(());
    }
    let mut w = wrapper.body.clone();
    w.section(what)?;
    w.section(what)?;
    let offset = w.offset();
    let stored = w.u32(what)?;
    let tail = w.bytes(w.remaining(), what)?;
    let computed = ceph_crc32c(ceph_crc32c(0xffff_ffff, &data[wrapper.start..offset]), tail);
    if computed != stored {
        return Err(DecodeError::BadCrc {
            what,
            offset,
            start: wrapper.start,
            end: offset + 4 + tail.len(),
            stored,
            computed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // Standard CRC-32C("123456789") = 0xe3069283 = !raw(!0, data).
        assert_eq!(!ceph_crc32c(0xffff_ffff, b"123456789"), 0xe306_9283);
    }
}
