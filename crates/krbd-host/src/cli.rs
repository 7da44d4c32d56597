//! The `krbd-host` command line: the host-side commands only.

use crate::exit::{table, ExitCode};
use crate::terminal::VerbosityArgs;
use crate::{check, generate, install, preflight};
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Check offline whether the set installed for a kernel release would load on that
    /// kernel, before it boots (what the kernel-install hooks run); no headers needed.
    Preflight(preflight::PreflightArgs),
    /// Write man pages (section 8) or shell completions generated from these definitions.
    Generate(generate::GenerateArgs),
}

/// The section krbd-host's man pages belong to: a tool for root.
pub const MAN_SECTION: &str = "8";

pub fn run(cli: Cli) -> ExitCode {
    cli.verbosity.apply();
    match cli.command {
        Command::Install(args) => install::run_install(args),
        Command::Rollback(args) => install::run_rollback(args),
        Command::Status(args) => install::run_status(args),
        Command::Check(args) => check::run_host(args),
        Command::Preflight(args) => preflight::run(args),
        Command::Generate(args) => generate::run(args, Cli::command(), MAN_SECTION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_accepts_quiet_and_verbose() {
        let cmd = Cli::command();
        assert!(cmd.get_subcommands().count() >= 4);
        crate::terminal::check_verbosity_flags(&cmd, "krbd-host").unwrap();
    }
}
