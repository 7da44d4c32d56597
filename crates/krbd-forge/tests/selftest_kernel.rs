//! The kernel-selftest differential: libceph built with the test-only
//! `recovery-weight-selftest` series (the recovery_weight patches plus the debugfs file
//! /sys/kernel/debug/ceph/osdmap_selftest) is booted in the default target's own kernel
//! under QEMU, once, and fed fork-format full maps and incrementals with seeded random
//! recovery weights: maps taken from a live Ceph 16 cluster (replicated host and OSD rules,
//! an EC pool, upmaps, temps, a down OSD, straw buckets, legacy tunables), a real Pacific
//! corpus map, an osdmaptool-made map, pools stretched to pg_num >= 65536 (where the fork's
//! u32 product wraps), and a fork full map followed by fork and stock incrementals. Every
//! PG's raw, up and acting set the kernel prints must equal the Rust model's, compared in
//! the guest line for line; malformed fork maps and incrementals must be refused by both
//! the kernel and our decoder.

mod common;

use common::*;
use krbd_placement::encode::Flavor;
use krbd_placement::incremental::Incremental;
use krbd_placement::osdmap::{OSD_EXISTS, OSD_IN, OSD_UP, POOL_TYPE_ERASURE};
use krbd_placement::OsdMap;
use krbd_progress::Silent;
use krbd_vm::initramfs::ExtraFiles;
use krbd_vm::{BootTestSpec, GuestTask};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEED: u64 = 0x005e_ed0f_2026_1127;

/// xorshift64: seeded, so every run feeds the kernel the same maps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A recovery weight: often 1.0 or 0, often anywhere between, sometimes tiny.
    fn weight(&mut self) -> u32 {
        match self.below(20) {
            0..=5 => OSD_IN,
            6..=8 => 0,
            9..=11 => 1 + self.below(0x200) as u32,
            _ => self.below(OSD_IN as u64 + 1) as u32,
        }
    }
    fn weights(&mut self, n: i32) -> Vec<u32> {
        (0..n).map(|_| self.weight()).collect()
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the kernel must print for one input.
enum Expect {
    /// Exactly these PG lines (the model's).
    Pgs { text: String, pgs: usize },
    /// A single `error:` line; our decoder refused the same bytes.
    Refused { why: String },
}

struct Case {
    name: String,
    records: Vec<Vec<u8>>,
    expect: Expect,
}

/// The model's view of a record sequence: a full map then incrementals, as the kernel's
/// selftest applies them (each incremental must be for the next epoch).
fn model(records: &[Vec<u8>]) -> Result<OsdMap, String> {
    let mut map = OsdMap::decode(&records[0]).map_err(|e| format!("full map: {e}"))?;
    for (i, r) in records[1..].iter().enumerate() {
        let inc = Incremental::decode(r).map_err(|e| format!("record {}: {e}", i + 1))?;
        if inc.epoch != map.epoch + 1 {
            return Err(format!("record {}: epoch {} after {}", i + 1, inc.epoch, map.epoch));
        }
        inc.apply(&mut map).map_err(|e| format!("record {}: {e}", i + 1))?;
        map.epoch = inc.epoch;
    }
    Ok(map)
}

fn valid(name: &str, records: Vec<Vec<u8>>) -> Case {
    let map = model(&records).unwrap_or_else(|e| panic!("{name}: our decoder refused a valid input: {e}"));
    assert!(map.is_fork_format(), "{name}: the final map is a fork map");
    let mut text = String::new();
    let mut pgs = 0;
    for (_, _, mappings) in map.map_all(None) {
        for m in mappings {
            m.write_osdmaptool_line(&mut text);
            text.push('\n');
            pgs += 1;
        }
    }
    Case { name: name.into(), records, expect: Expect::Pgs { text, pgs } }
}

fn malformed(name: &str, records: Vec<Vec<u8>>) -> Case {
    let why = match model(&records) {
        Ok(_) => panic!("{name}: our decoder accepted a malformed input"),
        Err(e) => e,
    };
    Case { name: name.into(), records, expect: Expect::Refused { why } }
}

/// A stock or fork map re-encoded as a fork map with the given weights.
fn fork_of(bytes: &[u8], weights: Vec<u32>) -> Vec<u8> {
    let mut map = OsdMap::decode(bytes).expect("decode base map");
    assert_eq!(weights.len(), map.max_osd as usize);
    map.recovery_weight = Some(weights);
    map.encode_wrapped(bytes, Flavor::Fork).expect("encode fork map")
}

fn osdmaptool_map(dir: &Path) -> Vec<u8> {
    let m = dir.join("simple.osdmap");
    let ms = m.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("timeout")
            .arg("120")
            .arg("osdmaptool")
            .args(args)
            .output()
            .expect("run osdmaptool (ceph-base)");
        assert!(out.status.success(), "osdmaptool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // 6 OSDs << 5 bits: one replicated pool of 192 PGs (not a power of two), size 3.
    run(&[
        "--createsimple",
        "6",
        "--pg-bits",
        "5",
        "--with-default-pool",
        "--osd_crush_chooseleaf_type",
        "0",
        "--clobber",
        ms,
    ]);
    read(&m)
}

/// Every input, in the order the guest feeds them. One seeded generator draws every random
/// weight and cut, step after step, so each run builds the same inputs (and reordering the
/// steps would change them).
fn cases(tmp: &Path) -> Vec<Case> {
    let mut rng = Rng(SEED);
    let fx = cluster_fixtures_dir();
    let mut out = cluster_map_cases(&fx, &mut rng);
    out.push(stretched_pg_num_case(&fx));
    out.push(corpus_case(&mut rng));
    let simple_fork = encode_fork_of_osdmaptool_map(tmp, &mut rng);
    out.push(valid("osdmaptool-192pgs-encode-fork", vec![simple_fork.clone()]));
    out.push(wrapping_pg_num_case(&simple_fork));
    let chain = fork_incremental_chain(&fx, &mut rng);
    out.push(valid(&format!("cluster-chain-{}-incrementals", chain.len() - 1), chain.clone()));
    out.extend(malformed_fork_map_cases(&chain[0], &mut rng));
    out.extend(malformed_fork_incremental_cases(&chain));
    out
}

/// Maps of the live cluster, each with random weights.
fn cluster_map_cases(fx: &Path, rng: &mut Rng) -> Vec<Case> {
    let mut out = Vec::new();
    for name in CLUSTER_FIXTURE_MAPS {
        let bytes = read(&fx.join(format!("{name}.osdmap")));
        let n = OsdMap::decode(&bytes).unwrap().max_osd;
        out.push(valid(&format!("cluster-{name}"), vec![fork_of(&bytes, rng.weights(n))]));
    }
    out
}

/// The down-OSD map stretched: replicated pools at pg_num 66,536 (above 65,536, not a
/// power of two: the fork's u32 product wraps) and 1,000, the EC pool at 300.
fn stretched_pg_num_case(fx: &Path) -> Case {
    let base = read(&fx.join("osd3-down.osdmap"));
    let mut big = OsdMap::decode(&base).unwrap();
    let mut ec_seen = false;
    let names = big.pool_names.clone();
    for (id, pool) in big.pools.iter_mut() {
        let n = match names.get(id).map(String::as_str) {
            Some("rbd") => {
                pool.size = 2;
                66_536
            }
            Some("byhost") => 1_000,
            Some("ec") => {
                ec_seen = pool.pool_type == POOL_TYPE_ERASURE;
                300
            }
            _ => continue,
        };
        pool.pg_num = n;
        pool.pgp_num = n;
    }
    assert!(ec_seen, "the cluster map has its EC pool");
    big.recovery_weight = Some(vec![0x8000, 0x10000, 0x3, 0x10000]);
    valid("cluster-pg66536", vec![big.encode_wrapped(&base, Flavor::Fork).unwrap()])
}

/// A real Pacific map from the shared ceph-object-corpus (CI has it; its absence is an error).
fn corpus_case(rng: &mut Rng) -> Case {
    let p = krbd_testsupport::shared_fixture("ceph-object-corpus")
        .join("16.2.0-90-g50f1821b4c/OSDMap/2a53d6a9e9e3450cb83844a8a73866b7");
    let bytes = read(&p);
    let n = OsdMap::decode(&bytes).unwrap().max_osd;
    valid("corpus-16.2", vec![fork_of(&bytes, rng.weights(n))])
}

/// osdmaptool's own map, one OSD down, written by `krbd-forge placement encode-fork` with
/// random weights; returns the fork map's bytes.
fn encode_fork_of_osdmaptool_map(tmp: &Path, rng: &mut Rng) -> Vec<u8> {
    let simple = osdmaptool_map(tmp);
    // createsimple's OSDs exist but are down and out: all up and in, except osd.2 down.
    let mut m = OsdMap::decode(&simple).unwrap();
    for (osd, (state, weight)) in m.osd_state.iter_mut().zip(m.osd_weight.iter_mut()).enumerate() {
        *state |= OSD_EXISTS | OSD_UP;
        *weight = OSD_IN;
        if osd == 2 {
            *state &= !OSD_UP;
        }
    }
    let down = m.encode_wrapped(&simple, Flavor::Stock).unwrap();
    let down_path = tmp.join("simple-down.osdmap");
    std::fs::write(&down_path, &down).unwrap();
    let fork_path = tmp.join("simple-fork.osdmap");
    let mut cmd = forge();
    cmd.args(["placement", "encode-fork"]).arg(&down_path).arg("-o").arg(&fork_path);
    for osd in 0..6 {
        cmd.arg("--recovery-weight").arg(format!("osd.{osd}={:#x}", rng.weight()));
    }
    let status = cmd.output().unwrap();
    assert!(status.status.success(), "encode-fork: {}", String::from_utf8_lossy(&status.stderr));
    read(&fork_path)
}

/// The osdmaptool map at pg_num 65,536 exactly: at weight 1.0 the u32 product pg_num * w
/// is 0, so every PG but PG 0 drops an OSD at full weight; one OSD at half weight.
fn wrapping_pg_num_case(simple_fork: &[u8]) -> Case {
    let mut wide = OsdMap::decode(simple_fork).unwrap();
    for pool in wide.pools.values_mut() {
        pool.pg_num = 65_536;
        pool.pgp_num = 65_536;
    }
    wide.recovery_weight = Some((0..6).map(|o| if o == 4 { 0x8000 } else { OSD_IN }).collect());
    valid("osdmaptool-pg65536-wrap", vec![wide.encode_wrapped(simple_fork, Flavor::Fork).unwrap()])
}

/// The cluster fixtures' incremental chain: the epoch of its (earliest) full map and the
/// incrementals by epoch.
fn fixture_chain(fx: &Path) -> (u32, BTreeMap<u32, Vec<u8>>) {
    let mut incs: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut full_epoch = None;
    for e in std::fs::read_dir(fx).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("inc-").and_then(|n| n.strip_suffix(".bin")) {
            let n: u32 = n.parse().unwrap();
            incs.insert(n, read(&fx.join(&name)));
        }
        if let Some(n) = name.strip_prefix("full-").and_then(|n| n.strip_suffix(".osdmap")) {
            let n: u32 = n.parse().unwrap();
            full_epoch = Some(full_epoch.map_or(n, |f: u32| f.min(n)));
        }
    }
    (full_epoch.expect("a full map to start the chain"), incs)
}

/// A fork full map and the cluster's incrementals after it, re-encoded as fork
/// incrementals with random weight lists (some naming OSDs beyond max_osd, which both
/// sides ignore), every third left stock.
fn fork_incremental_chain(fx: &Path, rng: &mut Rng) -> Vec<Vec<u8>> {
    let (full_epoch, incs) = fixture_chain(fx);
    let full = read(&fx.join(format!("full-{full_epoch}.osdmap")));
    let n = OsdMap::decode(&full).unwrap().max_osd;
    let mut chain = vec![fork_of(&full, rng.weights(n))];
    for (i, (e, bytes)) in incs.iter().enumerate() {
        assert_eq!(*e, full_epoch + 1 + i as u32, "the fixture chain has no gaps");
        let inc = Incremental::decode(bytes).unwrap();
        if i % 3 == 2 {
            chain.push(bytes.clone());
            continue;
        }
        let list = random_weight_list(rng, n);
        chain.push(inc.encode_with_recovery_weights(bytes, Some(&list)).unwrap());
    }
    assert!(chain.len() >= 4, "a chain of several incrementals");
    chain
}

/// One to four (OSD, weight) pairs; one OSD in six lies beyond a map of `max_osd` OSDs.
fn random_weight_list(rng: &mut Rng, max_osd: i32) -> Vec<(u32, u32)> {
    (0..1 + rng.below(4))
        .map(|_| {
            let osd = if rng.below(6) == 0 { 4 + rng.below(1000) as u32 } else { rng.below(max_osd as u64) as u32 };
            (osd, rng.weight())
        })
        .collect()
}

/// Malformed fork maps: truncated inside the recovery_weight array, a count that is not
/// max_osd, a count that claims more than the file holds, wrapper compat 9, and cuts
/// anywhere in the client section.
fn malformed_fork_map_cases(fork: &[u8], rng: &mut Rng) -> Vec<Case> {
    let map = OsdMap::decode(fork).unwrap();
    let n = map.max_osd;
    let lay = map.layout.unwrap();
    let (rw_at, _) = lay.recovery_weight;
    let mut out = vec![malformed("fork-cut-in-recovery-weight", vec![fork[..rw_at + 4 + 6].to_vec()])];
    for (label, count) in
        [("count-max-osd-plus-1", n as u32 + 1), ("count-max-osd-minus-1", n as u32 - 1), ("count-huge", 0x4000_0000)]
    {
        let mut bad = fork.to_vec();
        bad[rw_at..rw_at + 4].copy_from_slice(&count.to_le_bytes());
        out.push(malformed(&format!("fork-recovery-weight-{label}"), vec![bad]));
    }
    let mut bad = fork.to_vec();
    bad[lay.wrapper_start + 1] = 9;
    out.push(malformed("fork-wrapper-compat-9", vec![bad]));
    for k in 0..6 {
        let cut = lay.client_body_start + rng.below((lay.pg_upmap_items.1 - lay.client_body_start) as u64) as usize;
        out.push(malformed(&format!("fork-cut-{k}-at-{cut}"), vec![fork[..cut].to_vec()]));
    }
    out
}

/// Malformed chains: the chain's first fork incremental cut inside its pairs, or lying
/// about their count.
fn malformed_fork_incremental_cases(chain: &[Vec<u8>]) -> Vec<Case> {
    let (pos, fork_inc) = chain.iter().enumerate().skip(1).find(|(_, r)| r[1] == 8).expect("a fork incremental");
    let inc = Incremental::decode(fork_inc).unwrap();
    let after = inc.layout.unwrap().after_new_weight;
    let mut cut_chain = chain[..pos].to_vec();
    cut_chain.push(fork_inc[..after + 4 + 6].to_vec());
    let mut lie_chain = chain[..pos].to_vec();
    let mut lie = fork_inc.clone();
    lie[after..after + 4].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    lie_chain.push(lie);
    vec![malformed("fork-incremental-cut-in-pairs", cut_chain), malformed("fork-incremental-count-huge", lie_chain)]
}

/// Records as the selftest file takes them: u32 little-endian length, then the bytes.
fn framed(records: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in records {
        v.extend_from_slice(&(r.len() as u32).to_le_bytes());
        v.extend_from_slice(r);
    }
    v
}

/// Feeds each input to the selftest file, compares the output with the model's (if any)
/// in the guest, and reports `KRBD|selftest|<n>|done|<lines>|<equal|differs|none>|<first line>`.
const GUEST_SCRIPT: &str = r#"
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ST=/sys/kernel/debug/ceph/osdmap_selftest
if [ ! -w $ST ]; then say "selftest|-|missing|$ST"; fi
for f in /selftest-*.in; do
    n=${f#/selftest-}; n=${n%.in}
    cat $f > $ST 2>/tmp/err || { say "selftest|$n|write_failed|$(oneline </tmp/err)"; continue; }
    cat $ST > /tmp/out 2>/tmp/err || { say "selftest|$n|read_failed|$(oneline </tmp/err)"; continue; }
    lines=$(wc -l < /tmp/out)
    verdict=none
    if [ -f /selftest-$n.exp ]; then
        if cmp -s /selftest-$n.exp /tmp/out; then verdict=equal; else verdict=differs; fi
    fi
    say "selftest|$n|done|$lines|$verdict|$(head -n 1 /tmp/out)"
    if [ $verdict = differs ]; then
        diff /selftest-$n.exp /tmp/out | head -n 20 | while IFS= read -r l; do say "selftest_diff|$n|$l"; done
    fi
    rm -f /tmp/out
done
report_dmesg selftest
"#;

/// The guest's files: each input framed, and the model's PG lines where it has them. The
/// initramfs makes only its own folders: the inputs sit at its root.
fn guest_task(cases: &[Case]) -> GuestTask {
    let mut files = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        files.push((format!("selftest-{i:02}.in"), 0o644, framed(&c.records)));
        if let Expect::Pgs { text, .. } = &c.expect {
            files.push((format!("selftest-{i:02}.exp"), 0o644, text.clone().into_bytes()));
        }
    }
    GuestTask { script: GUEST_SCRIPT.into(), files: ExtraFiles { files } }
}

/// Boots the target's own kernel with the selftest libceph (alone in `tmp/mods`).
fn boot_spec(built: &Built, tmp: &Path) -> BootTestSpec<'static> {
    let release = built.report["release"].as_str().unwrap().to_string();
    let mods = tmp.join("mods");
    std::fs::create_dir(&mods).unwrap();
    std::fs::copy(built.out.join("libceph.ko"), mods.join("libceph.ko")).unwrap();
    BootTestSpec {
        image_deb: input_deb(&built.report, "image"),
        release: Some(release),
        modules: krbd_vm::load_our_modules(&mods).expect("the selftest libceph"),
        busybox: PathBuf::from("/bin/busybox"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        work_dir: tmp.join("work"),
        timeout: Duration::from_secs(1200),
        memory_mb: 1024,
        init_override: None,
        cluster: None,
    }
}

/// What the guest reported, by input number (`-` for a missing selftest file).
struct GuestResults {
    /// The fields after `selftest|<n>|`: `done`, line count, verdict, first line.
    results: BTreeMap<String, Vec<String>>,
    /// The first lines of `diff model kernel` for inputs that differ.
    diffs: BTreeMap<String, Vec<String>>,
}

impl GuestResults {
    fn parse(serial: &str) -> GuestResults {
        let mut results: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut diffs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &krbd_vm::guest::parse_log(serial) {
            let krbd_vm::guest::GuestEvent::Other { kind, fields } = e else { continue };
            let Some(rest) = fields.first() else { continue };
            let mut parts = rest.splitn(2, '|');
            let (Some(n), Some(tail)) = (parts.next(), parts.next()) else { continue };
            match kind.as_str() {
                "selftest" => {
                    results.insert(n.to_string(), tail.split('|').map(str::to_string).collect());
                }
                "selftest_diff" => diffs.entry(n.to_string()).or_default().push(tail.to_string()),
                _ => {}
            }
        }
        GuestResults { results, diffs }
    }
}

/// The guest's verdicts held against the expectations.
#[derive(Default)]
struct Tally {
    /// PGs the kernel mapped exactly like the model.
    pgs_equal: usize,
    /// Malformed inputs the kernel refused too.
    refused: usize,
    /// Valid inputs the kernel mapped exactly like the model.
    maps: usize,
    /// One line per input where kernel and model disagree.
    failures: Vec<String>,
}

impl Tally {
    fn of(cases: &[Case], guest: &GuestResults) -> Tally {
        let mut tally = Tally::default();
        for (i, c) in cases.iter().enumerate() {
            tally.check(c, &format!("{i:02}"), guest);
        }
        tally
    }

    fn check(&mut self, c: &Case, key: &str, guest: &GuestResults) {
        let Some(r) = guest.results.get(key) else {
            self.failures.push(format!("{}: the guest never reported it", c.name));
            return;
        };
        if r.first().map(String::as_str) != Some("done") {
            self.failures.push(format!("{}: {r:?}", c.name));
            return;
        }
        let lines: usize = r.get(1).and_then(|l| l.trim().parse().ok()).unwrap_or(usize::MAX);
        let verdict = r.get(2).map(String::as_str).unwrap_or("");
        let first = r.get(3).map(String::as_str).unwrap_or("");
        match &c.expect {
            Expect::Pgs { pgs, .. } => {
                if verdict == "equal" && lines == *pgs {
                    self.pgs_equal += pgs;
                    self.maps += 1;
                } else {
                    self.failures.push(format!(
                        "{}: kernel printed {lines} lines ({verdict}), the model {pgs} PGs; first kernel line {first:?}; diff (< model, > kernel):\n{}",
                        c.name,
                        guest.diffs.get(key).map(|d| d.join("\n")).unwrap_or_default()
                    ));
                }
            }
            Expect::Refused { why } => {
                if lines == 1 && first.starts_with("error:") {
                    self.refused += 1;
                    eprintln!("{}: kernel {first:?}; ours: {why}", c.name);
                } else {
                    self.failures.push(format!(
                        "{}: our decoder refused it ({why}) but the kernel printed {lines} lines, first {first:?}",
                        c.name
                    ));
                }
            }
        }
    }
}

#[test]
fn kernel_selftest_maps_every_pg_like_the_model_and_refuses_what_it_refuses() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // The inputs before the build: a missing shared corpus fails at once.
    let cases = cases(tmp.path());
    let built = build(&["--series", "recovery-weight-selftest"]);
    let task = guest_task(&cases);
    let spec = boot_spec(&built, tmp.path());
    let report =
        krbd_vm::run_boot_test_with_task(&spec, &task, &Silent).unwrap_or_else(|e| panic!("guest run failed: {e}"));
    assert!(report.passed, "{:#?}", report.problems);
    let serial = std::fs::read_to_string(&report.serial_log).unwrap();
    let guest = GuestResults::parse(&serial);
    assert!(!guest.results.contains_key("-"), "the selftest file is missing: {:?}", guest.results.get("-"));
    assert!(
        !guest.results.is_empty(),
        "the guest reported no selftest result; serial log:\n{}",
        krbd_vm::boot::relevant_lines(&serial).join("\n")
    );

    let Tally { pgs_equal, refused, maps, failures } = Tally::of(&cases, &guest);
    assert!(failures.is_empty(), "{} of {} inputs disagree:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let total: usize = cases.iter().map(|c| if let Expect::Pgs { pgs, .. } = &c.expect { *pgs } else { 0 }).sum();
    assert_eq!(pgs_equal, total);
    assert!(total > 66_536 + 65_536, "the two stretched pools alone have 132,072 PGs");
    println!(
        "kernel selftest: {maps} fork inputs, {pgs_equal} PGs, 100% equal to the model; {refused} malformed inputs refused by both (guest {:.0} s, test {:.0} s)",
        report.elapsed_secs,
        started.elapsed().as_secs_f64()
    );
}
