# The check both kernel hooks run (krbd-forge-host package): `krbd-host preflight`
# checks the Ceph module set in /lib/modules/<release>/updates/krbd-forge/ offline against
# the new kernel's own symbols (its image's export tables, or the symvers.gz the RHEL family
# ships), then this says loudly what is wrong. Output goes to stderr only: Debian runs
# kernel hooks under debconf, whose protocol owns stdout (kernel-handbook, 8.1).
#
# KRBD_FORGE_ROOT (else dpkg's DPKG_ROOT) names another root folder to check, e.g. an
# image being built; empty means /.
#
# Strict mode (a non-zero status when the set is missing or would be refused) is off unless
# /etc/default/krbd-forge says KRBD_FORGE_HOOK_STRICT=yes: see the hook's header for what a
# non-zero status does to the kernel's installation on this family.
krbd_forge_check() {
    version="$1"
    root="${KRBD_FORGE_ROOT:-${DPKG_ROOT:-}}"
    bin="$root/usr/sbin/krbd-host"
    strict=no
    if [ -r "$root/etc/default/krbd-forge" ]; then
        strict=$(sed -n 's/^KRBD_FORGE_HOOK_STRICT=["'\'']*\([a-z]*\).*/\1/p' "$root/etc/default/krbd-forge" | tail -n 1)
    fi
    if [ ! -x "$bin" ]; then
        echo "krbd-forge: $bin is missing: the Ceph module set of kernel $version was NOT checked"
        return 0
    fi
    output=$("$bin" preflight "$version" --root "${root:-/}" 2>&1)
    status=$?
    case "$status" in
        0)
            echo "krbd-forge: kernel $version: its Ceph module set (libceph, ceph, rbd) loads on it (checked offline against the kernel's own symbols)"
            return 0
            ;;
        3) headline="NO usable Ceph module set for it (or the kernel itself cannot be read)" ;;
        10) headline="the Ceph module set installed for it would be REFUSED by its loader" ;;
        15) headline="the Ceph module set installed for it is INCONSISTENT" ;;
        *) headline="the check of its Ceph module set FAILED (status $status)" ;;
    esac
    line="krbd-forge: ************************************************************************"
    echo "$line"
    echo "krbd-forge: WARNING: kernel $version: $headline"
    echo "$output" | sed 's/^/krbd-forge:   /'
    echo "krbd-forge: Booting kernel $version now gives this host the stock Ceph modules, or none:"
    echo "krbd-forge: RBD devices and CephFS mounts of the patched cluster will fail there. Install the"
    echo "krbd-forge: set built and proven for $version (krbd-forge build --kernel $version), then check"
    echo "krbd-forge: again with: krbd-host preflight $version"
    echo "$line"
    if [ "$strict" = yes ]; then
        return "$status"
    fi
    return 0
}
