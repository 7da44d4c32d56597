use super::exit::{self, ExitCode, Failure};
use super::terminal::Terminal;
use super::CacheArgs;
use krbd_build::patch::SeriesSource;
use krbd_build::{BuildError, BuildOptions, Inputs, KernelRelease};
use std::path::PathBuf;

/// Build the three Ceph modules for one kernel or several: fetch the exact Debian packages
/// (or, for CentOS/Rocky/Alma 7-9 releases like 3.10.0-957.el7.x86_64, the source RPM and
/// kernel-devel RPM from the vaults), extract only the Ceph sources, apply a patch series,
/// compile libceph and then ceph and rbd against it with the kernel's own compiler, and
/// publish OUT/<release>/ with the modules, debug-stripped copies (stripped/) and
/// build-report.json. Identical inputs are a cache hit. With several --kernel flags every
/// target is built in turn, sharing the cache, and a table of the verdicts is printed; the
/// exit code is that of the first failure.
#[derive(Debug, clap::Args)]
#[command(after_long_help = krbd_host::exit::table())]
pub struct BuildArgs {
    /// The kernel release, as `uname -r` prints it: Debian (6.1.0-56-amd64,
    /// 6.12.117+deb12-amd64) or RHEL family (3.10.0-957.el7.x86_64, 4.18.0-372.9.1.el8.x86_64,
    /// 5.14.0-284.11.1.el9_2.x86_64). Repeat it to build several targets in one run.
    /// [default: the newest -amd64 release apt offers for the newest linux-source]
    #[arg(long, value_name = "RELEASE")]
    kernel: Vec<String>,

    /// RHEL family: use this kernel source RPM (.src.rpm) instead of the vault's.
    #[arg(long, value_name = "FILE")]
    srpm: Option<PathBuf>,

    /// RHEL family: use this kernel-devel RPM instead of the vault's. Without --kernel the
    /// release is the one it holds headers for.
    #[arg(long, value_name = "FILE")]
    devel_rpm: Option<PathBuf>,

    /// RHEL family: fetch from this mirror instead of the public vault, as DISTRO=URL with
    /// DISTRO one of centos, buildlogs, rocky, alma (repeatable; also
    /// KRBD_FORGE_MIRROR_CENTOS, _ROCKY, _ALMA, _BUILDLOGS).
    #[arg(long, value_name = "DISTRO=URL")]
    mirror: Vec<String>,

    /// RHEL family: every RPM used (downloaded, --srpm, --devel-rpm) must carry a good
    /// OpenPGP signature by a key in FILE (armored or binary, such as the distribution's
    /// RPM-GPG-KEY-*), checked with gpgv; else exit 5. Without it signatures are only
    /// listed in build-report.json, as not verified.
    #[arg(long, value_name = "FILE")]
    rpm_key: Option<PathBuf>,

    /// RHEL family: only this distro's vaults (centos, rocky, alma).
    #[arg(long, value_name = "DISTRO")]
    distro: Option<String>,

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

/// The RHEL request for `release` (or the release the kernel-devel RPM holds).
pub(super) fn mirrors_and_distro(
    mirror: &[String],
    distro: Option<&str>,
) -> Result<(krbd_build::rhel::catalog::Mirrors, Option<krbd_build::rhel::catalog::Distro>), BuildError> {
    use krbd_build::rhel::catalog::{Distro, Mirrors};
    let mut mirrors = Mirrors::from_env();
    for m in mirror {
        mirrors.set(m).map_err(|reason| BuildError::BadFlag { flag: format!("--mirror {m}"), reason })?;
    }
    let distro = match distro {
        Some(d) => Some(Distro::parse(d).ok_or_else(|| BuildError::BadFlag {
            flag: format!("--distro {d}"),
            reason: "the distros are centos, rocky, alma".into(),
        })?),
        None => None,
    };
    Ok((mirrors, distro))
}

fn rhel_request(args: &BuildArgs, release: Option<&str>) -> Result<krbd_build::rhel::prepare::RhelRequest, BuildError> {
    let (mirrors, distro) = mirrors_and_distro(&args.mirror, args.distro.as_deref())?;
    for f in [&args.srpm, &args.devel_rpm].into_iter().flatten() {
        if !f.is_file() {
            return Err(BuildError::Io {
                op: "open",
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    let release = match release {
        Some(r) => r.to_string(),
        None => {
            let devel = args.devel_rpm.as_ref().ok_or_else(|| BuildError::BadRelease {
                release: String::new(),
                reason: "--srpm needs --kernel RELEASE or --devel-rpm FILE to know the release".into(),
            })?;
            let rpm = krbd_fetch::rpm::RpmPackage::open(devel)?;
            let releases: std::collections::BTreeSet<String> = rpm
                .info
                .files
                .iter()
                .filter_map(|f| f.path.strip_prefix("/usr/src/kernels/"))
                .filter_map(|r| r.split('/').next())
                .map(String::from)
                .collect();
            match releases.len() {
                1 => releases.into_iter().next().unwrap_or_default(),
                _ => {
                    return Err(BuildError::BadHeaders {
                        headers: devel.clone(),
                        reason: format!(
                            "it holds headers for {} releases under /usr/src/kernels; name one with --kernel",
                            releases.len()
                        ),
                    })
                }
            }
        }
    };
    KernelRelease::parse(&release)?;
    Ok(krbd_build::rhel::prepare::RhelRequest {
        release,
        mirrors,
        distro,
        srpm: args.srpm.clone(),
        devel_rpm: args.devel_rpm.clone(),
        rpm_key: args
            .rpm_key
            .as_deref()
            .map(|p| krbd_fetch::rpm::RpmKeyring::load(p).map(std::sync::Arc::new))
            .transpose()?,
    })
}

fn options(args: &BuildArgs, kernel: Option<&str>) -> Result<BuildOptions, BuildError> {
    let rhel = args.srpm.is_some()
        || args.devel_rpm.is_some()
        || kernel.is_some_and(krbd_build::rhel::catalog::is_rhel_release);
    let release = kernel.map(KernelRelease::parse).transpose()?;
    let inputs = match &args.headers_dir {
        _ if rhel => Inputs::Rhel(rhel_request(args, kernel)?),
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
    if !rhel && args.rpm_key.is_some() {
        return Err(BuildError::BadFlag {
            flag: "--rpm-key".into(),
            reason: "it checks RPMs, and this target is built from Debian packages".into(),
        });
    }
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
    let jobs =
        args.jobs.filter(|j| *j > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(BuildOptions {
        inputs,
        source_tarball: args.source_tarball.clone(),
        series,
        out_root: args.out.clone(),
        cache,
        jobs,
    })
}

pub fn run(args: BuildArgs) -> ExitCode {
    if args.kernel.len() > 1 {
        return run_matrix(&args);
    }
    let terminal = Terminal::new(args.json || args.quiet);
    let result =
        options(&args, args.kernel.first().map(|s| s.as_str())).and_then(|opts| krbd_build::build(&opts, &terminal));
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
            ExitCode::Ok
        }
        Err(e) => report_error(&e, args.json),
    }
}

/// One target's verdict in a matrix run.
#[derive(Debug, serde::Serialize)]
struct MatrixRow {
    release: String,
    ok: bool,
    exit_code: i32,
    /// `ok`, or the exit code's kind (`target`, `patch`, `toolchain`, ...).
    verdict: &'static str,
    out: Option<String>,
    cache_hit: Option<bool>,
    /// `name sha256` of each module.
    modules: Vec<serde_json::Value>,
    error: Option<String>,
}

/// Builds every `--kernel` in turn (one cache, one out folder), then prints the table.
fn run_matrix(args: &BuildArgs) -> ExitCode {
    if args.srpm.is_some() || args.devel_rpm.is_some() || args.headers_dir.is_some() || args.source_tarball.is_some() {
        let message =
            "--srpm, --devel-rpm, --headers-dir and --source-tarball describe one target; give one --kernel with them";
        return Failure::new(ExitCode::Usage, message).report(args.json);
    }
    let terminal = Terminal::new(args.json || args.quiet);
    let mut rows = Vec::new();
    for kernel in &args.kernel {
        if !args.quiet && !args.json {
            eprintln!("== {kernel}");
        }
        let result = options(args, Some(kernel)).and_then(|opts| krbd_build::build(&opts, &terminal));
        rows.push(match result {
            Ok(outcome) => MatrixRow {
                release: kernel.clone(),
                ok: true,
                exit_code: ExitCode::Ok.code(),
                verdict: "ok",
                out: Some(outcome.out.display().to_string()),
                cache_hit: Some(outcome.report.cache_hit),
                modules: outcome
                    .report
                    .modules
                    .iter()
                    .map(|m| serde_json::json!({"name": m.name, "sha256": m.sha256, "vermagic": m.vermagic}))
                    .collect(),
                error: None,
            },
            Err(e) => {
                let code = exit::build_code(&e);
                if !args.json {
                    eprintln!("error: {kernel}: {e}");
                }
                MatrixRow {
                    release: kernel.clone(),
                    ok: false,
                    exit_code: code.code(),
                    verdict: code.kind(),
                    out: None,
                    cache_hit: None,
                    modules: Vec::new(),
                    error: Some(e.to_string()),
                }
            }
        });
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if args.json {
        let v = serde_json::json!({ "targets": rows, "built": rows.len() - failed, "failed": failed });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{:<34} {:<16} {:<7} OUT", "RELEASE", "VERDICT", "CACHED");
        for r in &rows {
            println!(
                "{:<34} {:<16} {:<7} {}",
                r.release,
                if r.ok { "ok".to_string() } else { format!("{} ({})", r.verdict, r.exit_code) },
                match r.cache_hit {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "",
                },
                r.out.as_deref().unwrap_or("")
            );
        }
        println!("{} built, {} failed", rows.len() - failed, failed);
    }
    rows.iter().find(|r| !r.ok).and_then(|r| ExitCode::from_code(r.exit_code)).unwrap_or(ExitCode::Ok)
}

/// Reports a build error (stderr; the JSON error on stdout with `json`).
pub fn report_error(e: &BuildError, json: bool) -> ExitCode {
    exit::report_build_error(e, json)
}
