//! The KVM probe on this machine: KVM only when a probe boot of the target's kernel under
//! KVM works, and the choice always comes with its reason.

mod common;

use common::*;
use krbd_progress::Silent;
use krbd_vm::qemu::{kvm_device, probe_accel, Accel, PROBE_TIMEOUT};
use std::path::Path;
use std::time::Instant;

#[test]
fn kvm_probe_decides_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (kernel, _) = krbd_vm::boot::kernel_for_boot(package(), tmp.path(), &Silent).expect("kernel");
    let busybox = krbd_vm::initramfs::read_static_busybox(Path::new("/bin/busybox")).expect("busybox-static");
    let started = Instant::now();
    let choice = probe_accel(Path::new("qemu-system-x86_64"), &kernel, &busybox, tmp.path(), PROBE_TIMEOUT);
    eprintln!("{choice} ({:.1} s)", started.elapsed().as_secs_f64());
    assert!(started.elapsed() < PROBE_TIMEOUT + std::time::Duration::from_secs(30), "the probe has a hard timeout");
    match kvm_device(Path::new("/dev/kvm")) {
        // No usable device: TCG without a probe boot, and the reason names the device.
        Err(why) => {
            assert_eq!(choice.accel, Accel::Tcg);
            assert_eq!(choice.reason, why);
            assert!(!tmp.path().join("kvm-probe.log").exists(), "no probe boot without a device");
        }
        // A device that opens: the probe boot decides. (On the development machines /dev/kvm
        // is a nested hypervisor on which QEMU aborts: TCG, with QEMU's words.)
        Ok(()) => {
            assert!(tmp.path().join("kvm-probe.log").exists(), "the probe booted");
            match choice.accel {
                Accel::Kvm => assert!(choice.reason.starts_with("probe boot under KVM finished"), "{choice}"),
                Accel::Tcg => assert!(choice.reason.starts_with("/dev/kvm opens, but"), "{choice}"),
            }
        }
    }
    assert!(processes_mentioning(&tmp.path().display().to_string()).is_empty(), "probe QEMU left running");
}
