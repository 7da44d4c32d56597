Every way of naming what to map and unmap, and the CLI's exact answers when the
name is wrong.  An image spec is [pool/[namespace/]]image[@snap] or the same
parts as --pool, --namespace, --image and --snap; unmap also takes the device
(or one of its partitions).  The pool defaults to "rbd".  The kernel is asked
only after the CLI resolved the spec, so these answers are the CLI's, but every
map and unmap below goes through the kernel and udev (/dev/rbd/... links).

  $ rbd create --size 4M img
  $ rbd snap create --no-progress img@snap
  $ rbd create --size 4M other
  $ ceph osd pool create krbd-specs 8 8 >/dev/null 2>&1
  $ rbd pool init krbd-specs
  $ rbd namespace create krbd-specs/ns
  $ rbd create --size 4M krbd-specs/img
  $ rbd snap create --no-progress krbd-specs/img@snap
  $ rbd create --size 4M krbd-specs/ns/img
  $ list() { rbd device list | sed 's/ *$//'; }
  $ link() { readlink -f "/dev/rbd/$1"; }

Map by image, unmap by device, by spec and by options:

  $ DEV=$(rbd device map img)
  $ list
  id  pool  namespace  image  snap  device
  *   rbd              img    -     /dev/rbd* (glob)
  $ [ "$(link rbd/img)" = "$DEV" ] && echo linked
  linked
  $ rbd device unmap "$DEV"
  $ list
  $ rbd device map img >/dev/null
  $ rbd device unmap img
  $ rbd device map rbd/img >/dev/null
  $ rbd device unmap --image img
  $ rbd device map --pool rbd --image img >/dev/null
  $ rbd device unmap rbd/img
  $ list

Snapshots, read-only, by every spelling:

  $ DEV=$(rbd device map img@snap)
  $ list
  id  pool  namespace  image  snap  device
  *   rbd              img    snap  /dev/rbd* (glob)
  $ blockdev --getro "$DEV"
  1
  $ [ "$(link rbd/img@snap)" = "$DEV" ] && echo linked
  linked
  $ rbd device unmap img@snap
  $ rbd device map --image img --snap snap >/dev/null
  $ rbd device unmap --snap snap img
  $ rbd device map rbd/img@snap >/dev/null
  $ rbd device unmap --pool rbd --image img --snap snap
  $ list

Another pool, and a namespace in it:

  $ DEV=$(rbd device map krbd-specs/img@snap)
  $ [ "$(link krbd-specs/img@snap)" = "$DEV" ] && echo linked
  linked
  $ rbd device unmap --pool krbd-specs img@snap
  $ DEV=$(rbd device map krbd-specs/ns/img)
  $ list
  id  pool        namespace  image  snap  device
  *   krbd-specs  ns         img    -     /dev/rbd* (glob)
  $ [ "$(link krbd-specs/ns/img)" = "$DEV" ] && echo linked
  linked
  $ rbd device unmap krbd-specs/ns/img
  $ rbd device map --pool krbd-specs --namespace ns --image img >/dev/null
  $ rbd device unmap --pool krbd-specs --namespace ns img
  $ list

The same name in two pools, and an image beside its own snapshot: unmap takes
exactly the one named:

  $ rbd device map img >/dev/null
  $ rbd device map krbd-specs/img >/dev/null
  $ rbd device map img@snap >/dev/null
  $ rbd device unmap img
  $ list
  id  pool        namespace  image  snap  device
  *   krbd-specs             img    -     /dev/rbd* (glob)
  *   rbd                    img    snap  /dev/rbd* (glob)
  $ rbd device unmap img@snap
  $ rbd device unmap krbd-specs/img
  $ list

Mapped twice: a warning, two devices, and unmap takes one at a time:

  $ rbd device map other >/dev/null
  $ rbd device map other 2>&1 | sed 's|/dev/rbd[0-9]*|/dev/rbdN|g'
  rbd: warning: image already mapped as /dev/rbdN
  /dev/rbdN
  $ rbd device unmap other 2>&1 | sed 's|/dev/rbd[0-9]*|/dev/rbdN|g'
  rbd: rbd/other: mapped more than once, unmapping /dev/rbdN only
  $ rbd device unmap other
  $ list

Wrong names for map:

  $ rbd device map nosuch
  rbd: error opening image nosuch: (2) No such file or directory
  [2]
  $ rbd device map img@nosuch
  rbd: sysfs write failed
  In some cases useful info is found in syslog - try "dmesg | tail".
  rbd: map failed: (2) No such file or directory
  [2]
  $ rbd device map krbd-nosuch/img
  rbd: error opening pool 'krbd-nosuch': (2) No such file or directory
  [2]
  $ list

Wrong names for unmap:

  $ rbd device unmap /dev/krbd-nosuch
  rbd: '/dev/krbd-nosuch' is not a block device
  rbd: unmap failed: (22) Invalid argument
  [22]
  $ DEV=$(rbd device map img)
  $ rbd device unmap "$DEV"
  $ rbd device unmap "$DEV" 2>&1 | sed "s|$DEV|DEV|"
  rbd: 'DEV' is not a block device
  rbd: unmap failed: (22) Invalid argument
  $ modprobe loop 2>/dev/null; truncate -s 1M loop.img
  $ LOOP=$(losetup -f --show loop.img)
  $ rbd device unmap "$LOOP" 2>&1 | sed "s|$LOOP|LOOP|"
  rbd: 'LOOP' is not an rbd device
  rbd: unmap failed: (22) Invalid argument
  $ losetup -d "$LOOP"; rm -f loop.img
  $ rbd device unmap nosuch
  rbd: rbd/nosuch: not a mapped image or snapshot
  rbd: unmap failed: (22) Invalid argument
  [22]
  $ rbd device unmap img@snap
  rbd: rbd/img@snap: not a mapped image or snapshot
  rbd: unmap failed: (22) Invalid argument
  [22]
  $ rbd device unmap
  rbd: unmap requires either image name or device path
  [22]

  $ ceph osd pool delete krbd-specs krbd-specs --yes-i-really-really-mean-it >/dev/null 2>&1
  $ rbd snap purge --no-progress img
  $ rbd rm --no-progress img
  $ rbd rm --no-progress other
