#!/usr/bin/env bash
# OSDMaps growing from 8 to 60,000 OSD slots through incrementals and back.
#
# Every `ceph osd setmaxosd N` is an incremental whose new max_osd makes the kernel
# resize each per-OSD array (state, weight, addresses, primary affinity and, in
# the patched libceph, recovery_weight) while keeping the values it has.  A full
# map of 60,000 slots is about 7 MB (Pacific), most of it skipped by the client.
# The test maps an image, grows max_osd step by step, forces the client to the newest map
# after each step and checks that its epoch equals the monitor's and that I/O
# still works; then it re-sends the CRUSH map (an incremental carrying a full
# CRUSH map).  The second half maps while the map is huge (one 7 MB full map)
# and shrinks step by step, with a primary affinity set so that the optional
# affinity array is resized as well.  KRBD_OSDMAP_STEPS overrides the steps.
#
# Needs: `mon max osd >= 60000`; when the monitor allows less, the test raises it
# through the config database and removes that setting at the end.
#
# Its own limit for `boot-test --suite` (it took up to 512 s under TCG on a loaded
# 2-core machine, most of it in ceph CLI calls): krbd-timeout: 1200
set -ex

STEPS=${KRBD_OSDMAP_STEPS:-8 60 600 6000 60000}
IMAGE=osdmap-growth
WORK=$(mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/osdmap-growth.XXXXXX")
DEV=
ORIG_MAX=$(ceph osd getmaxosd | awk '{ print $3 }')
SET_MON_MAX=

cleanup() {
    set +e
    [ -n "$DEV" ] && rbd unmap "$DEV"
    rbd rm --no-progress "$IMAGE" 2>/dev/null
    ceph osd primary-affinity osd.0 1
    ceph osd setmaxosd "$ORIG_MAX"
    [ -n "$SET_MON_MAX" ] && ceph config rm mon mon_max_osd
    rm -rf "$WORK"
}
trap cleanup EXIT

# The monitor's newest epoch; `getmaxosd` prints "max_osd = N in epoch E".
mon_epoch() {
    ceph osd getmaxosd | awk '{ print $NF }'
}

kernel_epochs() {
    local f
    for f in /sys/kernel/debug/ceph/*/osdmap; do
        [ -e "$f" ] && awk 'NR == 1 && $1 == "epoch" { print $2 }' "$f"
    done
    return 0
}

# The kernel's max_osd: the osdmap debugfs file lists one "osdN" line per slot.
kernel_max_osd() {
    local f
    for f in /sys/kernel/debug/ceph/*/osdmap; do
        grep -c '^osd[0-9]' "$f"
    done | sort -u | paste -sd' '
}

# The spec of a pool that does not exist, with the mapped device's options (so that its
# client is reused): rbd then makes the client fetch the newest OSDMap before it
# answers ENOENT.  Pacific's `rbd map wait_for/latest_osdmap` fails in userspace
# ("error opening pool"), hence sysfs.  The CLI passed key=client.NAME, a key in its
# own process keyring that this shell cannot see: the secret goes in instead.
probe_spec() {
    local id=${DEV#/dev/rbd} mons opts rest name= p kept=()
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
    echo "$mons $(IFS=,; echo "${kept[*]}") osdmap-growth-no-such-pool no-such-image -"
}

fetch_newest_osdmap() {
    local add=/sys/bus/rbd/add_single_major
    [ -e $add ] || add=/sys/bus/rbd/add
    if echo "$PROBE_SPEC" > $add 2> "$WORK/add.err"; then
        echo "a spec for a pool that does not exist was mapped" >&2
        return 1
    fi
    grep -q 'No such file or directory' "$WORK/add.err"
}

# After a map change: the client holds the monitor's epoch and the new size, and a
# fresh 1 MiB pattern goes through the device and back with O_DIRECT.  The kernel's
# epoch must reach the one the monitor had before the fetch; when the monitor moved on
# meanwhile (a primary affinity change makes PGs peer), it must equal the newer one.
check_step() {
    local max=$1 step=$2 mon kernel i
    mon=$(mon_epoch)
    for i in 1 2 3 4 5; do
        fetch_newest_osdmap
        kernel=$(kernel_epochs | sort -u | paste -sd' ')
        [ "$kernel" = "$mon" ] && break
        if ! [ "$kernel" -gt "$mon" ] 2>/dev/null || [ $i = 5 ]; then
            echo "kernel OSDMap epoch(s) '$kernel', monitor's $mon" >&2
            return 1
        fi
        mon=$(mon_epoch)
    done
    [ "$(kernel_max_osd)" = "$max" ]
    head -c 1M /dev/urandom > "$WORK/pattern"
    dd if="$WORK/pattern" of="$DEV" bs=1M seek=$((step % 12)) oflag=direct status=none
    dd if="$DEV" bs=1M skip=$((step % 12)) count=1 iflag=direct status=none | cmp - "$WORK/pattern"
}

walk() {
    local max step=0
    for max in "$@"; do
        ceph osd setmaxosd "$max"
        check_step "$max" $((step++))
    done
    ceph osd getcrushmap -o "$WORK/crush"
    ceph osd setcrushmap -i "$WORK/crush"
    check_step "$max" $((step++))
}

largest=$(tr ' ' '\n' <<< "$STEPS" | sort -n | tail -1)
allowed=$(ceph config get mon mon_max_osd)
if [ "${allowed:-0}" -lt "$largest" ]; then
    ceph config set mon mon_max_osd "$largest"
    SET_MON_MAX=1
fi

rbd create --size 12M "$IMAGE"
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug

# Small map first, growing through incrementals.
DEV=$(rbd map "$IMAGE")
PROBE_SPEC=$(probe_spec)
walk $STEPS
rbd unmap "$DEV"
DEV=

# Mapped while huge (one 7 MB full map), shrinking, with a primary affinity.
ceph osd primary-affinity osd.0 0.5
DEV=$(rbd map "$IMAGE")
PROBE_SPEC=$(probe_spec)
check_step "$largest" 0
walk $(tr ' ' '\n' <<< "$STEPS" | sort -rn | tail -n +2)
rbd unmap "$DEV"
DEV=

echo OK
