#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# apt-cache needs package lists; `krbd-forge` resolves targets from them.
if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -c Packages | grep -v '^0$')" ]; then
    apt-get update -qq
fi
cargo test --workspace --release -- --test-threads="$(nproc)"
