//! What a new user gets from `cargo install`: a binary that carries the shipped patch series
//! and needs no source checkout. It is installed into a temporary root and run from `/` in a
//! mount namespace where the checkout's `patches/` and `crates/` are hidden under empty
//! tmpfs mounts, so nothing compiled-in can reach them.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's target folder: this test binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("<target>/<profile>/deps/<test>").to_path_buf()
}

/// `cargo install --path crates/krbd-forge --root ROOT`, offline, reusing the workspace's
/// compiled dependencies (same profile and features as this test, so nothing is rebuilt
/// that the other tests use).
fn cargo_install(root: &Path) -> PathBuf {
    let ws = krbd_testsupport::workspace_root();
    let mut c = Command::new(env!("CARGO"));
    // Not the variables cargo set for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*, OUT_DIR):
    // some build scripts (ring's) watch them, and a changed value would rebuild them here and
    // again in the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "OUT_DIR" {
            c.env_remove(name.as_ref());
        }
    }
    c.current_dir(&ws).env("CARGO_TARGET_DIR", target_dir());
    c.args(["install", "--offline", "--locked", "--no-track", "--path", "crates/krbd-forge", "--root"]).arg(root);
    if cfg!(debug_assertions) {
        c.arg("--debug");
    }
    if cfg!(feature = "test-hooks") {
        c.args(["--features", "test-hooks"]);
    }
    let out = c.output().expect("run cargo install");
    assert!(out.status.success(), "cargo install failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let bin = root.join("bin/krbd-forge");
    assert!(bin.is_file(), "{} installed", bin.display());
    bin
}

/// `bin ARGS` from `/`, with the checkout's `patches/` and `crates/` hidden.
fn run_without_checkout(bin: &Path, args: &[&str]) -> std::process::Output {
    let ws = krbd_testsupport::workspace_root().canonicalize().expect("workspace root");
    let hide = format!(
        "mount -t tmpfs krbd-hide '{0}/patches' && mount -t tmpfs krbd-hide '{0}/crates' && exec \"$@\"",
        ws.display()
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &hide, "sh"]).arg(bin).args(args);
    c.current_dir("/").env("KRBD_FORGE_CACHE", cache_dir()).env_remove("KRBD_FORGE_PATCHES");
    c.env_remove("XDG_CACHE_HOME").output().expect("run the installed krbd-forge")
}

#[test]
fn installed_binary_applies_the_built_in_series_with_no_checkout() {
    let release = default_build().report["release"].as_str().expect("release").to_string();
    let root = tempfile::tempdir().expect("tempdir");
    let bin = cargo_install(root.path());
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().to_str().expect("UTF-8 path");
    let run = run_without_checkout(&bin, &["build", "--json", "--kernel", &release, "--out", out]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{:?}\n{stdout}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_str(&stdout).expect("build --json prints JSON");
    let series = &report["series"];
    let name = series["series"].as_str().unwrap_or("");
    let variant =
        name.strip_prefix("recovery-weight/").unwrap_or_else(|| panic!("recovery-weight/<variant>: {series}"));
    // The built-in copy is the checkout's: the variant's series file lists the same patches.
    let listed = std::fs::read_to_string(
        krbd_testsupport::workspace_root().join("patches/recovery-weight").join(variant).join("series"),
    )
    .expect("the variant's series file");
    let expected: Vec<&str> = listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let applied: Vec<&str> =
        series["patches"].as_array().expect("patches").iter().filter_map(|p| p["patch"].as_str()).collect();
    assert_eq!(applied, expected, "{series:#}");
    let ws = krbd_testsupport::workspace_root().canonicalize().expect("workspace root");
    assert!(!stdout.contains(ws.to_str().expect("UTF-8 path")), "the report names the checkout:\n{stdout}");
}

#[test]
fn an_empty_or_missing_patches_variable_is_a_usage_error_not_a_silent_fallback() {
    let out = tempfile::tempdir().expect("tempdir");
    let missing = out.path().join("no-such-folder");
    let out_arg = out.path().to_str().expect("UTF-8 path");
    let commands: [&[&str]; 2] =
        [&["build", "--json", "--out", out_arg], &["patch", "check", "--json", "--source", "6.1.0-0-amd64"]];
    for value in [std::ffi::OsStr::new(""), missing.as_os_str()] {
        for args in commands {
            let o = forge().env("KRBD_FORGE_PATCHES", value).args(args).output().expect("run krbd-forge");
            let v: Value =
                serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{args:?}: JSON error on stdout"));
            assert_eq!(o.status.code(), Some(2), "{args:?} with {value:?}: {v:#}");
            assert_eq!(v["error"]["kind"], "usage", "{v:#}");
            assert!(v["error"]["message"].as_str().unwrap_or("").contains("KRBD_FORGE_PATCHES"), "{v:#}");
        }
    }
    assert!(std::fs::read_dir(out.path()).expect("out").next().is_none(), "nothing was built");
}
