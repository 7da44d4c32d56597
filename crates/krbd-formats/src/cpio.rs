//! The "new ASCII" cpio format (newc, magic `070701`): the kernel unpacks it as an
//! initramfs, and RPM payloads are (compressed) newc archives.
//!
//! Each entry is a 110-byte header of thirteen 8-digit hex fields, the NUL-terminated name,
//! padding to 4 bytes, the data, padding to 4 bytes; a `TRAILER!!!` entry ends the archive.
//!
//! [`CpioWriter`] is reproducible by construction: every entry gets mtime 0, uid/gid 0, and
//! inode numbers counted from 1 in the order entries are written, so the same input gives
//! the same bytes. [`CpioReader`] streams entries one at a time; data the caller does not
//! read is skipped, never buffered.

use std::io::{self, Read, Write};

const MAGIC: &[u8; 6] = b"070701";
/// The same layout with a checksum field (`cpio -H crc`), which readers accept.
const MAGIC_CRC: &[u8; 6] = b"070702";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;
/// Longer names do not exist in kernel packages; a larger value is corruption.
const MAX_NAME: usize = 4096;
/// The file type bits of `st_mode`.
const S_IFMT: u32 = 0o170000;

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Writes newc entries to `W`; call [`CpioWriter::finish`] to append the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter { out, next_ino: 1 }
    }

    pub fn directory(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node (the kernel needs `/dev/console` before init runs
    /// to give it a stdin/stdout).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Appends the trailer entry and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        // The trailer carries inode 0 like the kernel's own gen_init_cpio output.
        self.next_ino = 0;
        self.entry(TRAILER, 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad cpio path {path:?}")));
        }
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{path} is larger than 4 GiB")))?;
        let ino = self.next_ino;
        if self.next_ino != 0 {
            self.next_ino += 1;
        }
        let namesize = name.len() as u32 + 1;
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        let mut header = Vec::with_capacity(110 + name.len() + 4);
        header.extend_from_slice(MAGIC);
        for f in fields {
            header.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        pad4(&mut header);
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        let pad = (4 - data.len() % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        Ok(())
    }
}

/// Pads the header (which starts 4-aligned) so that what follows starts 4-aligned.
fn pad4(buf: &mut Vec<u8>) {
    while buf.len() & 3 != 0 {
        buf.push(0);
    }
}

/// The kind of an entry, from its mode's file type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets: never extracted.
    Other,
}

/// One entry's header, as read.
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
        match self.mode & S_IFMT {
            S_IFREG => EntryKind::File,
            S_IFDIR => EntryKind::Dir,
            S_IFLNK => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }
}

/// Reads newc entries from an (uncompressed) stream: [`CpioReader::next_header`], then the
/// entry's data through `Read`.
pub struct CpioReader<R> {
    inner: R,
    /// Bytes consumed so far (entries are aligned to 4 from the archive's start).
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
        let fields = parse_header_fields(&h)?;
        let (ino, mode, nlink, size, namesize) = (fields[0], fields[1], fields[4], fields[6], fields[11] as usize);
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
        if name == TRAILER {
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

/// Checks the magic and decodes the thirteen hex fields of a header.
fn parse_header_fields(h: &[u8; HEADER_LEN]) -> io::Result<[u32; 13]> {
    if &h[..6] != MAGIC && &h[..6] != MAGIC_CRC {
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
    let mut fields = [0u32; 13];
    for (i, field) in fields.iter_mut().enumerate() {
        let s = &h[6 + i * 8..6 + (i + 1) * 8];
        *field = std::str::from_utf8(s).ok().and_then(|s| u32::from_str_radix(s, 16).ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad hex field {:?}", String::from_utf8_lossy(s)))
        })?;
    }
    Ok(fields)
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
mod tests {
    use super::*;

    /// Reads back the archive with a minimal independent parser.
    fn parse(data: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(&data[pos..pos + 6], MAGIC);
            let field = |i: usize| {
                let s = std::str::from_utf8(&data[pos + 6 + i * 8..pos + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (ino, mode, size, namesize) = (field(0), field(1), field(6) as usize, field(11) as usize);
            let name = String::from_utf8(data[pos + 110..pos + 110 + namesize - 1].to_vec()).unwrap();
            let mut p = pos + 110 + namesize;
            p = p.div_ceil(4) * 4;
            let body = data[p..p + size].to_vec();
            p = (p + size).div_ceil(4) * 4;
            pos = p;
            if name == TRAILER {
                return out;
            }
            out.push((name, ino, mode, body));
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.directory("/bin", 0o755).unwrap();
        w.file("/bin/busybox", 0o755, b"abcde").unwrap();
        w.symlink("/bin/sh", "busybox").unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_aligns() {
        let data = sample();
        assert_eq!(data.len() % 4, 0);
        let entries = parse(&data);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "dev/console", "init"]);
        assert_eq!(entries[1].3, b"abcde");
        assert_eq!(entries[1].2, S_IFREG | 0o755);
        assert_eq!(entries[2].3, b"busybox");
        assert_eq!(entries[2].2 & 0o170000, S_IFLNK);
        let inos: Vec<_> = entries.iter().map(|e| e.1).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn is_reproducible() {
        assert_eq!(sample(), sample());
    }

    #[test]
    fn gnu_cpio_reads_it() {
        // The system's cpio is an independent reader; skip quietly only if it is absent.
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed; skipping");
            return;
        };
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("bin/sh -> busybox"), "{text}");
        assert!(text.contains("5,   1") || text.contains("5, 1"), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
    }

    #[test]
    fn rejects_empty_path() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/", 0o644, b"").is_err());
    }

    #[test]
    fn reads_entries_and_skips_unread_data() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("./a", 0o644, b"hello").unwrap();
        w.directory("./d", 0o755).unwrap();
        w.symlink("./l", "a").unwrap();
        w.file("./b", 0o600, b"world!!").unwrap();
        let a = w.finish().unwrap();
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
        assert_eq!((b.name.as_str(), b.mode), ("./b", S_IFREG | 0o600));
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"world!!");
        assert!(r.next_header().unwrap().is_none());
        assert!(r.finished());
    }

    #[test]
    fn truncations_and_garbage_are_errors() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("./a", 0o644, b"hello world").unwrap();
        w.file("./b", 0o644, b"x").unwrap();
        let a = w.finish().unwrap();
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
