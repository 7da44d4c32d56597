//! The `krbd-host` command line: the host-side commands only.

use crate::exit::{table, ExitCode};
use crate::terminal::VerbosityArgs;
use crate::{check, install};
use clap::{Parser, Subcommand};

/// Install, roll back and inspect the Ceph kernel client modules (libceph, ceph, rbd) that
/// krbd-forge built for this host's kernel, and check modules against that kernel offline.
#[derive(Debug, Parser)]
#[command(name = "krbd-host", version, after_long_help = table())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install a built set on this host as one journaled transaction; swap the loaded
    /// modules when no rbd device or CephFS uses them.
    Install(install::InstallArgs),
    /// Restore the set the last install replaced.
    Rollback(install::RollbackArgs),
    /// Show the Ceph modules installed, loaded and shipped, side by side.
    Status(install::StatusArgs),
    /// Check offline whether modules would load on this host's kernel, as its loader decides.
    Check(check::HostCheckArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    cli.verbosity.apply();
    match cli.command {
        Command::Install(args) => install::run_install(args),
        Command::Rollback(args) => install::run_rollback(args),
        Command::Status(args) => install::run_status(args),
        Command::Check(args) => check::run_host(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_accepts_quiet_and_verbose() {
        let cmd = Cli::command();
        assert!(cmd.get_subcommands().count() >= 4);
        crate::terminal::check_verbosity_flags(&cmd, "krbd-host").unwrap();
    }
}
