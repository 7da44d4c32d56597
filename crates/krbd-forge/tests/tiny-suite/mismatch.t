A cram test whose second command's output differs on purpose.

  $ echo expected
  expected
  $ echo actual
  not what it prints
