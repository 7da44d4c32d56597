A 4 EiB image with 4 KiB objects: 2^50 objects, the last one named with 14 hex
digits.  The kernel must map the image's first and last sectors to the first and
last object (names rbd_data.<id>.<object number as 16 hex digits>) and put the
data at the right place in each.  The image lives in a pool of its own because
removing it would visit every object it could have: deleting the pool is the
cheap way out (needs `mon allow pool delete = true`).

  $ ceph osd pool create krbd-huge 8 8 >/dev/null 2>&1
  $ rbd pool init krbd-huge
  $ rbd create --size 4E --object-size 4K krbd-huge/img
  $ field() { rbd info --format=json krbd-huge/img | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
  $ field size
  4611686018427387904
  $ field objects
  1125899906842624
  $ DEV=$(rbd map krbd-huge/img)
  $ blockdev --getsize64 "$DEV"
  4611686018427387904
  $ xfs_io -c 'pwrite -S 0x11 -w 0 512' "$DEV" >/dev/null
  $ xfs_io -c 'pwrite -S 0xee -w 4611686018427387392 512' "$DEV" >/dev/null
  $ rbd unmap "$DEV"

Exactly two objects, the first and the last:

  $ prefix=$(field block_name_prefix)
  $ rados -p krbd-huge ls | grep "^$prefix\." | sed "s/^$prefix\.//" | sort
  0000000000000000
  0003ffffffffffff
  $ rados -p krbd-huge stat "$prefix.0003ffffffffffff" | sed 's/.*, //'
  size 4096

The bytes, read back through a new mapping: the first and the last MiB.

  $ DEV=$(rbd map krbd-huge/img)
  $ dd if="$DEV" bs=1M count=1 status=none | od -Ax -tx1
  000000 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11
  *
  000200 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  100000
  $ dd if="$DEV" bs=1M skip=4398046511103 status=none | od -Ax -tx1
  000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  0ffe00 ee ee ee ee ee ee ee ee ee ee ee ee ee ee ee ee
  *
  100000
  $ rbd unmap "$DEV"
  $ ceph osd pool delete krbd-huge krbd-huge --yes-i-really-really-mean-it >/dev/null 2>&1
