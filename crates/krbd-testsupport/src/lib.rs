//! Fixtures shared by every test binary of the workspace.
//!
//! Real packages are large (the 6.12 source is 150 MB), so they are fetched once into one
//! folder that all tests share, under a file lock so that parallel test binaries wait for
//! each other instead of downloading twice.

pub mod http;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder shared by all tests: `$KRBD_TEST_CACHE`, or `target/test-cache` of this workspace.
pub fn test_cache_dir() -> PathBuf {
    let dir = match std::env::var_os("KRBD_TEST_CACHE") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target").join("test-cache"),
    };
    std::fs::create_dir_all(&dir).expect("create the shared test cache");
    dir
}

/// The workspace's top folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/<name> sits two levels below the workspace root")
        .to_path_buf()
}

/// `../shared` beside the checkout (CI lays a copy there), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let d = workspace_root().join("..").join("shared");
    d.is_dir().then_some(d)
}

/// Runs `f` while holding an exclusive lock named `name` in the test cache.
pub fn with_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let path = test_cache_dir().join(format!("{name}.lock"));
    let lock = File::create(&path).expect("create lock file");
    lock.lock().expect("take test cache lock");
    let out = f();
    let _ = lock.unlock();
    out
}

/// A Debian package `name` (optionally `=version`) downloaded with `apt-get download`
/// into the shared test cache; returns the .deb's path. Downloads only once.
pub fn debian_package(name: &str, version: Option<&str>) -> PathBuf {
    let dir = test_cache_dir().join("debs");
    std::fs::create_dir_all(&dir).expect("create debs folder");
    with_lock("debs", || {
        let find = || -> Option<PathBuf> {
            std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).find(|p| {
                let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
                let vers = version.map(|v| v.replace(':', "%3a"));
                f.starts_with(&format!("{name}_"))
                    && f.ends_with(".deb")
                    && vers.as_ref().is_none_or(|v| f.starts_with(&format!("{name}_{v}_")))
            })
        };
        if let Some(p) = find() {
            return p;
        }
        let spec = match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        };
        let status = Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(&dir)
            .status()
            .expect("run apt-get download");
        assert!(status.success(), "apt-get download {spec} failed");
        find().unwrap_or_else(|| panic!("apt-get download {spec} left no .deb in {}", dir.display()))
    })
}
