//! Shared by the integration tests: the binary, the shared cache, and the default build,
//! which is made once per test binary.

#![allow(dead_code)]

use assert_cmd::Command;
use krbd_fetch::deb::DebArchive;
use krbd_formats::compress::{self, Compression, XzThreads};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub mod rhel;
mod stock;
// Not every test binary proves a build against its stock modules.
#[allow(unused_imports)]
pub use stock::*;

/// The tool's cache shared by every test binary (packages are large).
pub fn cache_dir() -> PathBuf {
    krbd_testsupport::test_cache_dir().join("forge-cache")
}

pub fn forge() -> Command {
    let mut c = Command::cargo_bin("krbd-forge").expect("the krbd-forge binary");
    c.env("KRBD_FORGE_CACHE", cache_dir());
    c.env_remove("XDG_CACHE_HOME");
    // The test-only series (test-series, recovery-weight-selftest) by name; only
    // recovery-weight is built into the binary.
    c.env("KRBD_FORGE_PATCHES", krbd_testsupport::workspace_root().join("patches"));
    c
}

pub struct Built {
    pub report: Value,
    pub out: PathBuf,
    _keep: tempfile::TempDir,
}

/// `krbd-forge build --json` into a fresh out folder; panics with the output on failure.
pub fn build(extra: &[&str]) -> Built {
    let dir = tempfile::tempdir().expect("tempdir");
    let out =
        forge().args(["build", "--json", "--out"]).arg(dir.path()).args(extra).output().expect("run krbd-forge build");
    assert!(
        out.status.success(),
        "build {extra:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("build --json prints JSON");
    let path = PathBuf::from(report["out"].as_str().expect("report names its out folder"));
    Built { report, out: path, _keep: dir }
}

/// The default target, built unpatched (`--series none`), once per test binary.
pub fn default_build() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| build(&["--series", "none"]))
}

/// The cached .deb of the report's input with this role.
pub fn input_deb(report: &Value, role: &str) -> PathBuf {
    let sha = report["inputs"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["role"] == role))
        .and_then(|i| i["sha256"].as_str())
        .unwrap_or_else(|| panic!("report has no {role} input"));
    cache_dir().join("debs").join(format!("{sha}.deb"))
}

/// The stock module `name` (libceph, ceph, rbd) from the target's linux-image package,
/// decompressed when the package ships it as .ko.xz.
pub fn stock_module(image_deb: &Path, name: &str) -> Vec<u8> {
    let deb = DebArchive::open(image_deb).expect("open image .deb");
    let mut found = None;
    deb.walk_data(|rel, entry| {
        let file = rel.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if rel.starts_with("lib/modules") && (file == format!("{name}.ko") || file == format!("{name}.ko.xz")) {
            let mut raw = Vec::new();
            entry.read_to_end(&mut raw).expect("read module");
            let c = if file.ends_with(".xz") { Compression::Xz } else { Compression::None };
            let mut plain = Vec::new();
            compress::decoder(&raw[..], c, XzThreads::Single)
                .and_then(|mut d| d.read_to_end(&mut plain))
                .expect("decompress module");
            found = Some(plain);
            return Ok(false);
        }
        Ok(true)
    })
    .expect("walk image .deb");
    found.unwrap_or_else(|| panic!("no {name}.ko in {}", image_deb.display()))
}

/// The live cluster's maps that `placement_cluster` copies next to the placement crate's
/// tests (with `KRBD_UPDATE_CLUSTER_FIXTURES=1`), named after their shaping steps, and that
/// `selftest_kernel` feeds to the kernel: one list, so that writer and reader agree.
pub const CLUSTER_FIXTURE_MAPS: [&str; 7] =
    ["ec-pool-pg6", "upmaps", "pg-temp", "osd3-down", "straw-tunables-legacy", "straw-tunables-hammer", "weight-set"];

/// Where the cluster fixtures live: the placement crate's own test fixtures.
pub fn cluster_fixtures_dir() -> PathBuf {
    krbd_testsupport::workspace_root().join("crates/krbd-placement/tests/fixtures/cluster")
}

/// This tree's krbd-host for glibc 2.17, built once per test run (incremental: seconds
/// when nothing changed).
pub fn target_krbd_host() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = krbd_testsupport::workspace_root();
        let out = root.join("target/glibc-2.17/krbd-host");
        let status = std::process::Command::new("bash")
            .arg(root.join("scripts/build-target-binary.sh"))
            .arg(&out)
            .env("JOBS", "2")
            .status()
            .expect("run scripts/build-target-binary.sh");
        assert!(status.success(), "scripts/build-target-binary.sh failed: {status}");
        out
    })
}

pub use krbd_testsupport::run_ok as run;

/// The two newest 6.12 ABIs `targets` lists with their source, older first (never a
/// release named in a test: the archive drops old ones).
pub fn two_newest_612() -> (String, String) {
    let out = forge().args(["targets", "--json"]).output().expect("run targets");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let releases: Vec<String> = rows
        .as_array()
        .expect("a list")
        .iter()
        .filter(|t| t["source_available"] == true)
        .filter_map(|t| t["release"].as_str())
        .filter(|r| r.starts_with("6.12."))
        .map(String::from)
        .collect();
    assert!(releases.len() >= 2, "apt offers two 6.12 ABIs with source: {releases:?}");
    (releases[1].clone(), releases[0].clone())
}
