#!/usr/bin/env bash
# Fails on purpose: exit status 3 after some output.
echo "about to fail"
echo "the reason is on stderr" >&2
exit 3
