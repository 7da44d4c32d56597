#!/usr/bin/env bash
# Images whose data objects live in another pool (`rbd create --data-pool`): a
# replicated pool and an erasure-coded one (k=2, m=1 over the three OSDs, with
# overwrites).  The header stays in "rbd"; the kernel must send every data object
# to the data pool (an EC pool cannot hold omap, so a mistake there fails loudly),
# a whole-object discard must delete the object there, and the bytes must survive
# a remap.
set -ex

WORK=$(mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/data-pool.XXXXXX")
DEV=

cleanup() {
    set +e
    [ -n "$DEV" ] && rbd unmap "$DEV"
    for kind in replicated erasure; do
        rbd rm --no-progress "data-pool-$kind" 2>/dev/null
        ceph osd pool delete "krbd-data-$kind" "krbd-data-$kind" --yes-i-really-really-mean-it 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Data objects of image "$1" in pool "$2".
objects_in() {
    local prefix
    prefix=$(rbd info --format=json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["block_name_prefix"])')
    rados -p "$2" ls | grep -c "^$prefix\." || true
}

for kind in replicated erasure; do
    pool=krbd-data-$kind image=data-pool-$kind
    if [ $kind = erasure ]; then
        ceph osd erasure-code-profile set krbd-k2m1 k=2 m=1 crush-failure-domain=osd
        ceph osd pool create "$pool" 8 8 erasure krbd-k2m1
        ceph osd pool set "$pool" allow_ec_overwrites true
    else
        ceph osd pool create "$pool" 8 8
    fi
    ceph osd pool application enable "$pool" rbd
    rbd create --size 12M --data-pool "$pool" "$image"
    rbd info "$image" | grep -q "data_pool: $pool"

    DEV=$(rbd map "$image")
    head -c 12M /dev/urandom > "$WORK/data"
    dd if="$WORK/data" of="$DEV" bs=4M oflag=direct status=none
    dd if="$DEV" bs=4M iflag=direct status=none | cmp - "$WORK/data"
    [ "$(objects_in "$image" "$pool")" = 3 ]
    [ "$(objects_in "$image" rbd)" = 0 ]

    # The middle object discarded whole: gone from the data pool, zeroes in its place.
    blkdiscard -o 4M -l 4M "$DEV"
    [ "$(objects_in "$image" "$pool")" = 2 ]
    { head -c 4M "$WORK/data"; head -c 4M /dev/zero; tail -c 4M "$WORK/data"; } > "$WORK/expected"
    rbd unmap "$DEV"
    DEV=$(rbd map "$image")
    dd if="$DEV" bs=4M iflag=direct status=none | cmp - "$WORK/expected"
    rbd unmap "$DEV"
    DEV=
done

echo OK
