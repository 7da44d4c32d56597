A clone larger than its parent: the parent overlap (the part of the clone backed
by the parent) is smaller than the clone, and it need not end on an object
boundary.  Reads must take parent data only below the overlap and zeroes above
it, buffered and O_DIRECT alike; a write into an object that straddles the
overlap must copy up only the parent's part of that object; shrinking a clone
shrinks its overlap for good.

  $ rbd create --size 6M ovl
  $ DEV=$(rbd map ovl)
  $ xfs_io -c 'pwrite -S 0xab -b 6M -w 0 6M' "$DEV" >/dev/null
  $ rbd unmap "$DEV"
  $ rbd snap create --no-progress ovl@base
  $ rbd snap protect ovl@base
  $ rbd clone ovl@base ovl-clone
  $ rbd resize --no-progress --size 12M ovl-clone
  $ overlap() { rbd info --format=json ovl-clone | python3 -c 'import json, sys; print(json.load(sys.stdin)["parent"]["overlap"])'; }
  $ overlap
  6291456

The clone reads the parent's 6 MiB, then zeroes, buffered and direct:

  $ DEV=$(rbd map ovl-clone)
  $ od -Ax -tx1 "$DEV"
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  600000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  c00000
  $ dd if="$DEV" bs=4M iflag=direct status=none | od -Ax -tx1
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  600000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  c00000

A write at 7 MiB lands in the second object (4-8 MiB), which the overlap covers up
to 6 MiB: the copy-up brings 4-6 MiB from the parent and nothing beyond.

  $ xfs_io -c 'pwrite -S 0xef -w 7M 512K' "$DEV" >/dev/null
  $ od -Ax -tx1 "$DEV"
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  600000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  700000 ef ef ef ef ef ef ef ef ef ef ef ef ef ef ef ef
  *
  780000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  c00000
  $ rbd unmap "$DEV"
  $ DEV=$(rbd map ovl-clone)
  $ dd if="$DEV" bs=4M iflag=direct status=none | od -Ax -tx1
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  600000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  700000 ef ef ef ef ef ef ef ef ef ef ef ef ef ef ef ef
  *
  780000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  c00000
  $ rbd unmap "$DEV"

Shrinking the clone to 2 MiB cuts the overlap to 2 MiB; growing it again must not
bring the parent's data back:

  $ rbd resize --no-progress --allow-shrink --size 2M ovl-clone
  $ rbd resize --no-progress --size 12M ovl-clone
  $ overlap
  2097152
  $ DEV=$(rbd map ovl-clone)
  $ dd if="$DEV" bs=4M iflag=direct status=none | od -Ax -tx1
  000000 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
  *
  200000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  *
  c00000
  $ rbd unmap "$DEV"

  $ rbd rm --no-progress ovl-clone
  $ rbd snap unprotect ovl@base
  $ rbd snap rm --no-progress ovl@base
  $ rbd rm --no-progress ovl
