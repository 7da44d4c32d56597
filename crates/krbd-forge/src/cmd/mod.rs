use clap::{Parser, Subcommand};

mod boot_test;

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
    /// Boot the target's own kernel under QEMU, load the module set, optionally do RBD I/O.
    BootTest(boot_test::BootTestArgs),
}

pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Build => 0,
        Command::BootTest(args) => boot_test::run(args),
    }
}
