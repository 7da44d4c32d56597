//! The header structure shared by the signature header and the main header:
//! an 8-byte preamble (magic `8e ad e8`, version 1, 4 reserved bytes), the index count and
//! data size (u32 big-endian each), that many 16-byte index entries (tag, type, offset,
//! count) and the data store they point into.

use std::collections::BTreeMap;
use std::io::Read;

const MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];

/// rpm's own limits (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`): anything larger is corrupt,
/// and refusing it keeps a hostile file from making us allocate gigabytes.
const MAX_ENTRIES: u32 = 0xffff;
const MAX_DATA: u32 = 256 << 20;

/// One tag's value, decoded by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Char(Vec<u8>),
    Int8(Vec<u8>),
    Int16(Vec<u16>),
    Int32(Vec<u32>),
    Int64(Vec<u64>),
    String(String),
    Bin(Vec<u8>),
    StringArray(Vec<String>),
}

/// A parsed header: its tags, and its bytes exactly as stored (for digests).
#[derive(Debug, Clone)]
pub struct Header {
    pub tags: BTreeMap<u32, Value>,
    /// Preamble, index and data store, as read.
    pub raw: Vec<u8>,
}

impl Header {
    /// Reads one header from `r`. `Err` carries the reason.
    pub fn read(r: &mut impl Read) -> Result<Header, String> {
        let mut pre = [0u8; 16];
        r.read_exact(&mut pre).map_err(|e| format!("header preamble: {e}"))?;
        if pre[..4] != MAGIC {
            return Err("no header magic where a header should start".into());
        }
        let count = u32::from_be_bytes([pre[8], pre[9], pre[10], pre[11]]);
        let data_len = u32::from_be_bytes([pre[12], pre[13], pre[14], pre[15]]);
        if count == 0 || count > MAX_ENTRIES {
            return Err(format!("{count} index entries (1..{MAX_ENTRIES} allowed)"));
        }
        if data_len > MAX_DATA {
            return Err(format!("a data store of {data_len} bytes (at most {MAX_DATA})"));
        }
        let body_len = count as usize * 16 + data_len as usize;
        let mut raw = Vec::with_capacity(16 + body_len);
        raw.extend_from_slice(&pre);
        let got = r.take(body_len as u64).read_to_end(&mut raw).map_err(|e| format!("header body: {e}"))?;
        if got != body_len {
            return Err(format!("header ends after {got} of {body_len} bytes"));
        }
        let index = &raw[16..16 + count as usize * 16];
        let store = &raw[16 + count as usize * 16..];
        let mut tags = BTreeMap::new();
        for e in index.chunks_exact(16) {
            let word = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let (tag, kind, offset, n) = (word(0), word(4), word(8), word(12));
            let value = decode(store, kind, offset as usize, n as usize).map_err(|why| format!("tag {tag}: {why}"))?;
            tags.insert(tag, value);
        }
        Ok(Header { tags, raw })
    }

    /// The size on disk, without the signature header's alignment padding.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn get(&self, tag: u32) -> Option<&Value> {
        self.tags.get(&tag)
    }

    /// A string tag (also the first of an array, and i18n strings).
    pub fn string(&self, tag: u32) -> Option<&str> {
        match self.get(tag)? {
            Value::String(s) => Some(s),
            Value::StringArray(v) => v.first().map(|s| s.as_str()),
            _ => None,
        }
    }

    pub fn strings(&self, tag: u32) -> Vec<String> {
        match self.get(tag) {
            Some(Value::StringArray(v)) => v.clone(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// An integer array tag of any width, widened.
    pub fn ints(&self, tag: u32) -> Vec<u64> {
        match self.get(tag) {
            Some(Value::Int8(v)) | Some(Value::Char(v)) => v.iter().map(|x| *x as u64).collect(),
            Some(Value::Int16(v)) => v.iter().map(|x| *x as u64).collect(),
            Some(Value::Int32(v)) => v.iter().map(|x| *x as u64).collect(),
            Some(Value::Int64(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    pub fn int(&self, tag: u32) -> Option<u64> {
        self.ints(tag).first().copied()
    }

    pub fn bin(&self, tag: u32) -> Option<&[u8]> {
        match self.get(tag)? {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }
}

/// Decodes `n` items of type `kind` at `offset` in the data store.
fn decode(store: &[u8], kind: u32, offset: usize, n: usize) -> Result<Value, String> {
    let fixed = |width: usize| -> Result<&[u8], String> {
        let len = n.checked_mul(width).ok_or("count overflows")?;
        let end = offset.checked_add(len).ok_or("offset overflows")?;
        store
            .get(offset..end)
            .ok_or_else(|| format!("{n} items at offset {offset} run past the data store ({} bytes)", store.len()))
    };
    let strings = |count: usize| -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(count.min(store.len()));
        let mut at = offset;
        for _ in 0..count {
            let rest = store.get(at..).ok_or_else(|| format!("string at offset {at} past the data store"))?;
            let len = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| format!("string at offset {at} has no terminating NUL"))?;
            out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            at += len + 1;
        }
        Ok(out)
    };
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Char(fixed(1)?.to_vec()),
        2 => Value::Int8(fixed(1)?.to_vec()),
        3 => Value::Int16(fixed(2)?.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()),
        4 => Value::Int32(fixed(4)?.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()),
        5 => Value::Int64(
            fixed(8)?
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        6 => Value::String(strings(1)?.pop().unwrap_or_default()),
        7 => Value::Bin(fixed(1)?.to_vec()),
        // STRING_ARRAY; I18NSTRING holds one string per locale, the first is the default.
        8 | 9 => Value::StringArray(strings(n)?),
        other => return Err(format!("unknown data type {other}")),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a header from (tag, type, count, data) entries; offsets are assigned in order
    /// with the alignment rpm uses (2, 4, 8 for the integer widths).
    pub fn encode(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store: Vec<u8> = Vec::new();
        for (tag, kind, count, data) in entries {
            let align = match kind {
                3 => 2,
                4 => 4,
                5 => 8,
                _ => 1,
            };
            #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; MSRV is 1.85
            while store.len() % align != 0 {
                store.push(0);
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&kind.to_be_bytes());
            index.extend_from_slice(&(store.len() as u32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
            store.extend_from_slice(data);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    #[test]
    fn decodes_each_type() {
        let bytes = encode(&[
            (1000, 6, 1, b"kernel\0".to_vec()),
            (1001, 8, 2, b"a\0bc\0".to_vec()),
            (1002, 4, 2, [1u32.to_be_bytes(), 7u32.to_be_bytes()].concat()),
            (1003, 3, 1, 9u16.to_be_bytes().to_vec()),
            (1004, 7, 3, vec![1, 2, 3]),
            (1005, 5, 1, 1u64.to_be_bytes().to_vec()),
        ]);
        let h = Header::read(&mut &bytes[..]).unwrap();
        assert_eq!(h.string(1000), Some("kernel"));
        assert_eq!(h.strings(1001), vec!["a".to_string(), "bc".into()]);
        assert_eq!(h.ints(1002), vec![1, 7]);
        assert_eq!(h.int(1003), Some(9));
        assert_eq!(h.bin(1004), Some(&[1u8, 2, 3][..]));
        assert_eq!(h.int(1005), Some(1));
        assert_eq!(h.len(), bytes.len());
    }

    #[test]
    fn out_of_range_entries_are_errors() {
        let mut bytes = encode(&[(1000, 4, 1, 5u32.to_be_bytes().to_vec())]);
        // Count of 1000 int32s in a 4-byte store.
        bytes[16 + 12..16 + 16].copy_from_slice(&1000u32.to_be_bytes());
        assert!(Header::read(&mut &bytes[..]).unwrap_err().contains("run past"));
        let s = encode(&[(1000, 6, 1, b"no-nul".to_vec())]);
        assert!(Header::read(&mut &s[..]).unwrap_err().contains("NUL"));
        let t = encode(&[(1000, 42, 1, vec![0])]);
        assert!(Header::read(&mut &t[..]).unwrap_err().contains("unknown data type"));
    }

    #[test]
    fn hostile_sizes_are_refused_before_allocating() {
        let mut bytes = encode(&[(1000, 6, 1, b"x\0".to_vec())]);
        bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::read(&mut &bytes[..]).unwrap_err().contains("data store"));
        bytes[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert!(Header::read(&mut &bytes[..]).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&[(1000, 6, 1, b"kernel\0".to_vec()), (1001, 8, 2, b"a\0bc\0".to_vec())]);
        for cut in 0..bytes.len() {
            assert!(Header::read(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
