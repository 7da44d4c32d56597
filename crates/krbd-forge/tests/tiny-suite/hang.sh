#!/usr/bin/env bash
# Hangs on purpose: the runner must kill it after its timeout.
echo "hanging"
sleep 100000
