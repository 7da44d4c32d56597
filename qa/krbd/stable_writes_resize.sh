#!/usr/bin/env bash
# The block device's view of an image: stable writes and resizes.
#
# rbd computes a CRC of (or encrypts, in msgr2 secure mode) every page it sends,
# so the page must not change while in flight: the queue must say so
# (queue/stable_writes = 1), at mapping time and after every refresh.  A resize
# done by another client reaches the kernel as a header update notification; the
# device's capacity (blockdev, /sys/block, the rbd bus attribute) must follow it
# both ways without a remap, data below the old end must survive a grow, and a
# shrink followed by a grow must read zeroes where the cut-off data was.
set -ex

IMAGE=stable-writes-resize
WORK=$(mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/resize.XXXXXX")
DEV=

cleanup() {
    set +e
    [ -n "$DEV" ] && rbd unmap "$DEV"
    rbd rm --no-progress "$IMAGE" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# The size in bytes three ways: the block device, the gendisk, the rbd bus device.
assert_size() {
    local want=$1 name=${DEV#/dev/}
    [ "$(blockdev --getsize64 "$DEV")" -eq "$want" ]
    [ $(($(cat "/sys/block/$name/size") * 512)) -eq "$want" ]
    [ "$(cat "/sys/bus/rbd/devices/${name#rbd}/size")" -eq "$want" ]
    [ "$(cat "/sys/block/$name/queue/stable_writes")" = 1 ]
}

rbd create --size 1M "$IMAGE"
DEV=$(rbd map "$IMAGE")
assert_size 1048576

head -c 1M /dev/urandom > "$WORK/first"
dd if="$WORK/first" of="$DEV" bs=1M oflag=direct status=none

rbd resize --no-progress --size 3M "$IMAGE"
assert_size 3145728
head -c 2M /dev/urandom > "$WORK/grown"
dd if="$WORK/grown" of="$DEV" bs=1M seek=1 oflag=direct status=none
cat "$WORK/first" "$WORK/grown" > "$WORK/expected"
dd if="$DEV" bs=1M iflag=direct status=none | cmp - "$WORK/expected"

# Shrinking cuts the image at 2 MiB; growing back must not resurrect the cut data.
rbd resize --no-progress --allow-shrink --size 2M "$IMAGE"
assert_size 2097152
rbd resize --no-progress --size 3M "$IMAGE"
assert_size 3145728
head -c 2M "$WORK/expected" > "$WORK/after-shrink"
head -c 1M /dev/zero >> "$WORK/after-shrink"
dd if="$DEV" bs=1M iflag=direct status=none | cmp - "$WORK/after-shrink"

# A fresh mapping sees the same size and bytes.
rbd unmap "$DEV"
DEV=$(rbd map "$IMAGE")
assert_size 3145728
dd if="$DEV" bs=1M iflag=direct status=none | cmp - "$WORK/after-shrink"
rbd unmap "$DEV"
DEV=

echo OK
