//! Maps and incrementals taken from a live Ceph 16.2.15 cluster (by
//! crates/krbd-forge/tests/placement_cluster.rs with KRBD_UPDATE_CLUSTER_FIXTURES=1), kept
//! here so that the model is checked against real cluster output without starting one:
//! every map must map like `osdmaptool --test-map-pgs-dump-all`, and the incrementals,
//! applied in order to the first full map, must give the last full map's placement.
//!
//! What the maps hold: 4 OSDs on 3 hosts, pools `rbd` (OSD rule, 8 PGs), `byhost` (host
//! rule, size 3, 12 PGs), `ec` (k=2 m=1, 6 PGs); reweights, primary affinity, upmap and
//! upmap-items, pg_temp/primary_temp, osd.3 down, straw buckets under the legacy and
//! hammer tunables, a compat weight set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use krbd_placement::incremental::Incremental;
use krbd_placement::OsdMap;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster")
}

fn osdmaptool_lines(map: &Path) -> Vec<String> {
    let mut child = Command::new("osdmaptool")
        .arg(map)
        .arg("--test-map-pgs-dump-all")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run osdmaptool (ceph-base)");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("osdmaptool {} did not finish within 60 s", map.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "osdmaptool {}: {status}", map.display());
    let out = reader.join().unwrap();
    out.lines()
        .filter(|l| (l.starts_with("pool ") && l.contains(" pg_num ")) || l.contains(" raw ("))
        .map(str::to_owned)
        .collect()
}

fn model_lines(map: &OsdMap) -> Vec<String> {
    let mut v = Vec::new();
    for (id, pg_num, pgs) in map.map_all(None) {
        v.push(format!("pool {id} pg_num {pg_num}"));
        v.extend(pgs.iter().map(|m| m.osdmaptool_line()));
    }
    v
}

fn files(prefix: &str, suffix: &str) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_string();
            let n = name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cluster_maps_map_like_osdmaptool() {
    let mut maps: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "osdmap"))
        .collect();
    maps.sort();
    assert!(maps.len() >= 7, "fixtures present: {maps:?}");
    let mut pgs = 0;
    for p in &maps {
        let map = OsdMap::decode(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (theirs, ours) = (osdmaptool_lines(p), model_lines(&map));
        for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
            assert_eq!(a, b, "{}: line {i} (left osdmaptool, right model)", p.display());
        }
        assert_eq!(theirs.len(), ours.len(), "{}", p.display());
        pgs += ours.iter().filter(|l| l.contains(" raw (")).count();
    }
    println!("{} cluster maps, {pgs} PGs, 100% equal to osdmaptool", maps.len());
    assert!(pgs >= 7 * 26);
}

#[test]
fn cluster_incrementals_rebuild_the_last_map() {
    let fulls = files("full-", ".osdmap");
    let incs = files("inc-", ".bin");
    let (first, first_path) = fulls.first().cloned().expect("a first full map");
    let (last, last_path) = fulls.last().cloned().expect("a last full map");
    assert!(last > first && incs.len() as u32 == last - first, "incrementals {}..={last} all present", first + 1);
    let mut map = OsdMap::decode(&std::fs::read(&first_path).unwrap()).unwrap();
    for (e, p) in &incs {
        let inc =
            Incremental::decode(&std::fs::read(p).unwrap()).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        assert_eq!(inc.epoch, map.epoch + 1, "{}", p.display());
        inc.apply(&mut map).unwrap();
        map.epoch = *e;
    }
    let want = OsdMap::decode(&std::fs::read(&last_path).unwrap()).unwrap();
    assert_eq!(map.osd_state, want.osd_state);
    assert_eq!(map.pg_temp, want.pg_temp);
    assert_eq!(map.pg_upmap_items, want.pg_upmap_items);
    let ours = model_lines(&map);
    assert_eq!(
        ours,
        osdmaptool_lines(&last_path),
        "placement after {} incrementals equals osdmaptool on epoch {last}",
        incs.len()
    );
    println!(
        "{} cluster incrementals applied: {} PGs equal to osdmaptool",
        incs.len(),
        ours.iter().filter(|l| l.contains(" raw (")).count()
    );
}
