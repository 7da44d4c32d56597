//! The compressions of Debian packages, RPM payloads, kernel modules and kernel images,
//! recognised by a file name's ending or by the stream's magic bytes.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    /// The legacy `.lzma` ("LZMA alone") format of old RPM payloads; it has no magic bytes.
    Lzma,
    Zstd,
}

impl Compression {
    /// From a member or file name's ending (`data.tar.xz`, `linux-source-6.1.tar.xz`).
    pub fn from_name(name: &str) -> Option<Compression> {
        if name.ends_with(".tar") {
            Some(Compression::None)
        } else if name.ends_with(".gz") || name.ends_with(".tgz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".xz") || name.ends_with(".txz") {
            Some(Compression::Xz)
        } else if name.ends_with(".zst") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// From the stream's first bytes; [`Compression::None`] when no known magic is there.
    pub fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if magic.starts_with(b"BZh") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    /// The name tools and rpm's `PAYLOADCOMPRESSOR` tag use.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a large xz stream is decoded.
#[derive(Debug, Clone, Copy)]
pub enum XzThreads {
    Single,
    /// liblzma's multi-threaded decoder with this many threads. It only runs threaded when
    /// the stream has several blocks and `memlimit_threading` allows it, so the limit is set.
    Multi(u32),
}

impl XzThreads {
    pub fn all_cores() -> XzThreads {
        XzThreads::Multi(std::thread::available_parallelism().map_or(1, |n| n.get()) as u32)
    }
}

/// Wraps `reader` in the decoder for `compression`. Concatenated streams (several xz
/// streams, gzip members, bzip2 streams, zstd frames) are all decoded.
pub fn decoder<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
    threads: XzThreads,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
        }
        Compression::Xz => match threads {
            XzThreads::Single => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
            XzThreads::Multi(n) => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(n.max(1))
                    // Without this limit liblzma silently decodes on one thread.
                    .memlimit_threading(4 << 30)
                    .memlimit_stop(u64::MAX)
                    .decoder()
                    .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
            }
        },
    })
}

/// How much of an in-memory stream [`decompress`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Every concatenated stream (module files).
    All,
    /// The first stream only; what follows it is ignored. A bzImage's payload is followed
    /// by the uncompressed size, which is no stream at all.
    First,
}

/// A stream that did not decompress.
#[derive(Debug, thiserror::Error)]
#[error("{compression} data is corrupt or truncated: {source}")]
pub struct DecompressError {
    pub compression: Compression,
    #[source]
    pub source: io::Error,
}

/// Decompresses `raw` by its magic bytes (xz, zstd, gzip, bzip2); data without a known
/// magic is returned unchanged.
pub fn decompress(raw: &[u8], streams: Streams) -> Result<Vec<u8>, DecompressError> {
    let compression = Compression::sniff(raw);
    let mut out = Vec::new();
    let read = match (compression, streams) {
        (Compression::None, _) => return Ok(raw.to_vec()),
        (Compression::Xz, Streams::First) => liblzma::read::XzDecoder::new(raw).read_to_end(&mut out),
        (Compression::Gzip, Streams::First) => flate2::read::GzDecoder::new(raw).read_to_end(&mut out),
        (Compression::Bzip2, Streams::First) => bzip2::read::BzDecoder::new(raw).read_to_end(&mut out),
        (Compression::Zstd, Streams::First) => {
            zstd::stream::read::Decoder::new(raw).map(|d| d.single_frame()).and_then(|mut d| d.read_to_end(&mut out))
        }
        _ => decoder(raw, compression, XzThreads::Single).and_then(|mut d| d.read_to_end(&mut out)),
    };
    read.map_err(|source| DecompressError { compression, source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(c: Compression, packed: Vec<u8>) {
        let mut out = Vec::new();
        decoder(&packed[..], c, XzThreads::Multi(2)).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello kernel".repeat(100));
        assert_eq!(Compression::sniff(&packed), c);
    }

    #[test]
    fn decodes_each_compression() {
        let plain = b"hello kernel".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        roundtrip(Compression::Gzip, gz.finish().unwrap());
        roundtrip(Compression::Zstd, zstd::encode_all(&plain[..], 3).unwrap());
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        roundtrip(Compression::Xz, xz.finish().unwrap());
    }

    #[test]
    fn truncated_xz_is_an_error_not_a_short_read() {
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&b"abc".repeat(1000)).unwrap();
        let packed = xz.finish().unwrap();
        let cut = &packed[..packed.len() / 2];
        let mut out = Vec::new();
        let r = decoder(cut, Compression::Xz, XzThreads::Single).unwrap().read_to_end(&mut out);
        assert!(r.is_err());
    }

    #[test]
    fn names_map_to_compressions() {
        assert_eq!(Compression::from_name("data.tar.xz"), Some(Compression::Xz));
        assert_eq!(Compression::from_name("data.tar.zst"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("control.tar.gz"), Some(Compression::Gzip));
        assert_eq!(Compression::from_name("data.tar"), Some(Compression::None));
        assert_eq!(Compression::from_name("data.tar.bz2"), None);
    }

    fn packed(c: Compression, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match c {
            Compression::Gzip => {
                let mut w = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
                w.write_all(plain).and_then(|()| w.finish().map(drop)).unwrap();
            }
            Compression::Bzip2 => {
                let mut w = bzip2::write::BzEncoder::new(&mut out, bzip2::Compression::fast());
                w.write_all(plain).and_then(|()| w.finish().map(drop)).unwrap();
            }
            Compression::Xz => {
                let mut w = liblzma::write::XzEncoder::new(&mut out, 1);
                w.write_all(plain).and_then(|()| w.finish().map(drop)).unwrap();
            }
            Compression::Zstd => out = zstd::encode_all(plain, 3).unwrap(),
            _ => unreachable!("no encoder for {c}"),
        }
        out
    }

    #[test]
    fn decompresses_by_magic_and_passes_plain_data_through() {
        let plain = b"\x7fELF module bytes".repeat(50);
        for c in [Compression::Gzip, Compression::Bzip2, Compression::Xz, Compression::Zstd] {
            let raw = packed(c, &plain);
            assert_eq!(Compression::sniff(&raw), c);
            assert_eq!(decompress(&raw, Streams::All).unwrap(), plain, "{c}");
            assert_eq!(decompress(&raw, Streams::First).unwrap(), plain, "{c}");
        }
        assert_eq!(decompress(&plain, Streams::All).unwrap(), plain);
    }

    #[test]
    fn first_stream_ignores_what_follows_it() {
        // A bzImage payload: the stream, then its uncompressed size (4 bytes, little-endian).
        let plain = b"vmlinux".repeat(30);
        for c in [Compression::Gzip, Compression::Bzip2, Compression::Xz, Compression::Zstd] {
            let mut raw = packed(c, &plain);
            raw.extend_from_slice(&(plain.len() as u32).to_le_bytes());
            assert_eq!(decompress(&raw, Streams::First).unwrap(), plain, "{c}");
        }
    }

    #[test]
    fn truncated_streams_are_errors_naming_their_compression() {
        let plain = b"abc".repeat(1000);
        for c in [Compression::Gzip, Compression::Bzip2, Compression::Xz, Compression::Zstd] {
            let raw = packed(c, &plain);
            let err = decompress(&raw[..raw.len() / 2], Streams::All).unwrap_err();
            assert_eq!(err.compression, c);
            assert!(err.to_string().starts_with(c.name()), "{err}");
        }
    }
}
