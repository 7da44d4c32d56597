#!/bin/busybox sh
# The suite guest's initramfs: load virtio_blk and ext4 (modules on Debian kernels), mount
# the cached Debian root (/dev/vda, its writes go to QEMU's throwaway overlay) and the
# run's payload disk (/dev/vdb) on its /krbd, and hand over to the payload's init.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 3 > /proc/sys/kernel/printk
fail() { echo "KRBD|value|initramfs_error|$*"; echo "KRBD|end"; poweroff -f; }
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null || echo "KRBD|value|initramfs_note|insmod $m failed (optional ones may)"; done
for d in vda vdb vdc; do
	n=0; while [ ! -b /dev/$d ]; do n=$((n+1)); [ $n -gt 300 ] && fail "no /dev/$d"; sleep 0.1; done
done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || fail "mount /dev/vda (the guest root) failed"
mount -t ext4 -o rw /dev/vdb /newroot/krbd || fail "mount /dev/vdb (the payload) failed"
umount /sys; umount /proc
exec switch_root /newroot /krbd/init.sh
