//! Our kernel-RBD suite (`qa/krbd`, see its README) through `boot-test --suite`: the
//! patched default target in the debootstrapped Debian 12 guest against a throwaway
//! three-OSD cluster, and in the same invocation (same guest root, same cluster) the stock
//! set as the control. Every test must pass with our set; a test that fails only with ours
//! is a regression of the set and fails this test by name, and a test that fails with both
//! (an environment problem) fails it too, reported as such. Every row, with its time, is
//! printed (`--nocapture`) for the README's performance table.

mod common;

use common::*;
use serde_json::Value;

/// Each test's own limit in the guest; the slowest (osdmap_growth.sh) needs a few
/// minutes under TCG on a loaded machine.
const TEST_TIMEOUT: u64 = 900;

fn rows(report: &Value) -> &Vec<Value> {
    report["tests"].as_array().unwrap_or_else(|| panic!("no test rows: {report:#}"))
}

fn seconds(row: Option<&Value>) -> String {
    row.and_then(|t| t["seconds"].as_f64()).map_or("-".into(), |s| format!("{s:.1} s"))
}

/// One line per test: outcome and seconds with our set and with the stock set (`control`),
/// the classification, and the output tail of failures.
fn describe(report: &Value, control: &Value) -> String {
    let mut text = String::new();
    for t in rows(report) {
        let stock_row = control["tests"].as_array().and_then(|a| a.iter().find(|c| c["name"] == t["name"]));
        text += &format!(
            "{:<28} {:<8} {:>9}  stock: {:<8} {:>9}  {}\n",
            t["name"].as_str().unwrap_or("?"),
            t["outcome"].as_str().unwrap_or("?"),
            seconds(Some(t)),
            t["stock_outcome"].as_str().unwrap_or("-"),
            seconds(stock_row),
            t["classification"].as_str().unwrap_or("-"),
        );
        if t["outcome"] != "pass" {
            let out = t["output"].as_str().unwrap_or("");
            let lines: Vec<&str> = out.lines().collect();
            for l in &lines[lines.len().saturating_sub(40)..] {
                text += &format!("    | {l}\n");
            }
        }
        for k in t["kernel_concerns"].as_array().into_iter().flatten() {
            text += &format!("    kernel: {}\n", k.as_str().unwrap_or(""));
        }
    }
    text
}

#[test]
fn krbd_suite_passes_with_the_patched_set_and_the_stock_control() {
    let built = build(&[]);
    let release = built.report["release"].as_str().unwrap().to_string();
    assert!(built.report["series"]["series"].as_str().unwrap_or("").starts_with("recovery-weight/"));
    let suite = krbd_testsupport::workspace_root().join("qa/krbd");
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = forge()
        .args(["boot-test", "--json", "--stock", "--kernel", &release, "--modules"])
        .arg(&built.out)
        .arg("--image-deb")
        .arg(input_deb(&built.report, "image"))
        .arg("--suite")
        .arg(&suite)
        .args(["--test-timeout", &TEST_TIMEOUT.to_string(), "--work-dir"])
        .arg(work.path())
        .output()
        .expect("run boot-test --suite");
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("boot-test --suite --json ({e}):\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout))
    });
    let (ours, stock) = (&v["ours"], &v["stock"]);
    let table = describe(ours, stock);
    eprintln!(
        "qa/krbd on {release}: {wall:.0} s wall for both runs; ours {:.0} s, stock {:.0} s in the guest ({})\n{table}",
        ours["elapsed_secs"].as_f64().unwrap_or(0.0),
        stock["elapsed_secs"].as_f64().unwrap_or(0.0),
        ours["accelerator"].as_str().unwrap_or("?"),
    );

    // The guest ran the files under test, loaded by `rbd map`; the control ran the package's.
    for (report, origin) in [(ours, "/updates/krbd-forge/"), (stock, "/kernel/")] {
        for m in report["proof"].as_array().expect("proof rows") {
            assert_eq!(m["matches"], true, "loaded module is the file under test: {m:#}");
            assert!(m["modprobe_path"].as_str().unwrap_or("").contains(origin), "{m:#}");
        }
    }
    // Every test of the folder ran in both guests: a missing row is a failure too.
    let names: Vec<&str> = rows(ours).iter().filter_map(|t| t["name"].as_str()).collect();
    let mut files: Vec<String> = std::fs::read_dir(&suite)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sh") || n.ends_with(".t"))
        .collect();
    files.sort();
    assert_eq!(names, files, "{table}");
    assert_eq!(rows(stock).len(), files.len(), "the control ran every test:\n{}", describe(stock, ours));

    assert_eq!(v["regressions"], serde_json::json!([]), "failed only with our set:\n{table}");
    assert_eq!(v["environment_failures"], serde_json::json!([]), "failed with the stock set too:\n{table}");
    for t in rows(ours) {
        assert_eq!(t["outcome"], "pass", "{table}");
        assert_eq!(t["kernel_concerns"], serde_json::json!([]), "{table}");
    }
    assert_eq!(v["passed"], true, "{table}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
