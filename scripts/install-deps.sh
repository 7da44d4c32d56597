#!/usr/bin/env bash
# Installs the Debian packages that krbd-forge and its test suite use. Idempotent; run as root.
#   scripts/install-deps.sh          everything (build, boot test, cluster, packaging tools)
#   scripts/install-deps.sh build    only what `krbd-forge build` needs
#   scripts/install-deps.sh bench    build + what scripts/bench-build.sh's full-tree build and
#                                    scripts/bench-follow.sh need
set -euo pipefail

# gcc-12: Debian 12's kernels are built with it; dwarves: pahole, for the BTF that the
# kernels embed in modules.
build_pkgs=(gcc-12 make libelf1 binutils dwarves xz-utils ca-certificates)
# ccache: scripts/bench-follow.sh measures builds with and without a compiler cache.
bench_pkgs=(flex bison bc libelf-dev libssl-dev python3 ccache)
# debootstrap and e2fsprogs: the install test and `boot-test --suite` boot debootstrapped roots from
# ext4 images made with `mkfs.ext4 -d` (kmod's depmod lays out the suite guest's module tree);
# the upgrade test reads its guest's disk back with e2fsprogs' debugfs.
# openssl: throwaway signing keys in the package tests.
# gnupg, gpgv: RPM signatures (throwaway keys, rpmsign, and --rpm-key's checks).
# apt-utils (apt-ftparchive), createrepo-c: the generators of the published APT and YUM
# repositories (krbd-repo), apt-ftparchive also makes the follow test's local APT mirror;
# dnf: the tests check the signed YUM repository with dnf itself.
# man-db (with groff-base): the generated man pages are rendered with `man -l` in tests.
# g++: libfuzzer-sys compiles libFuzzer (C++) for scripts/fuzz.sh.
test_pkgs=(qemu-system-x86 busybox-static cpio kmod rpm openssl dpkg gnupg gpgv
           ceph-mon ceph-osd ceph-mgr ceph-common ceph-base iproute2
           debootstrap e2fsprogs apt-utils createrepo-c dnf g++ man-db)

want=("${build_pkgs[@]}")
case "${1:-all}" in
    build) ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    *) want+=("${test_pkgs[@]}") ;;
esac

# krbd-forge resolves kernels through apt's index: it must have been fetched once.
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: apt has no package lists; run 'apt-get update' as root" >&2
        exit 1
    fi
    apt-get update -qq
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
