//! `krbd-host` from the outside: its commands, the shared exit-code table in every
//! `--help`, and the one JSON error shape.

use assert_cmd::Command;
use serde_json::Value;

fn host() -> Command {
    Command::cargo_bin("krbd-host").expect("the krbd-host binary")
}

#[test]
fn every_help_shows_the_one_exit_code_table() {
    let table = krbd_host::exit::table();
    for args in
        [&["--help"][..], &["install", "--help"], &["rollback", "--help"], &["status", "--help"], &["check", "--help"]]
    {
        let out = host().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(table), "{args:?} lacks the table:\n{text}");
    }
    let out = host().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["install", "rollback", "status", "check"] {
        assert!(text.contains(command), "{command} missing:\n{text}");
    }
    for forge_only in ["build", "boot-test", "placement", "package"] {
        let listed = text.lines().any(|l| l.starts_with(&format!("  {forge_only} ")));
        assert!(!listed, "{forge_only} is krbd-forge's:\n{text}");
    }
}

#[test]
fn check_without_headers_for_the_kernel_is_a_target_error() {
    let dir = tempfile::tempdir().unwrap();
    let ko = dir.path().join("rbd.ko");
    std::fs::write(&ko, b"not a module").unwrap();
    let out = host().arg("check").arg(&ko).args(["--kernel", "0.0.0-no-such-kernel", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "target");
    assert_eq!(v["error"]["exit_code"], 3);
    assert_eq!(v["error"]["release"], "0.0.0-no-such-kernel");
    assert!(v["error"]["message"].as_str().unwrap().contains("/lib/modules/0.0.0-no-such-kernel/build"), "{v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("linux-headers-0.0.0-no-such-kernel"), "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no headers for kernel 0.0.0-no-such-kernel"), "{err}");
    assert!(err.contains("\nhint: install linux-headers-"), "{err}");
}

#[test]
fn check_against_a_folder_that_is_not_headers_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let ko = dir.path().join("rbd.ko");
    std::fs::write(&ko, b"not a module").unwrap();
    let out = host().arg("check").arg(&ko).arg("--headers").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Module.symvers is missing"));
    assert!(out.stdout.is_empty());
}

#[test]
fn status_of_a_kernel_that_is_not_installed_is_a_json_target_error() {
    let root = tempfile::tempdir().unwrap();
    let out = host()
        .arg("status")
        .arg("--root")
        .arg(root.path())
        .args(["--kernel", "6.1.0-99-amd64", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "target", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("kernel 6.1.0-99-amd64 is not installed"), "{v}");
    assert_eq!(v["error"]["hint"], Value::Null, "{v}");
}

#[test]
fn rollback_with_nothing_installed_exits_14() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("lib/modules/6.1.0-99-amd64")).unwrap();
    // No live swap on a scratch root: --no-reload, so no kernel is driven (a real one, as
    // this binary has no test hooks unless the workspace's test run enables them).
    let out = host()
        .arg("rollback")
        .arg("--root")
        .arg(root.path())
        .args(["--kernel", "6.1.0-99-amd64", "--no-reload", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(14), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "nothing-to-roll-back", "{v}");
}

#[test]
fn status_and_help_survive_a_closed_stdout() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("lib/modules/6.12.0-1-amd64")).unwrap();
    let status = ["status", "--root", root.path().to_str().unwrap(), "--kernel", "6.12.0-1-amd64"];
    for args in [&["--help"][..], &status] {
        let open = host().args(args).output().unwrap();
        assert!(!open.stdout.is_empty(), "{args:?} prints nothing on stdout; the test proves nothing");
        // The read end is closed before the command writes, as behind `| head -c1`.
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("krbd-host"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let closed = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&closed.stderr);
        assert!(!stderr.contains("panicked"), "{args:?} panicked on a closed stdout:\n{stderr}");
        assert_eq!(closed.status.code(), open.status.code(), "{args:?}:\n{stderr}");
    }
}

/// #13 point 8: a path that cannot be read (missing, a file where a folder is expected)
/// says its cause exactly once, as text and in the JSON error, with exit code 9.
#[test]
fn check_says_a_directory_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let ko = dir.path().join("rbd.ko");
    std::fs::write(&ko, b"not a module").unwrap();
    let missing = dir.path().join("no/such/dir");
    let afile_slash = format!("{}/", ko.display());
    let cases: [(Vec<&std::ffi::OsStr>, &str); 4] = [
        (
            vec![missing.as_os_str(), "--headers".as_ref(), dir.path().as_os_str()],
            "No such file or directory (os error 2)",
        ),
        (vec![afile_slash.as_ref(), "--headers".as_ref(), dir.path().as_os_str()], "Not a directory (os error 20)"),
        (vec![ko.as_os_str(), "--headers".as_ref(), missing.as_os_str()], "No such file or directory (os error 2)"),
        (vec![ko.as_os_str(), "--headers".as_ref(), ko.as_os_str()], "Not a directory (os error 20)"),
    ];
    for (args, cause) in cases {
        let out = host().arg("check").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(9), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{args:?}: {stderr}");
        let out = host().arg("check").args(&args).arg("--json").output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
        let said = format!("{} {}", v["error"]["message"], v["error"]["hint"]);
        assert_eq!(said.matches(cause).count(), 1, "{args:?}: {v}");
        assert_eq!(v["error"]["exit_code"], 9, "{v}");
    }
}

/// `generate man` writes one page per command (section 8: a root tool), each renders with
/// man(1); the bash completion script loads in bash and completes a command name.
#[test]
fn generated_man_pages_and_completions_cover_every_command() {
    let bin = assert_cmd::cargo::cargo_bin("krbd-host");
    let dir = tempfile::tempdir().unwrap();
    let out = host().args(["generate", "man", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pages = krbd_testsupport::docs::check_man_pages(&bin, "8", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(pages >= 6, "{pages} pages");
    assert!(dir.path().join("krbd-host-preflight.8").is_file());

    let out = host().args(["generate", "completions", "bash", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    krbd_testsupport::docs::check_bash_completion(&dir.path().join("krbd-host"), "krbd-host", "pre", "preflight")
        .unwrap_or_else(|e| panic!("{e}"));
    for (shell, file) in [("zsh", "_krbd-host"), ("fish", "krbd-host.fish")] {
        let printed = host().args(["generate", "completions", shell]).output().unwrap();
        assert!(printed.status.success());
        host().args(["generate", "completions", shell, "--out"]).arg(dir.path()).assert().success();
        assert_eq!(std::fs::read(dir.path().join(file)).unwrap(), printed.stdout, "{shell}");
    }
}
