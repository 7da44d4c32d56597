//! How long `check` takes for libceph, ceph and rbd against the full Module.symvers of
//! the default target (Debian's 6.12.117 when written: about 27,000 symbols). Not a timed test: it prints its figures.
//! Run with `cargo bench -p krbd-kmod --bench check_set`. Target: under 50 ms per check.

#[path = "../tests/support/mod.rs"]
mod support;

use krbd_kmod::loader::{check_set, SetOptions};
use krbd_kmod::{check_files, load_target, TargetSpec};
use std::time::{Duration, Instant};

/// This thread's time on a CPU so far (Linux schedstat), in ns: on a shared machine the wall
/// clock also counts the time other processes held the cores.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Timing {
    best: Duration,
    mean: Duration,
    cpu_mean: Option<Duration>,
}

fn time<T>(rounds: u32, mut f: impl FnMut() -> T) -> Timing {
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let cpu_start = cpu_ns();
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(f());
        let d = t.elapsed();
        best = best.min(d);
        total += d;
    }
    let cpu_mean = match (cpu_start, cpu_ns()) {
        (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a) / rounds as u64)),
        _ => None,
    };
    Timing { best, mean: total / rounds, cpu_mean }
}

fn main() {
    let fx = support::fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["libceph", "ceph", "rbd"];
    let plain: Vec<_> = names
        .iter()
        .map(|n| {
            let p = dir.path().join(format!("{n}.ko"));
            std::fs::write(&p, fx.unsigned_module(n)).expect("write module");
            p
        })
        .collect();
    let compressed: Vec<_> = names.iter().map(|n| fx.module_path(n)).collect();
    let spec = TargetSpec::Headers { dir: fx.headers_dir.clone() };
    let options = SetOptions::default();
    let target = load_target(&spec, None).expect("target");
    let candidates = krbd_kmod::check::read_candidates(&plain).expect("modules");
    let rounds = 30;

    println!("target: {} symbols in Module.symvers", target.symvers.len());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = |what: &str, t: Timing| {
        let cpu = t.cpu_mean.map(|c| format!("{:7.2} ms", ms(c))).unwrap_or_else(|| "      ?".into());
        println!("{what:58} wall best {:7.2} ms  mean {:7.2} ms  cpu mean {cpu}", ms(t.best), ms(t.mean));
    };
    report("rules only (check_set, everything parsed)", time(rounds, || check_set(&candidates, &target, &options)));
    let symvers_path = fx.headers_dir.join("Module.symvers");
    report("  read Module.symvers into memory", time(rounds, || std::fs::read_to_string(&symvers_path).expect("read")));
    let text = std::fs::read_to_string(&symvers_path).expect("read");
    report(
        "  parse Module.symvers (in memory)",
        time(rounds, || krbd_kmod::Symvers::parse(&text, "bench").expect("parse")),
    );
    report("parse Module.symvers + .config", time(rounds, || load_target(&spec, None).expect("target")));
    report("parse the three .ko", time(rounds, || krbd_kmod::check::read_candidates(&plain).expect("modules")));
    let whole = time(rounds, || check_files(&plain, &spec, None, &options).expect("check"));
    let whole_copy = Timing { best: whole.best, mean: whole.mean, cpu_mean: whole.cpu_mean };
    report("whole check, .ko files (read, parse, rules)", whole_copy);
    report(
        "whole check, Debian's .ko.xz files (+ xz decompression)",
        time(10, || check_files(&compressed, &spec, None, &options).expect("check")),
    );
    let (wall, cpu) = (whole.mean, whole.cpu_mean.unwrap_or(whole.mean));
    let verdict = if cpu < Duration::from_millis(50) { "under" } else { "OVER" };
    println!(
        "whole check of 3 modules: {:.2} ms of CPU ({:.2} ms wall on this machine's load), {verdict} the 50 ms target",
        ms(cpu),
        ms(wall)
    );
}
