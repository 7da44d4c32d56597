#!/usr/bin/env bash
# Builds the slim host-side binary, krbd-host (install, rollback, status, check), for
# glibc 2.17 (CentOS/RHEL 7) with cargo-zigbuild, which links against zig's copy of the old
# glibc's symbol versions. Customer hosts get this, not the whole forge.
#   scripts/build-target-binary.sh [OUT]   (default OUT: target/glibc-2.17/krbd-host)
# Needs: cargo-zigbuild (`cargo install cargo-zigbuild`) and zig (`pip install ziglang`;
# cargo-zigbuild finds it as `python3 -m ziglang`). Installs them when missing.
# The result goes into the tarball with `krbd-forge package --format tar --installer OUT`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/glibc-2.17/krbd-host}"
triple=x86_64-unknown-linux-gnu
glibc=2.17

if ! command -v cargo-zigbuild >/dev/null 2>&1 && ! [ -x "$HOME/.cargo/bin/cargo-zigbuild" ]; then
    echo "build-target-binary: installing cargo-zigbuild from crates.io" >&2
    cargo install --locked cargo-zigbuild
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v zig >/dev/null 2>&1 && ! python3 -c 'import ziglang' 2>/dev/null; then
    echo "build-target-binary: installing ziglang from PyPI" >&2
    python3 -m pip install --quiet ziglang
fi
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple" 2>/dev/null || true

# A separate target folder: zig-linked objects must not mix with the host build's.
export CARGO_TARGET_DIR="$root/target/zigbuild"
cd "$root"
cargo zigbuild --release -p krbd-host --bin krbd-host --target "$triple.$glibc" -j "${JOBS:-2}"
mkdir -p "$(dirname "$out")"
cp "$CARGO_TARGET_DIR/$triple/release/krbd-host" "$out.partial"
mv "$out.partial" "$out"
echo "$out"
