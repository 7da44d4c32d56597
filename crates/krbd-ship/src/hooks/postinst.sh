#!/bin/sh
# /etc/kernel/postinst.d/krbd-forge: Debian's kernel hook (krbd-forge-host package).
#
# When: linux-image-<release>'s postinst, at "configure", runs depmod for the new release
# and then `run-parts --report --exit-on-error --arg=<release> --arg=<image>
# /etc/kernel/postinst.d` (Debian kernel-handbook, chapter 8.1: the arguments are the
# release as `uname -r` reports it and the image's path; DEB_MAINT_PARAMS holds the
# maintainer script's arguments). Hooks run in name order: initramfs-tools before this
# one, the boot loader's zz-update-grub after it.
#
# Exit status: 0, always, by default. A non-zero status stops run-parts (--exit-on-error)
# and fails the postinst, which runs under `sh -e`: the kernel package is left
# half-configured, apt/dpkg report an error on this and every later run, and the hooks
# after this one (zz-update-grub) never run for the new kernel. That would break the
# kernel's installation, so a missing or refused set is reported loudly on stderr
# instead. KRBD_FORGE_HOOK_STRICT=yes in /etc/default/krbd-forge makes this hook exit with
# `krbd-host preflight`'s status (3 no set, 10 would be refused, 15 inconsistent):
# deliberately leaving the new kernel unconfigured and out of the boot menu until a
# proven set is installed and `dpkg --configure -a` runs again.
@CHECK@
exec </dev/null >&2
[ -n "$1" ] || exit 0
krbd_forge_check "$1"
exit $?
