//! What the cache already holds, for `krbd-forge targets`.

use krbd_fetch::cache::Cache;

/// The releases whose headers are already laid out in the cache (so building them again
/// fetches nothing), sorted and without duplicates.
pub fn cached_sysroots(cache: &Cache) -> Vec<String> {
    let dir = cache.root().join("sysroots");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for h in std::fs::read_dir(e.path().join("usr/src")).into_iter().flatten().flatten() {
            if let Some(rel) = h.file_name().to_string_lossy().strip_prefix("linux-headers-") {
                if !rel.ends_with("-common") {
                    out.push(rel.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
