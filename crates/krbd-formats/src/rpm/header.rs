//! The header structure shared by the signature header and the main header:
//! an 8-byte preamble (magic `8e ad e8`, version 1, 4 reserved bytes), the index count and
//! data size (u32 big-endian each), that many 16-byte index entries (tag, type, offset,
//! count) and the data store they point into.
//!
//! Headers rpm 4 writes start with a "region" entry (tag 62 in the signature header, 63 in
//! the main header) whose 16-byte trailer, at the end of the data store, points back over
//! the whole index; rpm refuses headers without it. [`encode`] writes it when asked; the
//! reader takes it as the binary value it is stored as.

use std::collections::BTreeMap;
use std::io::{self, Read};

const MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
/// Magic, then 4 reserved bytes.
const PREAMBLE: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// rpm's own limits (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`): anything larger is corrupt,
/// and refusing it keeps a hostile file from making us allocate gigabytes.
const MAX_ENTRIES: u32 = 0xffff;
const MAX_DATA: u32 = 256 << 20;

// Value types, as index entries record them.
pub const TYPE_NULL: u32 = 0;
pub const TYPE_CHAR: u32 = 1;
pub const TYPE_INT8: u32 = 2;
pub const TYPE_INT16: u32 = 3;
pub const TYPE_INT32: u32 = 4;
pub const TYPE_INT64: u32 = 5;
pub const TYPE_STRING: u32 = 6;
pub const TYPE_BIN: u32 = 7;
pub const TYPE_STRING_ARRAY: u32 = 8;
/// One string per locale; the first is the default.
pub const TYPE_I18NSTRING: u32 = 9;

/// The padding after the signature header, which the main header follows 8-aligned.
pub fn signature_padding(signature_len: usize) -> usize {
    (8 - signature_len % 8) % 8
}

/// One 16-byte index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub tag: u32,
    pub kind: u32,
    /// Into the data store; negative only in a region trailer.
    pub offset: i32,
    pub count: u32,
}

impl IndexEntry {
    pub const SIZE: usize = 16;

    pub fn parse(e: &[u8; Self::SIZE]) -> IndexEntry {
        let word = |i: usize| [e[i], e[i + 1], e[i + 2], e[i + 3]];
        IndexEntry {
            tag: u32::from_be_bytes(word(0)),
            kind: u32::from_be_bytes(word(4)),
            offset: i32::from_be_bytes(word(8)),
            count: u32::from_be_bytes(word(12)),
        }
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.to_be_bytes());
        out.extend_from_slice(&self.kind.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
    }
}

/// One tag's value, by its type.
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
    I18nString(Vec<String>),
}

/// Why one index entry's value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("count or offset overflows")]
    Overflow,
    #[error("{count} items at offset {offset} run past the data store ({store_len} bytes)")]
    RunsPast { count: usize, offset: usize, store_len: usize },
    #[error("string at offset {offset} past the data store")]
    StringPastStore { offset: usize },
    #[error("string at offset {offset} has no terminating NUL")]
    NoNul { offset: usize },
    #[error("unknown data type {kind}")]
    UnknownType { kind: u32 },
}

/// Why a header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header preamble: {source}")]
    Preamble {
        #[source]
        source: io::Error,
    },
    #[error("no header magic where a header should start")]
    NoMagic,
    #[error("{count} index entries (1..{MAX_ENTRIES} allowed)")]
    EntryCount { count: u32 },
    #[error("a data store of {len} bytes (at most {MAX_DATA})")]
    DataSize { len: u32 },
    #[error("header body: {source}")]
    Body {
        #[source]
        source: io::Error,
    },
    #[error("header ends after {got} of {expected} bytes")]
    Truncated { got: usize, expected: usize },
    #[error("tag {tag}: {problem}")]
    Entry { tag: u32, problem: ValueError },
}

impl Value {
    /// The type code and item count its index entry records.
    pub fn kind_and_count(&self) -> (u32, u32) {
        let n = |len: usize| len as u32;
        match self {
            Value::Null => (TYPE_NULL, 0),
            Value::Char(v) => (TYPE_CHAR, n(v.len())),
            Value::Int8(v) => (TYPE_INT8, n(v.len())),
            Value::Int16(v) => (TYPE_INT16, n(v.len())),
            Value::Int32(v) => (TYPE_INT32, n(v.len())),
            Value::Int64(v) => (TYPE_INT64, n(v.len())),
            Value::String(_) => (TYPE_STRING, 1),
            Value::Bin(v) => (TYPE_BIN, n(v.len())),
            Value::StringArray(v) => (TYPE_STRING_ARRAY, n(v.len())),
            Value::I18nString(v) => (TYPE_I18NSTRING, n(v.len())),
        }
    }

    /// Appends the value's bytes to the data store.
    pub fn encode(&self, store: &mut Vec<u8>) {
        let cstr = |store: &mut Vec<u8>, s: &str| {
            store.extend_from_slice(s.as_bytes());
            store.push(0);
        };
        match self {
            Value::Null => {}
            Value::Char(v) | Value::Int8(v) | Value::Bin(v) => store.extend_from_slice(v),
            Value::Int16(v) => v.iter().for_each(|x| store.extend_from_slice(&x.to_be_bytes())),
            Value::Int32(v) => v.iter().for_each(|x| store.extend_from_slice(&x.to_be_bytes())),
            Value::Int64(v) => v.iter().for_each(|x| store.extend_from_slice(&x.to_be_bytes())),
            Value::String(s) => cstr(store, s),
            Value::StringArray(v) | Value::I18nString(v) => v.iter().for_each(|s| cstr(store, s)),
        }
    }

    /// Decodes `count` items of type `kind` at `offset` in the data store.
    pub fn decode(store: &[u8], kind: u32, offset: usize, count: usize) -> Result<Value, ValueError> {
        let fixed = |width: usize| -> Result<&[u8], ValueError> {
            let len = count.checked_mul(width).ok_or(ValueError::Overflow)?;
            let end = offset.checked_add(len).ok_or(ValueError::Overflow)?;
            store.get(offset..end).ok_or(ValueError::RunsPast { count, offset, store_len: store.len() })
        };
        let strings = |n: usize| decode_strings(store, offset, n);
        Ok(match kind {
            TYPE_NULL => Value::Null,
            TYPE_CHAR => Value::Char(fixed(1)?.to_vec()),
            TYPE_INT8 => Value::Int8(fixed(1)?.to_vec()),
            TYPE_INT16 => Value::Int16(fixed(2)?.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()),
            TYPE_INT32 => {
                Value::Int32(fixed(4)?.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            TYPE_INT64 => Value::Int64(
                fixed(8)?
                    .chunks_exact(8)
                    .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            TYPE_STRING => Value::String(strings(1)?.pop().unwrap_or_default()),
            TYPE_BIN => Value::Bin(fixed(1)?.to_vec()),
            TYPE_STRING_ARRAY => Value::StringArray(strings(count)?),
            TYPE_I18NSTRING => Value::I18nString(strings(count)?),
            other => return Err(ValueError::UnknownType { kind: other }),
        })
    }
}

/// `count` NUL-terminated strings from `offset` on.
fn decode_strings(store: &[u8], offset: usize, count: usize) -> Result<Vec<String>, ValueError> {
    let mut out = Vec::with_capacity(count.min(store.len()));
    let mut at = offset;
    for _ in 0..count {
        let rest = store.get(at..).ok_or(ValueError::StringPastStore { offset: at })?;
        let len = rest.iter().position(|b| *b == 0).ok_or(ValueError::NoNul { offset: at })?;
        out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
        at += len + 1;
    }
    Ok(out)
}

/// The data store alignment of a type (rpm aligns integers to their width).
fn alignment(kind: u32) -> usize {
    match kind {
        TYPE_INT16 => 2,
        TYPE_INT32 => 4,
        TYPE_INT64 => 8,
        _ => 1,
    }
}

/// Serialises a header: the region entry first when `region` names one (its trailer ends
/// the data store), then `tags` in ascending tag order, each value aligned as rpm aligns it.
pub fn encode(region: Option<u32>, mut tags: Vec<(u32, Value)>) -> Vec<u8> {
    tags.sort_by_key(|(t, _)| *t);
    let count = tags.len() + usize::from(region.is_some());
    let mut entries = Vec::with_capacity(count);
    let mut store = Vec::new();
    for (tag, value) in &tags {
        let (kind, n) = value.kind_and_count();
        while !store.len().is_multiple_of(alignment(kind)) {
            store.push(0);
        }
        entries.push(IndexEntry { tag: *tag, kind, offset: store.len() as i32, count: n });
        value.encode(&mut store);
    }
    let mut index = Vec::with_capacity(count * IndexEntry::SIZE);
    if let Some(tag) = region {
        // The trailer: an index entry stored as data, whose negative offset spans the index.
        let trailer_at = store.len() as i32;
        IndexEntry { tag, kind: TYPE_BIN, offset: trailer_at, count: 16 }.write_to(&mut index);
        let spans = -((count * IndexEntry::SIZE) as i32);
        IndexEntry { tag, kind: TYPE_BIN, offset: spans, count: 16 }.write_to(&mut store);
    }
    entries.iter().for_each(|e| e.write_to(&mut index));
    let mut out = Vec::with_capacity(16 + index.len() + store.len());
    out.extend_from_slice(&PREAMBLE);
    out.extend_from_slice(&(count as u32).to_be_bytes());
    out.extend_from_slice(&(store.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&store);
    out
}

/// A parsed header: its tags, and its bytes exactly as stored (for digests).
#[derive(Debug, Clone)]
pub struct Header {
    pub tags: BTreeMap<u32, Value>,
    /// Preamble, index and data store, as read.
    pub raw: Vec<u8>,
}

impl Header {
    /// Reads one header from `r`.
    pub fn read(r: &mut impl Read) -> Result<Header, HeaderError> {
        let mut pre = [0u8; 16];
        r.read_exact(&mut pre).map_err(|source| HeaderError::Preamble { source })?;
        if pre[..4] != MAGIC {
            return Err(HeaderError::NoMagic);
        }
        let count = u32::from_be_bytes([pre[8], pre[9], pre[10], pre[11]]);
        let data_len = u32::from_be_bytes([pre[12], pre[13], pre[14], pre[15]]);
        if count == 0 || count > MAX_ENTRIES {
            return Err(HeaderError::EntryCount { count });
        }
        if data_len > MAX_DATA {
            return Err(HeaderError::DataSize { len: data_len });
        }
        let index_len = count as usize * IndexEntry::SIZE;
        let body_len = index_len + data_len as usize;
        let mut raw = Vec::with_capacity(16 + body_len);
        raw.extend_from_slice(&pre);
        let got = r.take(body_len as u64).read_to_end(&mut raw).map_err(|source| HeaderError::Body { source })?;
        if got != body_len {
            return Err(HeaderError::Truncated { got, expected: body_len });
        }
        let (index, store) = raw[16..].split_at(index_len);
        let mut tags = BTreeMap::new();
        for e in index.chunks_exact(IndexEntry::SIZE) {
            let e = IndexEntry::parse(e.try_into().expect("chunks of the entry size"));
            // A negative offset (a region trailer's, read as an entry) is past any store.
            let offset = usize::try_from(e.offset).unwrap_or(usize::MAX);
            let value = Value::decode(store, e.kind, offset, e.count as usize)
                .map_err(|problem| HeaderError::Entry { tag: e.tag, problem })?;
            tags.insert(e.tag, value);
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

    /// A string tag (also the first of an array, and an i18n string's default).
    pub fn string(&self, tag: u32) -> Option<&str> {
        match self.get(tag)? {
            Value::String(s) => Some(s),
            Value::StringArray(v) | Value::I18nString(v) => v.first().map(|s| s.as_str()),
            _ => None,
        }
    }

    pub fn strings(&self, tag: u32) -> Vec<String> {
        match self.get(tag) {
            Some(Value::StringArray(v) | Value::I18nString(v)) => v.clone(),
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

#[cfg(test)]
mod tests;
