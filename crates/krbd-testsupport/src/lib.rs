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
use std::sync::OnceLock;

/// Runs `cmd`; panics with its status, stdout and stderr unless it succeeds. Returns its
/// stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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

/// Where the fixtures that are not committed live: `$KRBD_TEST_SHARED`, or `../shared`
/// beside the checkout (where CI lays them).
fn shared_root() -> PathBuf {
    match std::env::var_os("KRBD_TEST_SHARED") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("..").join("shared"),
    }
}

/// The fixture folder `name` in the shared folder (`$KRBD_TEST_SHARED` or `../shared`;
/// `ceph-object-corpus`: real encoded maps that are not committed here). CI always lays it
/// there, so a missing folder is an error, not a reason to skip: this panics with one message
/// that names the folder and says how to get it, instead of each test failing on its own
/// unwrap.
pub fn shared_fixture(name: &str) -> PathBuf {
    let dir = shared_root().join(name);
    if !dir.is_dir() {
        panic!("{}", missing_shared_fixture(name, &dir));
    }
    dir
}

/// The message for a missing `../shared/<name>`: where it was looked for, and how to get it.
pub fn missing_shared_fixture(name: &str, looked_at: &Path) -> String {
    let how = match name {
        "ceph-object-corpus" => {
            "It holds real encoded OSDMaps, incrementals and CRUSH maps of Ceph 0.46 ... 16.2 from the \
             public ceph/ceph-object-corpus repository. Make it with `scripts/shared-corpus.sh` (clones \
             that repository, or takes a clone with --from DIR, and lays the maps out as \
             <version>/{OSDMap,OSDMap-Incremental,CrushWrapper}/<hash>), or link an existing `shared/` \
             folder beside the checkout, or point $KRBD_TEST_SHARED at one."
        }
        _ => "Link an existing `shared/` folder beside the checkout, or point $KRBD_TEST_SHARED at one.",
    };
    format!(
        "the shared test fixture {name}/ is missing: looked for {} ($KRBD_TEST_SHARED, else the `shared/` \
         folder beside the checkout, which CI provides). {how}",
        looked_at.display()
    )
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

/// One real Debian kernel: its release (`uname -r`) and its packages' Debian version.
#[derive(Debug, Clone)]
pub struct KernelTarget {
    pub release: String,
    pub version: String,
}

/// The default target, as `krbd-forge targets --json` marks it (krbd-build's own rule: the
/// newest release whose packages apt can all provide), asked once per test binary. Tests
/// that need one real kernel take it from here and never name a release: the archive drops
/// old ones, and a fixed release would break a fresh CI machine on that day.
pub fn default_target() -> &'static KernelTarget {
    static TARGET: OnceLock<KernelTarget> = OnceLock::new();
    TARGET.get_or_init(|| {
        let t = krbd_build::target::default_target()
            .unwrap_or_else(|e| panic!("the default target (what `krbd-forge targets` marks): {e}"));
        KernelTarget { release: t.release.to_string(), version: t.version }
    })
}

/// The module files the kmod corpus is made from, by file name inside the image.
pub const KMOD_CORPUS_MODULES: &[&str] =
    &["libceph.ko.xz", "ceph.ko.xz", "rbd.ko.xz", "libcrc32c.ko.xz", "netfs.ko.xz"];

/// The raw material of the kernel-module corpus: Debian's real modules and headers of
/// [`KmodCorpus::release`], the default target.
pub struct KmodCorpus {
    /// The release the modules and headers are of (the default target when first asked).
    pub release: String,
    /// `<name>.ko.xz` files, as shipped (signed, compressed).
    pub modules_dir: PathBuf,
    /// A headers folder with `Module.symvers`, `.config`, `include/config/kernel.release` and
    /// `include/generated/utsrelease.h`.
    pub headers_dir: PathBuf,
}

/// Unpacks (once, under a lock) the modules and the headers that the kmod corpus needs
/// into the shared test cache.
pub fn kmod_corpus() -> KmodCorpus {
    let KernelTarget { release, version } = default_target();
    // Keyed by the release: when the default target moves on, the corpus follows it.
    // v2: with include/generated/utsrelease.h.
    let root = test_cache_dir().join(format!("kmod-corpus-v2-{release}"));
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

        let image = debian_package(&format!("linux-image-{release}"), Some(version));
        extract_from_deb(&image, |path| {
            let file = path.rsplit('/').next()?;
            (path.contains("/lib/modules/") && KMOD_CORPUS_MODULES.contains(&file)).then(|| modules_dir.join(file))
        });
        for m in KMOD_CORPUS_MODULES {
            assert!(modules_dir.join(m).is_file(), "{m} not found in the linux-image package");
        }

        let headers = debian_package(&format!("linux-headers-{release}"), Some(version));
        let prefix = format!("./usr/src/linux-headers-{release}/");
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
    KmodCorpus { release: release.clone(), modules_dir, headers_dir }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_shared_fixture_names_the_folder_and_how_to_get_it() {
        let msg = missing_shared_fixture("ceph-object-corpus", Path::new("/x/shared/ceph-object-corpus"));
        for needle in ["ceph-object-corpus/ is missing", "/x/shared/ceph-object-corpus", "scripts/shared-corpus.sh"] {
            assert!(msg.contains(needle), "{needle} not in: {msg}");
        }
    }
}
