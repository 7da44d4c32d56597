use super::exit::ExitCode;
use super::terminal::Terminal;
use super::CacheArgs;
use krbd_build::patch_check::{self, SourceSpec};
use krbd_build::rhel::catalog::{Distro, Mirror};
use krbd_build::BuildError;
use krbd_host::outln;

/// Work with patch series.
#[derive(Debug, clap::Args)]
#[command(after_long_help = krbd_host::exit::table())]
pub struct PatchArgs {
    #[command(subcommand)]
    command: PatchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PatchCommand {
    /// Report, for each variant of a series, which hunks apply to a kernel source and how
    /// (applied, offset, fuzz, failed), without building anything. For an RHEL-family
    /// release only the variant the build would pick is checked, and a series with none
    /// for it is refused before anything is downloaded. Exits 0 when at least one variant
    /// applies, 6 when none does (or the series has no variant for the release).
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = krbd_host::exit::table())]
struct CheckArgs {
    /// The kernel source: an unpacked tree, a tarball (.tar.xz/.gz/.zst) or linux-source
    /// .deb, or a kernel release. Only the source is fetched: for a Debian release its
    /// linux-source through apt (no headers or kbuild); for a CentOS/Rocky/Alma 7-9
    /// release (3.10.0-327.el7.x86_64) its source RPM from the vaults, as `build` finds
    /// it, with what its spec's %prep applies to the Ceph files. An argument with a `/` or
    /// an archive's extension is a path, and a missing one is "no such file" (exit 9).
    #[arg(long, value_name = "TREE|TARBALL|RELEASE")]
    source: String,

    /// RHEL family: fetch from this mirror instead of the public vault, as DISTRO=URL with
    /// DISTRO one of centos, buildlogs, rocky, alma (repeatable; also
    /// KRBD_FORGE_MIRROR_CENTOS, _ROCKY, _ALMA, _BUILDLOGS), as `build` does.
    #[arg(long, value_name = "DISTRO=URL", value_parser = super::build::parse_mirror)]
    mirror: Vec<Mirror>,

    /// RHEL family: only this distro's vaults (centos, rocky, alma).
    #[arg(long, value_name = "DISTRO")]
    distro: Option<Distro>,

    /// The series: a folder, or a name looked up in $KRBD_FORGE_PATCHES and then among the
    /// built-in series (recovery-weight); see `build --help`.
    #[arg(long, value_name = "SERIES", default_value = "recovery-weight")]
    series: String,

    #[command(flatten)]
    cache: CacheArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PatchArgs) -> ExitCode {
    match args.command {
        PatchCommand::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let terminal = Terminal::new(args.json);
    let cache = match args.cache.open() {
        Ok(cache) => cache,
        Err(e) => return super::build::report_error(&e.into(), args.json),
    };
    let series = match super::series::find_series(&args.series, &cache) {
        Ok(Some(series)) => series,
        Ok(None) => return super::build::report_usage("--series none: `patch check` needs a series", args.json),
        Err(failure) => return failure.report(args.json),
    };
    let mirrors = match super::build::mirrors(&args.mirror) {
        Ok(m) => m,
        Err(message) => return super::build::report_usage(&message, args.json),
    };
    let result = (|| {
        let spec = SourceSpec::from_arg(&args.source, &mirrors, args.distro)?;
        // The variants first: a series with none for the release needs no download.
        let variants = patch_check::variants_to_check(&series, &spec)?;
        let (sources, label) = patch_check::source_for(&cache, &spec, &terminal)?;
        let checks = patch_check::check_variants(variants, &sources, &cache)?;
        Ok::<_, BuildError>((label, checks))
    })();
    let (label, checks) = match result {
        Ok(v) => v,
        Err(e) => return super::build::report_error(&e, args.json),
    };
    let any = checks.iter().any(|c| c.applies);
    if args.json {
        let v = serde_json::json!({ "source": label, "variants": checks });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        outln!("source: {label}");
        for c in &checks {
            use krbd_build::patch::HunkStatus::*;
            let verdict = if c.clean {
                "applies"
            } else if c.applies {
                "applies with fuzz"
            } else {
                "does not apply"
            };
            outln!("\n{}: {verdict}", c.series);
            for p in &c.report.patches {
                let count = |s| p.hunks.iter().filter(|h| h.status == s).count();
                outln!(
                    "  {:<70} {} applied, {} offset, {} fuzz, {} failed",
                    p.patch,
                    count(Applied),
                    count(Offset),
                    count(Fuzz),
                    count(Failed)
                );
                for h in p.hunks.iter().filter(|h| h.status != Applied) {
                    outln!(
                        "    {} hunk #{} {:?} at line {} (offset {}, fuzz {})",
                        h.file,
                        h.hunk,
                        h.status,
                        h.line,
                        h.offset,
                        h.fuzz
                    );
                }
            }
            if let Some(f) = &c.failure {
                outln!("  first failure: {}", f.lines().next().unwrap_or(""));
            }
        }
    }
    if any {
        ExitCode::Ok
    } else {
        ExitCode::Patch
    }
}
