//! The placement model against a live Ceph 16 cluster: one throwaway cluster (Debian's
//! ceph-mon/mgr/osd, memstore, cephx, in a network namespace) is shaped step by step (host
//! and OSD rules, an EC pool, pg_num not a power of two, reweights, primary affinity, upmap
//! and upmap-items, pg_temp and primary_temp, a down OSD, straw and straw2 buckets, every
//! tunable profile, a compat weight set). After each step `ceph osd getmap` is taken and
//! `krbd-forge placement map` must print exactly what `osdmaptool --test-map-pgs-dump-all`
//! prints. Then the cluster is stopped and every incremental is read from the monitor's
//! store: applied by our decoder to the previous full map, each must reproduce osdmaptool's
//! mapping of the next full map.
//!
//! Set `KRBD_UPDATE_CLUSTER_FIXTURES=1` to copy a few of the maps (and the incrementals
//! between them) to `crates/krbd-placement/tests/fixtures/cluster/` for the placement
//! crate's own cluster-free tests.

mod common;

use common::*;
use krbd_placement::incremental::Incremental;
use krbd_placement::OsdMap;
use krbd_progress::Silent;
use krbd_vm::{Cluster, ClusterSpec};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a host tool with a hard timeout; returns stdout or panics with stderr.
fn run_tool(program: &str, args: &[&str], timeout: Duration) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/install-deps.sh installs it): {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_t.join().unwrap();
    let err = err_t.join().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}: {}", String::from_utf8_lossy(&err));
    out
}

fn pg_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            (l.starts_with("pool ") && l.contains(" pg_num "))
                || l.split_once(' ').is_some_and(|(pg, rest)| pg.contains('.') && rest.starts_with("raw ("))
        })
        .map(str::to_owned)
        .collect()
}

fn osdmaptool_lines(map: &Path) -> Vec<String> {
    let out = run_tool("osdmaptool", &[map.to_str().unwrap(), "--test-map-pgs-dump-all"], Duration::from_secs(120));
    pg_lines(&String::from_utf8_lossy(&out))
}

/// `krbd-forge placement map FILE`, the command under test.
fn placement_map_lines(map: &Path) -> Vec<String> {
    let out = forge().args(["placement", "map"]).arg(map).timeout(Duration::from_secs(120)).output().unwrap();
    assert!(out.status.success(), "placement map {}: {}", map.display(), String::from_utf8_lossy(&out.stderr));
    pg_lines(&String::from_utf8_lossy(&out.stdout))
}

fn model_lines(map: &OsdMap) -> Vec<String> {
    let mut v = Vec::new();
    for (id, pg_num, pgs) in map.map_all(None) {
        v.push(format!("pool {id} pg_num {pg_num}"));
        v.extend(pgs.iter().map(|m| m.osdmaptool_line()));
    }
    v
}

/// Plain-text comparison; returns the number of PG lines compared.
fn assert_same_lines(label: &str, theirs: &[String], ours: &[String]) -> usize {
    for (i, (a, b)) in theirs.iter().zip(ours).enumerate() {
        assert_eq!(a, b, "{label}: line {i} differs (left: osdmaptool, right: ours)");
    }
    assert_eq!(theirs.len(), ours.len(), "{label}: line counts differ");
    theirs.iter().filter(|l| l.contains(" raw (")).count()
}

/// One map taken from the cluster after a shaping step.
struct Taken {
    step: String,
    epoch: u32,
    path: PathBuf,
}

struct Shaper<'a> {
    cluster: &'a Cluster,
    dir: PathBuf,
    taken: Vec<Taken>,
}

impl Shaper<'_> {
    fn ceph(&self, args: &[&str]) -> String {
        self.cluster.ceph_command(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The latest map, decoded, for choosing the next shaping step's targets.
    fn current(&self) -> OsdMap {
        let p = self.dir.join("current.bin");
        self.ceph(&["osd", "getmap", "-o", p.to_str().unwrap()]);
        OsdMap::decode(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("decode the cluster's current map: {e}"))
    }

    /// Takes the map after a step, named after it.
    fn take(&mut self, step: &str) -> OsdMap {
        self.take_epoch(step, None)
    }

    /// Takes the map of one epoch (`None`: the latest) as a step's map.
    fn take_epoch(&mut self, step: &str, epoch: Option<u32>) -> OsdMap {
        let p = self.dir.join(format!("{:02}-{step}.osdmap", self.taken.len()));
        let e = epoch.map(|e| e.to_string());
        let mut args = vec!["osd", "getmap"];
        args.extend(e.as_deref());
        args.extend(["-o", p.to_str().unwrap()]);
        self.ceph(&args);
        let map = OsdMap::decode(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{step}: decode: {e}"));
        self.taken.push(Taken { step: step.into(), epoch: map.epoch, path: p });
        map
    }

    fn set_crush_text(&self, name: &str, text: &str) {
        let src = self.dir.join(format!("{name}.txt"));
        let bin = self.dir.join(format!("{name}.crush"));
        std::fs::write(&src, text).unwrap();
        run_tool("crushtool", &["-c", src.to_str().unwrap(), "-o", bin.to_str().unwrap()], Duration::from_secs(60));
        self.ceph(&["osd", "setcrushmap", "-i", bin.to_str().unwrap()]);
    }

    fn crush_text(&self) -> String {
        let bin = self.dir.join("current.crush");
        self.ceph(&["osd", "getcrushmap", "-o", bin.to_str().unwrap()]);
        String::from_utf8(run_tool("crushtool", &["-d", bin.to_str().unwrap()], Duration::from_secs(60))).unwrap()
    }
}

/// Four OSDs on three hosts: host-a holds two (so bucket choice inside a host matters and
/// an upmap can stay within the host rule), host-b and host-c one each.
fn crush_with_hosts(alg: &str) -> String {
    format!(
        "tunable choose_local_tries 0
tunable choose_local_fallback_tries 0
tunable choose_total_tries 50
tunable chooseleaf_descend_once 1
tunable chooseleaf_vary_r 1
tunable chooseleaf_stable 1
tunable straw_calc_version 1
tunable allowed_bucket_algs 54
device 0 osd.0
device 1 osd.1
device 2 osd.2
device 3 osd.3
type 0 osd
type 1 host
type 11 root
host host-a {{
	id -2
	alg {alg}
	hash 0
	item osd.0 weight 1.000
	item osd.1 weight 0.500
}}
host host-b {{
	id -3
	alg {alg}
	hash 0
	item osd.2 weight 1.000
}}
host host-c {{
	id -4
	alg {alg}
	hash 0
	item osd.3 weight 2.000
}}
root default {{
	id -1
	alg {alg}
	hash 0
	item host-a weight 1.500
	item host-b weight 1.000
	item host-c weight 2.000
}}
rule replicated_rule {{
	id 0
	type replicated
	min_size 1
	max_size 10
	step take default
	step choose firstn 0 type osd
	step emit
}}
rule by_host {{
	id 1
	type replicated
	min_size 1
	max_size 10
	step take default
	step chooseleaf firstn 0 type host
	step emit
}}
"
    )
}

/// First PG of `pool` whose up set contains `osd`, with that set.
fn pg_with(map: &OsdMap, pool: i64, osd: i32) -> Option<(String, Vec<i32>)> {
    map.map_all(Some(pool))
        .into_iter()
        .flat_map(|(_, _, pgs)| pgs)
        .find(|m| m.up.contains(&osd))
        .map(|m| (m.pg.to_string(), m.up.clone()))
}

fn pool_id(map: &OsdMap, name: &str, shaper: &Shaper) -> i64 {
    let v: serde_json::Value =
        serde_json::from_str(&shaper.ceph(&["osd", "pool", "ls", "detail", "-f", "json"])).unwrap();
    let id = v.as_array().unwrap().iter().find(|p| p["pool_name"] == name).and_then(|p| p["pool_id"].as_i64());
    let id = id.unwrap_or_else(|| panic!("pool {name} not listed"));
    assert!(map.pools.contains_key(&id), "pool {name} ({id}) in the map");
    id
}

#[test]
fn live_cluster_maps_and_incrementals_match_osdmaptool() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let spec = ClusterSpec { dir: tmp.path().join("ceph"), osds: 4, start_timeout: Duration::from_secs(240) };
    let cluster = Cluster::start(&spec, &Silent).unwrap_or_else(|e| panic!("cluster did not start: {e}"));
    let maps_dir = tmp.path().join("maps");
    std::fs::create_dir(&maps_dir).unwrap();
    let mut s = Shaper { cluster: &cluster, dir: maps_dir, taken: Vec::new() };

    let pools = shape_pools(&mut s);
    shape_upmaps_and_temps(&mut s, &pools);
    shape_down_osd_and_buckets(&mut s);
    let last_epoch = s.current().epoch;
    assert_every_taken_map_matches(&s.taken);

    // Incrementals: only in the monitor's store, readable once the monitor is stopped.
    let inc_dir = tmp.path().join("incrementals");
    std::fs::create_dir(&inc_dir).unwrap();
    let mon = cluster.mon_data_dir();
    let first_epoch = s.taken[0].epoch;
    cluster.shutdown();
    let applied = assert_incrementals_match(&mon, &inc_dir, first_epoch, last_epoch);
    assert!(applied as u32 >= s.taken.len() as u32 - 1);

    if std::env::var_os("KRBD_UPDATE_CLUSTER_FIXTURES").is_some() {
        save_fixtures(&s.taken, &inc_dir);
    }
    eprintln!("live cluster test took {:?}", started.elapsed());
}

/// The ids of the pools the shaping creates.
struct Pools {
    rbd: i64,
    byhost: i64,
    ec: i64,
}

/// Host rules on straw2, a replicated pool on them with pg_num 12, an EC pool with pg_num
/// 6, reweights and primary affinity.
fn shape_pools(s: &mut Shaper) -> Pools {
    // The mgr's balancer would add upmaps of its own at any time. It answers only once the
    // mgr has loaded its modules; the maps stay comparable either way, so don't fail on it.
    let deadline = Instant::now() + Duration::from_secs(90);
    while s.cluster.ceph_command(&["balancer", "off"]).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
    }
    s.ceph(&["osd", "set-require-min-compat-client", "luminous"]);
    s.take("initial");

    s.set_crush_text("hosts-straw2", &crush_with_hosts("straw2"));
    s.take("hosts-straw2");

    s.ceph(&["osd", "pool", "create", "byhost", "12", "12", "replicated", "by_host"]);
    s.ceph(&["osd", "pool", "set", "byhost", "size", "3", "--yes-i-really-mean-it"]);
    s.take("host-rule-pool-pg12");

    s.ceph(&["osd", "erasure-code-profile", "set", "k2m1", "k=2", "m=1", "crush-failure-domain=osd"]);
    s.ceph(&["osd", "pool", "create", "ec", "6", "6", "erasure", "k2m1"]);
    let map = s.take("ec-pool-pg6");
    let (rbd, byhost, ec) = (pool_id(&map, "rbd", s), pool_id(&map, "byhost", s), pool_id(&map, "ec", s));
    assert!(map.pools[&ec].pool_type == krbd_placement::osdmap::POOL_TYPE_ERASURE);
    let profile = s.ceph(&["osd", "erasure-code-profile", "get", "k2m1"]);
    assert!(profile.contains("k=2") && profile.contains("m=1"), "{profile}");

    s.ceph(&["osd", "reweight", "1", "0.6"]);
    s.ceph(&["osd", "crush", "reweight", "osd.3", "1.25"]);
    s.take("reweights");

    s.ceph(&["osd", "primary-affinity", "osd.0", "0"]);
    s.ceph(&["osd", "primary-affinity", "osd.2", "0.5"]);
    s.take("primary-affinity");
    Pools { rbd, byhost, ec }
}

/// upmap and upmap-items, then pg_temp and primary_temp.
fn shape_upmaps_and_temps(s: &mut Shaper, pools: &Pools) {
    let Pools { rbd, byhost, ec } = *pools;
    // upmap a replicated PG whole, and swap osd.0 for osd.1 (same host) in a host-rule PG
    // and in an EC PG, chosen from the current map so that the upmaps take effect.
    let map = s.current();
    let (pg, _) = pg_with(&map, rbd, 0).expect("an rbd PG on osd.0");
    s.ceph(&["osd", "pg-upmap", &pg, "2"]);
    let (pg, _) = pg_with(&map, byhost, 0).expect("a byhost PG on osd.0");
    s.ceph(&["osd", "pg-upmap-items", &pg, "0", "1"]);
    let (pg, up) = pg_with(&map, ec, 3).expect("an EC PG on osd.3");
    let spare = (0..4).find(|o| !up.contains(o)).expect("a spare OSD");
    s.ceph(&["osd", "pg-upmap-items", &pg, "3", &spare.to_string()]);
    let map = s.take("upmaps");
    assert!(!map.pg_upmap.is_empty() && !map.pg_upmap_items.is_empty(), "upmaps are in the map");

    // The OSDs drop a pg_temp as soon as peering no longer needs it, so the latest map may
    // have lost it again: take the first epoch after the commands that still holds both.
    let before = s.current().epoch;
    let (pg, _) = pg_with(&map, rbd, 3).or_else(|| pg_with(&map, rbd, 2)).expect("an rbd PG");
    s.ceph(&["osd", "pg-temp", &pg, "1"]);
    let (pg, up) = pg_with(&map, byhost, 2).expect("a byhost PG on osd.2");
    s.ceph(&["osd", "primary-temp", &pg, &up[up.len() - 1].to_string()]);
    let (pg, up) = pg_with(&map, byhost, 3).expect("a byhost PG on osd.3");
    s.ceph(&["osd", "pg-temp", &pg, &up[2].to_string(), &up[0].to_string(), &up[1].to_string()]);
    let after = s.current().epoch;
    let probe = s.dir.join("probe.osdmap");
    let with_temps = (before + 1..=after).find(|e| {
        s.ceph(&["osd", "getmap", &e.to_string(), "-o", probe.to_str().unwrap()]);
        let m = OsdMap::decode(&std::fs::read(&probe).unwrap()).unwrap();
        !m.pg_temp.is_empty() && !m.primary_temp.is_empty()
    });
    let map = s.take_epoch("pg-temp", Some(with_temps.expect("an epoch with pg_temp and primary_temp")));
    assert!(!map.pg_temp.is_empty() && !map.primary_temp.is_empty());
}

/// A down OSD, straw buckets under every tunable profile, straw2 again, a compat weight set.
fn shape_down_osd_and_buckets(s: &mut Shaper) {
    // A down OSD that stays down: noup keeps its daemon from booting again.
    s.ceph(&["osd", "set", "noup"]);
    s.ceph(&["osd", "set", "noout"]);
    s.ceph(&["osd", "down", "osd.3"]);
    let map = s.take("osd3-down");
    assert!(!map.is_up(3), "osd.3 is down in the map");

    // straw buckets, then every tunable profile on them (straw_calc_version changes too).
    let text = s.crush_text().replace("alg straw2", "alg straw");
    s.set_crush_text("straw", &text);
    s.take("straw");
    for profile in ["legacy", "argonaut", "bobtail", "firefly", "hammer", "jewel"] {
        s.ceph(&["osd", "crush", "tunables", profile]);
        s.take(&format!("straw-tunables-{profile}"));
    }
    let text = s.crush_text().replace("alg straw\n", "alg straw2\n");
    s.set_crush_text("straw2-again", &text);
    s.take("straw2-jewel");
    for profile in ["legacy", "firefly", "optimal"] {
        s.ceph(&["osd", "crush", "tunables", profile]);
        s.take(&format!("straw2-tunables-{profile}"));
    }
    // A compat weight set (choose_args) with a changed weight.
    s.ceph(&["osd", "crush", "weight-set", "create-compat"]);
    s.ceph(&["osd", "crush", "weight-set", "reweight-compat", "osd.1", "0.2"]);
    s.take("weight-set");
}

/// Every map: the CLI's output equals osdmaptool's, as plain text.
fn assert_every_taken_map_matches(taken: &[Taken]) {
    let mut total = 0;
    for t in taken {
        let n = assert_same_lines(
            &format!("{} (epoch {})", t.step, t.epoch),
            &osdmaptool_lines(&t.path),
            &placement_map_lines(&t.path),
        );
        assert!(n > 0);
        total += n;
    }
    println!("live cluster: {} maps, {total} PGs, 100% equal to osdmaptool (placement map)", taken.len());
}

/// Reads every incremental after `first_epoch` from the stopped monitor's store (and the
/// full maps beside them, into `inc_dir`), applies each to the map built so far and
/// compares its mapping with osdmaptool's of the full map; returns how many were applied.
fn assert_incrementals_match(mon: &Path, inc_dir: &Path, first_epoch: u32, last_epoch: u32) -> usize {
    let store = mon.join("store.db");
    let kv = |key: &str, out: &Path| {
        run_tool(
            "ceph-kvstore-tool",
            &["rocksdb", store.to_str().unwrap(), "get", "osdmap", key, "out", out.to_str().unwrap()],
            Duration::from_secs(60),
        );
        std::fs::read(out).unwrap()
    };
    let full_first = kv(&format!("full_{first_epoch}"), &inc_dir.join(format!("full_{first_epoch}")));
    let mut map = OsdMap::decode(&full_first).unwrap();
    let mut incs = BTreeMap::new();
    let mut inc_pgs = 0;
    for e in first_epoch + 1..=last_epoch {
        let inc_path = inc_dir.join(format!("inc_{e}"));
        let inc_bytes = kv(&e.to_string(), &inc_path);
        let inc = Incremental::decode(&inc_bytes).unwrap_or_else(|err| panic!("incremental {e}: {err}"));
        assert_eq!(inc.epoch, e);
        inc.apply(&mut map).unwrap_or_else(|err| panic!("apply incremental {e}: {err}"));
        map.epoch = e;
        let full_path = inc_dir.join(format!("full_{e}"));
        kv(&format!("full_{e}"), &full_path);
        inc_pgs += assert_same_lines(
            &format!("epoch {e} from incrementals"),
            &osdmaptool_lines(&full_path),
            &model_lines(&map),
        );
        incs.insert(e, inc_bytes);
    }
    println!(
        "live cluster: {} incrementals (epochs {}..={last_epoch}) decoded and applied, {inc_pgs} PGs, 100% equal to osdmaptool on the full maps",
        incs.len(),
        first_epoch + 1
    );
    incs.len()
}

/// Copies a few small maps, and the incrementals leading to the last of them, next to the
/// placement crate's tests.
fn save_fixtures(taken: &[Taken], inc_dir: &Path) {
    let dest = krbd_testsupport::workspace_root().join("crates/krbd-placement/tests/fixtures/cluster");
    // Epochs differ from run to run: no stale incrementals may stay behind.
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    for step in [
        "ec-pool-pg6",
        "upmaps",
        "pg-temp",
        "osd3-down",
        "straw-tunables-legacy",
        "straw-tunables-hammer",
        "weight-set",
    ] {
        let t = taken.iter().find(|t| t.step == step).unwrap();
        std::fs::copy(&t.path, dest.join(format!("{}.osdmap", t.step))).unwrap();
    }
    // A chain: the full map of "upmaps" and every incremental up to the hammer tunables
    // (temps, a down OSD, CRUSH maps and tunables carried by incrementals).
    let from = taken.iter().find(|t| t.step == "upmaps").unwrap().epoch;
    let to = taken.iter().find(|t| t.step == "straw-tunables-hammer").unwrap().epoch;
    for e in from + 1..=to {
        std::fs::copy(inc_dir.join(format!("inc_{e}")), dest.join(format!("inc-{e}.bin"))).unwrap();
    }
    std::fs::copy(inc_dir.join(format!("full_{from}")), dest.join(format!("full-{from}.osdmap"))).unwrap();
    std::fs::copy(inc_dir.join(format!("full_{to}")), dest.join(format!("full-{to}.osdmap"))).unwrap();
    eprintln!("fixtures written to {}", dest.display());
}
