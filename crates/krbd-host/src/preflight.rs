//! `preflight`: before a host boots a kernel, will the Ceph module set installed for it
//! load? The set in `/lib/modules/<release>/updates/krbd-forge/` is checked offline by
//! the loader's rules against that kernel's own symbols, read from the installed kernel
//! itself (krbd_kmod::installed: the image's export tables, or the `symvers.gz` the RHEL
//! family ships): no headers needed. The kernel-install hooks of the host package run it.

use crate::check::{exit_code, render, verdict};
use crate::exit::{help_with_table, ExitCode};
use crate::report::{print_json, Failure};
use krbd_kmod::installed::{installed_target, SymbolSource};
use krbd_kmod::loader::{check_set, SetOptions, SetReport};
use std::path::{Path, PathBuf};

const PREFLIGHT_HELP: &str = "\
What the kernel's own symbols are, with no headers installed: the export tables
(__ksymtab*, __kcrctab*) of the vmlinux inside /boot/vmlinuz-RELEASE (or
/lib/modules/RELEASE/vmlinuz), plus the exports of the kernel's modules the set depends on;
where the kernel package ships its build's Module.symvers (RHEL family:
/lib/modules/RELEASE/symvers.gz), that list. The vermagic comes from one of the kernel's
own modules, the loader's policy from /boot/config-RELEASE.

Statuses: 0 the set loads; 3 the kernel is not installed, or no set is installed for it
(nothing in /lib/modules/RELEASE/updates/krbd-forge/), or its image cannot be read;
10 at least one module would be refused; 15 all load but the set is inconsistent;
5 a module file is corrupt.

Examples (RELEASE as `uname -r` prints it, e.g. the kernel package being installed):
  krbd-host preflight RELEASE
  krbd-host preflight RELEASE --root /mnt/image --json";

/// Check offline whether the module set installed for a kernel release would load on that
/// kernel, before it boots: what the kernel-install hooks run.
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(PREFLIGHT_HELP))]
pub struct PreflightArgs {
    /// The kernel release, as `uname -r` will say once it runs (e.g. the one a package
    /// manager just installed).
    #[arg(value_name = "RELEASE", value_parser = parse_release)]
    pub release: String,

    /// The root folder the kernel and the set are installed under.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Print the verdicts as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A release names one folder under /lib/modules.
fn parse_release(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s == "." || s == ".." || s.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} is not a kernel release (give what `uname -r` prints, e.g. 6.12.117+deb12-amd64)"));
    }
    Ok(s.to_string())
}

/// What `preflight --json` prints.
#[derive(Debug, serde::Serialize)]
struct PreflightReport<'a> {
    release: &'a str,
    set: PathBuf,
    checked_against: &'a SymbolSource,
    config: &'a Path,
    #[serde(flatten)]
    report: &'a SetReport,
}

/// The set's folder under the root, for a release.
pub fn set_dir(root: &Path, release: &str) -> PathBuf {
    root.join("lib/modules").join(release).join(krbd_install::host::INSTALL_SUBDIR)
}

/// The module files of the installed set, sorted.
fn set_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            // Modules as depmod sees them; an install's staging leftovers are not part of the set.
            name.split_once(".ko").is_some_and(|(_, rest)| matches!(rest, "" | ".xz" | ".zst" | ".gz")) && p.is_file()
        })
        .collect();
    files.sort();
    files
}

pub fn run(args: PreflightArgs) -> ExitCode {
    match preflight(&args) {
        Ok(code) => code,
        Err(f) => f.report(args.json),
    }
}

fn preflight(args: &PreflightArgs) -> Result<ExitCode, Failure> {
    let release = args.release.as_str();
    let modules_dir = args.root.join("lib/modules").join(release);
    if !modules_dir.is_dir() {
        return Err(Failure::new(
            ExitCode::Target,
            format!("kernel {release} is not installed: {} does not exist", modules_dir.display()),
        )
        .with_hint(Some("name a release installed under --root (ls /lib/modules)"))
        .detail("release", release));
    }
    let dir = set_dir(&args.root, release);
    let files = set_files(&dir);
    if files.is_empty() {
        return Err(Failure::new(
            ExitCode::Target,
            format!("no krbd-forge module set is installed for kernel {release}: {} holds no modules", dir.display()),
        )
        .with_hint(Some(format!(
            "install the set built for {release} (package krbd-forge-modules-{release} or kmod-krbd-forge-{release}, or `krbd-host install` of its out folder); build it with `krbd-forge build --kernel {release}`; until then this kernel boots with the stock Ceph modules"
        )))
        .detail("release", release)
        .detail("missing_set", true));
    }
    let candidates = krbd_kmod::check::read_candidates(&files).map_err(|e| Failure::from_error(exit_code(&e), &e))?;
    let own: Vec<String> = candidates.iter().filter_map(|c| c.module.name().map(str::to_string)).collect();
    let mut providers: Vec<String> =
        candidates.iter().flat_map(|c| c.module.depends()).filter(|d| !own.contains(d)).collect();
    providers.sort();
    providers.dedup();
    let installed = installed_target(&args.root, release, &providers)
        .map_err(|e| Failure::from_error(exit_code(&e), &e).detail("release", release))?;
    let report = check_set(&candidates, &installed.target, &SetOptions::default());
    let printed = if args.json {
        print_json(&PreflightReport {
            release,
            set: dir.clone(),
            checked_against: &installed.source,
            config: &installed.config,
            report: &report,
        })
    } else {
        crate::outln!("kernel {release}: the set in {} checked against {}", dir.display(), describe(&installed.source));
        crate::out!("{}", render(&report));
        ExitCode::Ok
    };
    Ok(match printed {
        ExitCode::Ok => verdict(&report),
        failed => failed,
    })
}

fn describe(source: &SymbolSource) -> String {
    match source {
        SymbolSource::Symvers { path } => format!("the kernel's Module.symvers {}", path.display()),
        SymbolSource::Image { path, modules } => format!(
            "the exports of {}{}",
            path.display(),
            if modules.is_empty() { String::new() } else { format!(" and of {} of its modules", modules.len()) }
        ),
    }
}
