//! Subcommands. Each turns its raw flags into validated library objects once, runs, and
//! maps library errors to the one exit-code table (krbd_host::ExitCode) that `--help`
//! shows. install, rollback and status are krbd-host's; check extends krbd-host's with
//! `--kernel RELEASE` through apt.

mod agreement;
mod boot_suite;
mod boot_test;
mod build;
mod check;
mod exit;
mod package;
mod patch;
mod placement;
mod series;
mod targets;

use clap::{Parser, Subcommand};
use krbd_host::install;
pub use krbd_host::terminal;
use krbd_host::ExitCode;

/// Build, prove and ship patched Ceph kernel client modules (libceph, ceph, rbd) for the
/// exact kernel a customer runs.
#[derive(Debug, Parser)]
#[command(name = "krbd-forge", version = env!("KRBD_FORGE_VERSION"), about)]
#[command(after_long_help = krbd_host::exit::table())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// --quiet, --verbose: valid before or after any command (with `placement plan`,
    /// --verbose lists every PG behind each step; with `build`, every hunk).
    #[command(flatten)]
    pub verbosity: terminal::VerbosityArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build libceph.ko, ceph.ko and rbd.ko for a kernel release.
    Build(build::BuildArgs),
    /// List the kernel releases that can be built, and what is already cached.
    Targets(targets::TargetsArgs),
    /// Work with patch series (`patch check`: which variant applies to a source, and how).
    Patch(patch::PatchArgs),
    /// Check offline whether modules would load on a target kernel, as its loader decides.
    Check(check::CheckArgs),
    /// Boot the target's own kernel under QEMU, load the module set, optionally do RBD I/O.
    BootTest(boot_test::BootTestArgs),
    /// Placement model: map PGs from an OSDMap exactly as Ceph does, plan recovery_weight
    /// ramps, diff maps, write fork-format maps (see `placement --help`).
    Placement(placement::PlacementArgs),
    /// Install a built set on this host as one journaled transaction; swap the loaded
    /// modules when no rbd device or CephFS uses them.
    Install(install::InstallArgs),
    /// Restore the set the last install replaced.
    Rollback(install::RollbackArgs),
    /// Show the Ceph modules installed, loaded and shipped, side by side.
    Status(install::StatusArgs),
    /// Package a built set: kmod RPM, .deb, installer tarball or DKMS source tree.
    Package(package::PackageArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    cli.verbosity.apply();
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Targets(args) => targets::run(args),
        Command::Patch(args) => patch::run(args),
        Command::Check(args) => check::run(args),
        Command::BootTest(args) if args.agreement => agreement::run(args),
        Command::BootTest(args) if args.suite.is_some() => boot_suite::run(args),
        Command::BootTest(args) => boot_test::run(args),
        Command::Placement(args) => placement::run(args),
        Command::Install(args) => install::run_install(args),
        Command::Rollback(args) => install::run_rollback(args),
        Command::Status(args) => install::run_status(args),
        Command::Package(args) => package::run(args),
    }
}

/// Flags shared by the commands that use the cache.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache folder (packages, extracted headers and sources, builds).
    /// [default: $XDG_CACHE_HOME/krbd-forge or ~/.cache/krbd-forge]
    #[arg(long, value_name = "DIR", env = "KRBD_FORGE_CACHE")]
    pub cache_dir: Option<std::path::PathBuf>,
}

impl CacheArgs {
    pub fn open(&self) -> Result<krbd_fetch::cache::Cache, krbd_fetch::FetchError> {
        let root = self.cache_dir.clone().unwrap_or_else(krbd_fetch::cache::Cache::default_root);
        krbd_fetch::cache::Cache::open(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_accepts_quiet_and_verbose() {
        let cmd = Cli::command();
        let plan = cmd.find_subcommand("placement").and_then(|p| p.find_subcommand("plan"));
        assert!(plan.is_some(), "nested commands are in the tree");
        terminal::check_verbosity_flags(&cmd, "krbd-forge").unwrap();
    }
}
