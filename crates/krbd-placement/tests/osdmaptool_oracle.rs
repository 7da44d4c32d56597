//! The placement model against Ceph's own `osdmaptool` (16.2.15, Debian's ceph-base): every
//! PG's raw, up and acting set must be identical, line for line, on the shared corpus of
//! real maps and on maps this test builds with osdmaptool, crushtool and our encoder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use krbd_placement::encode::Flavor;
use krbd_placement::osdmap::{OSD_EXISTS, OSD_UP, POOL_TYPE_ERASURE};
use krbd_placement::{OsdMap, PgId};

/// Runs a tool with a hard timeout; panics with its stderr on failure.
fn run(cmd: &str, args: &[&str], cwd: &Path) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (install ceph-base): {e}"));
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd} {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap();
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
    assert!(status.success(), "{cmd} {args:?} failed: {err}");
    out
}

fn is_pg_line(l: &str) -> bool {
    (l.starts_with("pool ") && l.contains(" pg_num "))
        || l.split_once(' ').is_some_and(|(pg, rest)| pg.contains('.') && rest.starts_with("raw ("))
}

fn osdmaptool_lines(map: &Path) -> Vec<String> {
    let dir = map.parent().unwrap();
    let out = run("osdmaptool", &[map.to_str().unwrap(), "--test-map-pgs-dump-all"], dir);
    out.lines().filter(|l| is_pg_line(l)).map(str::to_owned).collect()
}

fn our_lines(map: &OsdMap) -> Vec<String> {
    let mut v = Vec::new();
    for (id, pg_num, pgs) in map.map_all(None) {
        v.push(format!("pool {id} pg_num {pg_num}"));
        v.extend(pgs.iter().map(|m| m.osdmaptool_line()));
    }
    v
}

/// Compares both tools on one map file; returns the number of PGs compared.
fn assert_same(label: &str, path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let map = OsdMap::decode(&data).unwrap_or_else(|e| panic!("{label}: decode failed: {e}"));
    let theirs = osdmaptool_lines(path);
    let ours = our_lines(&map);
    for (i, (a, b)) in theirs.iter().zip(ours.iter()).enumerate() {
        assert_eq!(a, b, "{label}: line {i} differs (left: osdmaptool, right: ours)");
    }
    assert_eq!(theirs.len(), ours.len(), "{label}: line counts differ");
    theirs.iter().filter(|l| l.contains(" raw (")).count()
}

fn corpus_maps() -> Vec<PathBuf> {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus");
    let mut out = Vec::new();
    for v in std::fs::read_dir(&root).expect("corpus folder") {
        let d = v.unwrap().path().join("OSDMap");
        if let Ok(rd) = std::fs::read_dir(&d) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_corpus_osdmap_maps_like_osdmaptool() {
    let maps = corpus_maps();
    assert!(maps.len() >= 40, "expected ~49 corpus OSDMaps, found {}", maps.len());
    let mut pgs = 0;
    for m in &maps {
        pgs += assert_same(&m.display().to_string(), m);
    }
    println!("corpus: {} maps, {pgs} PGs, 100% equal to osdmaptool", maps.len());
    assert!(pgs > 19_000, "the corpus holds ~19,900 PGs, compared {pgs}");
}

/// The five historical tunable profiles, as crushtool flags.
const PROFILES: &[(&str, [u32; 6])] = &[
    // local, local_fallback, total, descend_once, vary_r, stable
    ("legacy", [2, 5, 19, 0, 0, 0]),
    ("bobtail", [0, 0, 50, 1, 0, 0]),
    ("firefly", [0, 0, 50, 1, 1, 0]),
    ("vary_r2", [0, 0, 50, 1, 2, 0]),
    ("jewel", [0, 0, 50, 1, 1, 1]),
];

fn with_tunables(dir: &Path, crush_in: &str, crush_out: &str, t: [u32; 6]) {
    let s: Vec<String> = t.iter().map(|v| v.to_string()).collect();
    run(
        "crushtool",
        &[
            "-i",
            crush_in,
            "--set-choose-local-tries",
            &s[0],
            "--set-choose-local-fallback-tries",
            &s[1],
            "--set-choose-total-tries",
            &s[2],
            "--set-chooseleaf-descend-once",
            &s[3],
            "--set-chooseleaf-vary-r",
            &s[4],
            "--set-chooseleaf-stable",
            &s[5],
            "-o",
            crush_out,
        ],
        dir,
    );
}

#[test]
fn built_maps_with_every_bucket_type_and_tunable_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let layouts: &[(&str, &[&str])] = &[
        ("straw2-3level", &["host", "straw2", "3", "rack", "straw2", "2", "root", "straw2", "0"]),
        ("straw", &["host", "straw", "3", "root", "straw", "0"]),
        (
            "uniform-list-tree",
            &["host", "uniform", "2", "rack", "list", "3", "row", "tree", "2", "root", "straw2", "0"],
        ),
        ("tree-list", &["host", "tree", "4", "root", "list", "0"]),
    ];
    let mut total = 0;
    let mut maps = 0;
    for (name, layout) in layouts {
        let mut args = vec!["--build", "--num_osds", "12"];
        args.extend_from_slice(layout);
        args.extend_from_slice(&["-o", "built.crush"]);
        run("crushtool", &args, dir);
        for (pname, t) in PROFILES {
            with_tunables(dir, "built.crush", "tuned.crush", *t);
            for variant in ["plain", "marked"] {
                let m = format!("{name}-{pname}-{variant}.osdmap");
                run(
                    "osdmaptool",
                    &["--createsimple", "12", "--pg-bits", "4", "--with-default-pool", "--clobber", &m, "--mark-up-in"],
                    dir,
                );
                run("osdmaptool", &[&m, "--import-crush", "tuned.crush"], dir);
                if variant == "marked" {
                    // Out OSDs and a changed CRUSH weight, persisted by --save.
                    run("osdmaptool", &[&m, "--mark-out", "3", "--adjust-crush-weight", "5:0.25,7:3", "--save"], dir);
                }
                total += assert_same(&m, &dir.join(&m));
                maps += 1;
            }
        }
    }
    println!("built maps: {maps} maps, {total} PGs, 100% equal to osdmaptool");
    assert!(total >= maps * 192);
}

/// CRUSH text with 4 hosts of 3 OSDs, replicated/EC rules at host and OSD level, and (for
/// straw2) a choose_args weight set keyed by pool 1.
fn crush_text(alg: &str) -> String {
    let mut s = String::from(
        "tunable choose_local_tries 0\ntunable choose_local_fallback_tries 0\ntunable choose_total_tries 50\n\
         tunable chooseleaf_descend_once 1\ntunable chooseleaf_vary_r 1\ntunable chooseleaf_stable 1\n\
         tunable straw_calc_version 1\ntunable allowed_bucket_algs 54\n",
    );
    for i in 0..12 {
        s += &format!("device {i} osd.{i}\n");
    }
    s += "type 0 osd\ntype 1 host\ntype 2 root\n";
    for h in 0..4 {
        s += &format!("host h{h} {{\n\tid -{}\n\talg {alg}\n\thash 0\n", h + 2);
        for j in 0..3 {
            let osd = h * 3 + j;
            if alg == "uniform" {
                // Uniform buckets require identical item weights.
                s += &format!("\titem osd.{osd} weight 1.000\n");
            } else {
                s += &format!("\titem osd.{osd} weight {}.{:03}\n", 1 + (osd % 3), (osd * 137) % 1000);
            }
        }
        s += "}\n";
    }
    s += &format!("root default {{\n\tid -1\n\talg {alg}\n\thash 0\n");
    for h in 0..4 {
        s += &format!("\titem h{h} weight {}.000\n", if alg == "uniform" { 3 } else { 3 + h });
    }
    s += "}\n";
    s += "rule replicated_rule {\n\tid 0\n\ttype replicated\n\tmin_size 1\n\tmax_size 10\n\tstep take default\n\tstep chooseleaf firstn 0 type host\n\tstep emit\n}\n";
    s += "rule ec_rule {\n\tid 1\n\ttype erasure\n\tmin_size 3\n\tmax_size 10\n\tstep set_chooseleaf_tries 5\n\tstep set_choose_tries 100\n\tstep take default\n\tstep chooseleaf indep 0 type host\n\tstep emit\n}\n";
    s += "rule osd_rule {\n\tid 2\n\ttype replicated\n\tmin_size 1\n\tmax_size 10\n\tstep take default\n\tstep choose firstn 0 type osd\n\tstep emit\n}\n";
    s += "rule ec_osd_rule {\n\tid 3\n\ttype erasure\n\tmin_size 3\n\tmax_size 10\n\tstep take default\n\tstep choose indep 0 type host\n\tstep choose indep 1 type osd\n\tstep emit\n}\n";
    if alg == "straw2" {
        s += "choose_args 1 {\n  {\n    bucket_id -1\n    weight_set [\n      [ 1.000 2.000 3.000 0.500 ]\n      [ 3.000 1.000 1.000 2.000 ]\n    ]\n  }\n  {\n    bucket_id -2\n    weight_set [\n      [ 0.500 2.000 1.000 ]\n    ]\n    ids [ -20 -21 -22 ]\n  }\n}\n";
    }
    s
}

/// Builds a 12-OSD map with the given CRUSH text, then edits it with our encoder into a map
/// that exercises every pipeline stage, and checks osdmaptool agrees.
fn edited_map(dir: &Path, label: &str, crush: &str, default_weight_set: bool) -> usize {
    compile_crush(dir, crush, default_weight_set);
    let base = format!("{label}.base");
    run(
        "osdmaptool",
        &["--createsimple", "12", "--pg-bits", "3", "--with-default-pool", "--clobber", &base, "--mark-up-in"],
        dir,
    );
    run("osdmaptool", &[&base, "--import-crush", "c.bin"], dir);
    let data = std::fs::read(dir.join(&base)).unwrap();
    let mut map = OsdMap::decode(&data).unwrap();
    add_pools(&mut map);
    add_overrides(&mut map);
    add_upmap_items(&mut map);

    let edited = map.encode_wrapped(&data, Flavor::Stock).unwrap();
    let path = dir.join(format!("{label}.osdmap"));
    std::fs::write(&path, &edited).unwrap();
    // osdmaptool verifies the CRC: a successful run also proves the encoder right.
    let n = assert_same(label, &path);
    let back = OsdMap::decode(&edited).unwrap();
    assert_stages_in_play(label, &back, crush, default_weight_set);
    n
}

/// Compiles the CRUSH text to c.bin, optionally moving its weight set to the default key.
fn compile_crush(dir: &Path, crush: &str, default_weight_set: bool) {
    std::fs::write(dir.join("c.txt"), crush).unwrap();
    run("crushtool", &["-c", "c.txt", "-o", "c.bin"], dir);
    if default_weight_set {
        // crushtool's text syntax cannot name the default key (-1), so rewrite the binary:
        // the i64 key 1 is followed by the bucket count 2, bucket index 0 and 2 positions.
        let mut bin = std::fs::read(dir.join("c.bin")).unwrap();
        let mut pat = 1i64.to_le_bytes().to_vec();
        for v in [2u32, 0, 2] {
            pat.extend_from_slice(&v.to_le_bytes());
        }
        let at = bin.windows(pat.len()).position(|w| w == pat.as_slice()).expect("choose_args key in the compiled map");
        bin[at..at + 8].copy_from_slice(&(-1i64).to_le_bytes());
        std::fs::write(dir.join("c.bin"), bin).unwrap();
    }
}

/// Pools: a replicated pool with a pg_num that is not a power of two, an EC pool (k+m=5)
/// with chooseleaf indep, a replicated pool on the OSD-level rule, an EC pool on a
/// two-step indep rule.
fn add_pools(map: &mut OsdMap) {
    let template = map.pools.values().next().unwrap().clone();
    let mut p1 = template.clone();
    p1.pg_num = 24;
    p1.pgp_num = 24;
    p1.pg_num_mask = 31;
    p1.pgp_num_mask = 31;
    map.pools.insert(1, p1);
    let mut ec = template.clone();
    ec.pool_type = POOL_TYPE_ERASURE;
    ec.size = 5;
    ec.crush_rule = 1;
    ec.pg_num = 32;
    ec.pgp_num = 32;
    map.pools.insert(2, ec.clone());
    let mut p3 = template.clone();
    p3.crush_rule = 2;
    p3.size = 2;
    p3.pg_num = 20;
    p3.pgp_num = 16;
    map.pools.insert(3, p3);
    let mut ec2 = ec;
    ec2.crush_rule = 3;
    ec2.size = 4;
    ec2.pg_num = 16;
    ec2.pgp_num = 16;
    map.pools.insert(4, ec2);
}

fn pg(pool: i64, seed: u32) -> PgId {
    PgId { pool, seed }
}

/// Reweights, an out OSD, a down OSD, a nonexistent OSD, primary affinities 0 and 0.5,
/// pg_temps, primary_temps and pg_upmaps.
fn add_overrides(map: &mut OsdMap) {
    map.osd_weight[2] = 0x8000;
    map.osd_weight[7] = 0;
    map.osd_weight[9] = 0x3000;
    map.osd_state[4] = OSD_EXISTS;
    map.osd_state[11] = 0;
    let mut pa = vec![0x10000u32; 12];
    pa[0] = 0;
    pa[1] = 0x8000;
    pa[6] = 0x4000;
    map.primary_affinity = Some(pa);
    map.pg_temp.insert(pg(1, 3), vec![5, 4, 1]);
    map.pg_temp.insert(pg(2, 1), vec![0, 1, 2, 3, 4]);
    map.pg_temp.insert(pg(3, 2), vec![4]);
    map.primary_temp.insert(pg(1, 3), 1);
    map.primary_temp.insert(pg(1, 5), 6);
    map.pg_upmap.insert(pg(1, 7), vec![1, 2, 3]);
    map.pg_upmap.insert(pg(1, 8), vec![7, 2, 3]);
    map.pg_upmap.insert(pg(2, 4), vec![0, 3, 6, 9, 10]);
}

/// upmap-items built from the current raw mapping so that they apply (and some that must
/// be refused: target out, target already present).
fn add_upmap_items(map: &mut OsdMap) {
    let mut ws = krbd_placement::mapper::Workspace::new();
    for seed in [9u32, 10, 11, 12] {
        let p = map.pools[&1].clone();
        let (raw, _) = map.pg_to_raw_osds(&p, pg(1, seed), &mut ws);
        let spare = (0..12).find(|o| !raw.contains(o) && *o != 7 && *o != 11).unwrap();
        let items = match seed {
            9 => vec![(raw[0], spare)],
            10 => vec![(raw[1], 7)],
            11 => vec![(raw[0], raw[1])],
            _ => vec![(raw[0], spare), (spare, raw[0])],
        };
        map.pg_upmap_items.insert(pg(1, seed), items);
    }
    let p2 = map.pools[&2].clone();
    let (raw, _) = map.pg_to_raw_osds(&p2, pg(2, 6), &mut ws);
    if let Some(&first) = raw.iter().find(|&&o| o != krbd_placement::crush::ITEM_NONE) {
        let spare = (0..12).find(|o| !raw.contains(o) && *o != 7 && *o != 11).unwrap();
        map.pg_upmap_items.insert(pg(2, 6), vec![(first, spare)]);
    }
}

/// The stages the edited map is meant to exercise really are in play.
fn assert_stages_in_play(label: &str, back: &OsdMap, crush: &str, default_weight_set: bool) {
    let mut ws = krbd_placement::mapper::Workspace::new();
    if crush.contains("choose_args") {
        let key = if default_weight_set { -1 } else { 1 };
        assert!(back.crush.choose_args.contains_key(&key), "{label}: weight set {key} missing");
    }
    let m13 = back.map_pg(&back.pools[&1], pg(1, 3), &mut ws);
    assert_eq!((m13.acting.as_slice(), m13.acting_primary), (&[5, 1][..], 1), "{label}: pg_temp drops the down OSD");
    let m17 = back.map_pg(&back.pools[&1], pg(1, 7), &mut ws);
    let mut up = m17.up.clone();
    up.sort();
    assert_eq!(up, vec![1, 2, 3], "{label}: pg_upmap applies");
    let holes = (0..32)
        .filter(|&s| back.map_pg(&back.pools[&2], pg(2, s), &mut ws).up.contains(&krbd_placement::crush::ITEM_NONE))
        .count();
    assert!(holes > 0, "{label}: the EC pool keeps holes for the down and missing OSDs");
}

#[test]
fn edited_maps_exercise_every_pipeline_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut total = 0;
    // choose_args keyed by pool 1, by the default key (-1), and no choose_args (straw).
    total += edited_map(tmp.path(), "straw2-pool-weightset", &crush_text("straw2"), false);
    total += edited_map(tmp.path(), "straw2-default-weightset", &crush_text("straw2"), true);
    total += edited_map(tmp.path(), "straw", &crush_text("straw"), false);
    total += edited_map(tmp.path(), "list", &crush_text("list"), false);
    total += edited_map(tmp.path(), "tree", &crush_text("tree"), false);
    total += edited_map(tmp.path(), "uniform", &crush_text("uniform"), false);
    println!("edited maps: {total} PGs, 100% equal to osdmaptool");
    assert!(total >= 6 * (24 + 32 + 20 + 16));
}

#[test]
fn states_and_temps_survive_the_osdmaptool_round_trip() {
    // A decode of the map osdmaptool itself re-wrote must equal ours: guards the encoder
    // against writing something osdmaptool silently "fixes".
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    edited_map(dir, "rt", &crush_text("straw2"), false);
    run("osdmaptool", &["rt.osdmap", "--mark-up-in", "--upmap-cleanup", "cleanup.txt"], dir);
    let ours = OsdMap::decode(&std::fs::read(dir.join("rt.osdmap")).unwrap()).unwrap();
    assert_eq!(ours.pg_temp.len(), 3);
    assert_eq!(ours.primary_temp.len(), 2);
    assert!(ours.primary_affinity.is_some());
    assert_eq!(ours.osd_state[4] & OSD_UP, 0);
}

/// osdmaptool's PG lines for `map`, or `None` when it refuses the map. Its crash reports
/// (it segfaults in a destructor after `error decoding osdmap`) go to `crash_dir`. Its
/// address space is capped at 1 GiB: Ceph's decoder resizes a vector to a corrupted count
/// before reading it, and uncapped spends up to 20 s zeroing gigabytes before refusing.
fn osdmaptool_lines_if_accepted(map: &Path, crash_dir: &Path) -> Option<Vec<String>> {
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 1048576 && exec osdmaptool \"$@\"", "osdmaptool"])
        .arg(map)
        .arg("--test-map-pgs-dump-all")
        .arg(format!("--crash_dir={}", crash_dir.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run osdmaptool (install ceph-base)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().filter(|l| is_pg_line(l)).map(str::to_owned).collect())
}

/// Three small wrapped corpus maps that have PGs (client v3 from 0.94 with 8 PGs, v9 from
/// 15.2 with 1, v9 from 16.2 with 255), each covered by its CRC from the first byte to the
/// last.
const FLIP_MAPS: &[&str] = &[
    "0.94.2-207-g88e7ee7/OSDMap/bdf8cf2d3d9a93c8aa869e1958c30f74",
    "15.2.1-40-ga838bb1aae/OSDMap/df1d3fe923de0c6df405a2f88846bb5f",
    "16.2.0-90-g50f1821b4c/OSDMap/ec36ca261d85fc858b1e1628cd610bd5",
];

/// Every single-bit flip of three corpus maps is refused, or, where Ceph's own decoder
/// accepts it, mapped exactly as osdmaptool maps it.
///
/// Coverage: our decoder sees all 8 bits of every byte. osdmaptool (a process per run, so
/// sampled) sees one flip in every window of `stride` bytes (at most 256 windows per map),
/// with the position inside the window and the bit both rotating from window to window, plus
/// every byte of the structure that frames the data: the wrapper header, the client and OSD
/// section headers and the CRC field. So every region of the file is flipped under both
/// decoders; the windows are short enough (4 to 22 bytes) that no field goes unhit for long.
#[test]
fn single_bit_flips_are_refused_like_osdmaptool_refuses_them() {
    let root = krbd_testsupport::shared_fixture("ceph-object-corpus");
    let tmp = tempfile::tempdir().unwrap();
    let crash_dir = tmp.path().join("crash");
    std::fs::create_dir(&crash_dir).unwrap();
    let (mut flips, mut oracle_runs) = (0, 0);
    for name in FLIP_MAPS {
        let data = std::fs::read(root.join(name)).unwrap();
        assert!(assert_same(name, &root.join(name)) > 0, "{name}: the unflipped map has PGs to compare");
        for bit in 0..data.len() * 8 {
            let mut d = data.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(OsdMap::decode(&d).is_err(), "{name}: bit {bit} flipped is accepted");
            flips += 1;
        }
        let sampled = sampled_flips(&data);
        oracle_runs += sampled.len();
        compare_flips_with_osdmaptool(name, &data, &sampled, tmp.path(), &crash_dir);
    }
    println!("{flips} flips refused by us; {oracle_runs} of them refused by osdmaptool too");
}

/// (offset, bit) pairs for osdmaptool: one per window plus every framing byte.
fn sampled_flips(data: &[u8]) -> Vec<(usize, usize)> {
    let stride = data.len().div_ceil(256);
    let mut flips: Vec<(usize, usize)> = (0..data.len().div_ceil(stride))
        .map(|k| ((k * stride + k % stride).min(data.len() - 1), (k * 3) % 8))
        .collect();
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let client = 6;
    let osd = client + 6 + u32_at(client + 2);
    let crc = osd + 6 + u32_at(osd + 2);
    assert_eq!(crc + 4, data.len(), "the CRC is the last field");
    for offset in (0..6).chain(client..client + 6).chain(osd..osd + 6).chain(crc..crc + 4) {
        flips.push((offset, offset % 8));
    }
    flips
}

/// Runs osdmaptool on each flip (on four threads) and compares its verdict with ours.
fn compare_flips_with_osdmaptool(name: &str, data: &[u8], flips: &[(usize, usize)], dir: &Path, crash_dir: &Path) {
    std::thread::scope(|sc| {
        for (t, part) in flips.chunks(flips.len().div_ceil(4)).enumerate() {
            sc.spawn(move || {
                let path = dir.join(format!("flip-{t}"));
                for &(offset, bit) in part {
                    let mut d = data.to_vec();
                    d[offset] ^= 1 << bit;
                    std::fs::write(&path, &d).unwrap();
                    let flip = format!("{name}: byte {offset} bit {bit}");
                    match (osdmaptool_lines_if_accepted(&path, crash_dir), OsdMap::decode(&d)) {
                        (None, Err(_)) => {}
                        (Some(theirs), Ok(ours)) => assert_eq!(theirs, our_lines(&ours), "{flip}"),
                        (None, Ok(_)) => panic!("{flip}: osdmaptool refuses, we accept"),
                        (Some(_), Err(e)) => panic!("{flip}: osdmaptool accepts, we refuse: {e}"),
                    }
                }
            });
        }
    });
}

/// A CRUSH bucket whose id is not its slot's (a real cluster map, its first bucket's id
/// rewritten, the CRC fixed up): within the map's slots osdmaptool maps it, and so do we,
/// identically; outside them osdmaptool indexes its per-bucket work space out of bounds and
/// crashes (SIGSEGV), and we refuse the map as corrupt.
#[test]
fn crush_bucket_ids_outside_their_slots_are_refused_where_osdmaptool_crashes() {
    let base =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster/full-39.osdmap")).unwrap();
    let lay = OsdMap::decode(&base).unwrap().layout.unwrap();
    // The CRUSH blob's length, then its magic, max_buckets, max_rules, max_devices, and the
    // first bucket's algorithm and id.
    let magic = lay.primary_affinity.1 + 4;
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    assert_eq!(u32_at(&base, magic), 0x0001_0000, "the CRUSH map follows primary_affinity");
    let max_buckets = u32_at(&base, magic + 4) as i32;
    let first_id = magic + 20;
    assert_eq!(u32_at(&base, first_id) as i32, -1, "the first bucket sits in slot 0");
    let tmp = tempfile::tempdir().unwrap();
    let crash_dir = tmp.path().join("crash");
    std::fs::create_dir(&crash_dir).unwrap();
    for (id, in_slots) in [(-max_buckets, true), (-1_000_000, false)] {
        let mut d = base.clone();
        d[first_id..first_id + 4].copy_from_slice(&id.to_le_bytes());
        let n = d.len() - 4;
        let crc = krbd_placement::crc::ceph_crc32c(0xffff_ffff, &d[..n]);
        d[n..].copy_from_slice(&crc.to_le_bytes());
        let path = tmp.path().join(format!("bucket-id{id}"));
        std::fs::write(&path, &d).unwrap();
        match (osdmaptool_lines_if_accepted(&path, &crash_dir), OsdMap::decode(&d)) {
            (Some(theirs), Ok(ours)) if in_slots => assert_eq!(theirs, our_lines(&ours), "bucket id {id}"),
            (None, Err(e)) if !in_slots => assert!(e.to_string().contains("crush bucket id"), "{e}"),
            (theirs, ours) => panic!("bucket id {id}: osdmaptool accepted: {}, ours: {ours:?}", theirs.is_some()),
        }
    }
}
