//! Every printing command survives a reader that closed stdout (`krbd-forge targets |
//! head -c1`): no panic, and the exit status the command has with stdout open.

mod common;

use std::process::{Output, Stdio};

/// Runs `args` with the read end of stdout closed before the command starts, so its
/// first write meets a closed pipe, as behind `| head -c1` once head has exited.
fn with_stdout_closed(args: &[&str]) -> Output {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("krbd-forge"))
        .args(args)
        .env("KRBD_FORGE_CACHE", common::cache_dir())
        .env_remove("XDG_CACHE_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run krbd-forge");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait for krbd-forge")
}

/// The command exits as it does with stdout open, and says nothing about a panic.
fn assert_survives_closed_stdout(args: &[&str]) {
    let open = common::forge().args(args).output().expect("run krbd-forge");
    assert!(!open.stdout.is_empty(), "{args:?} prints nothing on stdout; the test proves nothing");
    let closed = with_stdout_closed(args);
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked on a closed stdout:\n{stderr}");
    assert_eq!(closed.status.code(), open.status.code(), "{args:?} with stdout closed:\n{stderr}");
}

#[test]
fn help_survives_a_closed_stdout() {
    assert_survives_closed_stdout(&["--help"]);
    assert_survives_closed_stdout(&["patch", "check", "--help"]);
}

#[test]
fn targets_survives_a_closed_stdout() {
    assert_survives_closed_stdout(&["targets"]);
}

#[test]
fn status_survives_a_closed_stdout() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("lib/modules/6.12.0-1-amd64")).expect("mkdir");
    let root = root.path().to_str().expect("a UTF-8 temp path");
    assert_survives_closed_stdout(&["status", "--root", root, "--kernel", "6.12.0-1-amd64"]);
    assert_survives_closed_stdout(&["status", "--root", root, "--kernel", "6.12.0-1-amd64", "--json"]);
}

#[test]
fn check_json_survives_a_closed_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ko = dir.path().join("rbd.ko");
    std::fs::write(&ko, b"not a module").expect("write module");
    let ko = ko.to_str().expect("a UTF-8 temp path");
    assert_survives_closed_stdout(&["check", ko, "--kernel", "0.0.0-no-such-kernel", "--json"]);
}

#[test]
fn patch_check_json_survives_a_closed_stdout() {
    assert_survives_closed_stdout(&["patch", "check", "--source", "not-a-release", "--json"]);
}

#[test]
fn generate_and_preflight_survive_a_closed_stdout() {
    assert_survives_closed_stdout(&["generate", "completions", "bash"]);
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("lib/modules/6.12.0-1-amd64")).expect("mkdir");
    let root = root.path().to_str().expect("a UTF-8 temp path");
    assert_survives_closed_stdout(&["preflight", "6.12.0-1-amd64", "--root", root, "--json"]);
}
