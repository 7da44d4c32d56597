//! A krbd-forge built without the `test-hooks` feature (every release build) ignores the
//! installer's fault-injection variables (see `hooks_off`). Compiled only without the
//! feature; with it (scripts/test.sh), glibc_target.rs proves the same of the shipped
//! krbd-host, which is never built with it.

#![cfg(not(feature = "test-hooks"))]

mod hooks_off;

use std::path::Path;

fn forge() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_krbd-forge"))
}

#[test]
fn the_crash_point_does_not_fire() {
    hooks_off::crash_point_does_not_fire(forge());
}

#[test]
fn the_kernel_is_not_simulated() {
    hooks_off::kernel_is_not_simulated(forge());
}

#[test]
fn help_does_not_mention_the_hooks() {
    hooks_off::help_does_not_mention_the_hooks(forge());
}
