//! Cache keys. (File and byte digests are krbd-formats' [`krbd_formats::digest`].)

use sha2::{Digest, Sha256};

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
