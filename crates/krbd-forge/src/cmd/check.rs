//! `krbd-forge check`: will these modules load on that kernel? Decided offline, by the
//! kernel loader's own rules (krbd_kmod::loader).

use krbd_kmod::loader::{LogLevel, Outcome, SetOptions, SetReport};
use krbd_kmod::{CheckError, SignaturePolicy, TargetSpec};
use std::path::PathBuf;

use super::exit::{BAD_INPUT as EXIT_BAD_INPUT, ENVIRONMENT as EXIT_ENVIRONMENT, INTERNAL as EXIT_INTERNAL};
use super::exit::{OK as EXIT_LOADS, TARGET as EXIT_TARGET};

/// At least one module would be refused by the kernel.
pub const EXIT_REFUSED: i32 = 10;
/// Every module would load, but the set is wrong (e.g. a module binds to a stock copy of
/// a module it should ship with).
pub const EXIT_SET_FINDINGS: i32 = 11;

const CHECK_HELP: &str = "\
Examples:
  krbd-forge check out/6.12.117+deb12-amd64/*.ko --kernel 6.12.117+deb12-amd64
  krbd-forge check libceph.ko ceph.ko rbd.ko --headers /usr/src/linux-headers-6.12.117+deb12-amd64
  krbd-forge check rbd.ko --symvers Module.symvers \\
      --vermagic '6.12.117+deb12-amd64 SMP preempt mod_unload modversions '

What is checked, in the kernel's order (Linux 6.12 kernel/module/main.c): the signature
policy, the size of struct module (6.12+, known when --modules-dir has a target module),
module_layout's CRC, the vermagic (release ignored when the module has CRCs), then
every undefined symbol: its provider (the kernel, the target's modules, or a module of the
given set loaded before it, in depends= order), GPL-only exports, its CRC, its namespace;
then duplicate exports. A module of the set replaces the target's module of the same name.
Each module gets a verdict and the lines the kernel would log. Set rules: a module built
against the target's stock copy of a module the set replaces, a module binding silently to
a stock copy of a module it should ship with, a dependency nobody provides.

Not decided offline: whether a signature is valid and its key trusted.

Exit codes:
  0   every module loads and the set is consistent
  1   internal error (a bug: please report it)
  2   usage error (bad flags)
  3   the target description is unusable (not a headers folder, vermagic without release)
  5   a module or Module.symvers is malformed
  9   a file cannot be read
  10  at least one module would be refused by the kernel
  11  every module loads, but the set is inconsistent (see the findings)";

/// Check offline whether kernel modules would load on a target kernel, as the kernel decides.
#[derive(Debug, clap::Args)]
#[command(after_long_help = CHECK_HELP)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["headers", "symvers", "kernel"])))]
pub struct CheckArgs {
    /// Module files to check as one set (.ko, .ko.xz, .ko.zst or .ko.gz).
    #[arg(required = true, value_name = "KO")]
    pub modules: Vec<PathBuf>,

    /// A Debian kernel release: its headers and image packages are fetched into the cache
    /// (as `build` does) and its modules complete the target.
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["headers", "symvers", "vermagic", "config"])]
    pub kernel: Option<String>,

    #[command(flatten)]
    pub cache: super::CacheArgs,

    /// The target's kernel headers folder (holds Module.symvers, .config and
    /// include/generated/utsrelease.h), e.g. /usr/src/linux-headers-<release>.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["symvers", "vermagic", "config"])]
    pub headers: Option<PathBuf>,

    /// The target's Module.symvers (4- or 5-column). Needs --vermagic.
    #[arg(long, value_name = "FILE", requires = "vermagic")]
    pub symvers: Option<PathBuf>,

    /// The target kernel's vermagic string, e.g.
    /// "6.12.117+deb12-amd64 SMP preempt mod_unload modversions " (mind the trailing space).
    #[arg(long, value_name = "STRING", requires = "symvers")]
    pub vermagic: Option<String>,

    /// The target's .config, to know its loader options (with --symvers; Debian's defaults
    /// otherwise).
    #[arg(long, value_name = "FILE", requires = "symvers")]
    pub config: Option<PathBuf>,

    /// A folder of the target's modules (e.g. /lib/modules/<release>): names there count as
    /// modules the target provides for depends=, and one of them gives the size of the
    /// target's struct module.
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,

    /// How the target treats unsigned modules, overriding its .config: optional (load and
    /// taint), enforced (module.sig_enforce), lockdown (e.g. UEFI Secure Boot).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub signatures: Option<SignatureArg>,

    /// Modules that must ship together (comma-separated); binding to the target's stock copy
    /// of one of them is flagged.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', default_value = "libceph,ceph,rbd")]
    pub ship_together: Vec<String>,

    /// Print the verdicts as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignatureArg {
    Optional,
    Enforced,
    Lockdown,
}

/// `--kernel`: the release's headers and image modules, through the cache.
fn prepare_kernel(args: &mut CheckArgs, release: &str) -> Result<PathBuf, krbd_build::BuildError> {
    let release = krbd_build::KernelRelease::parse(release)?;
    let cache = args.cache.open()?;
    let terminal = super::terminal::Terminal::new(args.json);
    let mut stages = krbd_build::Stages::default();
    let prepared = krbd_build::prepare_debian(&cache, Some(&release), false, &mut stages, &terminal)?;
    if args.modules_dir.is_none() {
        args.modules_dir = Some(prepared.modules_dir.clone());
    }
    Ok(prepared.headers.dir)
}

pub fn run(mut args: CheckArgs) -> i32 {
    let kernel_headers = match args.kernel.clone() {
        Some(release) => match prepare_kernel(&mut args, &release) {
            Ok(dir) => Some(dir),
            Err(e) => return super::build::report_error(&e, args.json),
        },
        None => None,
    };
    let spec = match (kernel_headers.as_ref().or(args.headers.as_ref()), &args.symvers, &args.vermagic) {
        (Some(dir), _, _) => TargetSpec::Headers { dir: dir.clone() },
        (None, Some(symvers), Some(vermagic)) => {
            TargetSpec::Symvers { symvers: symvers.clone(), vermagic: vermagic.clone(), config: args.config.clone() }
        }
        // clap's argument group and `requires` make this unreachable; stay a usage error.
        _ => {
            eprintln!("error: give --headers DIR, or --symvers FILE with --vermagic STRING");
            return 2;
        }
    };
    let options = SetOptions { ship_together: args.ship_together.clone(), ..SetOptions::default() };
    let report = match check_with_policy(&args, &spec, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            return error_code(&e);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot write JSON: {e}");
                return EXIT_INTERNAL;
            }
        }
    } else {
        print!("{}", render(&report));
    }
    exit_code(&report)
}

fn check_with_policy(args: &CheckArgs, spec: &TargetSpec, options: &SetOptions) -> Result<SetReport, CheckError> {
    let mut target = krbd_kmod::load_target(spec, args.modules_dir.as_deref())?;
    if let Some(sig) = args.signatures {
        target.policy.signatures = match sig {
            SignatureArg::Optional => SignaturePolicy::Optional,
            SignatureArg::Enforced => SignaturePolicy::Enforced,
            SignatureArg::Lockdown => SignaturePolicy::Lockdown,
        };
    }
    let candidates = krbd_kmod::check::read_candidates(&args.modules)?;
    Ok(krbd_kmod::check_set(&candidates, &target, options))
}

pub fn exit_code(report: &SetReport) -> i32 {
    if report.modules.iter().any(|m| m.verdict == Outcome::Refused) {
        EXIT_REFUSED
    } else if !report.findings.is_empty() {
        EXIT_SET_FINDINGS
    } else {
        EXIT_LOADS
    }
}

fn error_code(e: &CheckError) -> i32 {
    match e {
        CheckError::NotHeaders { .. } | CheckError::BadVermagic { .. } => EXIT_TARGET,
        CheckError::Module { source: krbd_kmod::ModuleError::Read { .. }, .. }
        | CheckError::Symvers(krbd_kmod::SymversError::Read { .. })
        | CheckError::Read { .. } => EXIT_ENVIRONMENT,
        CheckError::Module { .. } | CheckError::Symvers(_) => EXIT_BAD_INPUT,
        CheckError::NoModules => 2,
    }
}

/// The human-readable report.
pub fn render(r: &SetReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "target vermagic: {:?}", r.target_vermagic);
    let width = r.modules.iter().map(|m| m.module.len()).max().unwrap_or(0);
    for m in &r.modules {
        let verdict = match m.verdict {
            Outcome::Loads => "loads".to_string(),
            Outcome::Refused => format!("REFUSED ({})", m.errno.unwrap_or("?")),
        };
        let _ = writeln!(s, "{:width$}  {verdict}  {}", m.module, m.file);
        for line in &m.log {
            let level = match line.level {
                LogLevel::Err => "err",
                LogLevel::Warning => "warn",
                LogLevel::Notice => "notice",
            };
            let _ = writeln!(s, "    kernel {level}: {}", line.text);
        }
        for note in &m.notes {
            let _ = writeln!(s, "    note: {note}");
        }
        if let Some(hint) = &m.hint {
            let _ = writeln!(s, "    fix: {hint}");
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(s, "set:");
        for f in &r.findings {
            let _ = writeln!(s, "  ! {}", f.message());
        }
    }
    let refused = r.modules.iter().filter(|m| m.verdict == Outcome::Refused).count();
    let _ = writeln!(
        s,
        "{}",
        if refused > 0 {
            format!("{refused} of {} modules would be refused", r.modules.len())
        } else if !r.findings.is_empty() {
            format!("all {} modules load, but the set has {} finding(s)", r.modules.len(), r.findings.len())
        } else {
            format!("all {} modules load", r.modules.len())
        }
    );
    s
}
