//! SHA-256 digests as lowercase hex, the form package indexes, build reports and journals
//! record them in.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;

/// The SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Streams `path` through SHA-256 (never holding the whole file), calling `progress` with
/// the bytes read so far.
pub fn sha256_file(path: &Path, mut progress: impl FnMut(u64)) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_file_agree_with_the_known_digest() {
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let mut seen = Vec::new();
        assert_eq!(sha256_file(&p, |n| seen.push(n)).unwrap(), abc);
        assert_eq!(seen, [3]);
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = sha256_file(&dir.path().join("none"), |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
