//! The `krbd-forge` command line: turns flags into validated objects once, then hands
//! them to the library crates.

mod cmd;

use clap::Parser;

fn main() {
    let cli = cmd::Cli::parse();
    std::process::exit(cmd::run(cli).code());
}
