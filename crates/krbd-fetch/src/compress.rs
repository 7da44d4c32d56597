//! The compressions found in Debian packages and kernel tarballs.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
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

    /// From the stream's first bytes.
    pub fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
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

/// Wraps `reader` in the decoder for `compression`.
pub fn decoder<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
    threads: XzThreads,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
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
}
