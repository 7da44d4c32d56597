//! `krbd-forge patch check` from the outside: what a wrong --source says.

mod common;

use common::forge;

#[test]
fn a_missing_source_path_is_no_such_file_with_exit_9() {
    let out = forge().args(["patch", "check", "--source", "/no/such/dir", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("/no/such/dir: no such file"), "{stderr}");
    assert!(!stderr.contains("is not a kernel release"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "environment");
    assert_eq!(v["error"]["exit_code"], 9);
}

#[test]
fn a_missing_tarball_in_the_working_folder_is_no_such_file_too() {
    let cwd = tempfile::tempdir().unwrap();
    let out = forge().current_dir(cwd.path()).args(["patch", "check", "--source", "linux.tar.xz"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("linux.tar.xz: no such file"), "{stderr}");
}

#[test]
fn a_malformed_release_is_still_a_target_error() {
    let out = forge().args(["patch", "check", "--source", "not a release"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not a kernel release"), "{stderr}");
}
