//! A writer for the "newc" cpio format, the one the kernel unpacks as an initramfs.
//!
//! Reproducible by construction: every entry gets mtime 0, uid/gid 0, and inode numbers
//! counted from 1 in the order entries are written, so the same input gives the same bytes.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

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
}
