//! Side-by-side benchmark against osdmaptool on one map:
//! `cargo run --release -p krbd-placement --example bench -- MAP`
//! (the README's map: `crushtool --build --num_osds 1000 host straw2 10 rack straw2 10 root
//! straw2 0`, imported into `osdmaptool --createsimple 1000 --pg-bits 8 --mark-up-in`).

use std::time::Instant;

use krbd_placement::OsdMap;

/// (own user+system CPU, waited-for children's user+system CPU) in seconds, from
/// /proc/self/stat: wall time on a shared machine says little, CPU time is what compares.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields after the command name start at field 3 (state): utime is field 14.
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bench MAP");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).expect("read map");
    let map = OsdMap::decode(&data).expect("decode map");
    let pgs: u64 = map.pools.values().map(|p| p.pg_num as u64).sum();

    let t = Instant::now();
    let st = std::process::Command::new("osdmaptool").arg(&path).arg("--test-map-pgs").output().expect("osdmaptool");
    assert!(st.status.success());
    let theirs = t.elapsed().as_secs_f64();
    let theirs_cpu = cpu_times().1;

    let (c0, _) = cpu_times();
    let t = Instant::now();
    let one = map.map_all_threads(None, 1);
    let single = t.elapsed().as_secs_f64();
    let single_cpu = cpu_times().0 - c0;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let t = Instant::now();
    let many = map.map_all_threads(None, threads);
    let multi = t.elapsed().as_secs_f64();
    assert_eq!(one, many);

    println!("{pgs} PGs");
    println!("osdmaptool --test-map-pgs   wall {theirs:7.3} s  cpu {theirs_cpu:7.3} s  (1 thread, includes decode and its summary)");
    println!("krbd-placement, 1 thread    wall {single:7.3} s  cpu {single_cpu:7.3} s  {:6.2}x osdmaptool (cpu)  {:6.2}x (wall)", theirs_cpu / single_cpu, theirs / single);
    println!(
        "krbd-placement, {threads} threads   {multi:7.3} s  {:6.2}x osdmaptool, {:4.2}x over 1 thread",
        theirs / multi,
        single / multi
    );
}
