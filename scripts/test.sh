#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Style and lints first: they take a minute and fail fast. Both are configured once for the
# workspace (rustfmt.toml, clippy.toml, [workspace.lints]).
cargo fmt --all --check
# Twice: as shipped, and with the test-only fault injection compiled in.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --features krbd-forge/test-hooks -- -D warnings
# Real kernel packages are large: keep the tests' package cache across checkouts.
export KRBD_TEST_CACHE=${KRBD_TEST_CACHE:-/var/tmp/krbd-forge-test-cache}
# --no-fail-fast: one run reports every failing test binary, not just the first.
# krbd-forge/test-hooks: the install tests' fault injection (crash points, a simulated
# kernel); the tests that need it are skipped without it.
status=0
cargo test --workspace --release --no-fail-fast --features krbd-forge/test-hooks -- --test-threads="$(nproc)" || status=$?
# The placement decoders' fuzz targets, a minute each on the committed seed corpus with a
# 1 GB memory limit (nightly; installs cargo-fuzz if missing). Run even when a test failed,
# so that one run reports both.
scripts/fuzz.sh || status=1
exit "$status"
