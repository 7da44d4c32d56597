//! `boot-test --suite` on the tiny suite beside this file (`tests/tiny-suite`): the patched
//! default target in a debootstrapped Debian 12 guest (the guest root from the shared
//! cache), a throwaway 3-OSD cluster, and the stock set as the control in the same
//! invocation. One run proves the runner's reporting:
//!
//! - pass.sh (workunit conventions, features 37, `rbd map` with its udev link and
//!   `--ms-mode secure` reaching the kernel, I/O) and pass.t pass;
//! - fail.sh fails with its output kept; mismatch.t fails with cram's diff;
//! - hang.sh is killed after the limit it declares (`krbd-timeout:`, below --test-timeout)
//!   and reported as timed out;
//! - regression.sh fails only with the set in updates/: classified a regression, while
//!   fail.sh (fails on both) is an environment failure;
//! - the loaded libceph, rbd and ceph are the files under test (GNU build-id), loaded by
//!   `rbd map`/modprobe from updates/krbd-forge/, and the stock run loads the package's.

mod common;

use common::*;
use serde_json::Value;

const TEST_TIMEOUT: u64 = 20;

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tests"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no row {name}: {report:#}"))
}

#[test]
fn tiny_suite_reports_pass_fail_timeout_diff_and_proves_the_loaded_set() {
    let built = build(&[]);
    let release = built.report["release"].as_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let suite = krbd_testsupport::workspace_root().join("crates/krbd-forge/tests/tiny-suite");
    let started = std::time::Instant::now();
    let out = forge()
        .args(["boot-test", "--json", "--stock", "--ms-mode", "secure", "--kernel", &release, "--modules"])
        .arg(&built.out)
        .arg("--image-deb")
        .arg(input_deb(&built.report, "image"))
        .arg("--suite")
        .arg(&suite)
        .args(["--test-timeout", &TEST_TIMEOUT.to_string(), "--work-dir"])
        .arg(work.path())
        .output()
        .expect("run boot-test --suite");
    eprintln!("boot-test --suite --stock: {:.0} s", started.elapsed().as_secs_f64());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(16), "test-failed expected\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).expect("boot-test --suite --json");
    let ours = &v["ours"];
    assert_eq!(ours["guest_release"], release.as_str(), "{ours:#}");
    for (report, origin) in [(ours, "/updates/krbd-forge/"), (&v["stock"], "/kernel/")] {
        for m in report["proof"].as_array().expect("proof rows") {
            assert_eq!(m["matches"], true, "loaded module is the file under test: {m:#}");
            assert_eq!(m["loaded_before_map"], false, "rbd map loads it: {m:#}");
            assert!(m["modprobe_path"].as_str().unwrap_or("").contains(origin), "{m:#}");
        }
    }
    assert!(ours["map"].as_str().unwrap_or("").starts_with("ok"), "{ours:#}");

    for name in ["pass.sh", "pass.t"] {
        let t = row(ours, name);
        assert_eq!(t["outcome"], "pass", "{t:#}");
        assert_eq!(t["stock_outcome"], "pass", "{t:#}");
    }
    // Every output is kept in full; pass.sh printed the kernel client's options.
    let pass_output = std::fs::read_to_string(row(ours, "pass.sh")["output_file"].as_str().unwrap()).unwrap();
    assert!(pass_output.contains("ms_mode=secure"), "--ms-mode reaches the kernel: {pass_output}");
    let fail = row(ours, "fail.sh");
    assert_eq!((fail["outcome"].as_str(), fail["exit_code"].as_i64()), (Some("fail"), Some(3)), "{fail:#}");
    assert!(fail["output"].as_str().unwrap_or("").contains("the reason is on stderr"), "{fail:#}");
    assert_eq!(fail["classification"], "environment", "fails with the stock set too: {fail:#}");

    // hang.sh declares its own limit (krbd-timeout: 12), below the run's 20 s.
    let hang = row(ours, "hang.sh");
    assert_eq!((hang["outcome"].as_str(), hang["timeout_secs"].as_u64()), (Some("timeout"), Some(12)), "{hang:#}");
    let secs = hang["seconds"].as_f64().unwrap_or(0.0);
    assert!((12.0..TEST_TIMEOUT as f64).contains(&secs), "{hang:#}");
    assert_eq!(row(ours, "pass.sh")["timeout_secs"], TEST_TIMEOUT, "the run's limit");

    let diff = row(ours, "mismatch.t");
    assert_eq!(diff["outcome"], "fail", "{diff:#}");
    let text = diff["output"].as_str().unwrap_or("");
    assert!(text.contains("-  not what it prints") && text.contains("+  actual"), "cram's diff: {diff:#}");

    let regression = row(ours, "regression.sh");
    assert_eq!(regression["classification"], "regression", "{regression:#}");
    assert_eq!(v["regressions"], serde_json::json!(["regression.sh"]), "{v:#}");
    let mut env: Vec<&str> = v["environment_failures"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    env.sort();
    assert_eq!(env, ["fail.sh", "hang.sh", "mismatch.t"], "{v:#}");
    assert_eq!(v["passed"], false);
}
