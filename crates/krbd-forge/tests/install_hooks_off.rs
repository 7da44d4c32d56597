//! A krbd-forge built without the `test-hooks` feature (every release build, every shipped
//! binary) ignores the installer's fault-injection variables: KRBD_INSTALL_CRASH_AFTER does
//! not kill it, KRBD_INSTALL_SIMULATE_KERNEL does not replace the real kernel, and
//! `install --help` does not mention them. Compiled only without the feature (the install
//! tests that use the hooks need it, see Cargo.toml).

#![cfg(not(feature = "test-hooks"))]

use assert_cmd::Command;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

const RELEASE: &str = "6.12.117+deb12-amd64";

fn forge(root: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("krbd-forge")
        .expect("the krbd-forge binary")
        .args(args)
        .arg("--root")
        .arg(root)
        .args(["--kernel", RELEASE])
        .env("KRBD_INSTALL_SIMULATE_KERNEL", "1")
        .env("KRBD_INSTALL_CRASH_AFTER", "rollback-begin")
        .output()
        .expect("run krbd-forge")
}

/// A scratch root whose journal says an install of an empty set finished.
fn root_with_an_installed_journal() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(format!("lib/modules/{RELEASE}"))).unwrap();
    let state = dir.path().join(format!("var/lib/krbd-forge/{RELEASE}"));
    std::fs::create_dir_all(&state).unwrap();
    let journal = serde_json::json!({
        "format": 1, "release": RELEASE, "state": "installed", "source": "out", "placed": [], "replaced": [],
        "loaded_before": {}, "reload": false, "update_initramfs": false, "failure": null,
        "steps": ["begin", "staged", "backed-up", "swapped", "depmod", "committed"],
    });
    std::fs::write(state.join("journal.json"), journal.to_string()).unwrap();
    dir
}

#[test]
fn the_crash_point_does_not_fire() {
    let root = root_with_an_installed_journal();
    let o = forge(root.path(), &["rollback", "--no-reload", "--json"]);
    assert_eq!(o.status.signal(), None, "killed: {}", String::from_utf8_lossy(&o.stderr));
    let journal = journal(root.path());
    let steps = journal["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s == "rollback-restored"), "went on past rollback-begin: {journal}");
}

#[test]
fn the_kernel_is_not_simulated() {
    // With the simulated kernel a live rollback on a scratch root would run and finish; the
    // real kernel can only be driven on the live root, so the request is refused.
    let root = root_with_an_installed_journal();
    let o = forge(root.path(), &["rollback"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code().is_some_and(|c| c != 0), "{:?}: {stderr}", o.status);
    assert!(stderr.contains("--root /"), "{stderr}");
    assert_eq!(journal(root.path())["state"], "installed", "nothing was rolled back");
}

fn journal(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join(format!("var/lib/krbd-forge/{RELEASE}/journal.json"))).unwrap())
        .unwrap()
}

#[test]
fn help_does_not_mention_the_hooks() {
    let o = Command::cargo_bin("krbd-forge").unwrap().args(["install", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && help.contains("Exit codes"), "{help}");
    assert!(!help.contains("KRBD_INSTALL"), "{help}");
}
