//! What can go wrong while decoding maps.

/// A map could not be decoded. Offsets are byte offsets into the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the data ends early while reading {what} at byte {offset}: {needed} bytes needed, {available} left; the file is cut short or is not an OSDMap (get one with `ceph osd getmap -o FILE`)")]
    Truncated { what: &'static str, offset: usize, needed: usize, available: usize },
    #[error("{what} at byte {offset} says it holds {count} entries, more than the {available} bytes left can hold; the file is corrupt")]
    CountTooLarge { what: &'static str, offset: usize, count: u64, available: usize },
    #[error("{what} at byte {offset} uses encoding version {version} (compat {compat}), which this decoder does not know; supported: {supported}")]
    UnsupportedVersion { what: &'static str, offset: usize, version: u8, compat: u8, supported: &'static str },
    #[error("the CRUSH map at byte {offset} starts with magic {found:#x}, expected 0x10000; the embedded CRUSH map is corrupt")]
    BadCrushMagic { offset: usize, found: u32 },
    #[error("the {what} CRC at byte {offset} says {stored:#010x}, but bytes {start}..{end} (without the CRC's own 4) hash to {computed:#010x}; the file is corrupt")]
    BadCrc { what: &'static str, offset: usize, start: usize, end: usize, stored: u32, computed: u32 },
    #[error("invalid {what} at byte {offset}: {detail}")]
    Invalid { what: &'static str, offset: usize, detail: String },
}

pub type Result<T> = std::result::Result<T, DecodeError>;
