//! The payload: a cpio archive in the "new ASCII" (newc) format ([`krbd_formats::cpio`]),
//! compressed with the header's `PAYLOADCOMPRESSOR`.

use krbd_formats::compress::{self, Compression, XzThreads};
use std::io::{self, Read};

/// The compressors rpm writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadCompressor {
    None,
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Zstd,
}

impl PayloadCompressor {
    /// From the `PAYLOADCOMPRESSOR` tag (`gzip`, `bzip2`, `xz`, `lzma`, `zstd`).
    pub fn from_tag(name: &str) -> Option<PayloadCompressor> {
        Some(match name {
            "" | "identity" | "none" => PayloadCompressor::None,
            "gzip" => PayloadCompressor::Gzip,
            "bzip2" => PayloadCompressor::Bzip2,
            "xz" => PayloadCompressor::Xz,
            "lzma" => PayloadCompressor::Lzma,
            "zstd" => PayloadCompressor::Zstd,
            _ => return None,
        })
    }

    /// The compression of the stream.
    pub fn compression(self) -> Compression {
        match self {
            PayloadCompressor::None => Compression::None,
            PayloadCompressor::Gzip => Compression::Gzip,
            PayloadCompressor::Bzip2 => Compression::Bzip2,
            PayloadCompressor::Xz => Compression::Xz,
            PayloadCompressor::Lzma => Compression::Lzma,
            PayloadCompressor::Zstd => Compression::Zstd,
        }
    }

    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        compress::decoder(r, self.compression(), XzThreads::Single)
    }
}
