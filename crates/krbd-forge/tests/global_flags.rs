//! The flags every command takes: `--version` names the commit the binary was built from,
//! and `--quiet` / `--verbose` change what a command says on stderr, before or after the
//! command's name.

mod common;

use common::*;

#[test]
fn version_names_the_commit_it_was_built_from() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(krbd_testsupport::workspace_root())
        .output()
        .expect("run git");
    assert!(head.status.success(), "the tests run in a git checkout");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let out = forge().arg("--version").output().expect("run krbd-forge --version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(version.starts_with(&format!("krbd-forge {}", env!("CARGO_PKG_VERSION"))), "{version}");
    assert!(version.contains(&head), "{version:?} names HEAD {head}");
}

#[test]
fn quiet_silences_the_build_summary_and_verbose_adds_the_hunks() {
    let release = default_build().report["release"].as_str().expect("release").to_string();
    let out = tempfile::tempdir().expect("tempdir");
    let run = |flags: &[&str]| {
        let o = forge()
            .args(flags)
            .args(["build", "--kernel", &release, "--out"])
            .arg(out.path())
            .output()
            .expect("run krbd-forge build");
        assert!(o.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let normal = run(&[]);
    assert!(normal.contains("built 3 modules"), "{normal}");
    assert!(!normal.contains("hunk 1 "), "{normal}");
    assert_eq!(run(&["--quiet"]), "", "--quiet before the command");
    let verbose = run(&["--verbose"]);
    assert!(verbose.contains("built 3 modules") && verbose.contains("hunk 1 "), "{verbose}");
}
