//! `krbd-forge build` for real: Debian packages through apt, the real kbuild, the kernel's
//! compiler. The unpatched default target must reproduce the stock modules.

mod common;

use common::*;
use krbd_kmod::KernelModule;
use std::collections::BTreeMap;
use std::path::Path;

const MODULES: [&str; 3] = ["libceph", "ceph", "rbd"];

fn module(out: &Path, file: &str) -> KernelModule {
    let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    KernelModule::parse(&bytes).expect("parse built module")
}

fn crcs(m: &KernelModule) -> BTreeMap<String, u32> {
    m.versions.iter().map(|v| (v.name.clone(), v.crc)).collect()
}

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
    assert_eq!(built.report["release"], default_release);

    let image = input_deb(&built.report, "image");
    for name in MODULES {
        let ours = module(&built.out, &format!("{name}.ko"));
        let stock = KernelModule::parse(&stock_module(&image, name)).expect("parse stock module");
        assert_eq!(ours.vermagic(), stock.vermagic(), "{name}: vermagic");
        assert!(ours.vermagic().unwrap_or("").starts_with(&format!("{default_release} ")));
        let (a, b) = (crcs(&ours), crcs(&stock));
        assert!(!b.is_empty(), "{name}: the stock module has modversions");
        assert_eq!(a, b, "{name}: every imported symbol's CRC equals the stock module's");
        let stripped = module(&built.out, &format!("stripped/{name}.ko"));
        assert!(stripped.section(".debug_info").is_none(), "{name}: stripped copy has no debug info");
        let (ours_text, stock_text) = (stripped.section(".text"), stock.section(".text"));
        assert!(ours_text.is_some_and(|t| !t.is_empty()), "{name}: has .text");
        assert!(ours_text == stock_text, "{name}: .text is byte-identical to the stock module's");
        assert_eq!(ours.info("depends"), stock.info("depends"), "{name}: depends");
    }
    let report_modules = built.report["modules"].as_array().expect("modules in report");
    assert_eq!(report_modules.len(), 3);
    for m in report_modules {
        assert!(m["size"].as_u64().unwrap_or(0) > m["stripped_size"].as_u64().unwrap_or(u64::MAX));
    }
}

#[test]
fn second_run_is_a_cache_hit_with_the_same_modules() {
    let first = default_build();
    let again = build(&[]);
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
