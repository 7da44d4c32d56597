#!/usr/bin/env bash
# Installs the Debian packages that krbd-forge and its test suite use. Idempotent; run as root.
#   scripts/install-deps.sh          everything (build, boot test, cluster, packaging tools)
#   scripts/install-deps.sh build    only what `krbd-forge build` needs
set -euo pipefail

build_pkgs=(gcc-12 make libelf1 binutils xz-utils apt-utils ca-certificates)
test_pkgs=(qemu-system-x86 busybox-static cpio kmod rpm
           ceph-mon ceph-osd ceph-mgr ceph-common ceph-base iproute2)

want=("${build_pkgs[@]}")
if [ "${1:-all}" != build ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
