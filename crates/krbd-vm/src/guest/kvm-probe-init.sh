#!/bin/busybox sh
/bin/busybox echo KRBD|end
/bin/busybox poweroff -f
