A cram test that passes: the CLI sees the cluster's rbd pool.

  $ rbd pool stats rbd >/dev/null && echo reachable
  reachable
