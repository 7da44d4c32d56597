#!/usr/bin/env bash
# Benchmark, side by side in one run, on the default target (or $1):
#   (a) krbd-forge cold build: packages already downloaded, nothing extracted or built
#   (b) krbd-forge warm rebuild: identical inputs (cache hit)
#   (c) the seed's way: extract the whole source tree, olddefconfig, modules_prepare, then
#       three M= builds (net/ceph; fs/ceph and drivers/block against libceph's symvers)
# Prints each time and the ratios (a)/(c) and (b). Needs: scripts/install-deps.sh bench
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench >&2
cargo build --release -q -p krbd-forge
forge=$PWD/target/release/krbd-forge
work=$(mktemp -d /var/tmp/krbd-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
main_cache=${KRBD_FORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/krbd-forge}
jobs=$(nproc)

release=${1:-}
kernel_args=()
[ -n "$release" ] && kernel_args=(--kernel "$release")

# Make sure the packages are in the main cache, then give (a) a cache with only them.
"$forge" build "${kernel_args[@]}" --cache-dir "$main_cache" --out "$work/prime" --quiet --json > "$work/prime.json"
release=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["release"])' "$work/prime.json")
mkdir -p "$work/cache/debs"
cp -al "$main_cache"/debs/*.deb "$work/cache/debs/" 2>/dev/null || cp "$main_cache"/debs/*.deb "$work/cache/debs/"
cp -r "$main_cache/resolved" "$work/cache/" 2>/dev/null || true

now() { date +%s.%N; }
t0=$(now); "$forge" build --kernel "$release" --cache-dir "$work/cache" --out "$work/out" --quiet; t1=$(now)
"$forge" build --kernel "$release" --cache-dir "$work/cache" --out "$work/out" --quiet; t2=$(now)

# (c) The seed's way, with the same packages.
deb() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([i["sha256"] for i in r["inputs"] if i["role"]==sys.argv[2]][0])' "$work/prime.json" "$1"; }
seed=$work/seed; mkdir -p "$seed/sysroot"
for role in headers headers-common kbuild; do dpkg-deb -x "$main_cache/debs/$(deb $role).deb" "$seed/sysroot"; done
hdr=$seed/sysroot/usr/src/linux-headers-$release
t3=$(now)
dpkg-deb --fsys-tarfile "$main_cache/debs/$(deb source).deb" | tar -x -C "$seed" --wildcards './usr/src/linux-source-*.tar.*'
tar -xf "$seed"/usr/src/linux-source-*.tar.* -C "$seed"
tree=$(echo "$seed"/linux-source-*/)
cp "$hdr/.config" "$tree/.config"
cp "$hdr/Module.symvers" "$tree/Module.symvers"
cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$hdr/.config")
make -s -C "$tree" CC="$cc" olddefconfig >/dev/null
make -s -C "$tree" CC="$cc" -j"$jobs" modules_prepare >/dev/null 2>&1
make -s -C "$tree" CC="$cc" -j"$jobs" M="$tree/net/ceph" modules >/dev/null 2>&1
make -s -C "$tree" CC="$cc" -j"$jobs" M="$tree/fs/ceph" KBUILD_EXTRA_SYMBOLS="$tree/net/ceph/Module.symvers" modules >/dev/null 2>&1
make -s -C "$tree" CC="$cc" -j"$jobs" M="$tree/drivers/block" KBUILD_EXTRA_SYMBOLS="$tree/net/ceph/Module.symvers" CONFIG_BLK_DEV_RBD=m modules >/dev/null 2>&1 || true
t4=$(now)
ls "$tree/drivers/block/rbd.ko" "$tree/fs/ceph/ceph.ko" "$tree/net/ceph/libceph.ko" >/dev/null

python3 - "$release" "$jobs" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import sys
rel, jobs = sys.argv[1], sys.argv[2]
t0, t1, t2, t3, t4 = map(float, sys.argv[3:])
a, b, c = t1 - t0, t2 - t1, t4 - t3
print(f"target {rel}, -j{jobs}")
print(f"(a) krbd-forge cold build (packages cached) {a:7.1f} s")
print(f"(b) krbd-forge warm rebuild (cache hit)     {b:7.1f} s")
print(f"(c) seed's way (full tree, prepare, M=)     {c:7.1f} s")
print(f"ratio (a)/(c) = {a / c:.2f}   (target <= 0.6)")
print(f"(b) = {b:.2f} s            (target <= 2 s)")
PY
