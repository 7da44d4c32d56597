//! `krbd-forge placement map` against osdmaptool, plus its error paths and exit codes.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;

fn corpus_map() -> PathBuf {
    corpus_file("16.2.0-90-g50f1821b4c/OSDMap/2a53d6a9e9e3450cb83844a8a73866b7")
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

fn corpus_file(rel: &str) -> PathBuf {
    let p = krbd_testsupport::shared_fixture("ceph-object-corpus").join(rel);
    assert!(p.is_file(), "the shared ceph-object-corpus lacks {rel} (at {})", p.display());
    p
}

#[test]
fn a_bad_crc_is_refused_with_its_offsets_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = std::fs::read(corpus_map()).unwrap();
    // Any flipped bit inside the bytes the CRC covers (all of them) is refused; here one in
    // the middle of the map.
    let at = data.len() / 2;
    data[at] ^= 0x10;
    let bad = tmp.path().join("flipped");
    std::fs::write(&bad, &data).unwrap();
    let out = forge().args(["placement", "map"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    let crc_at = data.len() - 4;
    assert!(err.contains("CRC") && err.contains(&format!("byte {crc_at}")) && err.contains("bytes 0.."), "{err}");
    assert!(err.contains("--no-crc-check"), "{err}");
    assert!(out.stdout.is_empty());
    // With --json: the one error shape, the CRC's region and values as fields.
    let out = forge().args(["placement", "map", "--json"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "bad-input", "{v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("--no-crc-check"), "{v}");
    assert_eq!(v["error"]["crc_start"], 0, "{v}");
    assert!(v["error"]["crc_stored"] != v["error"]["crc_computed"], "{v}");
    // The flag reads it anyway: it decodes, or fails on its own terms, never on the CRC.
    let skipped = forge().args(["placement", "map", "--no-crc-check"]).arg(&bad).output().unwrap();
    assert!(!String::from_utf8(skipped.stderr).unwrap().contains("CRC"));
}

#[test]
fn an_incremental_is_named_and_can_be_applied() {
    let inc = corpus_file("0.46-add-osd-uuid/OSDMap-Incremental/2");
    let out = forge().args(["placement", "map"]).arg(&inc).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("is an OSDMap incremental") && err.contains("epoch 2") && err.contains("--apply"), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    let out = forge().args(["placement", "map", "--json"]).arg(&inc).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "bad-input", "{v}");
    assert_eq!(v["error"]["incremental_epoch"], 2, "{v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("--apply"), "{v}");

    let full1 = corpus_file("0.46-add-osd-uuid/OSDMap/1");
    let applied = forge().args(["placement", "map"]).arg(&full1).arg("--apply").arg(&inc).output().unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let want = forge().args(["placement", "map"]).arg(corpus_file("0.46-add-osd-uuid/OSDMap/2")).output().unwrap();
    assert_eq!(applied.stdout, want.stdout);
    // An incremental that does not follow the map is a usage error.
    let inc3 = corpus_file("0.46-add-osd-uuid/OSDMap-Incremental/3");
    forge().args(["placement", "map"]).arg(&full1).arg("--apply").arg(&inc3).assert().code(2);
    let out = forge().args(["placement", "map", "--json"]).arg(&full1).arg("--apply").arg(&inc3).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert_eq!((v["error"]["incremental_epoch"].as_u64(), v["error"]["map_epoch"].as_u64()), (Some(3), Some(1)), "{v}");
}

#[test]
fn diff_exits_1_when_maps_differ_and_prints_map_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let fork = tmp.path().join("fork.osdmap");
    forge()
        .args(["placement", "encode-fork", "--recovery-weight", "osd.2=0.5", "-o"])
        .arg(&fork)
        .arg(corpus_map())
        .assert()
        .success();
    let same = forge().args(["placement", "diff"]).arg(corpus_map()).arg(corpus_map()).output().unwrap();
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(String::from_utf8(same.stdout).unwrap(), "0 of 533 PGs changed\n");
    let d = forge().args(["placement", "diff"]).arg(corpus_map()).arg(&fork).output().unwrap();
    assert_eq!(d.status.code(), Some(1));
    let text = String::from_utf8(d.stdout).unwrap();
    let before: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix('-')).collect();
    let after: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix('+')).collect();
    assert!(!before.is_empty() && before.len() == after.len(), "{text}");
    // Each side is a line of `placement map` for its map.
    let map_a =
        String::from_utf8(forge().args(["placement", "map"]).arg(corpus_map()).output().unwrap().stdout).unwrap();
    let map_b = String::from_utf8(forge().args(["placement", "map"]).arg(&fork).output().unwrap().stdout).unwrap();
    assert!(before.iter().all(|l| map_a.lines().any(|m| m == *l)), "{text}");
    assert!(after.iter().all(|l| map_b.lines().any(|m| m == *l)), "{text}");
    let json = forge().args(["placement", "diff", "--json"]).arg(corpus_map()).arg(&fork).output().unwrap();
    assert_eq!(json.status.code(), Some(1));
    // Differing maps are the diff's answer, not a failure: the normal diff JSON, no error.
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("the diff as JSON");
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["changed"].as_array().unwrap().len(), before.len(), "{v}");
    assert!(json.stderr.is_empty(), "{}", String::from_utf8_lossy(&json.stderr));
    let same = forge().args(["placement", "diff", "--json"]).arg(corpus_map()).arg(corpus_map()).output().unwrap();
    assert_eq!(same.status.code(), Some(0));
    // `placement diff --help` says what its 0 and 1 mean.
    let help = String::from_utf8(forge().args(["placement", "diff", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("1 when they differ (as diff(1))"), "{help}");
}

#[test]
fn osd_stats_complete_the_osdmaptool_output() {
    for map in [corpus_map(), corpus_file("15.2.1-40-ga838bb1aae/OSDMap/f8a544ddae4dec51c58b57c59058bd13")] {
        let ours = forge().args(["placement", "map", "--osd-stats"]).arg(&map).output().unwrap();
        assert!(ours.status.success());
        let theirs = Command::new("osdmaptool").arg(&map).arg("--test-map-pgs-dump-all").output().unwrap();
        assert_eq!(
            String::from_utf8(ours.stdout).unwrap(),
            String::from_utf8(theirs.stdout).unwrap(),
            "{}",
            map.display()
        );
    }
}

#[test]
fn plan_summarizes_each_step_and_lists_pgs_when_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    let fork = tmp.path().join("fork.osdmap");
    forge()
        .args(["placement", "encode-fork", "--recovery-weight", "osd.2=0", "-o"])
        .arg(&fork)
        .arg(corpus_map())
        .assert()
        .success();
    let out = forge().args(["placement", "plan", "--osd", "2", "--steps", "2"]).arg(&fork).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("osd.2: recovery weight 0x0 -> 0x10000 in 2 steps"), "{text}");
    let start = lines.iter().position(|l| l.starts_with("start ")).expect("a starting state line");
    assert!(lines[start + 1].starts_with("step 1 ") && lines[start + 2].starts_with("step 2 "), "{text}");
    assert!(lines[start + 1].contains("PGs move (+") && lines[start + 1].contains("up sets shrink"), "{text}");
    assert!(!text.contains("gains:"), "per-PG lines only with --verbose: {text}");
    assert_eq!(text.matches("PG 0 of pools").count(), 1, "{text}");
    let verbose =
        forge().args(["placement", "plan", "--osd", "2", "--steps", "2", "--verbose"]).arg(&fork).output().unwrap();
    assert!(String::from_utf8(verbose.stdout).unwrap().contains("  gains: "));
}

/// The child's peak resident memory in KiB (`VmHWM`), on Linux.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn map_streams_a_huge_pool_in_bounded_memory() {
    use std::io::BufRead;
    // The corpus map with one pool at 13.6 million PGs (what one flipped bit once made of
    // a pg_num): the first lines must come at once, in memory that does not grow with it.
    let tmp = tempfile::tempdir().unwrap();
    let data = std::fs::read(corpus_map()).unwrap();
    let mut map = krbd_placement::OsdMap::decode(&data).unwrap();
    let pool = map.pools.get_mut(&2).unwrap();
    pool.pg_num = 13_600_000;
    pool.pgp_num = 13_600_000;
    let big = tmp.path().join("big.osdmap");
    std::fs::write(&big, map.encode_wrapped(&data, krbd_placement::encode::Flavor::Stock).unwrap()).unwrap();
    let mut child = forge()
        .args(["placement", "map", "--pool", "2"])
        .arg(&big)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "pool 2 pg_num 13600000");
    let mut n = 0;
    for line in lines.by_ref().take(50_000) {
        assert!(line.unwrap().starts_with("2."));
        n += 1;
    }
    let elapsed = started.elapsed();
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(n, 50_000);
    assert!(elapsed < std::time::Duration::from_secs(30), "the first 50,000 lines took {elapsed:?}");
    if let Some(kib) = rss {
        assert!(kib < 256 * 1024, "peak RSS {kib} KiB while streaming");
    }
}
