Discard and write-zeroes through a mapped image, byte for byte, with the number of
RADOS objects left behind.  The image has the krbd QA features (37: layering,
exclusive-lock, deep-flatten; no object-map), 4 MiB objects and the default
alloc_size of 64 KiB, which is the discard granularity: a discard is shrunk to
whole 64 KiB blocks and is a no-op when none is inside it, while write-zeroes
(fallocate -z, fallocate -p) is exact to the sector.  A whole-object discard or
write-zeroes deletes the object; mapped with -o notrim the device offers
neither operation and fallocate -z falls back to writing zeroes.

  $ rbd create --size 4M dz
  $ DEV=$(rbd map dz)
  $ fill() { xfs_io -c "pwrite -S 0x$1 -b 4M -w 0 4M" "$DEV" >/dev/null; }
  $ show() { od -Ax -tx1 "$DEV"; }
  $ objects() {
  >   prefix=$(rbd info --format=json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["block_name_prefix"])')
  >   rados -p rbd ls | grep -c "^$prefix\." || true
  > }
  $ rbd info --format=json dz | python3 -c 'import json, sys; print(json.load(sys.stdin)["features"])'
  ['layering', 'exclusive-lock', 'deep-flatten']
  $ cat /sys/block/${DEV#/dev/}/queue/discard_granularity
  65536

Discard, 4 KiB inside one 64 KiB block: nothing happens.

  $ fill cd
  $ blkdiscard -o 0x21000 -l 0x1000 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000

Discard, one aligned block:

  $ fill cd
  $ blkdiscard -o 0x20000 -l 0x10000 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  020000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  030000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000

Discard, 96 KiB from the middle of a block: only the whole block inside it:

  $ fill cd
  $ blkdiscard -o 0x18000 -l 0x18000 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  020000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  030000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000

Discard to the end of the object from an unaligned start: from the next block on:

  $ fill cd
  $ blkdiscard -o 0x3e8000 -l 0x18000 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  3f0000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000

Discard of the whole object deletes it:

  $ fill cd
  $ objects dz
  1
  $ blkdiscard "$DEV"
  $ show
  000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000
  $ objects dz
  0

Write-zeroes, one sector and an unaligned range across a block boundary: exact:

  $ fill cd
  $ fallocate -z -o 0x26400 -l 0x200 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  026400 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  026600 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000

  $ fill cd
  $ fallocate -z -o 0x1fe00 -l 0x10400 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  01fe00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  030200 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000

Punch hole (write-zeroes without fallback) to the end of the object: exact:

  $ fill cd
  $ fallocate -p -o 0x3e0200 -l 0x1fe00 "$DEV"
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  3e0200 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000

Write-zeroes of the whole object deletes it too (the kernel ignores "no unmap"):

  $ fill cd
  $ fallocate -z -l 4M "$DEV"
  $ show
  000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000
  $ objects dz
  0
  $ rbd unmap "$DEV"

Mapped with -o notrim: no discard, no punch hole; write-zeroes writes zeroes and
the object stays:

  $ DEV=$(rbd map -o notrim dz)
  $ cat /sys/block/${DEV#/dev/}/queue/discard_granularity
  0
  $ fill cd
  $ blkdiscard "$DEV" 2>&1 | sed "s|$DEV|DEV|"
  blkdiscard: DEV: BLKDISCARD ioctl failed: Operation not supported
  $ fallocate -p -l 4M "$DEV"
  fallocate: fallocate failed: keep size mode is unsupported
  [1]
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  400000
  $ fallocate -z -l 4M "$DEV"
  $ show
  000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000
  $ objects dz
  1
  $ rbd unmap "$DEV"

A clone with no objects of its own: a discard leaves the parent's data visible,
write-zeroes copies the object up and zeroes exactly:

  $ DEV=$(rbd map dz)
  $ fill ab
  $ rbd unmap "$DEV"
  $ rbd snap create --no-progress dz@base
  $ rbd snap protect dz@base
  $ rbd clone dz@base dz-clone
  $ DEV=$(rbd map dz-clone)
  $ blkdiscard "$DEV"
  $ show
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  400000
  $ objects dz-clone
  0
  $ fallocate -z -o 0x100000 -l 0x100000 "$DEV"
  $ show
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  100000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  200000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  400000
  $ objects dz-clone
  1

Once the clone has the object, a discard zeroes like on any image:

  $ blkdiscard -o 0x2f0200 -l 0x10fe00 "$DEV"
  $ show
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  100000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  200000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  300000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  400000
  $ rbd unmap "$DEV"
  $ rbd rm --no-progress dz-clone
  $ rbd snap unprotect dz@base
  $ rbd snap rm --no-progress dz@base
  $ rbd rm --no-progress dz

Object counts across four objects: discards and write-zeroes of whole objects
delete them, a discard of an object's tail truncates it:

  $ rbd create --size 16M dz4
  $ DEV=$(rbd map dz4)
  $ xfs_io -c "pwrite -S 0xcd -b 4M -w 0 16M" "$DEV" >/dev/null
  $ objects dz4
  4
  $ blkdiscard -o 4M -l 8M "$DEV"
  $ objects dz4
  2
  $ fallocate -z -o 12M -l 4M "$DEV"
  $ objects dz4
  1
  $ blkdiscard -o 1M -l 3M "$DEV"
  $ objects dz4
  1
  $ rados -p rbd stat "$(rados -p rbd ls | grep "^$prefix\.")"
  rbd/rbd_data.*.0000000000000000 mtime *, size 1048576 (glob)
  $ show
  000000 cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd cd
  *
  100000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  1000000
  $ rbd unmap "$DEV"
  $ rbd rm --no-progress dz4
