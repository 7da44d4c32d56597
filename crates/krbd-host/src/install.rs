//! `install | rollback | status` (of krbd-host and krbd-forge alike): put a built set on the target host as one
//! transaction, undo it, and show what is installed, loaded and shipped.

use crate::exit::ExitCode;
use crate::report::{print_json, Failure};
use crate::terminal::Terminal;
use clap::Args;
use krbd_install::{InstallError, Kernel, LoadCheck, RealKernel, ShippedSet, TargetHost};
use std::path::{Path, PathBuf};

/// Where and for which kernel.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The target's root folder; every path (/lib/modules, /var/lib/krbd-forge, /sys,
    /// /proc) is taken under it.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The target kernel release. [default: the running kernel's; under a root other than /
    /// the set's, else the root's one release with a krbd-forge journal, else its one
    /// release in lib/modules, else <root>/proc's]
    #[arg(long, value_name = "RELEASE")]
    pub kernel: Option<String>,
    /// Print the result as JSON on stdout (errors as {"error": {...}}).
    #[arg(long)]
    pub json: bool,
}

impl HostArgs {
    /// Without --kernel on a root other than `/` there is no running kernel to ask: the
    /// release is the set's, or the root's one journaled or installed release (the same rule
    /// for install, rollback and status; see [`krbd_install::infer_release`]).
    fn with_inferred_release(&self, set_release: Option<&str>) -> HostArgs {
        HostArgs {
            kernel: self.kernel.clone().or_else(|| krbd_install::infer_release(&self.root, set_release)),
            root: self.root.clone(),
            json: self.json,
        }
    }
}

/// Install a built set (libceph, ceph, rbd) into /lib/modules/<release>/updates/krbd-forge
/// as one journaled transaction, and swap the loaded modules when it is safe.
#[derive(Debug, Args)]
#[command(after_long_help = crate::exit::table())]
pub struct InstallArgs {
    /// The set: a build's out folder (out/<release>/ with libceph.ko, ceph.ko, rbd.ko and
    /// build-report.json), or the folder of an unpacked `krbd-forge package --format tar`.
    #[arg(value_name = "SET")]
    pub set: PathBuf,
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not touch the loaded modules; the set takes effect at the next boot. Needed while
    /// an rbd device is mapped or a CephFS is mounted. Implied with a --root other than /,
    /// whose modules the running kernel cannot swap.
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
    /// Accept a set folder without build-report.json. Without the report nothing vouches
    /// for the modules' sha256: the set is then checked by module names and vermagic only
    /// (and by the load check).
    #[arg(long)]
    pub no_build_report: bool,
}

/// Restore the set that the last install replaced (journaled like install).
#[derive(Debug, Args)]
#[command(after_long_help = crate::exit::table())]
pub struct RollbackArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not touch the loaded modules; the restored set takes effect at the next boot.
    /// Implied with a --root other than /.
    #[arg(long)]
    pub no_reload: bool,
}

/// Show the Ceph modules installed (depmod's choice), loaded (/sys/module) and shipped
/// (with --set), srcversion per module, and the state of the last transaction.
#[derive(Debug, Args)]
#[command(after_long_help = crate::exit::table())]
pub struct StatusArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// A set (out folder) to compare with.
    #[arg(long, value_name = "DIR")]
    pub set: Option<PathBuf>,
}

/// The exit code of each install error; a new variant needs one line here.
pub fn exit_code(e: &InstallError) -> ExitCode {
    use InstallError::*;
    match e {
        Set(set) => set.io_kind().map_or(ExitCode::BadInput, ExitCode::of_io),
        Unidentifiable { .. } => ExitCode::BadInput,
        ReleaseMismatch { .. }
        | NoSuchKernel { .. }
        | UnknownRelease { .. }
        | NoLoadCheckTarget { .. }
        | NotRunningKernel { .. } => ExitCode::Target,
        LoadCheck { .. } => ExitCode::BadInput,
        WouldNotLoad { .. } => ExitCode::WouldNotLoad,
        PackageOwned { .. } | Busy { .. } | Locked { .. } => ExitCode::Refused,
        NothingToRollBack { .. } => ExitCode::NothingToRollBack,
        RolledBack { .. } => ExitCode::RolledBack,
        RollbackFailed { .. } | Journal { .. } | ReloadFailed { .. } => ExitCode::NeedsAttention,
        Io { source, .. } => ExitCode::of_io(source.kind()),
    }
}

/// An install error as the user sees it.
pub fn failure(e: &InstallError) -> Failure {
    let failure = Failure::from_error(exit_code(e), e);
    match e {
        InstallError::Set(krbd_kmod::set::SetError::NoReport { .. }) => failure.with_hint(Some(
            "pass --no-build-report to install it anyway, checked by module names and vermagic only (no sha256)",
        )),
        InstallError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            failure.with_hint(Some("permission denied: run it as root (sudo)"))
        }
        _ => failure,
    }
}

fn fail_with(json: bool, e: &InstallError) -> ExitCode {
    failure(e).report(json)
}

/// The kernel to drive, and whether it can swap the loaded modules of `host.root`: the
/// real kernel only those of the live root (`--root /`); on another root the set takes
/// effect when that system boots.
fn kernel_for(host: &HostArgs) -> (Box<dyn Kernel>, bool) {
    // Only test builds (the `test-hooks` feature) can simulate the kernel.
    #[cfg(feature = "test-hooks")]
    if let Some(simulated) = krbd_install::fault::simulated_kernel_from_env() {
        return (Box::new(simulated), true);
    }
    (Box::new(RealKernel), host.root == Path::new("/"))
}

/// Whether to swap the loaded modules: asked for (no `--no-reload`) and possible; when it is
/// not possible, the note that says so.
fn reload_for(host: &HostArgs, no_reload: bool, can_reload: bool) -> (bool, Option<String>) {
    if no_reload || can_reload {
        return (!no_reload, None);
    }
    let note = format!(
        "the loaded modules were not touched: {} is not the running system's root (--root /), so the change takes effect when that system boots",
        host.root.display()
    );
    (false, Some(note))
}

fn open_host(host: &HostArgs) -> Result<TargetHost, InstallError> {
    TargetHost::new(&host.root, host.kernel.clone())
}

pub fn run_install(args: InstallArgs) -> ExitCode {
    let json = args.host.json;
    let listener = Terminal::new(json);
    let open = if args.no_build_report { ShippedSet::from_dir_without_report } else { ShippedSet::from_dir };
    let set = match open(&args.set) {
        Ok(s) => s,
        Err(e) => return fail_with(json, &e),
    };
    let host_args = args.host.with_inferred_release(Some(&set.release));
    let host = match open_host(&host_args) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    let (kernel, can_reload) = kernel_for(&host_args);
    let (reload, note) = reload_for(&host_args, args.no_reload, can_reload);
    let options = krbd_install::InstallOptions {
        reload,
        update_initramfs: args.update_initramfs,
        load_check: match (args.skip_load_check, args.headers) {
            (true, _) => LoadCheck::Skip,
            (false, Some(d)) => LoadCheck::Headers(d),
            (false, None) => LoadCheck::Auto,
        },
    };
    finish(json, krbd_install::install(&set, &host, &options, kernel.as_ref(), &listener), note)
}

pub fn run_rollback(args: RollbackArgs) -> ExitCode {
    let json = args.host.json;
    let listener = Terminal::new(json);
    let host_args = args.host.with_inferred_release(None);
    let host = match open_host(&host_args) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    let (kernel, can_reload) = kernel_for(&host_args);
    let (reload, note) = reload_for(&host_args, args.no_reload, can_reload);
    let options = krbd_install::RollbackOptions { reload };
    finish(json, krbd_install::rollback(&host, &options, kernel.as_ref(), &listener), note)
}

/// Prints an install's or rollback's outcome (JSON with `--json`) or its error, and returns
/// the exit code. `note`: one more note for the outcome.
fn finish(json: bool, result: Result<krbd_install::Outcome, InstallError>, note: Option<String>) -> ExitCode {
    let result = result.map(|mut outcome| {
        outcome.notes.extend(note);
        outcome
    });
    match result {
        Ok(outcome) if json => print_json(&outcome),
        Ok(outcome) => {
            print_outcome(&outcome);
            ExitCode::Ok
        }
        Err(e) => fail_with(json, &e),
    }
}

pub fn run_status(args: StatusArgs) -> ExitCode {
    let json = args.host.json;
    let set = match args.set.as_deref().map(ShippedSet::from_dir_without_report).transpose() {
        Ok(s) => s,
        Err(e) => return fail_with(json, &e),
    };
    let host_args = args.host.with_inferred_release(set.as_ref().map(|s| s.release.as_str()));
    let host = match open_host(&host_args) {
        Ok(h) => h,
        Err(e) => return fail_with(json, &e),
    };
    match krbd_install::status(&host, set.as_ref()) {
        Ok(s) if json => print_json(&s),
        Ok(s) => {
            crate::out!("{}", status_table(&s));
            ExitCode::Ok
        }
        Err(e) => fail_with(json, &e),
    }
}

/// The outcome on stderr; with the global `--quiet`, only what an interrupted earlier run
/// left and this one finished.
fn print_outcome(o: &krbd_install::Outcome) {
    if let Some(r) = &o.recovered {
        eprintln!("{r}");
    }
    if crate::terminal::quiet() {
        return;
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
        eprintln!("  the loaded modules were not touched: the change takes effect at the next boot");
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
