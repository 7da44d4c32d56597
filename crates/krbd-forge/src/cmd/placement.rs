//! `krbd-forge placement`: the placement model on the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use krbd_host::outln;
use krbd_placement::incremental::Incremental;
use krbd_placement::osdmap::OSD_IN;
use krbd_placement::placement::MapEvent;
use krbd_placement::stats::OsdStats;
use krbd_placement::{CrcCheck, DecodeError, OsdMap, PgMapping};

use super::exit::{help_with_table, ExitCode, Failure};
use super::terminal::Terminal;

/// `placement map` shows progress on stderr past this many PGs.
const PROGRESS_THRESHOLD: u64 = 1 << 18;

/// `placement diff`'s exit status, beside the table's.
const DIFF_HELP: &str = "Exit status: 0 when the maps place every PG alike, 1 when they differ (as diff(1)); \
                         a failure exits with its number from the table below and says so on stderr.";

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
    /// Show what ramping one OSD's recovery weight does, step by step: how many PGs move,
    /// whose up set shrinks, which are left undersized, and warnings for the rule's quirks.
    #[command(after_long_help = krbd_host::exit::table())]
    Plan(PlanArgs),
    /// List the PGs whose up or acting set differs between two maps; exits 1 when any does
    /// or a pool is in one map only.
    #[command(after_long_help = help_with_table(DIFF_HELP))]
    Diff(DiffArgs),
    /// Write a fork-format map (wrapper compat 8 with recovery_weight) from a stock or fork
    /// map plus recovery weights, for the kernel selftest or a test cluster.
    #[command(after_long_help = krbd_host::exit::table())]
    EncodeFork(EncodeForkArgs),
}

/// How maps are read.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Read maps whose CRC does not match (Ceph refuses them: the bytes are damaged).
    #[arg(long)]
    pub no_crc_check: bool,
}

impl ReadArgs {
    fn crc(&self) -> CrcCheck {
        if self.no_crc_check {
            CrcCheck::Skip
        } else {
            CrcCheck::Verify
        }
    }
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
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A binary OSDMap, stock or fork format.
    pub map: PathBuf,
    /// The OSD to ramp (a number or osd.N).
    #[arg(long, value_parser = parse_osd)]
    pub osd: i32,
    /// Starting weight (0..=1 or 0xNNNN); default: the OSD's recovery weight in the map
    /// (1.0 in a stock map).
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
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub map_a: PathBuf,
    pub map_b: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
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
    /// Apply these incrementals (of the following epochs, in order) to the map first.
    #[arg(long = "apply", value_name = "INCREMENTAL")]
    pub apply: Vec<PathBuf>,
    /// Override an OSD's recovery weight, as `osd.N=W` with W in 0..=1 (e.g. 0.25) or a raw
    /// 16.16 value in hex (0x4000). Turns a stock map into a fork map for the computation.
    #[arg(long = "recovery-weight", value_name = "osd.N=W", value_parser = parse_recovery_weight)]
    pub recovery_weight: Vec<RecoveryWeight>,
    /// Only this pool id.
    #[arg(long)]
    pub pool: Option<i64>,
    /// After the PGs, print osdmaptool's per-OSD table (count, first, primary, weights),
    /// spread and set sizes: the whole output then equals osdmaptool's.
    #[arg(long, conflicts_with = "json")]
    pub osd_stats: bool,
    /// Machine-readable output: one JSON document with every pool and PG.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
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
        PlacementCommand::Map(a) => (a.json, run_map(a).map(|()| ExitCode::Ok)),
        PlacementCommand::Plan(a) => (a.json, run_plan(a).map(|()| ExitCode::Ok)),
        PlacementCommand::Diff(a) => (a.json, run_diff(a).map(Comparison::exit)),
        PlacementCommand::EncodeFork(a) => (false, run_encode_fork(a).map(|()| ExitCode::Ok)),
    };
    result.unwrap_or_else(|failure| failure.report(json))
}

/// A file that cannot be read or written is the environment's failure.
fn io_failure(what: String, e: &std::io::Error) -> Failure {
    Failure::new(ExitCode::Environment, format!("{what}: {e}")).detail("io_kind", format!("{:?}", e.kind()))
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| io_failure(format!("cannot read {}", path.display()), &e))
}

/// A map or incremental that does not decode: bad input, with the CRC's region and values
/// when that is what failed.
fn decode_failure(path: &Path, e: &DecodeError) -> Failure {
    let failure = Failure::new(ExitCode::BadInput, format!("{}: {e}", path.display()));
    match *e {
        DecodeError::BadCrc { start, end, stored, computed, .. } => failure
            .with_hint(Some("--no-crc-check reads it anyway, at your own risk"))
            .detail("crc_start", start)
            .detail("crc_end", end)
            .detail("crc_stored", stored)
            .detail("crc_computed", computed),
        _ => failure,
    }
}

/// Decodes a full map; says what to do instead when the file is an incremental, and how to
/// read a map whose CRC fails.
fn decode(path: &Path, data: &[u8], crc: CrcCheck) -> Result<OsdMap, Failure> {
    OsdMap::decode_with(data, crc).map_err(|e| match Incremental::decode_with(data, crc) {
        Ok(inc) => incremental_not_map(path, inc.epoch),
        Err(_) => decode_failure(path, &e),
    })
}

/// An incremental given where a full map is needed.
fn incremental_not_map(path: &Path, epoch: u32) -> Failure {
    Failure::new(
        ExitCode::BadInput,
        format!("{} is an OSDMap incremental (the changes of epoch {epoch}), not a full map", path.display()),
    )
    .with_hint(Some(format!(
        "apply it to the full map of epoch {} with `krbd-forge placement map FULL_MAP --apply {}`, or fetch the full map with `ceph osd getmap {epoch} -o FILE`",
        epoch.saturating_sub(1),
        path.display(),
    )))
    .detail("incremental_epoch", epoch)
}

fn load(path: &Path, crc: CrcCheck) -> Result<OsdMap, Failure> {
    decode(path, &read(path)?, crc)
}

/// Applies incrementals in order; each must be of the epoch after the map's.
fn apply_incrementals(map: &mut OsdMap, paths: &[PathBuf], crc: CrcCheck) -> Result<(), Failure> {
    for p in paths {
        let data = read(p)?;
        let inc = Incremental::decode_with(&data, crc).map_err(|e| decode_failure(p, &e))?;
        let next = map.epoch.wrapping_add(1);
        if inc.epoch != next {
            return Err(Failure::new(
                ExitCode::Usage,
                format!(
                    "{} is the incremental of epoch {}, but the map is at epoch {}: pass the incremental of epoch {next}",
                    p.display(),
                    inc.epoch,
                    map.epoch,
                ),
            )
            .detail("incremental_epoch", inc.epoch)
            .detail("map_epoch", map.epoch));
        }
        inc.apply(map)
            .map_err(|e| Failure::new(ExitCode::BadInput, format!("{}: the full map it carries: {e}", p.display())))?;
    }
    Ok(())
}

fn check_osd(map: &OsdMap, osd: i32) -> Result<(), Failure> {
    if osd >= map.max_osd {
        return Err(Failure::new(ExitCode::Usage, format!("osd.{osd} does not exist (max_osd is {})", map.max_osd)));
    }
    Ok(())
}

/// Applies `osd.N=W` overrides; an OSD the map does not have is a usage error.
fn set_recovery_weights(map: &mut OsdMap, weights: &[RecoveryWeight]) -> Result<(), Failure> {
    for rw in weights {
        check_osd(map, rw.osd)?;
        map.set_recovery_weight(rw.osd, rw.weight);
    }
    Ok(())
}

fn prepare_map(a: &MapArgs) -> Result<OsdMap, Failure> {
    let mut map = load(&a.map, a.read.crc())?;
    apply_incrementals(&mut map, &a.apply, a.read.crc())?;
    set_recovery_weights(&mut map, &a.recovery_weight)?;
    if let Some(p) = a.pool {
        if !map.pools.contains_key(&p) {
            let pools = map.pools.keys().collect::<Vec<_>>();
            return Err(Failure::new(ExitCode::Usage, format!("pool {p} is not in the map (pools: {pools:?})")));
        }
    }
    Ok(map)
}

fn run_map(a: MapArgs) -> Result<(), Failure> {
    let map = prepare_map(&a)?;
    let total: u64 =
        map.pools.iter().filter(|(id, _)| a.pool.is_none_or(|p| p == **id)).map(|(_, p)| p.pg_num as u64).sum();
    let terminal = Terminal::new(total < PROGRESS_THRESHOLD);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut stats = a.osd_stats.then(|| OsdStats::new(&map));
    let written = if a.json {
        write_map_json(&map, a.pool, threads, &terminal, &mut out)
    } else {
        map.map_streaming(a.pool, threads, &terminal, |event| write_map_lines(&mut out, event, stats.as_mut()))
            .and_then(|()| stats.map_or(Ok(()), |s| out.write_all(s.osdmaptool_table(&map).as_bytes())))
    };
    finish_output(written.and_then(|()| out.flush()))
}

/// Success, or quiet success when the reader went away (`| head`), or an environment error.
fn finish_output(written: std::io::Result<()>) -> Result<(), Failure> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(io_failure("cannot write the output".to_string(), &e))
        }
        _ => Ok(()),
    }
}

fn write_map_lines(out: &mut impl Write, event: MapEvent<'_>, stats: Option<&mut OsdStats>) -> std::io::Result<()> {
    match event {
        MapEvent::Pool { id, pg_num } => writeln!(out, "pool {id} pg_num {pg_num}"),
        MapEvent::Pgs(pgs) => {
            let mut line = String::with_capacity(128);
            for m in pgs.iter() {
                line.clear();
                m.write_osdmaptool_line(&mut line);
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            if let Some(stats) = stats {
                pgs.iter().for_each(|m| stats.add(m));
            }
            Ok(())
        }
    }
}

/// `{"epoch":…,"fork_format":…,"pools":[{"pool":…,"pg_num":…,"pgs":[…]},…]}`, written as
/// the PGs are mapped.
fn write_map_json(
    map: &OsdMap,
    pool: Option<i64>,
    threads: usize,
    listener: &dyn krbd_progress::Listener,
    out: &mut impl Write,
) -> std::io::Result<()> {
    write!(out, "{{\"epoch\":{},\"fork_format\":{},\"pools\":[", map.epoch, map.is_fork_format())?;
    let (mut first_pool, mut first_pg) = (true, true);
    map.map_streaming(pool, threads, listener, |event| match event {
        MapEvent::Pool { id, pg_num } => {
            let sep = if first_pool { "" } else { "]}," };
            first_pool = false;
            first_pg = true;
            write!(out, "{sep}{{\"pool\":{id},\"pg_num\":{pg_num},\"pgs\":[")
        }
        MapEvent::Pgs(pgs) => pgs.iter().try_for_each(|m| {
            if !std::mem::take(&mut first_pg) {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, m).map_err(std::io::Error::other)
        }),
    })?;
    writeln!(out, "{}]}}", if first_pool { "" } else { "]}" })
}

fn run_plan(a: PlanArgs) -> Result<(), Failure> {
    let map = load(&a.map, a.read.crc())?;
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
    print_plan(&plan, a.to, krbd_host::terminal::verbose());
    Ok(())
}

/// One line of JSON on stdout (plans and diffs can be large).
fn print_compact_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::new(ExitCode::Internal, format!("cannot write JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

fn fraction(w: u32) -> f64 {
    w as f64 / OSD_IN as f64
}

/// The starting state, then one summary line per step; with `verbose` the PGs behind each
/// number.
fn print_plan(plan: &krbd_placement::plan::Plan, to: u32, verbose: bool) {
    let st = &plan.start;
    outln!("osd.{}: recovery weight {:#x} -> {:#x} in {} steps", plan.osd, st.weight, to, plan.steps.len());
    for w in &plan.warnings {
        outln!("warning: {w}");
    }
    outln!(
        "start  weight {:#07x} ({:.4}): holds {} PGs, {} undersized",
        st.weight,
        fraction(st.weight),
        st.holding,
        st.undersized.len()
    );
    if verbose {
        print_pgs("undersized", &st.undersized);
    }
    for (i, step) in plan.steps.iter().enumerate() {
        outln!(
            "step {} weight {:#07x} ({:.4}): holds {} PGs, {} PGs move (+{} -{}), {} up sets shrink, {} undersized",
            i + 1,
            step.weight,
            fraction(step.weight),
            step.holding,
            step.gained.len() + step.lost.len(),
            step.gained.len(),
            step.lost.len(),
            step.shrunk.len(),
            step.undersized.len()
        );
        if verbose {
            print_pgs("gains", &step.gained);
            print_pgs("loses", &step.lost);
            print_pgs("shrinks", &step.shrunk);
            print_pgs("undersized", &step.undersized);
        }
    }
}

fn print_pgs(label: &str, pgs: &[String]) {
    if !pgs.is_empty() {
        outln!("  {label}: {}", pgs.join(" "));
    }
}

/// What `placement diff` found. Maps that differ are its answer, not a failure: its output
/// (text or JSON) is the diff, and only the exit status says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Alike,
    Differ,
}

impl Comparison {
    /// 0 when the maps place every PG alike; 1 when they differ, as diff(1) exits when
    /// files differ. The table has one row per number, so 1 is `ExitCode::Internal`'s row,
    /// whose meaning documents this case (`placement diff` alone).
    fn exit(self) -> ExitCode {
        match self {
            Comparison::Alike => ExitCode::Ok,
            Comparison::Differ => ExitCode::Internal,
        }
    }
}

fn run_diff(a: DiffArgs) -> Result<Comparison, Failure> {
    let ma = load(&a.map_a, a.read.crc())?;
    let mb = load(&a.map_b, a.read.crc())?;
    let d = krbd_placement::plan::diff_maps(&ma, &mb);
    let differ = !d.changed.is_empty() || !d.pools_only_in_a.is_empty() || !d.pools_only_in_b.is_empty();
    let comparison = if differ { Comparison::Differ } else { Comparison::Alike };
    if a.json {
        print_compact_json(&d)?;
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        finish_output(write_diff(&mut out, &d, &a).and_then(|()| out.flush()))?;
    }
    Ok(comparison)
}

/// Each changed PG as two `map` lines, `-` from the first map and `+` from the second,
/// then the pools only one map has and a count.
fn write_diff(out: &mut impl Write, d: &krbd_placement::plan::MapDiff, a: &DiffArgs) -> std::io::Result<()> {
    let line = |m: &PgMapping| m.osdmaptool_line();
    for c in &d.changed {
        writeln!(out, "-{}", line(&c.before))?;
        writeln!(out, "+{}", line(&c.after))?;
    }
    for p in &d.pools_only_in_a {
        writeln!(out, "pool {p} only in {}", a.map_a.display())?;
    }
    for p in &d.pools_only_in_b {
        writeln!(out, "pool {p} only in {}", a.map_b.display())?;
    }
    writeln!(out, "{} of {} PGs changed", d.changed.len(), d.compared)
}

fn run_encode_fork(a: EncodeForkArgs) -> Result<(), Failure> {
    let data = read(&a.map)?;
    let mut map = decode(&a.map, &data, a.read.crc())?;
    set_recovery_weights(&mut map, &a.recovery_weight)?;
    let out = map
        .encode_wrapped(&data, krbd_placement::encode::Flavor::Fork)
        .map_err(|e| Failure::new(ExitCode::BadInput, e.to_string()))?;
    // Nothing half-written: write beside the target, then rename over it.
    let tmp = a.output.with_extension("partial");
    if let Err(e) = std::fs::write(&tmp, &out).and_then(|_| std::fs::rename(&tmp, &a.output)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_failure(format!("cannot write {}", a.output.display()), &e));
    }
    Ok(())
}
