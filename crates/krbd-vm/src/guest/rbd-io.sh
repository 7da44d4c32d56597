
step() { say "step|$1|$2|$3"; }
rbd_map() {
    before=" $(ls /sys/bus/rbd/devices 2>/dev/null | tr '\n' ' ') "
    err=$( (echo "$MON name=admin,secret=$KEY $1 $2 -" > /sys/bus/rbd/add_single_major) 2>&1 ) || { echo "ERR $err"; return 1; }
    for id in $(ls /sys/bus/rbd/devices); do
        case "$before" in *" $id "*) ;; *) echo "$id"; return 0;; esac
    done
    echo "ERR no new device under /sys/bus/rbd/devices"; return 1
}
wait_dev() { n=0; while [ ! -b "$1" ]; do n=$((n+1)); [ $n -gt 200 ] && return 1; sleep 0.1; done; }
drop_caches() { blockdev --flushbufs "$1" 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; }
cluster_io() {
    ip link set lo up
    ip link set eth0 up 2>/tmp/err || { step net fail "no eth0: $(oneline </tmp/err)"; return; }
    ip addr add $GUEST_IP/24 dev eth0
    ip route add default via $GW
    n=0
    until ping -c 1 -W 2 $MON_IP >/dev/null 2>&1; do
        n=$((n+1)); [ $n -ge 60 ] && { step net fail "no reply from $MON_IP"; return; }
        sleep 1
    done
    step net ok "$MON_IP answers"
    id=$(rbd_map $POOL $GUEST_IMG)
    case "$id" in ERR*|"") step map fail "$id"; return;; esac
    dev=/dev/rbd$id
    wait_dev $dev || { step map fail "$dev did not appear"; return; }
    step map ok "$dev"
    size=$(( $(cat /sys/block/rbd$id/size) * 512 ))
    if [ "$size" = "$GUEST_SIZE" ]; then step size ok "$size"; else step size fail "$size bytes, expected $GUEST_SIZE"; fi
    dd if=/pattern.bin of=$dev bs=65536 seek=$PATTERN_SEEK oflag=direct conv=fsync 2>/tmp/err || { step pattern fail "write: $(oneline </tmp/err)"; return; }
    drop_caches $dev
    got=$(dd if=$dev bs=65536 skip=$PATTERN_SEEK count=$PATTERN_BLOCKS iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$PATTERN_SHA" ]; then step pattern ok "$got"; else step pattern fail "read back $got, wrote $PATTERN_SHA"; return; fi
    mke2fs -F $dev >/tmp/err 2>&1 || { step mkfs fail "$(oneline </tmp/err)"; return; }
    step mkfs ok "ext2 by busybox mke2fs"
    mount -t ext4 $dev /mnt 2>/tmp/err || { step mount fail "$(oneline </tmp/err)"; return; }
    step mount ok "ext4 driver"
    cp /pattern.bin /mnt/pattern.bin && echo "written by the guest" > /mnt/hello.txt && sync
    umount /mnt || { step umount fail "first unmount"; return; }
    drop_caches $dev
    mount -t ext4 $dev /mnt 2>/tmp/err || { step files fail "remount: $(oneline </tmp/err)"; return; }
    got=$(sha256sum /mnt/pattern.bin | cut -d' ' -f1)
    hello=$(cat /mnt/hello.txt)
    if [ "$got" = "$PATTERN_SHA" ] && [ "$hello" = "written by the guest" ]; then step files ok "2 files survived a remount"; else step files fail "pattern.bin $got, hello.txt '$hello'"; fi
    umount /mnt && step umount ok "" || { step umount fail ""; return; }
    drop_caches $dev
    say "value|device_sha256|$(dd if=$dev bs=1048576 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
    err=$( (echo "$id" > /sys/bus/rbd/remove_single_major) 2>&1 ) && step unmap ok "$dev" || { step unmap fail "$err"; return; }
    id=$(rbd_map $POOL $HOST_IMG)
    case "$id" in ERR*|"") step map_host fail "$id"; return;; esac
    wait_dev /dev/rbd$id || { step map_host fail "/dev/rbd$id did not appear"; return; }
    step map_host ok "/dev/rbd$id"
    say "value|host_image_sha256|$(dd if=/dev/rbd$id bs=1048576 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
    err=$( (echo "$id" > /sys/bus/rbd/remove_single_major) 2>&1 ) && step unmap_host ok "" || step unmap_host fail "$err"
}
cluster_io
report_dmesg cluster
