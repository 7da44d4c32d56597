//! `krbd-host`: install, roll back and inspect a Ceph module set on the host it runs on,
//! check modules against this host's kernel, and preflight a newly installed kernel. Built for glibc 2.17 by
//! scripts/build-target-binary.sh.

use clap::Parser;

fn main() {
    let cli = krbd_host::cli::Cli::parse();
    std::process::exit(krbd_host::cli::run(cli).code());
}
