#!/usr/bin/env bash
# Passes: the workunit conventions hold (CEPH_ARGS, a writable TESTDIR, /dev/fd), and an
# image maps through the CLI with its udev link, takes a write and reads it back.
set -ex
[ -n "$CEPH_ARGS" ]
touch "$TESTDIR/written"
diff <(echo same) <(echo same)
rbd create --size 8M rbd/tiny-pass
# The client settings of Ceph's krbd QA: features 37.
rbd info rbd/tiny-pass | grep -q "features: layering, exclusive-lock, deep-flatten$"
DEV=$(sudo rbd map rbd/tiny-pass)
udevadm settle
# The map options the kernel got (the runner's test looks for --ms-mode here).
cat /sys/kernel/debug/ceph/*/client_options
[ "$(readlink -f /dev/rbd/rbd/tiny-pass)" = "$DEV" ]
head -c 1M /dev/urandom > "$TESTDIR/data"
dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct status=none
cmp -n 1048576 "$TESTDIR/data" "$DEV"
sudo rbd unmap "$DEV"
rbd rm --no-progress rbd/tiny-pass
echo OK
