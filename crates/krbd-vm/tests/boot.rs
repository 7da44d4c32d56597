//! Boot tests on the default target's real kernel under QEMU/TCG.

mod common;

use common::*;
use krbd_progress::{Recorder, Silent};
use krbd_vm::deps::Role;
use krbd_vm::{run_boot_test, BootTestSpec, VmError};
use std::path::PathBuf;
use std::time::Duration;

fn spec(work: &std::path::Path, modules_dir: &std::path::Path) -> BootTestSpec<'static> {
    BootTestSpec {
        image_deb: image_deb(),
        release: Some(release().into()),
        modules: stock_set(modules_dir),
        busybox: PathBuf::from("/bin/busybox"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        work_dir: work.to_path_buf(),
        timeout: BOOT_TIMEOUT,
        memory_mb: 1024,
        init_override: None,
        cluster: None,
    }
}

#[test]
fn stock_set_loads_on_the_default_target() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let rec = Recorder::default();
    let report = match run_boot_test(&spec(&tmp.path().join("work"), &mods), &rec) {
        Ok(r) => r,
        Err(e) => panic!("boot test failed: {e}"),
    };
    assert!(report.passed, "{:#?}", report);
    assert_eq!(report.guest_release.as_deref(), Some(release()));
    assert_eq!(report.boot_method, krbd_vm::boot::BootMethod::Pvh);
    let names: Vec<&str> = report.modules.iter().map(|m| m.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|m| *m == n).unwrap_or_else(|| panic!("{n} not in {names:?}"));
    // Dependencies come from modinfo: libcrc32c (depends of libceph) with its softdep crc32c
    // before it, netfs (depends of ceph); and each before its user.
    assert!(pos("crc32c_generic") < pos("libcrc32c"));
    assert!(pos("libcrc32c") < pos("libceph"));
    assert!(pos("netfs") < pos("ceph"));
    assert!(pos("libceph") < pos("ceph") && pos("libceph") < pos("rbd"));
    for m in &report.modules {
        match m.role {
            Role::Ours => {
                assert_eq!(m.loaded, Some(true), "{m:#?}");
                // In-tree modules carry no srcversion unless MODULE_SRCVERSION_ALL; when the
                // file has one, the loaded module must show the same.
                if m.expected_srcversion.is_some() {
                    assert_eq!(m.srcversion_matches, Some(true), "{m:#?}");
                }
                assert_ne!(m.srcversion_matches, Some(false), "{m:#?}");
                // The kernel runs exactly the file we gave it.
                assert!(m.expected_build_id.is_some(), "{m:#?}");
                assert_eq!(m.build_id_matches, Some(true), "{m:#?}");
            }
            Role::Dependency => assert_eq!(m.loaded, Some(true), "{m:#?}"),
            _ => {}
        }
    }
    // Debian's own signed, in-tree modules taint nothing.
    let taint = report.taint.as_ref().expect("taint reported");
    assert_eq!(taint.flags, "", "{taint:?}");
    assert!(report.serial_log.is_file());
    assert!(rec.messages().iter().any(|m| m.contains("load order:")), "{:?}", rec.messages());
}

#[test]
fn refused_module_reports_the_kernel_message() {
    // A vermagic that the kernel rejects: flip the first character of the release's
    // version part ("6.12" -> "7.12") is ignored with modversions, so break the part after
    // the release instead (SMP flag), which same_magic() compares.
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let mut s = spec(&tmp.path().join("work"), &mods);
    // Editing a signed module makes the kernel reject the signature before it looks at
    // vermagic, so drop the signatures first: unsigned, like our own builds.
    for m in s.modules.iter_mut() {
        m.bytes = strip_signature(&m.bytes);
    }
    let rbd = s.modules.iter_mut().find(|m| m.name == "rbd").unwrap();
    let at = rbd.bytes.windows(6).position(|w| w == b" SMP p").expect("vermagic has SMP preempt");
    rbd.bytes[at + 1] = b'X';
    let report = run_boot_test(&s, &Silent).expect("boot");
    assert!(!report.passed);
    let v = report.modules.iter().find(|m| m.name == "rbd").unwrap();
    assert_eq!(v.loaded, Some(false), "{v:#?}");
    assert!(v.kernel_messages.iter().any(|l| l.contains("version magic")), "{v:#?}");
    assert!(
        report.problems.iter().any(|p| p.contains("rbd was refused") && p.contains("version magic")),
        "{:?}",
        report.problems
    );
    // Unsigned modules load on Debian (signatures not enforced) and taint with E.
    for name in ["libceph", "ceph"] {
        let m = report.modules.iter().find(|m| m.name == name).unwrap();
        assert_eq!(m.loaded, Some(true), "{m:#?}");
        assert_eq!(m.module_taint.as_deref(), Some("E"), "{m:#?}");
    }
    let taint = report.taint.as_ref().expect("taint reported");
    assert!(taint.flags.contains('E'), "{taint:?}");
}

#[test]
fn missing_kernel_package_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let mut s = spec(&tmp.path().join("work"), &mods);
    s.image_deb = tmp.path().join("linux-image-none.deb");
    let err = run_boot_test(&s, &Silent).unwrap_err();
    assert!(matches!(err, VmError::KernelPackage { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot open"), "{err}");
}

#[test]
fn missing_qemu_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let mut s = spec(&tmp.path().join("work"), &mods);
    s.qemu = PathBuf::from("/nonexistent/qemu-system-x86_64");
    let err = run_boot_test(&s, &Silent).unwrap_err();
    assert!(matches!(err, VmError::QemuMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("install qemu-system-x86"), "{err}");
}

#[test]
fn guest_that_never_reports_times_out_with_the_serial_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let work = tmp.path().join("work");
    let mut s = spec(&work, &mods);
    s.init_override =
        Some("#!/bin/busybox sh\necho init started, now hanging\nexec /bin/busybox sleep 100000\n".into());
    s.timeout = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let err = run_boot_test(&s, &Silent).unwrap_err();
    let VmError::GuestTimeout { seconds, last_report, lines, serial_log } = &err else { panic!("{err:?}") };
    assert_eq!(*seconds, 60);
    assert!(last_report.contains("never reported"), "{last_report}");
    assert!(lines.iter().any(|l| l.contains("now hanging")), "{lines:#?}");
    assert!(serial_log.is_file());
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(processes_mentioning(&work.display().to_string()).is_empty(), "QEMU left running");
}

#[test]
fn guest_that_dies_reports_the_panic() {
    // init exits: the kernel panics ("Attempted to kill init"), panic=-1 reboots, and
    // -no-reboot makes QEMU exit. The error must carry the panic line, not just a status.
    let tmp = tempfile::tempdir().unwrap();
    let mods = tmp.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let mut s = spec(&tmp.path().join("work"), &mods);
    s.init_override = Some("#!/bin/busybox sh\necho init gives up\nexit 3\n".into());
    let err = run_boot_test(&s, &Silent).unwrap_err();
    let VmError::GuestDied { lines, .. } = &err else { panic!("{err:?}") };
    assert!(lines.iter().any(|l| l.contains("Kernel panic")), "{lines:#?}");
    assert!(err.to_string().contains("Kernel panic"), "{err}");
}
