#!/usr/bin/env bash
# Mapping an image in a pool that is younger than the kernel client's OSDMap.
#
# A libceph client is shared by every mapping with the same options, so while one
# image stays mapped the client keeps the OSDMap it had.  When a pool is created
# after that, `rbd map` of an image in it only works if the kernel notices that
# the pool is unknown, asks the monitors for the newest OSDMap, waits for it and
# looks again.  Each round creates a pool, maps an image in it (first with no
# other mapping, then beside a long-lived one), does I/O through the new pool's
# PGs and deletes the pool.  Finally a spec naming a pool that does not exist is
# written to sysfs: the kernel must answer ENOENT only after fetching the newest
# map, so its epoch then equals the monitor's.
#
# Needs: `mon allow pool delete = true`.  KRBD_ROUNDS (default 2) sets the rounds.
set -ex

ROUNDS=${KRBD_ROUNDS:-2}
WORK=$(mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/latest-osdmap.XXXXXX")
ANCHOR=latest-osdmap-anchor
ANCHOR_DEV=

cleanup() {
    set +e
    [ -n "$ANCHOR_DEV" ] && rbd unmap "$ANCHOR_DEV"
    rbd rm --no-progress "$ANCHOR" 2>/dev/null
    for p in $(ceph osd pool ls | grep '^latest-osdmap-'); do
        ceph osd pool delete "$p" "$p" --yes-i-really-really-mean-it
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# The monitor's newest epoch; `getmaxosd` prints "max_osd = N in epoch E".
mon_epoch() {
    ceph osd getmaxosd | awk '{ print $NF }'
}

# The OSDMap epoch of every libceph client in the kernel, one line each.
kernel_epochs() {
    mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
    local f
    for f in /sys/kernel/debug/ceph/*/osdmap; do
        [ -e "$f" ] && awk 'NR == 1 && $1 == "epoch" { print $2 }' "$f"
    done
    return 0
}

# Writes a spec for a pool that does not exist through the options of mapped device
# "$1", so that the kernel reuses that device's client: rbd makes a reused client
# fetch the newest OSDMap before it looks the pool up, then answers ENOENT.
# Pacific's CLI refuses an unknown pool in userspace ("error opening pool") before
# the kernel is asked, hence sysfs.  The CLI passed key=client.NAME, a key in its
# own process keyring that this shell cannot see: the secret goes in instead.
map_missing_pool_through() {
    local id=$1 mons opts rest name= p kept=()
    read -r mons opts rest < "/sys/bus/rbd/devices/$id/config_info"
    IFS=, read -ra parts <<< "$opts"
    for p in "${parts[@]}"; do
        case $p in
            name=*) name=${p#name=}; kept+=("$p") ;;
            key=* | secret=*) ;;
            *) kept+=("$p") ;;
        esac
    done
    kept+=("secret=$(ceph auth get-key "client.${name:-admin}")")
    opts=$(IFS=,; echo "${kept[*]}")
    local add=/sys/bus/rbd/add_single_major
    [ -e $add ] || add=/sys/bus/rbd/add
    if echo "$mons $opts latest-osdmap-no-such-pool no-such-image -" > $add 2> "$WORK/add.err"; then
        echo "a spec for a pool that does not exist was mapped" >&2
        return 1
    fi
    grep -q 'No such file or directory' "$WORK/add.err"
}

# The kernel must hold the monitor's newest OSDMap once it has been told to look for
# a pool that does not exist: at least the epoch the monitor had before, and when the
# monitor moved on meanwhile (new pools' PGs peering), exactly the newer one.
assert_kernel_has_newest_osdmap() {
    local id=$1 mon kernel i
    mon=$(mon_epoch)
    for i in 1 2 3 4 5; do
        map_missing_pool_through "$id"
        kernel=$(kernel_epochs | sort -u | paste -sd' ')
        [ "$kernel" = "$mon" ] && return 0
        ! [ "$kernel" -gt "$mon" ] 2>/dev/null && break
        mon=$(mon_epoch)
    done
    echo "kernel OSDMap epoch(s) '$kernel', monitor's $mon" >&2
    return 1
}

device_id() {
    local dev=$1
    echo "${dev#/dev/rbd}"
}

# One round: a new pool, an image in it mapped through the CLI, a pattern written
# and read back with O_DIRECT, unmapped, the pool deleted.
round() {
    local pool=latest-osdmap-$1 dev
    ceph osd pool create "$pool" 8 8
    rbd pool init "$pool"
    rbd create --size 4M "$pool/img"
    dev=$(rbd map "$pool/img")
    [ -L "/dev/rbd/$pool/img" ]
    [ "$(readlink -f "/dev/rbd/$pool/img")" = "$dev" ]
    head -c 1M /dev/urandom > "$WORK/pattern"
    dd if="$WORK/pattern" of="$dev" bs=1M seek=2 oflag=direct status=none
    dd if="$dev" bs=1M skip=2 count=1 iflag=direct status=none | cmp - "$WORK/pattern"
    rbd unmap "$dev"
    ceph osd pool delete "$pool" "$pool" --yes-i-really-really-mean-it
}

for ((i = 0; i < ROUNDS; i++)); do
    round "alone-$i"
done

rbd create --size 4M "$ANCHOR"
ANCHOR_DEV=$(rbd map "$ANCHOR")
for ((i = 0; i < ROUNDS; i++)); do
    round "beside-$i"
done
assert_kernel_has_newest_osdmap "$(device_id "$ANCHOR_DEV")"
rbd unmap "$ANCHOR_DEV"
ANCHOR_DEV=

echo OK
