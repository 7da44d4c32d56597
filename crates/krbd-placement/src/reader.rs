//! A bounds-checked little-endian reader for Ceph's encoding.
//!
//! Every read checks the remaining length first, and every length field is checked against
//! the bytes that are left before anything is allocated, so no input can make the decoder
//! panic or allocate more than a small multiple of the input's size.

use crate::error::{DecodeError, Result};

#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole file, for error messages and layout records.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, base: 0 }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { what, offset: self.offset(), needed: n, available: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.bytes(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A u32 element count, checked so that `count * min_elem_size` bytes are still there.
    pub fn count(&mut self, what: &'static str, min_elem_size: usize) -> Result<usize> {
        let offset = self.offset();
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_elem_size.max(1)) > self.remaining() {
            return Err(DecodeError::CountTooLarge { what, offset, count: n as u64, available: self.remaining() });
        }
        Ok(n)
    }

    /// A length-prefixed string (u32 length, bytes).
    pub fn string(&mut self, what: &'static str) -> Result<String> {
        let n = self.count(what, 1)?;
        Ok(String::from_utf8_lossy(self.bytes(n, what)?).into_owned())
    }

    /// Splits off the next `len` bytes as their own reader.
    pub fn sub(&mut self, len: usize, what: &'static str) -> Result<Reader<'a>> {
        let base = self.offset();
        let b = self.bytes(len, what)?;
        Ok(Reader { buf: b, pos: 0, base })
    }

    /// `ENCODE_START` header: version, compat version, then a u32 length; returns the
    /// section as its own reader so that unknown trailing fields are skipped.
    pub fn section(&mut self, what: &'static str) -> Result<Section<'a>> {
        let start = self.offset();
        let version = self.u8(what)?;
        let compat = self.u8(what)?;
        let len_offset = self.offset();
        let len = self.u32(what)? as usize;
        let body = self.sub(len, what)?;
        Ok(Section { version, compat, start, len_offset, body })
    }

    /// A vector of u32 values (u32 count, values).
    pub fn vec_u32(&mut self, what: &'static str) -> Result<Vec<u32>> {
        let n = self.count(what, 4)?;
        (0..n).map(|_| self.u32(what)).collect()
    }

    /// A vector of i32 values.
    pub fn vec_i32(&mut self, what: &'static str) -> Result<Vec<i32>> {
        let n = self.count(what, 4)?;
        (0..n).map(|_| self.i32(what)).collect()
    }

    pub fn invalid(&self, what: &'static str, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid { what, offset: self.offset(), detail: detail.into() }
    }
}

/// One `ENCODE_START`…`ENCODE_FINISH` section.
pub struct Section<'a> {
    pub version: u8,
    pub compat: u8,
    /// Offset of the version byte.
    pub start: usize,
    /// Offset of the u32 length field.
    pub len_offset: usize,
    pub body: Reader<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_an_error() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x").unwrap(), 0x0201);
        assert!(matches!(r.u32("y"), Err(DecodeError::Truncated { offset: 2, needed: 4, available: 1, .. })));
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(r.vec_u32("v"), Err(DecodeError::CountTooLarge { .. })));
    }
}
