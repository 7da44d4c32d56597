use clap::{Parser, Subcommand};

pub mod placement;

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
    /// Placement model: map PGs from an OSDMap exactly as Ceph does (see `placement --help`).
    Placement(placement::PlacementArgs),
}

pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Build => 0,
        Command::Placement(a) => placement::run(a),
    }
}
