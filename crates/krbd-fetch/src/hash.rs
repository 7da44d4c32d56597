use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;

/// Streams `path` through SHA-256, calling `progress` with the bytes read so far.
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

pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A hasher for cache keys: each part is length-prefixed so that ("ab","c") != ("a","bc").
#[derive(Default)]
pub struct KeyHasher(Sha256);

impl KeyHasher {
    pub fn new(domain: &str) -> Self {
        let mut k = KeyHasher(Sha256::new());
        k.part(domain.as_bytes());
        k
    }
    pub fn part(&mut self, data: &[u8]) -> &mut Self {
        self.0.update((data.len() as u64).to_le_bytes());
        self.0.update(data);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.part(s.as_bytes())
    }
    pub fn finish(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}
