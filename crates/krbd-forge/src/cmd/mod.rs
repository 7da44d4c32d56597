mod check;

use clap::{Parser, Subcommand};

/// Build, prove and ship patched Ceph kernel client modules (libceph, ceph, rbd).
#[derive(Debug, Parser)]
#[command(name = "krbd-forge", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build libceph.ko, ceph.ko and rbd.ko for a Debian kernel release.
    Build,
    /// Check offline whether modules would load on a target kernel, as its loader decides.
    Check(check::CheckArgs),
}

pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Build => 0,
        Command::Check(args) => check::run(args),
    }
}
