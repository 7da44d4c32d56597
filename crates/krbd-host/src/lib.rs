//! The host side of krbd-forge: the commands a customer host runs (install, rollback,
//! status, check against local headers, preflight of an installed kernel, generate), built into the slim `krbd-host` binary that the
//! installer tarball carries, and reused by `krbd-forge` for the same commands.
//!
//! This crate is a command line front end, like krbd-forge's `cmd` module: it parses
//! flags, calls the library crates (krbd-install, krbd-kmod) and prints their results.
//! It also owns what every command of both binaries shares: the exit-code table
//! ([`exit::ExitCode`]), the one JSON error shape ([`report::Failure`]) and the terminal
//! progress listener ([`terminal::Terminal`]).

pub mod check;
pub mod cli;
pub mod exit;
pub mod generate;
pub mod install;
pub mod preflight;
pub mod report;
pub mod terminal;

pub use exit::ExitCode;
pub use report::Failure;
