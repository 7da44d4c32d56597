//! Checks that a binary built without the `test-hooks` feature ignores the installer's
//! fault-injection variables: KRBD_INSTALL_CRASH_AFTER does not kill it,
//! KRBD_INSTALL_SIMULATE_KERNEL does not replace the real kernel, and `install --help`
//! does not mention them. Used on the shipped krbd-host (glibc_target.rs, in every run) and
//! on a krbd-forge built without the feature (install_hooks_off.rs).

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

/// A made-up release on a scratch root: nothing here asks the archive for it.
const RELEASE: &str = "6.12.0-1-amd64";

fn run(bin: &Path, root: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .arg("--root")
        .arg(root)
        .args(["--kernel", RELEASE])
        .env("KRBD_INSTALL_SIMULATE_KERNEL", "1")
        .env("KRBD_INSTALL_CRASH_AFTER", "rollback-begin")
        .output()
        .expect("run the binary")
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

fn journal(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join(format!("var/lib/krbd-forge/{RELEASE}/journal.json"))).unwrap())
        .unwrap()
}

pub fn crash_point_does_not_fire(bin: &Path) {
    let root = root_with_an_installed_journal();
    let o = run(bin, root.path(), &["rollback", "--no-reload", "--json"]);
    assert_eq!(o.status.signal(), None, "killed: {}", String::from_utf8_lossy(&o.stderr));
    let journal = journal(root.path());
    let steps = journal["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s == "rollback-restored"), "went on past rollback-begin: {journal}");
}

pub fn kernel_is_not_simulated(bin: &Path) {
    // With the simulated kernel a rollback on a scratch root would swap the loaded modules
    // (steps rollback-unloaded, rollback-loaded); the real kernel can only swap those of the
    // live root, so the rollback restores the files and leaves the loaded modules alone.
    let root = root_with_an_installed_journal();
    let o = run(bin, root.path(), &["rollback", "--json"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{:?}: {stderr}", o.status);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON outcome");
    assert_eq!(v["reloaded"], false, "{v}");
    assert!(v["notes"].to_string().contains("is not the running system's root"), "{v}");
    let journal = journal(root.path());
    assert_eq!(journal["state"], "rolled-back", "{journal}");
    let steps = journal["steps"].as_array().unwrap();
    assert!(!steps.iter().any(|s| s == "rollback-unloaded" || s == "rollback-loaded"), "{journal}");
}

pub fn help_does_not_mention_the_hooks(bin: &Path) {
    let o = Command::new(bin).args(["install", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && help.contains("Exit codes"), "{help}");
    assert!(!help.contains("KRBD_INSTALL"), "{help}");
}

/// All three checks.
pub fn ignores_the_hooks(bin: &Path) {
    crash_point_does_not_fire(bin);
    kernel_is_not_simulated(bin);
    help_does_not_mention_the_hooks(bin);
}
