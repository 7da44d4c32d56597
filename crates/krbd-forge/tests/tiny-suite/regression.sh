#!/usr/bin/env bash
# Fails only with a set installed in updates/ (passes on the stock modules): the control
# run must classify it as a regression.
path=$(modinfo -n rbd)
echo "rbd comes from $path"
case $path in
*/updates/*) exit 1 ;;
esac
