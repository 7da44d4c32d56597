use super::exit::{self, ExitCode, Failure};
use super::terminal::Terminal;
use super::CacheArgs;
use krbd_build::rhel::catalog::{self, Distro, Mirror, MirrorSite, Mirrors};
use krbd_build::rhel::prepare::{self, RhelRequest};
use krbd_build::{BuildError, BuildOptions, Inputs, KernelRelease};
use krbd_host::outln;
use std::path::PathBuf;

/// Build the three Ceph modules for one kernel or several: fetch the exact Debian packages
/// (or, for CentOS/Rocky/Alma 7-9 releases like 3.10.0-957.el7.x86_64, the source RPM and
/// kernel-devel RPM from the vaults), extract only the Ceph sources, apply a patch series,
/// compile libceph and then ceph and rbd against it with the kernel's own compiler, and
/// publish OUT/<release>/ with the modules, debug-stripped copies (stripped/) and
/// build-report.json. Identical inputs are a cache hit. With several --kernel flags every
/// target is built in turn, sharing the cache, and a table of the verdicts is printed; the
/// exit code is that of the first failure. For an RHEL-family release the series' variant
/// and the distribution's compiler are decided before anything is downloaded: no variant
/// is exit 6 (`--series none` builds the stock modules), the wrong gcc exit 7.
#[derive(Debug, clap::Args)]
#[command(after_long_help = krbd_host::exit::table())]
#[command(group(clap::ArgGroup::new("release_source").args(["kernel", "devel_rpm"]).multiple(true)))]
pub struct BuildArgs {
    /// The kernel release, as `uname -r` prints it: Debian (such as 6.1.0-56-amd64,
    /// 6.12.117+deb12-amd64; `krbd-forge targets` lists those apt offers now and whether each
    /// builds) or RHEL family (3.10.0-957.el7.x86_64, 4.18.0-372.9.1.el8.x86_64,
    /// 5.14.0-284.11.1.el9_2.x86_64). Repeat it to build several targets in one run.
    /// [default: the newest buildable -amd64 release apt offers for the newest linux-source]
    #[arg(long, value_name = "RELEASE")]
    kernel: Vec<String>,

    /// RHEL family: use this kernel source RPM (.src.rpm) instead of the vault's. The
    /// release comes from --kernel or from --devel-rpm.
    #[arg(long, value_name = "FILE", requires = "release_source")]
    srpm: Option<PathBuf>,

    /// RHEL family: use this kernel-devel RPM instead of the vault's. Without --kernel the
    /// release is the one it holds headers for.
    #[arg(long, value_name = "FILE")]
    devel_rpm: Option<PathBuf>,

    /// RHEL family: fetch from this mirror instead of the public vault, as DISTRO=URL with
    /// DISTRO one of centos, buildlogs, rocky, alma (repeatable; also
    /// KRBD_FORGE_MIRROR_CENTOS, _ROCKY, _ALMA, _BUILDLOGS).
    #[arg(long, value_name = "DISTRO=URL", value_parser = parse_mirror)]
    mirror: Vec<Mirror>,

    /// RHEL family: every RPM used (downloaded, --srpm, --devel-rpm) must carry a good
    /// OpenPGP signature by a key in FILE (armored or binary, such as the distribution's
    /// RPM-GPG-KEY-*), checked with gpgv; else exit 5. Without it signatures are only
    /// listed in build-report.json, as not verified.
    #[arg(long, value_name = "FILE")]
    rpm_key: Option<PathBuf>,

    /// RHEL family: only this distro's vaults (centos, rocky, alma).
    #[arg(long, value_name = "DISTRO")]
    distro: Option<Distro>,

    /// Use this kernel source tarball (.tar.xz, .tar.gz, .tar.zst, or a linux-source .deb)
    /// instead of fetching apt's linux-source package.
    #[arg(long, value_name = "FILE")]
    source_tarball: Option<PathBuf>,

    /// Use this kernel headers folder (with .config and Module.symvers, such as
    /// /usr/src/linux-headers-<release>) instead of apt's headers packages.
    #[arg(long, value_name = "DIR")]
    headers_dir: Option<PathBuf>,

    /// The patch series to apply: a folder with a `series` file (or with a `variants.toml`,
    /// whose variant is picked by the kernel release), or a name: looked up first in the
    /// folder $KRBD_FORGE_PATCHES names (set but empty, or not a folder, is a usage error),
    /// then among the series built into this binary (recovery-weight). `none` builds the
    /// modules unpatched.
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
}

/// `--mirror DISTRO=URL`.
pub(super) fn parse_mirror(arg: &str) -> Result<Mirror, String> {
    let (site, url) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected DISTRO=URL, such as rocky=http://127.0.0.1:8080/rocky"))?;
    Ok(Mirror { site: site.parse().map_err(|e| format!("{e}"))?, url: url.parse().map_err(|e| format!("{e}"))? })
}

/// The vaults: the public ones, overridden by `KRBD_FORGE_MIRROR_{CENTOS,BUILDLOGS,ROCKY,ALMA}`,
/// then by each `--mirror`. `Err`: a variable that holds no http(s) URL, for a usage error.
pub(super) fn mirrors(flags: &[Mirror]) -> Result<Mirrors, String> {
    let mut mirrors = Mirrors::default();
    for (site, name) in MirrorSite::ALL {
        let var = format!("KRBD_FORGE_MIRROR_{}", name.to_ascii_uppercase());
        if let Some(value) = std::env::var(&var).ok().filter(|v| !v.is_empty()) {
            let url = value.parse().map_err(|e| format!("{var}: {e}"))?;
            mirrors.set(Mirror { site, url });
        }
    }
    for mirror in flags {
        mirrors.set(mirror.clone());
    }
    Ok(mirrors)
}

/// Why one target was not built.
pub(super) enum BuildFailure {
    /// The flags do not fit this target: a usage error.
    Usage(String),
    Build(BuildError),
}

impl From<BuildError> for BuildFailure {
    fn from(e: BuildError) -> Self {
        BuildFailure::Build(e)
    }
}

impl From<krbd_fetch::FetchError> for BuildFailure {
    fn from(e: krbd_fetch::FetchError) -> Self {
        BuildFailure::Build(e.into())
    }
}

impl BuildFailure {
    fn exit_code(&self) -> ExitCode {
        match self {
            BuildFailure::Usage(_) => ExitCode::Usage,
            BuildFailure::Build(e) => exit::build_code(e),
        }
    }

    /// What the error's own text cannot say (see `exit::hint`).
    fn hint(&self) -> Option<String> {
        match self {
            BuildFailure::Usage(_) => None,
            BuildFailure::Build(e) => exit::hint(e),
        }
    }

    /// Prints the error (and with `json`, its JSON form); returns the exit code.
    pub(super) fn report(&self, json: bool) -> ExitCode {
        match self {
            BuildFailure::Usage(message) => report_usage(message, json),
            BuildFailure::Build(e) => report_error(e, json),
        }
    }
}

impl std::fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildFailure::Usage(message) => f.write_str(message),
            BuildFailure::Build(e) => e.fmt(f),
        }
    }
}

/// The RHEL request for `release` (or for the release the kernel-devel RPM holds).
fn rhel_request(args: &BuildArgs, release: Option<KernelRelease>) -> Result<RhelRequest, BuildFailure> {
    let mirrors = mirrors(&args.mirror).map_err(BuildFailure::Usage)?;
    let release = match (release, &args.devel_rpm) {
        (Some(release), _) => release,
        (None, Some(devel)) => prepare::devel_rpm_release(devel)?,
        // clap's `requires` on --srpm makes this unreachable; stay a usage error.
        (None, None) => {
            return Err(BuildFailure::Usage(
                "--srpm needs --kernel RELEASE or --devel-rpm FILE to know the release".into(),
            ))
        }
    };
    let rpm_key = args.rpm_key.as_deref().map(krbd_fetch::rpm::RpmKeyring::load).transpose()?;
    Ok(RhelRequest {
        release,
        mirrors,
        distro: args.distro,
        srpm: args.srpm.clone(),
        devel_rpm: args.devel_rpm.clone(),
        rpm_key: rpm_key.map(std::sync::Arc::new),
    })
}

fn options(args: &BuildArgs, kernel: Option<&str>) -> Result<BuildOptions, BuildFailure> {
    let rhel = args.srpm.is_some() || args.devel_rpm.is_some() || kernel.is_some_and(catalog::is_rhel_release);
    let release = kernel.map(KernelRelease::parse).transpose()?;
    if !rhel && args.rpm_key.is_some() {
        return Err(BuildFailure::Usage(
            "--rpm-key: it checks RPMs, and this target is built from Debian packages".into(),
        ));
    }
    let inputs = match &args.headers_dir {
        _ if rhel => Inputs::Rhel(rhel_request(args, release)?),
        Some(dir) => {
            let headers = krbd_build::sysroot::Headers::open(dir)?;
            if let Some(r) = release.filter(|r| *r != headers.release) {
                return Err(BuildError::ReleaseMismatch {
                    requested: r.to_string(),
                    found: headers.release.to_string(),
                    headers: dir.clone(),
                }
                .into());
            }
            Inputs::Local { headers_dir: dir.clone() }
        }
        None => Inputs::Debian { release },
    };
    let cache = args.cache.open()?;
    let series = super::series::find_series(&args.series, &cache)?;
    let jobs =
        args.jobs.filter(|j| *j > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = BuildOptions {
        inputs,
        source_tarball: args.source_tarball.clone(),
        series,
        out_root: args.out.clone(),
        cache,
        jobs,
    };
    Ok(opts)
}

/// The `--kernel` releases to build, each once, in the order first given.
fn unique_kernels(kernels: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    kernels.iter().filter(|k| seen.insert(k.as_str())).cloned().collect()
}

pub fn run(mut args: BuildArgs) -> ExitCode {
    args.kernel = unique_kernels(&args.kernel);
    if args.kernel.len() > 1 {
        return run_matrix(&args);
    }
    let terminal = Terminal::new(args.json);
    let result = options(&args, args.kernel.first().map(|s| s.as_str()))
        .and_then(|opts| Ok(krbd_build::build(&opts, &terminal)?));
    match result {
        Ok(outcome) => {
            if !krbd_host::terminal::quiet() {
                eprint!("{}", outcome.report.summary(&outcome.out));
            }
            if krbd_host::terminal::verbose() {
                eprint!("{}", hunk_lines(&outcome.report));
            }
            if args.json {
                let mut v = serde_json::to_value(&outcome.report).unwrap_or_default();
                v["out"] = serde_json::Value::String(outcome.out.display().to_string());
                outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            ExitCode::Ok
        }
        Err(failure) => failure.report(args.json),
    }
}

/// `--verbose`: each patch of the series and where each of its hunks went.
fn hunk_lines(report: &krbd_kmod::set::BuildReport) -> String {
    let mut s = String::new();
    for patch in report.series.iter().flat_map(|series| &series.patches) {
        s += &format!("  {}: {}\n", patch.patch, patch.subject);
        for h in &patch.hunks {
            let status = serde_json::to_value(h.status).ok().and_then(|v| v.as_str().map(str::to_string));
            s += &format!(
                "    hunk {} {} at line {}: {} (offset {}, fuzz {})\n",
                h.hunk,
                h.file,
                h.line,
                status.unwrap_or_default(),
                h.offset,
                h.fuzz
            );
        }
    }
    s
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
    /// What to do about the error, when its text cannot say (the mirror override, ...).
    hint: Option<String>,
}

/// Builds every `--kernel` in turn (one cache, one out folder), then prints the table.
fn run_matrix(args: &BuildArgs) -> ExitCode {
    if args.srpm.is_some() || args.devel_rpm.is_some() || args.headers_dir.is_some() || args.source_tarball.is_some() {
        let message =
            "--srpm, --devel-rpm, --headers-dir and --source-tarball describe one target; give one --kernel with them";
        return Failure::new(ExitCode::Usage, message).report(args.json);
    }
    let terminal = Terminal::new(args.json);
    let mut rows = Vec::new();
    for kernel in &args.kernel {
        if !krbd_host::terminal::quiet() && !args.json {
            eprintln!("== {kernel}");
        }
        let result = options(args, Some(kernel)).and_then(|opts| Ok(krbd_build::build(&opts, &terminal)?));
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
                hint: None,
            },
            Err(e) => {
                let code = e.exit_code();
                if !args.json {
                    eprintln!("error: {kernel}: {e}");
                    if let Some(hint) = e.hint() {
                        eprintln!("hint: {hint}");
                    }
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
                    hint: e.hint(),
                }
            }
        });
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if args.json {
        let v = serde_json::json!({ "targets": rows, "built": rows.len() - failed, "failed": failed });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        outln!("{:<34} {:<16} {:<7} OUT", "RELEASE", "VERDICT", "CACHED");
        for r in &rows {
            outln!(
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
        outln!("{} built, {} failed", rows.len() - failed, failed);
    }
    rows.iter().find(|r| !r.ok).and_then(|r| ExitCode::from_code(r.exit_code)).unwrap_or(ExitCode::Ok)
}

/// Reports flags that do not fit together, as clap reports its own usage errors.
pub fn report_usage(message: &str, json: bool) -> ExitCode {
    Failure::new(ExitCode::Usage, message).report(json)
}

/// Reports a build error (stderr; the JSON error on stdout with `json`).
pub fn report_error(e: &BuildError, json: bool) -> ExitCode {
    exit::report_build_error(e, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_flags_are_distro_equals_url() {
        let m = parse_mirror("rocky=http://127.0.0.1:8080/rocky/").unwrap();
        assert_eq!((m.site, m.url.as_str()), (MirrorSite::Rocky, "http://127.0.0.1:8080/rocky"));
        assert_eq!(parse_mirror("buildlogs=https://x").unwrap().site, MirrorSite::CentosBuildlogs);
        assert!(parse_mirror("rocky").unwrap_err().contains("expected DISTRO=URL"));
        assert!(parse_mirror("fedora=http://x").unwrap_err().contains("mirrors are centos, buildlogs, rocky, alma"));
        assert!(parse_mirror("rocky=ftp://x").unwrap_err().contains("http:// or https://"));
    }

    #[test]
    fn a_kernel_given_twice_is_built_once() {
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(unique_kernels(&k(&["a", "a"])), k(&["a"]));
        assert_eq!(unique_kernels(&k(&["b", "a", "b", "c", "a"])), k(&["b", "a", "c"]), "first order kept");
        assert_eq!(unique_kernels(&[]), Vec::<String>::new());
    }

    #[test]
    fn flags_that_do_not_fit_are_usage_errors() {
        use clap::Parser;
        let parse = |args: &[&str]| super::super::Cli::try_parse_from([&["krbd-forge", "build"], args].concat());
        assert!(parse(&["--distro", "fedora"]).is_err());
        assert!(parse(&["--mirror", "rocky"]).is_err());
        assert!(parse(&["--srpm", "k.src.rpm"]).is_err(), "--srpm alone does not name the release");
        assert!(parse(&["--srpm", "k.src.rpm", "--devel-rpm", "k-devel.rpm"]).is_ok());
        assert!(parse(&["--srpm", "k.src.rpm", "--kernel", "3.10.0-957.el7.x86_64", "--distro", "Alma"]).is_ok());
    }
}
