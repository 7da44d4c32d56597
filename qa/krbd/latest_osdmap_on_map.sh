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
# Needs: `mon allow pool delete = true`.  KRBD_ROUNDS (default 3) sets the rounds.
set -ex

ROUNDS=${KRBD_ROUNDS:-3}
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

mon_epoch() {
    ceph osd stat --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])'
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

# Writes a spec for pool "$2" through the options of mapped device "$1" (so that
# the kernel reuses that device's client) and prints the errno name, or "mapped".
# Pacific's CLI refuses an unknown pool in userspace ("error opening pool") before
# the kernel is asked, hence sysfs.  The CLI keeps the key in its own process
# keyring (key=client.NAME), which this shell cannot see: pass the secret instead.
sysfs_map_in_pool() {
    local id=$1 pool=$2 mons opts rest name= p kept=()
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
    python3 - "$add" "$mons $opts $pool no-such-image -" <<'PY'
import errno, sys
try:
    with open(sys.argv[1], "w") as f:
        f.write(sys.argv[2])
    print("mapped")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}

# The kernel must hold the monitor's newest OSDMap once it has been told to look
# for a pool that does not exist.  Pool creation moves the epoch on by itself for
# a moment (PGs peering), so compare only while the monitor's epoch stands still.
assert_kernel_has_newest_osdmap() {
    local id=$1 before after answer kernel i
    for i in 1 2 3 4 5 6; do
        before=$(mon_epoch)
        answer=$(sysfs_map_in_pool "$id" latest-osdmap-no-such-pool)
        [ "$answer" = ENOENT ]
        after=$(mon_epoch)
        kernel=$(kernel_epochs | sort -u | paste -sd' ')
        [ "$before" = "$after" ] && [ "$kernel" = "$after" ] && return 0
        [ "$before" != "$after" ] || break
        sleep 2
    done
    echo "kernel OSDMap epoch(s) '$kernel', monitor's $after" >&2
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
