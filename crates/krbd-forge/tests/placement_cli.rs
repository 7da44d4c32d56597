//! `krbd-forge placement map` against osdmaptool, plus its error paths and exit codes.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;

fn corpus_map() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/ceph-object-corpus/16.2.0-90-g50f1821b4c/OSDMap/2a53d6a9e9e3450cb83844a8a73866b7");
    assert!(p.is_file(), "the shared ceph-object-corpus is missing at {}", p.display());
    p
}

fn forge() -> Command {
    Command::cargo_bin("krbd-forge").unwrap()
}

#[test]
fn map_output_is_a_plain_diff_against_osdmaptool() {
    let map = corpus_map();
    let ours = forge().args(["placement", "map"]).arg(&map).output().unwrap();
    assert!(ours.status.success());
    let theirs =
        Command::new("osdmaptool").arg(&map).arg("--test-map-pgs-dump-all").output().expect("osdmaptool installed");
    let theirs: Vec<String> = String::from_utf8(theirs.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("pool ") || l.contains(" raw ("))
        .map(str::to_owned)
        .collect();
    let ours: Vec<String> = String::from_utf8(ours.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(ours, theirs);
    let pgs = ours.iter().filter(|l| l.contains(" raw (")).count();
    println!("{pgs} PGs identical");
    assert!(pgs > 500);
}

#[test]
fn json_lists_every_pg() {
    let out = forge().args(["placement", "map", "--json"]).arg(corpus_map()).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pgs: usize = v["pools"].as_array().unwrap().iter().map(|p| p["pgs"].as_array().unwrap().len()).sum();
    assert_eq!(pgs, 533);
    assert_eq!(v["fork_format"], false);
    let first = &v["pools"][0]["pgs"][0];
    assert_eq!(first["pgid"], "1.0");
    assert!(first["up"].is_array() && first["acting_primary"].is_i64());
}

#[test]
fn recovery_weight_override_moves_pgs() {
    let map = corpus_map();
    let base = forge().args(["placement", "map", "--pool", "2"]).arg(&map).output().unwrap();
    let low =
        forge().args(["placement", "map", "--pool", "2", "--recovery-weight", "osd.1=0"]).arg(&map).output().unwrap();
    assert!(base.status.success() && low.status.success());
    let low = String::from_utf8(low.stdout).unwrap();
    assert_ne!(String::from_utf8(base.stdout).unwrap(), low);
    // PG 2.0 keeps osd.1; every other PG of the pool loses it from up.
    for line in low.lines().filter(|l| l.contains(" raw (")) {
        let up = line.split(" up (").nth(1).unwrap().split(')').next().unwrap();
        if !line.starts_with("2.0 ") {
            assert!(!up.contains("[1,") && !up.contains(",1,") && !up.contains(",1]"), "{line}");
        }
    }
}

#[test]
fn bad_inputs_fail_with_documented_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    forge().args(["placement", "map"]).arg(tmp.path().join("missing")).assert().code(9);
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, [8u8, 7, 0xff, 0xff, 0xff, 0x7f, 1, 2]).unwrap();
    let out = forge().args(["placement", "map"]).arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ends early"), "{err}");
    forge().args(["placement", "map", "--pool", "999"]).arg(corpus_map()).assert().code(2);
    forge().args(["placement", "map", "--recovery-weight", "osd.1=1.5"]).arg(corpus_map()).assert().code(2);
    forge().args(["placement", "map", "--recovery-weight", "osd.99=0.5"]).arg(corpus_map()).assert().code(2);
    // With --json, failures are the one JSON error shape on stdout.
    let out = forge().args(["placement", "map", "--json", "--pool", "999"]).arg(corpus_map()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert_eq!(v["error"]["exit_code"], 2, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("pool 999 is not in the map"), "{v}");
    let out = forge().args(["placement", "plan", "--json", "--osd", "1"]).arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "bad-input", "{v}");
}

#[test]
fn encode_fork_then_diff_and_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let fork = tmp.path().join("fork.osdmap");
    forge()
        .args(["placement", "encode-fork", "--recovery-weight", "osd.2=0.5", "-o"])
        .arg(&fork)
        .arg(corpus_map())
        .assert()
        .success();
    let data = std::fs::read(&fork).unwrap();
    assert_eq!(data[1], 8, "fork maps carry wrapper compat 8");
    // osdmaptool (stock Pacific) must refuse the fork map, as unpatched clients do.
    let st = Command::new("osdmaptool").arg(&fork).arg("--print").output().unwrap();
    assert!(!st.status.success(), "stock osdmaptool accepted a compat-8 map");

    let same = forge().args(["placement", "diff", "--json"]).arg(corpus_map()).arg(corpus_map()).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(v["changed"].as_array().unwrap().len(), 0);
    assert_eq!(v["compared"], 533);

    let d = forge().args(["placement", "diff", "--json"]).arg(corpus_map()).arg(&fork).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    let changed = v["changed"].as_array().unwrap();
    assert!(!changed.is_empty());
    for c in changed {
        assert!(c["before"]["up"].as_array().unwrap().contains(&serde_json::json!(2)));
        assert!(!c["after"]["up"].as_array().unwrap().contains(&serde_json::json!(2)));
    }

    let p =
        forge().args(["placement", "plan", "--osd", "osd.2", "--steps", "2", "--json"]).arg(&fork).output().unwrap();
    assert!(p.status.success());
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(v["start_weight"], 0x8000);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    // Ramping from 0.5 to 1.0 only ever gains PGs, and ends holding what the stock map holds.
    let gained: usize = steps.iter().map(|s| s["gained"].as_array().unwrap().len()).sum();
    assert_eq!(gained, changed.len());
    assert!(steps.iter().all(|s| s["lost"].as_array().unwrap().is_empty()));
}

/// One exit-code table: the top-level --help and every subcommand's show the same text.
#[test]
fn every_help_shows_the_one_exit_code_table() {
    let table = krbd_host::exit::table();
    let commands: [&[&str]; 15] = [
        &[],
        &["build"],
        &["targets"],
        &["patch"],
        &["patch", "check"],
        &["check"],
        &["boot-test"],
        &["placement"],
        &["placement", "map"],
        &["placement", "plan"],
        &["placement", "diff"],
        &["placement", "encode-fork"],
        &["install"],
        &["rollback"],
        &["status"],
    ];
    for command in commands {
        let out = forge().args(command).arg("--help").output().unwrap();
        assert!(out.status.success(), "{command:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(table), "{command:?} --help lacks the table:\n{text}");
    }
    let out = forge().args(["package", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(table));
}
