
say "taint_end|$(cat /proc/sys/kernel/tainted)"
say "end"
sync
poweroff -f
