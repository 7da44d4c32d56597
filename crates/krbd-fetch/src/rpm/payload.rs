//! The payload: a cpio archive in the "new ASCII" (newc, `070701`) format, compressed with
//! the header's `PAYLOADCOMPRESSOR`. Entries are read one at a time from the stream; an
//! entry's data that the caller does not read is skipped, never buffered.

use crate::compress::XzThreads;
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

    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        use crate::compress::{decoder, Compression};
        Ok(match self {
            PayloadCompressor::None => Box::new(r),
            PayloadCompressor::Gzip => decoder(r, Compression::Gzip, XzThreads::Single)?,
            PayloadCompressor::Xz => decoder(r, Compression::Xz, XzThreads::Single)?,
            PayloadCompressor::Zstd => decoder(r, Compression::Zstd, XzThreads::Single)?,
            PayloadCompressor::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
            PayloadCompressor::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
            }
        })
    }
}

/// The kind of a cpio entry, from its mode's file type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets: never extracted.
    Other,
}

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioHeader {
    /// As stored (`./usr/src/...` or a bare name).
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub nlink: u32,
    pub size: u64,
}

impl CpioHeader {
    pub fn kind(&self) -> EntryKind {
        match self.mode & 0o170000 {
            0o100000 => EntryKind::File,
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }
}

const NEWC: &[u8; 6] = b"070701";
const NEWC_CRC: &[u8; 6] = b"070702";
const HEADER_LEN: usize = 110;
/// Longer names do not exist in kernel packages; a larger value is corruption.
const MAX_NAME: usize = 4096;

/// Reads cpio newc entries from a decompressed payload stream.
pub struct CpioReader<R> {
    inner: R,
    /// Bytes consumed so far (entries are aligned to 4 from the payload's start).
    offset: u64,
    /// Data of the current entry not yet read, plus its padding.
    unread: u64,
    pad: u64,
    done: bool,
}

impl<R: Read> CpioReader<R> {
    pub fn new(inner: R) -> Self {
        CpioReader { inner, offset: 0, unread: 0, pad: 0, done: false }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.offset += copied;
        if copied != n {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "payload ends inside an entry"));
        }
        Ok(())
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(io::ErrorKind::UnexpectedEof, "payload ends inside an entry header")
            } else {
                e
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The next entry's header, or `None` after the `TRAILER!!!` entry. Data of the
    /// previous entry that was not read is skipped first.
    pub fn next_header(&mut self) -> io::Result<Option<CpioHeader>> {
        if self.done {
            return Ok(None);
        }
        let rest = self.unread + self.pad;
        self.unread = 0;
        self.pad = 0;
        self.skip(rest)?;
        let mut h = [0u8; HEADER_LEN];
        self.read_exact_counted(&mut h)?;
        if &h[..6] != NEWC && &h[..6] != NEWC_CRC {
            let what = if &h[..6] == b"07070X" {
                "the stripped cpio of rpm's large-file payloads"
            } else {
                "not a cpio newc header"
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} (magic {:?})", String::from_utf8_lossy(&h[..6])),
            ));
        }
        let field = |i: usize| -> io::Result<u32> {
            let s = &h[6 + i * 8..6 + (i + 1) * 8];
            std::str::from_utf8(s).ok().and_then(|s| u32::from_str_radix(s, 16).ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad hex field {:?}", String::from_utf8_lossy(s)))
            })
        };
        let (ino, mode, nlink, size, namesize) = (field(0)?, field(1)?, field(4)?, field(6)?, field(11)? as usize);
        if namesize == 0 || namesize > MAX_NAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("entry name of {namesize} bytes")));
        }
        let mut name = vec![0u8; namesize];
        self.read_exact_counted(&mut name)?;
        if name.pop() != Some(0) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "entry name without its NUL"));
        }
        let name = String::from_utf8(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "entry name is not UTF-8"))?;
        let align = (4 - self.offset % 4) % 4;
        self.skip(align)?;
        if name == "TRAILER!!!" {
            self.done = true;
            return Ok(None);
        }
        let size = size as u64;
        self.unread = size;
        self.pad = (4 - (self.offset + size) % 4) % 4;
        Ok(Some(CpioHeader { name, ino, mode, nlink, size }))
    }

    /// Whether the trailer was reached.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// The stream underneath (to drain what follows the trailer).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Reads the current entry's data.
impl<R: Read> Read for CpioReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unread == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.unread.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "payload ends inside a file's data"));
        }
        self.unread -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A newc archive of (name, mode, data) entries plus the trailer.
    pub fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |name: &str, mode: u32, data: &[u8], ino: u32| {
            let header = format!(
                "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                0,
                0,
                1,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        };
        for (i, (name, mode, data)) in entries.iter().enumerate() {
            push(name, *mode, data, i as u32 + 1);
        }
        push("TRAILER!!!", 0, b"", 0);
        out
    }

    #[test]
    fn reads_entries_and_skips_unread_data() {
        let a = newc(&[
            ("./a", 0o100644, b"hello"),
            ("./d", 0o040755, b""),
            ("./l", 0o120777, b"a"),
            ("./b", 0o100600, b"world!!"),
        ]);
        let mut r = CpioReader::new(&a[..]);
        let h = r.next_header().unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.kind(), h.size), ("./a", EntryKind::File, 5));
        // Not reading ./a's data: it must be skipped.
        assert_eq!(r.next_header().unwrap().unwrap().kind(), EntryKind::Dir);
        let l = r.next_header().unwrap().unwrap();
        assert_eq!(l.kind(), EntryKind::Symlink);
        let mut target = String::new();
        r.read_to_string(&mut target).unwrap();
        assert_eq!(target, "a");
        let b = r.next_header().unwrap().unwrap();
        assert_eq!(b.name, "./b");
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"world!!");
        assert!(r.next_header().unwrap().is_none());
        assert!(r.finished());
    }

    #[test]
    fn truncations_and_garbage_are_errors() {
        let a = newc(&[("./a", 0o100644, b"hello world"), ("./b", 0o100644, b"x")]);
        for cut in 0..a.len() - 1 {
            let mut r = CpioReader::new(&a[..cut]);
            let mut failed = false;
            loop {
                match r.next_header() {
                    Ok(Some(_)) => {
                        let mut sink = Vec::new();
                        if r.read_to_end(&mut sink).is_err() {
                            failed = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "cut at {cut} went unnoticed");
        }
        let mut bad = a.clone();
        bad[0] = b'x';
        assert!(CpioReader::new(&bad[..]).next_header().is_err());
        let mut bad_hex = a.clone();
        bad_hex[10] = b'g';
        assert!(CpioReader::new(&bad_hex[..]).next_header().is_err());
    }
}
