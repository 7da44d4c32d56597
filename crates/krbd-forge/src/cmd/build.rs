use super::exit;
use super::terminal::Terminal;
use super::CacheArgs;
use krbd_build::patch::SeriesSource;
use krbd_build::{BuildError, BuildOptions, Inputs, KernelRelease};
use std::path::PathBuf;

/// Build the three Ceph modules for one kernel: fetch the exact Debian packages, extract
/// only the Ceph sources, apply a patch series, compile libceph and then ceph and rbd
/// against it with the kernel's own compiler, and publish OUT/<release>/ with the modules,
/// debug-stripped copies (stripped/) and build-report.json. Identical inputs are a cache hit.
#[derive(Debug, clap::Args)]
#[command(after_long_help = super::EXIT_CODES_HELP)]
pub struct BuildArgs {
    /// The kernel release, as `uname -r` prints it (6.1.0-56-amd64, 6.12.117+deb12-amd64).
    /// [default: the newest -amd64 release apt offers for the newest linux-source]
    #[arg(long, value_name = "RELEASE")]
    kernel: Option<String>,

    /// Use this kernel source tarball (.tar.xz, .tar.gz, .tar.zst, or a linux-source .deb)
    /// instead of fetching apt's linux-source package.
    #[arg(long, value_name = "FILE")]
    source_tarball: Option<PathBuf>,

    /// Use this kernel headers folder (with .config and Module.symvers, such as
    /// /usr/src/linux-headers-<release>) instead of apt's headers packages.
    #[arg(long, value_name = "DIR")]
    headers_dir: Option<PathBuf>,

    /// The patch series to apply: the name of one under the project's patches/ folder, or
    /// a folder with a `series` file (or with a `variants.toml`, whose variant is picked by
    /// the kernel release). `none` builds the modules unpatched.
    #[arg(long, value_name = "SERIES", default_value = "recovery-weight")]
    series: String,

    /// Where the results go: OUT/<release>/.
    #[arg(long, value_name = "OUT", default_value = "out")]
    out: PathBuf,

    #[command(flatten)]
    cache: CacheArgs,

    /// Parallel compile jobs. [default: the number of cores]
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,

    /// Print the build report as JSON on stdout (and no progress on stderr).
    #[arg(long)]
    json: bool,

    /// Print only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Where named series live: $KRBD_FORGE_PATCHES, beside the installed binary, or the
/// source checkout this binary was built from.
fn patches_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("KRBD_FORGE_PATCHES") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(bin) = exe.parent() {
            dirs.push(bin.join("../share/krbd-forge/patches"));
        }
    }
    dirs.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../patches")));
    dirs
}

/// A series by path or by name; `none` for an unpatched build.
pub fn find_series(arg: &str) -> Result<Option<SeriesSource>, BuildError> {
    if arg == "none" {
        return Ok(None);
    }
    let direct = PathBuf::from(arg);
    let is_series = |d: &std::path::Path| d.join("series").is_file() || d.join("variants.toml").is_file();
    if is_series(&direct) {
        return Ok(Some(SeriesSource::open(&direct)?));
    }
    if !arg.contains('/') {
        for d in patches_dirs() {
            let candidate = d.join(arg);
            if is_series(&candidate) {
                return Ok(Some(SeriesSource::open(&candidate)?));
            }
        }
    }
    // Let the loader say what is wrong with it.
    Ok(Some(SeriesSource::open(&direct)?))
}

fn options(args: &BuildArgs) -> Result<BuildOptions, BuildError> {
    let release = args.kernel.as_deref().map(KernelRelease::parse).transpose()?;
    let inputs = match &args.headers_dir {
        Some(dir) => {
            let headers = krbd_build::sysroot::Headers::open(dir)?;
            if let Some(r) = &release {
                if *r != headers.release {
                    return Err(BuildError::ReleaseMismatch {
                        requested: r.to_string(),
                        found: headers.release.to_string(),
                        headers: dir.clone(),
                    });
                }
            }
            Inputs::Local { headers_dir: dir.clone() }
        }
        None => Inputs::Debian { release },
    };
    if let Some(t) = &args.source_tarball {
        if !t.is_file() {
            return Err(BuildError::Io {
                op: "open",
                path: t.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    let series = find_series(&args.series)?;
    let cache = args.cache.open()?;
    let jobs = args
        .jobs
        .filter(|j| *j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(BuildOptions {
        inputs,
        source_tarball: args.source_tarball.clone(),
        series,
        out_root: args.out.clone(),
        cache,
        jobs,
    })
}

pub fn run(args: BuildArgs) -> i32 {
    let terminal = Terminal::new(args.json || args.quiet);
    let result = options(&args).and_then(|opts| krbd_build::build(&opts, &terminal));
    match result {
        Ok(outcome) => {
            if !args.quiet {
                eprint!("{}", outcome.report.summary(&outcome.out));
            }
            if args.json {
                let mut v = serde_json::to_value(&outcome.report).unwrap_or_default();
                v["out"] = serde_json::Value::String(outcome.out.display().to_string());
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            exit::OK
        }
        Err(e) => report_error(&e, args.json),
    }
}

pub fn report_error(e: &BuildError, json: bool) -> i32 {
    let code = exit::build_code(e);
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !message.contains(&s_text) {
            message += &format!(": {s_text}");
        }
        source = s.source();
    }
    eprintln!("error: {message}");
    if let Some(h) = exit::hint(e) {
        eprintln!("hint: {h}");
    }
    if json {
        let v = serde_json::json!({
            "error": { "kind": exit::kind(code), "exit_code": code, "message": message, "hint": exit::hint(e) }
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    code
}
