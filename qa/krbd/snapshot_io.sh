#!/usr/bin/env bash
# I/O across snapshot creation and removal on a mapped image.
#
# Creating a snapshot changes the snapshot context the kernel must send with every
# write (so that the OSDs clone objects before overwriting them); removing it
# changes it again.  Writes right after either change used to fail.  With
# exclusive-lock (features 37) the CLI also has to take the lock from the kernel
# for each snapshot operation, and the kernel takes it back on the next write.
# The test writes with O_DIRECT before, between and after, maps the snapshot
# read-only through its /dev/rbd/<pool>/<image>@<snap> link and checks it holds
# exactly the pre-snapshot bytes while the head holds the new ones, and that a
# write to the snapshot device is refused.
set -ex

POOL=rbd
IMAGE=snapshot-io
WORK=$(mktemp -d "${TESTDIR:-${TMPDIR:-/tmp}}/snapshot-io.XXXXXX")
HEAD_DEV=
SNAP_DEV=

cleanup() {
    set +e
    [ -n "$SNAP_DEV" ] && rbd unmap "$SNAP_DEV"
    [ -n "$HEAD_DEV" ] && rbd unmap "$HEAD_DEV"
    rbd snap purge --no-progress "$IMAGE" 2>/dev/null
    rbd rm --no-progress "$IMAGE" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

write() {  # FILE MiB-OFFSET: the file's bytes at that offset, O_DIRECT
    dd if="$1" of="$HEAD_DEV" bs=1M seek="$2" oflag=direct status=none
}

rbd create --size 8M "$IMAGE"
rbd map "$IMAGE"
udevadm settle
HEAD_DEV=$(readlink -f "/dev/rbd/$POOL/$IMAGE")
[ -b "$HEAD_DEV" ]

head -c 4M /dev/urandom > "$WORK/before"
write "$WORK/before" 0

rbd snap create "$IMAGE@one"
head -c 1M /dev/urandom > "$WORK/between"
write "$WORK/between" 1

rbd map "$IMAGE@one"
udevadm settle
SNAP_DEV=$(readlink -f "/dev/rbd/$POOL/$IMAGE@one")
[ -b "$SNAP_DEV" ] && [ "$SNAP_DEV" != "$HEAD_DEV" ]
[ "$(blockdev --getro "$SNAP_DEV")" = 1 ]
dd if="$SNAP_DEV" bs=1M count=4 iflag=direct status=none | cmp - "$WORK/before"
if dd if=/dev/zero of="$SNAP_DEV" bs=4k count=1 oflag=direct status=none; then
    echo "a write to the mapped snapshot succeeded" >&2
    exit 1
fi

{ head -c 1M "$WORK/before"; cat "$WORK/between"; tail -c 2M "$WORK/before"; } > "$WORK/head"
dd if="$HEAD_DEV" bs=1M count=4 iflag=direct status=none | cmp - "$WORK/head"
rbd unmap "$SNAP_DEV"
SNAP_DEV=

rbd snap rm --no-progress "$IMAGE@one"
head -c 1M /dev/urandom > "$WORK/after"
write "$WORK/after" 2
{ head -c 2M "$WORK/head"; cat "$WORK/after"; tail -c 1M "$WORK/head"; } > "$WORK/final"
dd if="$HEAD_DEV" bs=1M count=4 iflag=direct status=none | cmp - "$WORK/final"

# Another snapshot cycle right after the first, then the bytes after a remap.
rbd snap create "$IMAGE@two"
write "$WORK/after" 5
rbd snap rm --no-progress "$IMAGE@two"
write "$WORK/between" 6
rbd unmap "$HEAD_DEV"
HEAD_DEV=$(rbd map "$IMAGE")
dd if="$HEAD_DEV" bs=1M count=4 iflag=direct status=none | cmp - "$WORK/final"
dd if="$HEAD_DEV" bs=1M skip=5 count=1 iflag=direct status=none | cmp - "$WORK/after"
dd if="$HEAD_DEV" bs=1M skip=6 count=1 iflag=direct status=none | cmp - "$WORK/between"
rbd unmap "$HEAD_DEV"
HEAD_DEV=

echo OK
