//! The module set every packaging test packs: the default target built unpatched through
//! the shared test cache (a cache hit once any test binary has built it).

#![allow(dead_code)]

use krbd_build::{BuildOptions, Inputs};
use krbd_fetch::cache::Cache;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Built {
    pub out: PathBuf,
    pub cache_root: PathBuf,
    _keep: tempfile::TempDir,
}

pub fn cache_root() -> PathBuf {
    krbd_testsupport::test_cache_dir().join("forge-cache")
}

pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = BuildOptions {
            inputs: Inputs::Debian { release: None },
            source_tarball: None,
            series: None,
            out_root: dir.path().to_path_buf(),
            cache: Cache::open(cache_root()).expect("open the test cache"),
            jobs: 2,
        };
        let outcome = krbd_build::build(&opts, &krbd_progress::Silent).expect("build the default target");
        Built { out: outcome.out, cache_root: cache_root(), _keep: dir }
    })
}

/// A copy of the out folder that a test may damage.
pub fn copy_of_out(dest: &Path) -> PathBuf {
    let src = &built().out;
    let to = dest.join(src.file_name().expect("release folder"));
    copy_tree(src, &to);
    to
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (s, d) = (e.path(), to.join(e.file_name()));
        if s.is_dir() {
            copy_tree(&s, &d);
        } else {
            std::fs::copy(&s, &d).expect("copy");
        }
    }
}

pub use krbd_testsupport::run_ok as run;

pub fn options(format: krbd_ship::Format, out_dir: &Path) -> krbd_ship::PackageOptions {
    krbd_ship::PackageOptions {
        format,
        compression: krbd_ship::Compression::Gzip,
        out_dir: out_dir.to_path_buf(),
        mtime: Some(1_700_000_000),
        maintainer: "Test Maintainer <test@example.invalid>".into(),
        installer: None,
        host_docs: None,
        cache_root: Some(cache_root()),
        debug: false,
        signing: None,
    }
}

/// A throwaway RSA key and self-signed certificate, made with openssl.
pub fn throwaway_key(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("signing_key.pem");
    let cert = dir.join("signing_cert.pem");
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes", "-utf8", "-sha256", "-days", "3650", "-batch", "-x509"])
        .args(["-subj", "/CN=krbd-forge throwaway test key/O=krbd-forge tests"])
        .args(["-newkey", "rsa:2048", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (key, cert)
}

/// Replaces volatile parts of package metadata: the build key, its short form, the
/// release, sizes.
pub fn redact(text: &str) -> String {
    let b = built();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.out.join("build-report.json")).expect("report")).expect("json");
    let key = report["build_key"].as_str().expect("build_key").to_string();
    let release = report["release"].as_str().expect("release").to_string();
    let series = release.split('.').take(2).collect::<Vec<_>>().join("\\.");
    let text: String = text
        .lines()
        .map(|l| if l.trim_start().starts_with("Installed-Size:") { " Installed-Size: [KIB]" } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    let kernel_version = report["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["role"] == "headers")
        .and_then(|i| i["version"].as_str())
        .map(str::to_string);
    let text = match kernel_version {
        Some(v) => text.replace(&v, "[KVER]"),
        None => text,
    };
    text.replace(&key, "[BUILD-KEY]")
        .replace(&key[..12], "[REV]")
        .replace(&release, "[RELEASE]")
        .replace(&format!("^{series}\\."), "^[SERIES]\\.")
}
