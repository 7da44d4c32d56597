//! `krbd-forge placement`: the placement model on the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use krbd_placement::osdmap::OSD_IN;
use krbd_placement::OsdMap;

/// Exit codes of `placement` commands, the same numbers the other subcommands use.
pub const EXIT_OK: i32 = 0;
pub const EXIT_INTERNAL: i32 = 1;
/// A flag names something the map does not have (pool, OSD), or a bad value.
pub const EXIT_USAGE: i32 = 2;
/// The map or incremental is corrupt, truncated or not of a supported encoding.
pub const EXIT_BAD_INPUT: i32 = 5;
/// A file cannot be read or written.
pub const EXIT_ENVIRONMENT: i32 = 9;

const PLACEMENT_EXIT_HELP: &str = "Exit codes: 0 success, 1 internal error, 2 usage error (bad flag, unknown pool or OSD), 5 the map is corrupt or of an unsupported encoding, 9 a file cannot be read or written.";

#[derive(Debug, Args)]
#[command(after_help = PLACEMENT_EXIT_HELP)]
pub struct PlacementArgs {
    #[command(subcommand)]
    pub command: PlacementCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlacementCommand {
    /// Print every PG's raw, up and acting sets, line for line as
    /// `osdmaptool MAP --test-map-pgs-dump-all` does, so the two can be diffed.
    #[command(after_help = PLACEMENT_EXIT_HELP)]
    Map(MapArgs),
    /// Show what ramping one OSD's recovery weight does, step by step: PGs that gain or lose
    /// the OSD, PGs left undersized, and warnings for the rule's quirks.
    #[command(after_help = PLACEMENT_EXIT_HELP)]
    Plan(PlanArgs),
    /// List the PGs whose up or acting set differs between two maps.
    #[command(after_help = PLACEMENT_EXIT_HELP)]
    Diff(DiffArgs),
    /// Write a fork-format map (wrapper compat 8 with recovery_weight) from a stock or fork
    /// map plus recovery weights, for the kernel selftest or a test cluster.
    #[command(after_help = PLACEMENT_EXIT_HELP)]
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

pub fn run(args: PlacementArgs) -> i32 {
    match args.command {
        PlacementCommand::Map(a) => run_map(a),
        PlacementCommand::Plan(a) => run_plan(a),
        PlacementCommand::Diff(a) => run_diff(a),
        PlacementCommand::EncodeFork(a) => run_encode_fork(a),
    }
}

fn load(path: &PathBuf) -> Result<OsdMap, i32> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(EXIT_ENVIRONMENT);
        }
    };
    OsdMap::decode(&data).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        EXIT_BAD_INPUT
    })
}

fn run_map(a: MapArgs) -> i32 {
    let mut map = match load(&a.map) {
        Ok(m) => m,
        Err(code) => return code,
    };
    for rw in &a.recovery_weight {
        if rw.osd >= map.max_osd {
            eprintln!("error: osd.{} does not exist (max_osd is {})", rw.osd, map.max_osd);
            return EXIT_USAGE;
        }
        map.set_recovery_weight(rw.osd, rw.weight);
    }
    if let Some(p) = a.pool {
        if !map.pools.contains_key(&p) {
            eprintln!("error: pool {p} is not in the map (pools: {:?})", map.pools.keys().collect::<Vec<_>>());
            return EXIT_USAGE;
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
    EXIT_OK
}

fn run_plan(a: PlanArgs) -> i32 {
    let map = match load(&a.map) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if a.osd >= map.max_osd {
        eprintln!("error: osd.{} does not exist (max_osd is {})", a.osd, map.max_osd);
        return EXIT_USAGE;
    }
    let current = map.recovery_weight.as_ref().and_then(|rw| rw.get(a.osd as usize).copied()).unwrap_or(OSD_IN);
    let from = a.from.unwrap_or(current);
    let weights = krbd_placement::plan::ramp_weights(from, a.to, a.steps);
    let mut start = map.clone();
    start.set_recovery_weight(a.osd, from);
    let plan = krbd_placement::plan::plan_ramp(&start, a.osd, &weights);
    if a.json {
        match serde_json::to_string(&plan) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INTERNAL;
            }
        }
        return EXIT_OK;
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
    EXIT_OK
}

fn run_diff(a: DiffArgs) -> i32 {
    let (ma, mb) = match (load(&a.map_a), load(&a.map_b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let d = krbd_placement::plan::diff_maps(&ma, &mb);
    if a.json {
        match serde_json::to_string(&d) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INTERNAL;
            }
        }
        return EXIT_OK;
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
    EXIT_OK
}

fn run_encode_fork(a: EncodeForkArgs) -> i32 {
    let data = match std::fs::read(&a.map) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.map.display());
            return EXIT_ENVIRONMENT;
        }
    };
    let mut map = match OsdMap::decode(&data) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {}: {e}", a.map.display());
            return EXIT_BAD_INPUT;
        }
    };
    for rw in &a.recovery_weight {
        if rw.osd >= map.max_osd {
            eprintln!("error: osd.{} does not exist (max_osd is {})", rw.osd, map.max_osd);
            return EXIT_USAGE;
        }
        map.set_recovery_weight(rw.osd, rw.weight);
    }
    let out = match map.encode_wrapped(&data, krbd_placement::encode::Flavor::Fork) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    // Nothing half-written: write beside the target, then rename over it.
    let tmp = a.output.with_extension("partial");
    if let Err(e) = std::fs::write(&tmp, &out).and_then(|_| std::fs::rename(&tmp, &a.output)) {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("error: cannot write {}: {e}", a.output.display());
        return EXIT_ENVIRONMENT;
    }
    EXIT_OK
}
