//! `krbd-forge build` for real: Debian packages through apt, the real kbuild, the kernel's
//! compiler. The unpatched default target must reproduce the stock modules.

mod common;

use common::*;

#[test]
fn default_target_reproduces_the_stock_modules() {
    let built = default_build();
    let default = forge().args(["targets", "--json"]).output().expect("run targets");
    let targets: serde_json::Value = serde_json::from_slice(&default.stdout).expect("targets --json");
    let default_release = targets
        .as_array()
        .and_then(|a| a.iter().find(|t| t["default"] == true))
        .and_then(|t| t["release"].as_str())
        .expect("a default target");
    assert_reproduces_stock(built, default_release);
    let report_modules = built.report["modules"].as_array().expect("modules in report");
    assert_eq!(report_modules.len(), 3);
    for m in report_modules {
        assert!(m["size"].as_u64().unwrap_or(0) > m["stripped_size"].as_u64().unwrap_or(u64::MAX));
    }
}

#[test]
fn second_run_is_a_cache_hit_with_the_same_modules() {
    let first = default_build();
    let again = build(&["--series", "none"]);
    assert_eq!(again.report["cache_hit"], true, "{:#}", again.report["stages"]);
    assert_eq!(again.report["build_key"], first.report["build_key"]);
    for (a, b) in first.report["modules"].as_array().unwrap().iter().zip(again.report["modules"].as_array().unwrap()) {
        assert_eq!(a["sha256"], b["sha256"]);
    }
}

#[test]
fn test_series_is_applied_and_reported_and_only_the_build_is_redone() {
    let base = default_build();
    let release = base.report["release"].as_str().unwrap().to_string();
    let patched = build(&["--kernel", &release, "--series", "test-series"]);
    let series = &patched.report["series"];
    assert_eq!(series["series"], "test-series");
    let patches = series["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 2);
    for p in patches {
        for h in p["hunks"].as_array().expect("hunks") {
            assert_ne!(h["status"], "failed", "{h}");
            assert!(h["line"].as_u64().unwrap_or(0) > 0);
        }
    }
    assert_ne!(patched.report["build_key"], base.report["build_key"]);
    let stages = patched.report["stages"].as_array().unwrap();
    let cached = |name: &str| stages.iter().find(|s| s["name"] == name).map(|s| s["cached"] == true);
    assert_eq!(cached("headers"), Some(true), "headers reused");
    assert_eq!(cached("extract"), Some(true), "sources reused");
    // The modules themselves are new (compiled now, or by an earlier run of this test).
    assert!(cached("compile libceph") == Some(false) || cached("build") == Some(true));

    let libceph = module(&patched.out, "libceph.ko");
    assert_eq!(libceph.info("krbd_forge_series"), Some("test-series"));
    assert_eq!(module(&patched.out, "rbd.ko").info("krbd_forge_series"), Some("test-series"));
    assert_eq!(module(&patched.out, "ceph.ko").info("krbd_forge_series"), None);
    // A modinfo line changes no code: ceph's text and every CRC stay the stock ones.
    let stock_ceph = module(&base.out, "stripped/ceph.ko");
    assert!(module(&patched.out, "stripped/ceph.ko").section(".text") == stock_ceph.section(".text"));
    assert_eq!(crcs(&module(&patched.out, "rbd.ko")), crcs(&module(&base.out, "rbd.ko")));
}

#[test]
fn default_build_applies_the_recovery_weight_variant_of_the_target() {
    let base = default_build();
    let release = base.report["release"].as_str().unwrap().to_string();
    // No --series: the recovery_weight series is the default, its variant picked by release.
    let patched = build(&["--kernel", &release]);
    let series = &patched.report["series"];
    assert!(series["series"].as_str().unwrap_or("").starts_with("recovery-weight/"), "{series}");
    let patches = series["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 5, "every patch of the variant is listed");
    let hunks: Vec<_> = patches.iter().flat_map(|p| p["hunks"].as_array().unwrap().iter()).collect();
    assert!(hunks.len() >= 10, "every hunk is listed: {}", hunks.len());
    assert!(hunks.iter().all(|h| h["status"] != "failed" && h["status"] != "fuzz"), "{series:#}");
    // The patch changes struct ceph_osdmap: libceph's exports change, and ceph and rbd are
    // built against them, not against the stock CRCs.
    let exports = |b: &Built| crcs(&module(&b.out, "rbd.ko"));
    assert_ne!(exports(&patched), exports(base), "rbd imports the patched libceph's CRCs");
}

#[test]
fn patch_check_reports_each_variant_against_the_target_source() {
    let base = default_build();
    let release = base.report["release"].as_str().unwrap();
    let out = forge().args(["patch", "check", "--json", "--source", release]).output().expect("run patch check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let variants = v["variants"].as_array().expect("variants");
    let by_name = |n: &str| variants.iter().find(|c| c["variant"]["name"] == n).unwrap_or_else(|| panic!("{n}"));
    assert_eq!(by_name("linux-6.1-6.12")["applies"], true);
    assert_eq!(by_name("linux-6.1-6.12")["clean"], true);
    // The el7 variants target another layout: they must not apply to a 6.x tree.
    for el7 in ["el7-327", "el7-514", "el7-1127"] {
        assert_eq!(by_name(el7)["applies"], false, "{el7}");
        assert!(by_name(el7)["failure"].as_str().unwrap_or("").contains("does not apply"));
    }
}

#[test]
fn build_report_carries_the_loaders_verdicts() {
    let built = default_build();
    let check = &built.report["check"];
    let modules = check["modules"].as_array().expect("check verdicts in the report");
    assert_eq!(modules.len(), 3);
    for m in modules {
        assert_eq!(m["verdict"], "loads", "{m}");
    }
}

#[test]
fn check_with_kernel_accepts_the_set_and_flags_a_mixed_one() {
    let base = default_build();
    let release = base.report["release"].as_str().unwrap().to_string();
    let ko = |b: &Built, n: &str| b.out.join(format!("{n}.ko")).display().to_string();
    let ok = forge()
        .args(["check", "--json", "--kernel", &release])
        .args(MODULES.iter().map(|n| ko(base, n)))
        .output()
        .expect("run check");
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));

    // A patched libceph with the stock-built ceph and rbd: the kernel refuses them.
    let patched = build(&["--kernel", &release]);
    let mixed = forge()
        .args(["check", "--kernel", &release, &ko(&patched, "libceph"), &ko(base, "ceph"), &ko(base, "rbd")])
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&mixed.stdout);
    assert_eq!(mixed.status.code(), Some(10), "{text}");
    assert!(text.contains("disagrees about version of symbol"), "{text}");
}

#[test]
fn selftest_series_builds_a_libceph_with_the_debugfs_file() {
    let base = default_build();
    let release = base.report["release"].as_str().unwrap().to_string();
    let built = build(&["--kernel", &release, "--series", "recovery-weight-selftest"]);
    let series = &built.report["series"];
    assert_eq!(series["patches"].as_array().map(|p| p.len()), Some(6), "{series:#}");
    let libceph = std::fs::read(built.out.join("stripped/libceph.ko")).unwrap();
    let has = |needle: &[u8]| libceph.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"osdmap_selftest"), "the test-only debugfs file is compiled in");
}
