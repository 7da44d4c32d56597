//! `krbd-forge placement`: the placement model on the command line.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use krbd_placement::osdmap::OSD_IN;
use krbd_placement::OsdMap;

/// Exit codes of `placement` commands.
pub const EXIT_OK: i32 = 0;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_DECODE: i32 = 3;

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 success, 2 unreadable file or bad argument, 3 the map could not be decoded.")]
pub struct PlacementArgs {
    #[command(subcommand)]
    pub command: PlacementCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlacementCommand {
    /// Print every PG's raw, up and acting sets, line for line as
    /// `osdmaptool MAP --test-map-pgs-dump-all` does, so the two can be diffed.
    Map(MapArgs),
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
    }
}

fn load(path: &PathBuf) -> Result<OsdMap, i32> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(EXIT_BAD_INPUT);
        }
    };
    OsdMap::decode(&data).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        EXIT_DECODE
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
            return EXIT_BAD_INPUT;
        }
        map.set_recovery_weight(rw.osd, rw.weight);
    }
    if let Some(p) = a.pool {
        if !map.pools.contains_key(&p) {
            eprintln!("error: pool {p} is not in the map (pools: {:?})", map.pools.keys().collect::<Vec<_>>());
            return EXIT_BAD_INPUT;
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
