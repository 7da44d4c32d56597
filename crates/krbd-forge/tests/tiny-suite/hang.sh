#!/usr/bin/env bash
# Hangs on purpose: the runner must kill it after its own limit, declared here:
# krbd-timeout: 12
echo "hanging"
sleep 100000
