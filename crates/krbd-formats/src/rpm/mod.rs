//! The RPM file format (v3 lead, v4 headers), as both the reader (krbd-fetch) and the
//! writer (krbd-ship) need it:
//! - [`lead`]: the first 96 bytes, mostly historic.
//! - [`header`]: the structure shared by the signature header and the main header: a
//!   preamble, 16-byte index entries (tag, type, offset, count) and the data store they
//!   point into; values decoded and encoded by type.
//! - [`tag`]: the tag numbers, dependency flags and hash algorithm numbers.
//!
//! A package is the lead, the signature header padded to 8 bytes
//! ([`header::signature_padding`]), the main header, then the compressed cpio payload.

pub mod header;
pub mod lead;
pub mod tag;
