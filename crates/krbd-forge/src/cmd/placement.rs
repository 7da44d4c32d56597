//! `krbd-forge placement`: the placement model on the command line.

use std::path::{Path, PathBuf};

use super::exit::{ExitCode, Failure};
use clap::{Args, Subcommand};
use krbd_placement::osdmap::OSD_IN;
use krbd_placement::OsdMap;

#[derive(Debug, Args)]
#[command(after_long_help = krbd_host::exit::table())]
pub struct PlacementArgs {
    #[command(subcommand)]
    pub command: PlacementCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlacementCommand {
    /// Print every PG's raw, up and acting sets, line for line as
    /// `osdmaptool MAP --test-map-pgs-dump-all` does, so the two can be diffed.
    #[command(after_long_help = krbd_host::exit::table())]
    Map(MapArgs),
    /// Show what ramping one OSD's recovery weight does, step by step: PGs that gain or lose
    /// the OSD, PGs left undersized, and warnings for the rule's quirks.
    #[command(after_long_help = krbd_host::exit::table())]
    Plan(PlanArgs),
    /// List the PGs whose up or acting set differs between two maps.
    #[command(after_long_help = krbd_host::exit::table())]
    Diff(DiffArgs),
    /// Write a fork-format map (wrapper compat 8 with recovery_weight) from a stock or fork
    /// map plus recovery weights, for the kernel selftest or a test cluster.
    #[command(after_long_help = krbd_host::exit::table())]
    EncodeFork(EncodeForkArgs),
}

#[derive(Debug, Args)]
pub struct EncodeForkArgs {
    /// A binary OSDMap from Ceph 0.80 or newer (wrapped encoding).
    pub map: PathBuf,
    /// Recovery weights to set, as osd.N=W (others stay as they are, or 1.0).
    #[arg(long = "recovery-weight", value_name = "osd.N=W", value_parser = parse_recovery_weight)]
    pub recovery_weight: Vec<RecoveryWeight>,
    /// Where to write the fork map (written whole to a temporary file, then renamed).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A binary OSDMap, stock or fork format.
    pub map: PathBuf,
    /// The OSD to ramp (a number or osd.N).
    #[arg(long, value_parser = parse_osd)]
    pub osd: i32,
    /// Starting weight (0..=1 or 0xNNNN); default: the map's current recovery weight.
    #[arg(long, value_parser = parse_weight)]
    pub from: Option<u32>,
    /// Final weight (0..=1 or 0xNNNN).
    #[arg(long, value_parser = parse_weight, default_value = "1")]
    pub to: u32,
    /// Number of steps between --from and --to.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub steps: u32,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub map_a: PathBuf,
    pub map_b: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn parse_osd(s: &str) -> Result<i32, String> {
    s.strip_prefix("osd.")
        .unwrap_or(s)
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("'{s}' is not an OSD like 3 or osd.3"))
}

fn parse_weight(s: &str) -> Result<u32, String> {
    parse_recovery_weight(&format!("osd.0={s}")).map(|r| r.weight)
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// A binary OSDMap (`ceph osd getmap -o FILE`), stock or fork format.
    pub map: PathBuf,
    /// Override an OSD's recovery weight, as `osd.N=W` with W in 0..=1 (e.g. 0.25) or a raw
    /// 16.16 value in hex (0x4000). Turns a stock map into a fork map for the computation.
    #[arg(long = "recovery-weight", value_name = "osd.N=W", value_parser = parse_recovery_weight)]
    pub recovery_weight: Vec<RecoveryWeight>,
    /// Only this pool id.
    #[arg(long)]
    pub pool: Option<i64>,
    /// Machine-readable output: one JSON document with every pool and PG.
    #[arg(long)]
    pub json: bool,
}

/// A validated `osd.N=W` override.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryWeight {
    pub osd: i32,
    pub weight: u32,
}

fn parse_recovery_weight(s: &str) -> Result<RecoveryWeight, String> {
    let (lhs, rhs) = s.split_once('=').ok_or_else(|| format!("'{s}' is not osd.N=W (example: osd.3=0.5)"))?;
    let osd: i32 = lhs
        .strip_prefix("osd.")
        .unwrap_or(lhs)
        .parse()
        .ok()
        .filter(|n: &i32| *n >= 0)
        .ok_or_else(|| format!("'{lhs}' is not an OSD name like osd.3"))?;
    let weight = if let Some(hex) = rhs.strip_prefix("0x") {
        u32::from_str_radix(hex, 16).map_err(|_| format!("'{rhs}' is not a hex weight"))?
    } else {
        let f: f64 = rhs.parse().map_err(|_| format!("'{rhs}' is not a weight between 0 and 1"))?;
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("weight {f} is outside 0..=1"));
        }
        (f * OSD_IN as f64).round() as u32
    };
    if weight > OSD_IN {
        return Err(format!("weight {weight:#x} is above 0x10000 (1.0)"));
    }
    Ok(RecoveryWeight { osd, weight })
}

pub fn run(args: PlacementArgs) -> ExitCode {
    let (json, result) = match args.command {
        PlacementCommand::Map(a) => (a.json, run_map(a)),
        PlacementCommand::Plan(a) => (a.json, run_plan(a)),
        PlacementCommand::Diff(a) => (a.json, run_diff(a)),
        PlacementCommand::EncodeFork(a) => (false, run_encode_fork(a)),
    };
    match result {
        Ok(()) => ExitCode::Ok,
        Err(failure) => failure.report(json),
    }
}

/// Reads a map file: a file that cannot be read is the environment's failure.
fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::new(ExitCode::Environment, format!("cannot read {}: {e}", path.display()))
            .detail("io_kind", format!("{:?}", e.kind()))
    })
}

/// Reads and decodes a map; a corrupt one is bad input.
fn load(path: &Path) -> Result<OsdMap, Failure> {
    let data = read(path)?;
    OsdMap::decode(&data).map_err(|e| Failure::new(ExitCode::BadInput, format!("{}: {e}", path.display())))
}

/// Applies `osd.N=W` overrides; an OSD the map does not have is a usage error.
fn apply_recovery_weights(map: &mut OsdMap, weights: &[RecoveryWeight]) -> Result<(), Failure> {
    for rw in weights {
        check_osd(map, rw.osd)?;
        map.set_recovery_weight(rw.osd, rw.weight);
    }
    Ok(())
}

fn check_osd(map: &OsdMap, osd: i32) -> Result<(), Failure> {
    if osd >= map.max_osd {
        return Err(Failure::new(ExitCode::Usage, format!("osd.{osd} does not exist (max_osd is {})", map.max_osd)));
    }
    Ok(())
}

fn run_map(a: MapArgs) -> Result<(), Failure> {
    let mut map = load(&a.map)?;
    apply_recovery_weights(&mut map, &a.recovery_weight)?;
    if let Some(p) = a.pool {
        if !map.pools.contains_key(&p) {
            let pools = map.pools.keys().collect::<Vec<_>>();
            return Err(Failure::new(ExitCode::Usage, format!("pool {p} is not in the map (pools: {pools:?})")));
        }
    }
    let result = map.map_all(a.pool);
    if a.json {
        let pools: Vec<_> = result
            .iter()
            .map(|(id, pg_num, pgs)| serde_json::json!({"pool": id, "pg_num": pg_num, "pgs": pgs}))
            .collect();
        let doc = serde_json::json!({"epoch": map.epoch, "fork_format": map.is_fork_format(), "pools": pools});
        println!("{doc}");
    } else {
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut line = String::with_capacity(128);
        for (id, pg_num, pgs) in &result {
            let _ = writeln!(out, "pool {id} pg_num {pg_num}");
            for m in pgs {
                line.clear();
                m.write_osdmaptool_line(&mut line);
                line.push('\n');
                let _ = out.write_all(line.as_bytes());
            }
        }
        let _ = out.flush();
    }
    Ok(())
}

fn run_plan(a: PlanArgs) -> Result<(), Failure> {
    let map = load(&a.map)?;
    check_osd(&map, a.osd)?;
    let current = map.recovery_weight.as_ref().and_then(|rw| rw.get(a.osd as usize).copied()).unwrap_or(OSD_IN);
    let from = a.from.unwrap_or(current);
    let weights = krbd_placement::plan::ramp_weights(from, a.to, a.steps);
    let mut start = map.clone();
    start.set_recovery_weight(a.osd, from);
    let plan = krbd_placement::plan::plan_ramp(&start, a.osd, &weights);
    if a.json {
        return print_compact_json(&plan);
    }
    println!("osd.{}: recovery weight {:#x} -> {:#x} in {} steps", a.osd, from, a.to, a.steps);
    for w in &plan.warnings {
        println!("warning: {w}");
    }
    for (i, st) in plan.steps.iter().enumerate() {
        println!(
            "step {} weight {:#07x} ({:.4}): holds {} PGs, +{} -{}, {} undersized",
            i + 1,
            st.weight,
            st.weight as f64 / OSD_IN as f64,
            st.holding,
            st.gained.len(),
            st.lost.len(),
            st.undersized.len()
        );
        if !st.gained.is_empty() {
            println!("  gains: {}", st.gained.join(" "));
        }
        if !st.lost.is_empty() {
            println!("  loses: {}", st.lost.join(" "));
        }
        if !st.undersized.is_empty() {
            println!("  undersized: {}", st.undersized.join(" "));
        }
    }
    Ok(())
}

fn run_diff(a: DiffArgs) -> Result<(), Failure> {
    let (ma, mb) = match (load(&a.map_a), load(&a.map_b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(f), _) | (_, Err(f)) => return Err(f),
    };
    let d = krbd_placement::plan::diff_maps(&ma, &mb);
    if a.json {
        return print_compact_json(&d);
    }
    for c in &d.changed {
        println!(
            "{} up {:?} p{} -> {:?} p{}  acting {:?} p{} -> {:?} p{}",
            c.before.pg,
            c.before.up,
            c.before.up_primary,
            c.after.up,
            c.after.up_primary,
            c.before.acting,
            c.before.acting_primary,
            c.after.acting,
            c.after.acting_primary
        );
    }
    for p in &d.pools_only_in_a {
        println!("pool {p} only in {}", a.map_a.display());
    }
    for p in &d.pools_only_in_b {
        println!("pool {p} only in {}", a.map_b.display());
    }
    println!("{} of {} PGs changed", d.changed.len(), d.compared);
    Ok(())
}

/// One line of JSON on stdout (plans and diffs can be large).
fn print_compact_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::new(ExitCode::Internal, format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn run_encode_fork(a: EncodeForkArgs) -> Result<(), Failure> {
    let data = read(&a.map)?;
    let mut map =
        OsdMap::decode(&data).map_err(|e| Failure::new(ExitCode::BadInput, format!("{}: {e}", a.map.display())))?;
    apply_recovery_weights(&mut map, &a.recovery_weight)?;
    let out = map
        .encode_wrapped(&data, krbd_placement::encode::Flavor::Fork)
        .map_err(|e| Failure::new(ExitCode::BadInput, e.to_string()))?;
    // Nothing half-written: write beside the target, then rename over it.
    let tmp = a.output.with_extension("partial");
    if let Err(e) = std::fs::write(&tmp, &out).and_then(|_| std::fs::rename(&tmp, &a.output)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Failure::new(ExitCode::Environment, format!("cannot write {}: {e}", a.output.display()))
            .detail("io_kind", format!("{:?}", e.kind())));
    }
    Ok(())
}
