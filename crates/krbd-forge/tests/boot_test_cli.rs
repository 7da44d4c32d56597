//! `krbd-forge boot-test` from the outside: exit codes, messages, JSON, teardown.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The default target's release, as `targets --json` names it (never a fixed one: the
/// archive drops old releases).
fn release() -> &'static str {
    &krbd_testsupport::default_target().release
}

fn image_deb() -> PathBuf {
    let t = krbd_testsupport::default_target();
    krbd_testsupport::debian_package(&format!("linux-image-{}", t.release), Some(&t.version))
}

/// The package's own libceph/ceph/rbd (.ko.xz as shipped) stand in for our build.
fn stock_modules(dir: &Path) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards '*/libceph.ko.xz' '*/fs/ceph/ceph.ko.xz' '*/rbd.ko.xz'",
            image_deb().display(),
            dir.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in walk(dir) {
        if f.extension().is_some_and(|e| e == "xz") {
            std::fs::rename(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn forge() -> Command {
    Command::cargo_bin("krbd-forge").unwrap()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(cmd);
        }
    }
    found
}

#[test]
fn help_explains_exit_codes() {
    let out = forge().args(["boot-test", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Exit codes:",
        "--cluster",
        "--image-deb",
        "serial log",
        "   17  guest                 boot-test: the guest never finished",
        "   16  test-failed",
        "   19  disagreement",
        "--agreement",
        "modules agree",
        "/dev/kvm",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn missing_kernel_package_exits_5() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let out = forge()
        .args(["boot-test", "--kernel", release(), "--json", "--modules"])
        .arg(&mods)
        .arg("--image-deb")
        .arg(tmp.path().join("no-such.deb"))
        .arg("--work-dir")
        .arg(tmp.path().join("work"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "bad-input", "{v}");
    assert_eq!(v["error"]["exit_code"], 5, "{v}");
    assert_eq!(v["error"]["stage"], "boot", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("cannot open"), "{v}");
}

#[test]
fn empty_modules_folder_exits_5() {
    let tmp = tempfile::tempdir().unwrap();
    let out = forge().args(["boot-test", "--kernel", release(), "--modules"]).arg(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no .ko files"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_kernel_release_exits_3() {
    // Without --image-deb the release is looked up in apt's index; a made-up one is bad input.
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let out = forge()
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .args(["boot-test", "--kernel", "0.0.0-no-such-release-amd64", "--modules"])
        .arg(&mods)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("linux-image-0.0.0-no-such-release-amd64"), "{err}");
}

#[test]
fn qemu_not_in_path_exits_9() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let empty_bin = tmp.path().join("bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let out = forge()
        .env("PATH", &empty_bin)
        .args(["boot-test", "--kernel", release(), "--modules"])
        .arg(&mods)
        .arg("--image-deb")
        .arg(image_deb())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("qemu-system-x86_64") && err.contains("install qemu-system-x86"), "{err}");
}

#[test]
fn stock_set_passes_with_json_report() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let work = tmp.path().join("work");
    let out = forge()
        .args(["boot-test", "--kernel", release(), "--json", "--timeout", "300", "--modules"])
        .arg(&mods)
        .arg("--image-deb")
        .arg(image_deb())
        .arg("--work-dir")
        .arg(&work)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["guest_release"], release());
    let modules = v["modules"].as_array().unwrap();
    for name in ["libceph", "ceph", "rbd"] {
        let m = modules.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} missing: {v}"));
        assert_eq!(m["role"], "ours");
        assert_eq!(m["loaded"], true, "{m}");
    }
    assert!(work.join("report.json").is_file() && work.join("serial.log").is_file());
    // The report's shape, for scripts. Paths, timings, the release and the stock package's
    // build-ids vary (the default target moves with the archive); each loaded build-id must
    // equal the file's.
    let libceph = modules.iter().find(|m| m["name"] == "libceph").unwrap();
    assert!(libceph["kernel_messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap_or("").contains("libceph: loaded")));
    // Which accelerator depends on the machine; the reason is always given.
    let accel = v["accelerator"].as_str().unwrap_or("");
    assert!(accel.starts_with("tcg: ") || accel.starts_with("kvm: "), "{accel}");
    for m in modules.iter().filter(|m| m["loaded"] == true) {
        assert_eq!(m["loaded_build_id"], m["expected_build_id"], "{m}");
    }
    assert_eq!(v["kernel_release"], release());
    insta::assert_json_snapshot!("boot_test_report_stock", v, {
        ".accelerator" => "[accelerator]",
        ".serial_log" => "[path]",
        ".elapsed_secs" => "[secs]",
        ".guest_release" => "[release]",
        ".kernel_release" => "[release]",
        ".modules[].expected_build_id" => insta::dynamic_redaction(build_id),
        ".modules[].loaded_build_id" => insta::dynamic_redaction(build_id),
        ".modules[].origin" => "[origin]",
        // Asynchronous kernel lines (e.g. "random: crng init done") land wherever they land.
        ".modules[].kernel_messages" => "[kernel messages]",
    });
}

/// A build-id redacted, a missing one (`null`, the module did not load) kept.
fn build_id(value: insta::internals::Content, _: insta::internals::ContentPath<'_>) -> insta::internals::Content {
    if value.as_str().is_some() {
        "[build-id]".into()
    } else {
        value
    }
}

#[test]
fn guest_timeout_with_cluster_tears_everything_down() {
    // 5 s is far too short for a TCG boot plus the RBD steps: the run must fail with the
    // serial tail, and leave neither QEMU nor Ceph daemons nor the namespace behind.
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let work = tmp.path().join("work");
    let out = forge()
        .args(["boot-test", "--kernel", release(), "--cluster", "--timeout", "5", "--modules"])
        .arg(&mods)
        .arg("--image-deb")
        .arg(image_deb())
        .arg("--work-dir")
        .arg(&work)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(17), "{err}");
    assert!(err.contains("did not finish within 5 s") && err.contains("serial.log"), "{err}");
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "left running");
    // The cluster did start (in a namespace named after the CLI's pid), and is gone.
    let line = err.lines().find(|l| l.contains("Ceph cluster up in namespace")).unwrap_or_else(|| panic!("{err}"));
    let name = line.split_whitespace().nth(5).unwrap_or("<none>");
    assert!(name.starts_with("krbd-"), "{line}");
    let ns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(!ns.contains(name), "namespace {name} left: {ns}");
}

#[test]
fn sigterm_during_the_cluster_run_tears_everything_down() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    stock_modules(&mods);
    let work = tmp.path().join("work");
    let bin = assert_cmd::cargo::cargo_bin("krbd-forge");
    let mut child = std::process::Command::new(bin)
        .args(["boot-test", "--kernel", release(), "--cluster", "--modules"])
        .arg(&mods)
        .arg("--image-deb")
        .arg(image_deb())
        .arg("--work-dir")
        .arg(&work)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until QEMU runs (serial log exists), then ask the command to stop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !work.join("serial.log").exists() {
        assert!(std::time::Instant::now() < deadline, "QEMU never started");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "left running");
    let line = err.lines().find(|l| l.contains("Ceph cluster up in namespace")).unwrap_or_else(|| panic!("{err}"));
    let name = line.split_whitespace().nth(5).unwrap_or("<none>");
    let ns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains(name), "namespace {name} left");
}

#[test]
fn agreement_run_counts_every_corpus_module() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let out = forge()
        .args(["boot-test", "--agreement", "--kernel", release(), "--timeout", "600", "--image-deb"])
        .arg(image_deb())
        .arg("--headers")
        .arg(krbd_testsupport::kmod_corpus().headers_dir)
        .arg("--work-dir")
        .arg(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(work.join("agreement.json")).unwrap()).unwrap();
    let total = v["modules_total"].as_u64().unwrap();
    assert!(total >= 40, "{total}");
    assert_eq!(v["modules_agreeing"].as_u64(), Some(total));
    assert_eq!(v["modules"].as_array().unwrap().len() as u64, total);
    assert!(stdout.contains(&format!("{total}/{total} modules agree")), "{stdout}");
    assert!(!stdout.contains("DISAGREE"), "{stdout}");
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "QEMU left running");
}

#[test]
fn agreement_excludes_a_module_set() {
    let out = forge().args(["boot-test", "--agreement", "--kernel", release(), "--modules", "/tmp"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn agreement_without_qemu_is_a_json_error_with_exit_9() {
    let out = forge()
        .args([
            "boot-test",
            "--agreement",
            "--json",
            "--kernel",
            release(),
            "--qemu",
            "/nonexistent/qemu-system-x86_64",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["exit_code"], 9);
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("install qemu-system-x86"), "{v}");
}

/// The release `krbd-forge build` builds without --kernel, as `targets --json` marks it.
fn default_release() -> String {
    let out = forge().args(["targets", "--json"]).output().unwrap();
    let targets: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let default = targets.as_array().and_then(|a| a.iter().find(|t| t["default"] == true));
    default.and_then(|t| t["release"].as_str()).expect("a default target").to_string()
}

#[test]
fn kernel_and_modules_default_to_the_default_build() {
    let out = forge().args(["boot-test", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let usage = text.lines().find(|l| l.starts_with("Usage:")).expect("a usage line");
    assert!(!usage.contains("--kernel"), "--kernel is required:\n{usage}");
    // No QEMU runs: the modules are looked for (in out/RELEASE of the working folder) first.
    let cwd = tempfile::tempdir().unwrap();
    let out = forge().current_dir(cwd.path()).args(["boot-test", "--qemu", "/bin/sh", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["stage"], "modules", "{stderr}");
    let release = default_release();
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&format!("out/{release}")), "{release} not in: {message}");
}

#[test]
fn a_bad_suite_folder_or_test_name_exits_5_before_anything_starts() {
    let out = forge().args(["boot-test", "--json", "--suite", "/nonexistent/suite"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "bad-input");
    assert_eq!(v["error"]["stage"], "suite");
    let suite = krbd_testsupport::workspace_root().join("crates/krbd-forge/tests/tiny-suite");
    let out = forge().args(["boot-test", "--test", "nope", "--suite"]).arg(&suite).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no test nope (it has: fail.sh, hang.sh, mismatch.t, pass.sh, pass.t, regression.sh)"),
        "{stderr}"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = forge().args(["boot-test", "--suite"]).arg(empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tests in it"));
    // --test needs --suite; --suite and --cluster do not mix.
    assert_eq!(forge().args(["boot-test", "--test", "x"]).output().unwrap().status.code(), Some(2));
    let out = forge().args(["boot-test", "--cluster", "--suite"]).arg(&suite).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
