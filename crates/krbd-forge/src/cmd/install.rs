//! `krbd-forge install | rollback | status`: put a built set on the target host as one
//! transaction, undo it, and show what is installed, loaded and shipped.

use super::terminal::Terminal;
use clap::Args;
use krbd_install::{InstallError, Kernel, LoadCheck, RealKernel, ShippedSet, TargetHost};
use std::path::{Path, PathBuf};

pub use super::exit::{
    BAD_INPUT as EXIT_BAD_INPUT, ENVIRONMENT as EXIT_ENVIRONMENT, INTERNAL as EXIT_INTERNAL, OK as EXIT_OK,
    TARGET as EXIT_TARGET, WOULD_NOT_LOAD as EXIT_WOULD_NOT_LOAD,
};
pub const EXIT_USAGE: i32 = 2;
/// Refused before anything changed: a device or mount uses the modules, another
/// installer runs, or a file to replace belongs to a package.
pub const EXIT_REFUSED: i32 = 11;
/// A step failed and the transaction rolled back by itself.
pub const EXIT_ROLLED_BACK: i32 = 12;
/// The rollback failed or the journal is unreadable: the host needs attention.
pub const EXIT_ATTENTION: i32 = 13;
pub const EXIT_NOTHING_TO_ROLL_BACK: i32 = 14;

const EXIT_HELP: &str = "\
Exit codes (install, rollback, status):
  0   done (status: the report was printed)
  1   internal error (a bug: please report it)
  2   usage error (bad flags)
  3   target: the set is for another release, the kernel is not installed under --root,
      no headers to check the set against (install them, --headers, --skip-load-check),
      or a live swap was asked for a kernel that is not running (use --no-reload)
  5   bad input: the set folder lacks a module, a module is corrupt, or a file differs
      from its build report
  9   environment: cannot read or write (permissions, no space, read-only file system)
  10  the kernel would refuse the set (offline loader check); nothing was changed
  11  refused, nothing was changed: an rbd device is mapped or a CephFS is mounted (use
      --no-reload), another install is running, or a file to replace belongs to a package
  12  a step failed and the previous set was restored by itself (the step and cause are shown)
  13  the rollback failed or the journal is unreadable: rerun `krbd-forge rollback` after
      fixing the cause shown; or the set is installed but loading it failed
  14  rollback: nothing to roll back";

/// Where and for which kernel.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The target's root folder; every path (/lib/modules, /var/lib/krbd-forge, /sys,
    /// /proc) is taken under it.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The target kernel release. [default: the running kernel's, from <root>/proc]
    #[arg(long, value_name = "RELEASE")]
    pub kernel: Option<String>,
    /// Print the result as JSON on stdout (errors as {"error": {...}}).
    #[arg(long)]
    pub json: bool,
}

/// Install a built set (libceph, ceph, rbd) into /lib/modules/<release>/updates/krbd-forge
/// as one journaled transaction, and swap the loaded modules when it is safe.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_HELP)]
pub struct InstallArgs {
    /// The set: a build's out folder (out/<release>/ with libceph.ko, ceph.ko, rbd.ko and
    /// build-report.json), or the folder of an unpacked `krbd-forge package --format tar`.
    #[arg(value_name = "SET")]
    pub set: PathBuf,
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not touch the loaded modules; the set takes effect at the next boot. Needed while
    /// an rbd device is mapped or a CephFS is mounted.
    #[arg(long)]
    pub no_reload: bool,
    /// Rebuild the release's initramfs (update-initramfs or dracut) if it holds the Ceph modules.
    #[arg(long)]
    pub update_initramfs: bool,
    /// Check the set against this headers folder instead of the release's installed headers.
    #[arg(long, value_name = "DIR", conflicts_with = "skip_load_check")]
    pub headers: Option<PathBuf>,
    /// Install without the offline loader check (when the target has no headers).
    #[arg(long)]
    pub skip_load_check: bool,
}

/// Restore the set that the last install replaced (journaled like install).
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_HELP)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not touch the loaded modules; the restored set takes effect at the next boot.
    #[arg(long)]
    pub no_reload: bool,
}

/// Show the Ceph modules installed (depmod's choice), loaded (/sys/module) and shipped
/// (with --set), srcversion per module, and the state of the last transaction.
#[derive(Debug, Args)]
#[command(after_long_help = EXIT_HELP)]
pub struct StatusArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// A set (out folder) to compare with.
    #[arg(long, value_name = "DIR")]
    pub set: Option<PathBuf>,
}

fn code_of(e: &InstallError) -> i32 {
    use InstallError::*;
    match e {
        Set(set) => set.io_kind().map_or(EXIT_BAD_INPUT, io_exit_code),
        Unidentifiable { .. } => EXIT_BAD_INPUT,
        ReleaseMismatch { .. }
        | NoSuchKernel { .. }
        | UnknownRelease { .. }
        | NoLoadCheckTarget { .. }
        | NotRunningKernel { .. } => EXIT_TARGET,
        LoadCheck { .. } => EXIT_BAD_INPUT,
        WouldNotLoad { .. } => EXIT_WOULD_NOT_LOAD,
        PackageOwned { .. } | Busy { .. } | Locked { .. } => EXIT_REFUSED,
        NothingToRollBack { .. } => EXIT_NOTHING_TO_ROLL_BACK,
        RolledBack { .. } => EXIT_ROLLED_BACK,
        RollbackFailed { .. } | Journal { .. } | ReloadFailed { .. } => EXIT_ATTENTION,
        Io { source, .. } => io_exit_code(source.kind()),
    }
}

fn io_exit_code(kind: std::io::ErrorKind) -> i32 {
    match kind {
        std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::ReadOnlyFilesystem
        | std::io::ErrorKind::StorageFull
        | std::io::ErrorKind::QuotaExceeded
        | std::io::ErrorKind::NotFound => EXIT_ENVIRONMENT,
        _ => EXIT_INTERNAL,
    }
}

fn kind_of(code: i32) -> &'static str {
    match code {
        EXIT_BAD_INPUT => "bad-input",
        EXIT_TARGET => "target",
        EXIT_ENVIRONMENT => "environment",
        EXIT_WOULD_NOT_LOAD => "would-not-load",
        EXIT_REFUSED => "refused",
        EXIT_ROLLED_BACK => "rolled-back",
        EXIT_ATTENTION => "needs-attention",
        EXIT_NOTHING_TO_ROLL_BACK => "nothing-to-roll-back",
        EXIT_USAGE => "usage",
        _ => "internal",
    }
}

fn fail(json: bool, code: i32, message: &str) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({ "error": { "kind": kind_of(code), "exit_code": code, "message": message } })
        );
    } else {
        eprintln!("error: {message}");
    }
    code
}

fn fail_with(json: bool, e: &InstallError) -> i32 {
    fail(json, code_of(e), &e.to_string())
}

/// The kernel to drive: the real one only for the live root.
fn kernel_for(host: &HostArgs, reload: bool) -> Result<Box<dyn Kernel>, String> {
    // Only test builds (the `test-hooks` feature) can simulate the kernel.
    #[cfg(feature = "test-hooks")]
    if let Some(simulated) = krbd_install::fault::simulated_kernel_from_env() {
        return Ok(Box::new(simulated));
    }
    if reload && host.root != Path::new("/") {
        return Err(format!(
            "swapping the loaded modules needs --root / (the running kernel's root), not {}; add --no-reload",
            host.root.display()
        ));
    }
    Ok(Box::new(RealKernel))
}

fn open_host(host: &HostArgs) -> Result<TargetHost, InstallError> {
    TargetHost::new(&host.root, host.kernel.clone())
}

pub fn run_install(args: InstallArgs) -> i32 {
    let json = args.host.json;
    let listener = Terminal::new(json);
    let set = match ShippedSet::from_dir(&args.set) {
        Ok(s) => s,
        Err(e) => return fail_with(json, &e),
    };
    // Without --kernel on a scratch root there is no running kernel to ask: the set names it.
    let host_args = HostArgs {
        kernel: args.host.kernel.clone().or_else(|| (args.host.root != Path::new("/")).then(|| set.release.clone())),
        root: args.host.root.clone(),
        json,
    };
    let host = match open_host(&host_args) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    let kernel = match kernel_for(&host_args, !args.no_reload) {
        Ok(k) => k,
        Err(m) => return fail(json, EXIT_USAGE, &m),
    };
    let options = krbd_install::InstallOptions {
        reload: !args.no_reload,
        update_initramfs: args.update_initramfs,
        load_check: match (args.skip_load_check, args.headers) {
            (true, _) => LoadCheck::Skip,
            (false, Some(d)) => LoadCheck::Headers(d),
            (false, None) => LoadCheck::Auto,
        },
    };
    finish(json, krbd_install::install(&set, &host, &options, kernel.as_ref(), &listener))
}

pub fn run_rollback(args: RollbackArgs) -> i32 {
    let json = args.host.json;
    let listener = Terminal::new(json);
    let host = match open_host(&args.host) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    let kernel = match kernel_for(&args.host, !args.no_reload) {
        Ok(k) => k,
        Err(m) => return fail(json, EXIT_USAGE, &m),
    };
    let options = krbd_install::RollbackOptions { reload: !args.no_reload };
    finish(json, krbd_install::rollback(&host, &options, kernel.as_ref(), &listener))
}

/// Prints an install's or rollback's outcome (JSON with `--json`) or its error, and returns
/// the exit code.
fn finish(json: bool, result: Result<krbd_install::Outcome, InstallError>) -> i32 {
    match result {
        Ok(outcome) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome).unwrap_or_default());
            } else {
                print_outcome(&outcome);
            }
            EXIT_OK
        }
        Err(e) => fail_with(json, &e),
    }
}

pub fn run_status(args: StatusArgs) -> i32 {
    let json = args.host.json;
    let set = match args.set.as_deref().map(ShippedSet::from_dir).transpose() {
        Ok(s) => s,
        Err(e) => return fail_with(json, &e),
    };
    let host_args =
        HostArgs {
            kernel: args.host.kernel.clone().or_else(|| {
                (args.host.root != Path::new("/")).then(|| set.as_ref().map(|s| s.release.clone())).flatten()
            }),
            root: args.host.root.clone(),
            json,
        };
    let host = match open_host(&host_args) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    match krbd_install::status(&host, set.as_ref()) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", status_table(&s));
            }
            EXIT_OK
        }
        Err(e) => fail_with(json, &e),
    }
}

fn print_outcome(o: &krbd_install::Outcome) {
    if let Some(r) = &o.recovered {
        eprintln!("{r}");
    }
    let steps: Vec<&str> = o.steps.iter().map(|s| s.as_str()).collect();
    eprintln!("{} for {}: steps {}", o.operation, o.release, steps.join(", "));
    if let Some(c) = &o.load_check {
        eprintln!("  load check: {c}");
    }
    if let Some(i) = &o.initramfs {
        eprintln!("  initramfs: {i}");
    }
    for n in &o.notes {
        eprintln!("  note: {n}");
    }
    for m in &o.modules {
        eprintln!(
            "  {:<8} installed {:<24} loaded {}",
            m.name,
            m.installed
                .as_ref()
                .map(|i| format!("{} ({})", i.identity.as_deref().unwrap_or("-"), i.origin))
                .unwrap_or_else(|| "-".into()),
            if m.loaded.loaded { m.loaded.identity.as_deref().unwrap_or("(unidentified)") } else { "-" }
        );
    }
    if !o.reloaded {
        eprintln!("  the loaded modules were not touched (--no-reload): the set takes effect at the next boot");
    }
}

/// The human table of `status`.
pub fn status_table(s: &krbd_install::Status) -> String {
    let mut out = format!("kernel {}\n", s.release);
    out += "(srcversion when the module has one, else its GNU build-id)\n";
    for m in &s.modules {
        let installed = m
            .installed
            .as_ref()
            .map(|i| format!("{} {}", i.identity.as_deref().unwrap_or("-"), i.origin))
            .unwrap_or_else(|| "not installed".into());
        let loaded = if m.loaded.loaded {
            m.loaded.identity.clone().unwrap_or_else(|| "(unidentified)".into())
        } else {
            "not loaded".into()
        };
        out += &format!("{}\n  installed {installed}\n  loaded    {loaded}\n", m.name);
        if let Some(shipped) = &m.shipped {
            out += &format!("  shipped   {shipped}\n");
        }
    }
    if let Some(v) = s.shipped_installed {
        out += &format!("shipped set installed: {}\n", if v { "yes" } else { "no" });
    }
    if let Some(v) = s.shipped_loaded {
        out += &format!("shipped set loaded: {}\n", if v { "yes" } else { "no" });
    }
    match &s.transaction {
        Some(t) => {
            out += &format!(
                "last transaction: {} (last step {}), from {}\n  {}\n",
                serde_json::to_value(t.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                t.last_step.map_or("-", |s| s.as_str()),
                t.source,
                t.advice
            );
            if let Some(f) = &t.failure {
                out += &format!("  it failed: {f}\n");
            }
        }
        None => out += "no krbd-forge install on this release\n",
    }
    for b in &s.busy {
        out += &format!("in use: {b}\n");
    }
    out
}
