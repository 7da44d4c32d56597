; do
    [ -r /sys/module/$m/srcversion ] && say "srcversion|$m|$(cat /sys/module/$m/srcversion)"
    [ -r /sys/module/$m/taint ] && say "modtaint|$m|$(cat /sys/module/$m/taint)"
    [ -r /sys/module/$m/notes/.note.gnu.build-id ] && say "buildid|$m|$(od -An -tx1 -v /sys/module/$m/notes/.note.gnu.build-id | tr -d ' \n')"
done
say "taint|$(cat /proc/sys/kernel/tainted)"
