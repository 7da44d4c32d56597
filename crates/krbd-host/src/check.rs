//! `check`: will these modules load on that kernel? Decided offline, by the kernel
//! loader's own rules (krbd_kmod::loader). krbd-host checks against this host's kernel
//! (its headers under /lib/modules/<release>/build) or a given description;
//! krbd-forge's `check` adds `--kernel RELEASE` through apt.

use crate::exit::{help_with_table, ExitCode};
use crate::report::{print_json, Failure};
use krbd_kmod::loader::{LogLevel, Outcome, SetOptions, SetReport};
use krbd_kmod::set::{ModuleCopy, ModuleSet, OpenOptions};
use krbd_kmod::{CheckError, SignaturePolicy, TargetSpec};
use std::path::{Path, PathBuf};

/// What is checked, for every `check --help`.
pub const WHAT_IS_CHECKED: &str = "\
What is checked, in the kernel's order (Linux 6.12 kernel/module/main.c): the signature
policy, the size of struct module (6.12+, known when --modules-dir has a target module),
module_layout's CRC, the vermagic (release ignored when the module has CRCs), then
every undefined symbol: its provider (the kernel, the target's modules, or a module of the
given set loaded before it, in depends= order), GPL-only exports, its CRC, its namespace;
then duplicate exports. A module of the set replaces the target's module of the same name.
Each module gets a verdict and the lines the kernel would log. Set rules: a module built
against the target's stock copy of a module the set replaces, a module binding silently to
a stock copy of a module it should ship with, a dependency nobody provides.

Not decided offline: whether a signature is valid and its key trusted.";

const HOST_EXAMPLES: &str = "\
Examples:
  krbd-host check libceph.ko ceph.ko rbd.ko          (this host's running kernel)
  krbd-host check *.ko --kernel RELEASE              (its /lib/modules/RELEASE/build)
  krbd-host check libceph.ko ceph.ko rbd.ko --headers /usr/src/linux-headers-RELEASE
  krbd-host check rbd.ko --symvers Module.symvers \\
      --vermagic 'RELEASE SMP preempt mod_unload modversions'
(RELEASE: a kernel release as `uname -r` prints it, e.g. one in /lib/modules.)";

/// The flags every `check` has: the set, a target description given as files, output.
#[derive(Debug, clap::Args)]
pub struct CheckFlags {
    /// Module files to check as one set (.ko, .ko.xz, .ko.zst or .ko.gz), or a set's folder
    /// (a build's out/<release>/ or an unpacked installer tarball), opened and verified as
    /// `install` and `package` open it.
    #[arg(required = true, value_name = "KO|SET")]
    pub modules: Vec<PathBuf>,

    /// The target's kernel headers folder (holds Module.symvers, .config and
    /// include/generated/utsrelease.h), e.g. /usr/src/linux-headers-<release>.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["symvers", "vermagic", "config"])]
    pub headers: Option<PathBuf>,

    /// The target's Module.symvers (4- or 5-column). Needs --vermagic.
    #[arg(long, value_name = "FILE", requires = "vermagic")]
    pub symvers: Option<PathBuf>,

    /// The target kernel's vermagic string, e.g.
    /// "RELEASE SMP preempt mod_unload modversions" (with or without the trailing space the
    /// kernel's string has).
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

impl From<SignatureArg> for SignaturePolicy {
    fn from(arg: SignatureArg) -> SignaturePolicy {
        match arg {
            SignatureArg::Optional => SignaturePolicy::Optional,
            SignatureArg::Enforced => SignaturePolicy::Enforced,
            SignatureArg::Lockdown => SignaturePolicy::Lockdown,
        }
    }
}

impl CheckFlags {
    /// The target given as files (--headers, or --symvers with --vermagic), if any.
    pub fn target_spec(&self) -> Option<TargetSpec> {
        match (&self.headers, &self.symvers, &self.vermagic) {
            (Some(dir), _, _) => Some(TargetSpec::Headers { dir: dir.clone() }),
            (None, Some(symvers), Some(vermagic)) => Some(TargetSpec::Symvers {
                symvers: symvers.clone(),
                vermagic: vermagic.clone(),
                config: self.config.clone(),
            }),
            _ => None,
        }
    }
}

/// Check offline whether kernel modules would load on this host's kernel (or another
/// described by --headers or --symvers), as the kernel decides.
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(&format!("{HOST_EXAMPLES}\n\n{WHAT_IS_CHECKED}")))]
pub struct HostCheckArgs {
    #[command(flatten)]
    pub flags: CheckFlags,

    /// The installed kernel release whose headers (/lib/modules/RELEASE/build) describe the
    /// target. [default: the running kernel's]
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["headers", "symvers"])]
    pub kernel: Option<String>,
}

/// `krbd-host check`: against the given description, else the installed headers of
/// --kernel or of the running kernel.
pub fn run_host(mut args: HostCheckArgs) -> ExitCode {
    let spec = match args.flags.target_spec() {
        Some(spec) => spec,
        None => match local_target(args.kernel.as_deref(), Path::new("/")) {
            Ok((spec, modules_dir)) => {
                args.flags.modules_dir.get_or_insert(modules_dir);
                spec
            }
            Err(f) => return f.report(args.flags.json),
        },
    };
    run(&args.flags, &spec)
}

/// The headers of an installed kernel under `root`: `lib/modules/<release>/build`, and
/// the folder of its modules.
fn local_target(release: Option<&str>, root: &Path) -> Result<(TargetSpec, PathBuf), Failure> {
    let release = match release {
        Some(r) => r.to_string(),
        None => {
            let path = root.join("proc/sys/kernel/osrelease");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Failure::from_error(ExitCode::Target, &e).with_hint(Some(format!(
                    "cannot read {} to tell the running kernel: pass --kernel RELEASE or --headers DIR",
                    path.display()
                )))
            })?;
            text.trim().to_string()
        }
    };
    let modules_dir = root.join("lib/modules").join(&release);
    let headers = modules_dir.join("build");
    if !headers.join("Module.symvers").is_file() {
        return Err(Failure::new(
            ExitCode::Target,
            format!("no headers for kernel {release}: {} has no Module.symvers", headers.display()),
        )
        .with_hint(Some(format!(
            "install linux-headers-{release} (Debian, Ubuntu) or kernel-devel-{release} (RHEL family), or pass --headers DIR or --symvers FILE --vermagic STRING"
        )))
        .detail("release", release));
    }
    Ok((TargetSpec::Headers { dir: headers }, modules_dir))
}

/// Checks the set against `spec`, prints the verdicts (JSON with --json) and returns the
/// exit code: 0 all load, would-not-load, or set-inconsistent.
pub fn run(flags: &CheckFlags, spec: &TargetSpec) -> ExitCode {
    match module_files(&flags.modules) {
        Ok(modules) => run_modules(flags, &modules, spec),
        Err(f) => f.report(flags.json),
    }
}

/// [`run`] for module files already resolved by [`module_files`] (krbd-forge resolves them
/// before it fetches the target's packages, so that a bad path fails at once).
pub fn run_modules(flags: &CheckFlags, modules: &[PathBuf], spec: &TargetSpec) -> ExitCode {
    let options = SetOptions { ship_together: flags.ship_together.clone(), ..SetOptions::default() };
    let report = match check_with_policy(flags, modules, spec, &options) {
        Ok(r) => r,
        Err(e) => return Failure::from_error(exit_code(&e), &e).report(flags.json),
    };
    let printed = if flags.json {
        print_json(&report)
    } else {
        crate::out!("{}", render(&report));
        ExitCode::Ok
    };
    match printed {
        ExitCode::Ok => verdict(&report),
        failed => failed,
    }
}

/// The module files to check: files as given, and each folder's set through the one
/// open-and-verify function (so a folder that `install` would refuse is refused here too).
/// A path that cannot be looked at (missing, no permission, a file followed by `/`) is
/// refused here, with its cause said once.
pub fn module_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| {
            let e = CheckError::Read { path: path.display().to_string(), source };
            Failure::from_error(exit_code(&e), &e)
        })?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let options = OpenOptions { copy: ModuleCopy::Full, require_report: false };
        let set = ModuleSet::open(path, &options)
            .map_err(|e| Failure::from_error(e.io_kind().map_or(ExitCode::BadInput, ExitCode::of_io), &e))?;
        files.extend(set.modules.into_iter().map(|m| m.path));
    }
    Ok(files)
}

fn check_with_policy(
    flags: &CheckFlags,
    modules: &[PathBuf],
    spec: &TargetSpec,
    options: &SetOptions,
) -> Result<SetReport, CheckError> {
    let mut target = krbd_kmod::load_target(spec, flags.modules_dir.as_deref())?;
    if let Some(sig) = flags.signatures {
        target.policy.signatures = sig.into();
    }
    let candidates = krbd_kmod::check::read_candidates(modules)?;
    Ok(krbd_kmod::check_set(&candidates, &target, options))
}

/// The exit code of a report: would-not-load if any module would be refused,
/// set-inconsistent if all load but the set has findings.
pub fn verdict(report: &SetReport) -> ExitCode {
    if report.modules.iter().any(|m| m.verdict == Outcome::Refused) {
        ExitCode::WouldNotLoad
    } else if !report.findings.is_empty() {
        ExitCode::SetInconsistent
    } else {
        ExitCode::Ok
    }
}

/// The exit code of each check error; a new variant needs one line here.
pub fn exit_code(e: &CheckError) -> ExitCode {
    match e {
        CheckError::NotHeaders { .. }
        | CheckError::BadVermagic { .. }
        | CheckError::NotInstalled { .. }
        | CheckError::ImageMissing { .. }
        | CheckError::ExportTable { .. } => ExitCode::Target,
        CheckError::Module { source: krbd_kmod::ModuleError::Read { .. }, .. }
        | CheckError::Symvers(krbd_kmod::SymversError::Read { .. })
        | CheckError::Read { .. }
        | CheckError::HeadersFolder { .. } => ExitCode::Environment,
        CheckError::Module { .. } | CheckError::Symvers(_) => ExitCode::BadInput,
        CheckError::NoModules => ExitCode::Usage,
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
