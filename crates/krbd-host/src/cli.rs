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

    /// Every command path, as the words to type (`["install"]`, ...).
    fn paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_command_accepts_quiet_and_verbose() {
        let mut all = Vec::new();
        paths(&Cli::command(), &[], &mut all);
        assert!(all.len() >= 4, "{all:?}");
        for path in all {
            for flag in ["--quiet", "-q", "--verbose", "-v"] {
                let args = [&["krbd-host".to_string()][..], &path, &[flag.to_string(), "--help".to_string()]].concat();
                let err = Cli::try_parse_from(&args).expect_err("--help stops the parse");
                assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}: {err}");
            }
        }
        let both = Cli::try_parse_from(["krbd-host", "status", "--quiet", "--verbose"]).expect_err("conflict");
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
