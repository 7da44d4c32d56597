//! The product's proof, end to end: the default target built with the recovery_weight
//! series, booted in the target's own kernel, the set loaded, and an RBD image of a real
//! (stock Ceph 16) cluster mapped, written, formatted, mounted and read back.

mod common;

use common::*;

#[test]
fn patched_default_target_boots_and_moves_data_through_a_real_cluster() {
    let built = build(&[]);
    let release = built.report["release"].as_str().unwrap().to_string();
    assert!(built.report["series"]["series"].as_str().unwrap_or("").starts_with("recovery-weight/"));
    let work = tempfile::tempdir().unwrap();
    let out = forge()
        .args(["boot-test", "--json", "--cluster", "--timeout", "600", "--kernel", &release, "--modules"])
        .arg(&built.out)
        .arg("--image-deb")
        .arg(input_deb(&built.report, "image"))
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .expect("run boot-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("boot-test --json");
    assert_eq!(v["passed"], true, "{v:#}");
    assert_eq!(v["guest_release"], release.as_str());
    for name in ["libceph", "ceph", "rbd"] {
        let m = v["modules"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == name))
            .unwrap_or_else(|| panic!("{name} missing: {v}"));
        assert_eq!(m["role"], "ours", "{m}");
        assert_eq!(m["loaded"], true, "{m}");
        // The kernel runs exactly the file we built.
        assert_eq!(m["build_id_matches"], true, "{m}");
    }
    let c = &v["cluster"];
    assert!(!c.is_null(), "the cluster part ran: {v:#}");
    assert!(c["guest_device_sha256"].is_string(), "{c:#}");
    assert_eq!(c["guest_device_sha256"], c["host_export_sha256"], "what the guest wrote is what the cluster holds");
    assert_eq!(c["host_written_sha256"], c["guest_read_sha256"], "what the host wrote is what the guest read");
}
