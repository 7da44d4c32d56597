#!/bin/sh
# /usr/lib/kernel/install.d/99-krbd-forge.install: systemd kernel-install plugin
# (krbd-forge-host package), for the RHEL family (8 and later) and any system whose kernel
# packages call `kernel-install add <release> <image>` (RHEL's kernel-core runs it in
# %posttrans, after every package of the transaction, kmods included, is in place).
#
# Arguments: add|remove <release> <entry-dir> <image> [initrd...]; only "add" checks.
#
# Exit status: 0, always, by default. kernel-install treats 77 as "stop here, success" and
# skips every later plugin: this plugin never returns 77. Any other non-zero status is a
# failure: systemd's shell kernel-install (up to v252: RHEL 8 and 9) runs the remaining
# plugins and exits non-zero; the C rewrite (v253 and later) stops at the failing plugin.
# Either way `kernel-install` fails, and RHEL's %posttrans `kernel-install add ... ||
# exit $?` then skips what follows it (RHEL 9: the /boot/symvers-<release>.gz link) and
# rpm reports a failed scriptlet. The name 99-krbd-forge sorts after the plugins that
# build the initramfs and the boot entry (50-dracut, 90-loaderentry, 92-crashkernel,
# 99-grub-mkconfig), so in strict mode (KRBD_FORGE_HOOK_STRICT=yes in
# /etc/default/krbd-forge) those still ran; the status is `krbd-host preflight`'s
# (3 no set, 10 would be refused, 15 inconsistent).
@CHECK@
exec </dev/null >&2
[ "$1" = add ] || exit 0
[ -n "$2" ] || exit 0
krbd_forge_check "$2"
exit $?
