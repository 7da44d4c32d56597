# The suite guest's init (bash on the Debian root; /krbd/env is prepended): mounts, udev,
# the network, the proof that `rbd map` loads the set under test, then each test with its
# own timeout. Results go to /results/<test>/{rc,seconds,output,dmesg} and, at the end, as
# a tar onto the raw results disk /dev/vdc; each test is also reported on the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# bash's <(...) and many scripts need /dev/fd and the std streams.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /run/udev /var/run/ceph /var/log/ceph /results
mount --bind /krbd/lib/modules /lib/modules
cp /krbd/etc/ceph/* /etc/ceph/
echo 3 > /proc/sys/kernel/printk
hostname krbd-guest
say() { echo "KRBD|$*"; }
step() { say "step|$1|$2|$3"; }
say "begin|$(uname -r)"

/lib/systemd/systemd-udevd --daemon --resolve-names=never
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=120

modprobe e1000
ip link set lo up
ip link set eth0 up
ip addr add "$GUEST_IP/24" dev eth0
ip route add default via "$GW"
n=0; until ping -c 1 -W 2 "$MON_IP" >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 60 ] && break; sleep 1; done
[ $n -lt 60 ] && step net ok "$MON_IP answers" || step net fail "$MON_IP does not answer ping"
say "value|ready_uptime|$(cut -d' ' -f1 /proc/uptime)"

# The proof: nothing of the set is loaded; `rbd map` (through udev and modprobe) loads it.
for m in libceph rbd ceph; do
	[ -d /sys/module/$m ] && say "value|loaded_before_map_$m|yes" || say "value|loaded_before_map_$m|no"
done
proof=krbd-proof-$$
if out=$(rbd create --size 16M "rbd/$proof" 2>&1) && dev=$(rbd map "rbd/$proof" 2>&1); then
	udevadm settle --timeout=60
	[ -L "/dev/rbd/rbd/$proof" ] && link=$(readlink -f "/dev/rbd/rbd/$proof") || link=none
	step map ok "$dev; /dev/rbd/rbd/$proof -> $link"
	say "value|map_device|$dev"
	say "value|map_link|$link"
else
	step map fail "$(echo "$out $dev" | tr '\n' ' ')"
fi
modprobe ceph
for m in libceph rbd ceph; do
	note=/sys/module/$m/notes/.note.gnu.build-id
	[ -r "$note" ] && say "buildid|$m|$(xxd -p "$note" | tr -d '\n')"
	say "value|modpath_$m|$(modinfo -n $m 2>&1)"
done
rbd unmap "rbd/$proof" >/dev/null 2>&1
rbd rm --no-progress "rbd/$proof" >/dev/null 2>&1

export CEPH_ARGS="--cluster ceph" CEPH_ID=admin CEPH_BASE=/krbd/suite CEPH_ROOT=/krbd/suite
# One test: in its own scratch folder ($TESTDIR), stdin closed, killed after its timeout
# (timeout signals the test's whole process group).
run_test() {
	name=${1%:*}
	limit=${1##*:}
	out=/results/$name
	mkdir -p "$out" "/testdir/$name"
	dmesg -c >/dev/null
	say "started|$name"
	start=$(date +%s.%N)
	case $name in
	*.t) (cd "/testdir/$name" && TESTDIR=/testdir/$name timeout -k 10 "$limit" cram --shell=/bin/bash "/krbd/suite/$name") ;;
	*) (cd "/testdir/$name" && TESTDIR=/testdir/$name CEPH_MNT=/testdir/$name timeout -k 10 "$limit" bash "/krbd/suite/$name") ;;
	esac >"$out/output" 2>&1 </dev/null
	rc=$?
	end=$(date +%s.%N)
	secs=$(echo "$start $end" | awk '{printf "%.2f", $2 - $1}')
	dmesg -c >"$out/dmesg"
	echo "$rc" >"$out/rc"
	echo "$secs" >"$out/seconds"
	say "suite|$name|$rc|$secs"
	# What a killed test left mapped would disturb the next one.
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		for d in /dev/rbd[0-9]*; do [ -b "$d" ] && rbd unmap -o force "$d" >/dev/null 2>&1; done
	fi
}
for t in $TESTS; do run_test "$t"; done

tar -cf /dev/vdc -C /results . && say "value|results_written|yes" || say "value|results_written|no"
sync
say "end"
# minbase has no poweroff(8) (no systemd): the kernel's own power-off.
echo 1 >/proc/sys/kernel/sysrq
echo o >/proc/sysrq-trigger
# Wait with a builtin: running a program now fails as the disks go away, and init must
# not exit (a panic) before the power is off.
read -r -t 60 _ </dev/console
