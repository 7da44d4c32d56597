//! `krbd-forge check`: krbd-host's check (krbd_host::check), plus `--kernel RELEASE`:
//! the release's headers and modules fetched through apt into the cache.

use super::exit::{help_with_table, report_build_error, ExitCode};
use krbd_host::check::{CheckFlags, WHAT_IS_CHECKED};
use krbd_kmod::TargetSpec;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  krbd-forge check out/RELEASE/*.ko --kernel RELEASE
  krbd-forge check libceph.ko ceph.ko rbd.ko --headers /usr/src/linux-headers-RELEASE
  krbd-forge check rbd.ko --symvers Module.symvers \\
      --vermagic 'RELEASE SMP preempt mod_unload modversions'
(RELEASE: a kernel release such as `uname -r` prints; `krbd-forge targets` lists the
Debian ones apt offers today.)";

/// Check offline whether kernel modules would load on a target kernel, as the kernel decides.
#[derive(Debug, clap::Args)]
#[command(after_long_help = help_with_table(&format!("{EXAMPLES}\n\n{WHAT_IS_CHECKED}")))]
#[command(group(clap::ArgGroup::new("target").required(true).args(["headers", "symvers", "kernel"])))]
pub struct CheckArgs {
    #[command(flatten)]
    pub flags: CheckFlags,

    /// A kernel release. Debian: its headers and image packages are fetched into the cache
    /// (as `build` does) and its modules complete the target. RHEL family
    /// (5.14.0-284.11.1.el9_2.x86_64): its kernel-devel RPM, from --repo or the vaults.
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["headers", "symvers", "vermagic", "config"])]
    pub kernel: Option<String>,

    /// RHEL family, with --kernel: a YUM repository (base URL) listing the release's
    /// kernel-devel RPM, searched before the vaults (repeatable; as `build --repo`).
    #[arg(long, value_name = "URL", requires = "kernel")]
    pub repo: Vec<krbd_build::rhel::catalog::MirrorUrl>,

    /// RHEL family, with --kernel: a vault mirror as DISTRO=URL (as `build --mirror`).
    #[arg(long, value_name = "DISTRO=URL", value_parser = super::build::parse_mirror, requires = "kernel")]
    pub mirror: Vec<krbd_build::rhel::catalog::Mirror>,

    #[command(flatten)]
    pub cache: super::CacheArgs,
}

/// `--kernel`: the release's headers and image modules, through the cache.
fn prepare_kernel(args: &mut CheckArgs, release: &str) -> Result<PathBuf, krbd_build::BuildError> {
    let release = krbd_build::KernelRelease::parse(release)?;
    let cache = args.cache.open()?;
    let terminal = super::terminal::Terminal::new(args.flags.json);
    if krbd_build::rhel::catalog::is_rhel_release(release.as_str()) {
        let mirrors = super::build::mirrors(&args.mirror)
            .map_err(|reason| krbd_build::BuildError::NotCatalogued { release: release.to_string(), reason })?;
        let req = krbd_build::rhel::prepare::RhelRequest {
            release,
            mirrors,
            distro: None,
            srpm: None,
            devel_rpm: None,
            rpm_key: None,
            repos: args.repo.clone(),
        };
        return Ok(krbd_build::rhel::prepare::rhel_headers(&cache, &req, &terminal)?.dir);
    }
    if !args.repo.is_empty() || !args.mirror.is_empty() {
        return Err(krbd_build::BuildError::BadRelease {
            release: release.to_string(),
            reason: "--repo and --mirror are for RHEL-family releases; a Debian release comes from apt".into(),
        });
    }
    let mut stages = krbd_build::Stages::default();
    let prepared = krbd_build::prepare_debian(&cache, Some(&release), false, &mut stages, &terminal)?;
    if args.flags.modules_dir.is_none() {
        args.flags.modules_dir = Some(prepared.modules_dir.clone());
    }
    Ok(prepared.headers.dir)
}

pub fn run(mut args: CheckArgs) -> ExitCode {
    // The modules first: a bad path fails at once, before any package is fetched.
    let modules = match krbd_host::check::module_files(&args.flags.modules) {
        Ok(m) => m,
        Err(f) => return f.report(args.flags.json),
    };
    let spec = match args.kernel.clone() {
        Some(release) => match prepare_kernel(&mut args, &release) {
            Ok(dir) => TargetSpec::Headers { dir },
            Err(e) => return report_build_error(&e, args.flags.json),
        },
        None => match args.flags.target_spec() {
            Some(spec) => spec,
            // clap's argument group and `requires` make this unreachable; stay a usage error.
            None => {
                return krbd_host::Failure::new(
                    ExitCode::Usage,
                    "give --kernel RELEASE, --headers DIR, or --symvers FILE with --vermagic STRING",
                )
                .report(args.flags.json)
            }
        },
    };
    krbd_host::check::run_modules(&args.flags, &modules, &spec)
}
