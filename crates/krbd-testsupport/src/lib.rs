//! Fixtures shared by every test binary of the workspace.
//!
//! Real packages are large (the 6.12 source is 150 MB), so they are fetched once into one
//! folder that all tests share, under a file lock so that parallel test binaries wait for
//! each other instead of downloading twice.

pub mod docs;
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

/// The default target of the kernel-module tests.
pub const KMOD_RELEASE: &str = "6.12.117+deb12-amd64";
pub const KMOD_DEB_VERSION: &str = "6.12.117-1~deb12u1";

/// The module files the kmod corpus is made from, by file name inside the image.
pub const KMOD_CORPUS_MODULES: &[&str] =
    &["libceph.ko.xz", "ceph.ko.xz", "rbd.ko.xz", "libcrc32c.ko.xz", "netfs.ko.xz"];

/// The raw material of the kernel-module corpus: Debian's real modules and headers of
/// [`KMOD_RELEASE`].
pub struct KmodCorpus {
    /// `<name>.ko.xz` files, as shipped (signed, compressed).
    pub modules_dir: PathBuf,
    /// A headers folder with `Module.symvers`, `.config`, `include/config/kernel.release` and
    /// `include/generated/utsrelease.h`.
    pub headers_dir: PathBuf,
}

/// Unpacks (once, under a lock) the modules and the headers that the kmod corpus needs
/// into the shared test cache.
pub fn kmod_corpus() -> KmodCorpus {
    // v2: with include/generated/utsrelease.h.
    let root = test_cache_dir().join(format!("kmod-corpus-v2-{KMOD_RELEASE}"));
    let modules_dir = root.join("modules");
    let headers_dir = root.join("headers");
    with_lock("kmod-corpus", || {
        let done = root.join(".complete");
        if done.is_file() {
            return;
        }
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&modules_dir).expect("create corpus folder");
        std::fs::create_dir_all(&headers_dir).expect("create corpus folder");

        let image = debian_package(&format!("linux-image-{KMOD_RELEASE}"), Some(KMOD_DEB_VERSION));
        extract_from_deb(&image, |path| {
            let file = path.rsplit('/').next()?;
            (path.contains("/lib/modules/") && KMOD_CORPUS_MODULES.contains(&file)).then(|| modules_dir.join(file))
        });
        for m in KMOD_CORPUS_MODULES {
            assert!(modules_dir.join(m).is_file(), "{m} not found in the linux-image package");
        }

        let headers = debian_package(&format!("linux-headers-{KMOD_RELEASE}"), Some(KMOD_DEB_VERSION));
        let prefix = format!("./usr/src/linux-headers-{KMOD_RELEASE}/");
        extract_from_deb(&headers, |path| {
            let rel = path.strip_prefix(&prefix)?;
            matches!(
                rel,
                "Module.symvers" | ".config" | "include/config/kernel.release" | "include/generated/utsrelease.h"
            )
            .then(|| headers_dir.join(rel))
        });
        for f in ["Module.symvers", ".config", "include/config/kernel.release", "include/generated/utsrelease.h"] {
            assert!(headers_dir.join(f).is_file(), "{f} not found in the headers package");
        }
        std::fs::write(&done, b"").expect("mark corpus complete");
    });
    KmodCorpus { modules_dir, headers_dir }
}

/// Streams a .deb's data tarball (`dpkg-deb --fsys-tarfile`) and writes the entries that
/// `dest` maps to a path.
fn extract_from_deb(deb: &Path, dest: impl Fn(&str) -> Option<PathBuf>) {
    use std::io::Read;
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dpkg-deb (package dpkg)");
    let stdout = child.stdout.take().expect("dpkg-deb stdout");
    let mut archive = tar::Archive::new(stdout);
    for entry in archive.entries().expect("read data tarball") {
        let mut entry = entry.expect("tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("entry path").to_string_lossy().into_owned();
        if let Some(out) = dest(&path) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).expect("create folder");
            }
            std::fs::write(&out, bytes).expect("write extracted file");
        }
    }
    // Reading stops at the archive's end marker; drain the rest so dpkg-deb exits cleanly.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    let status = child.wait().expect("wait for dpkg-deb");
    assert!(status.success(), "dpkg-deb --fsys-tarfile {} failed", deb.display());
}
