//! The initramfs and its load plan from the default target's real package, without booting.

mod common;

use common::*;
use krbd_progress::Recorder;
use krbd_vm::deps::{plan_load_order, OurModule, Role};
use krbd_vm::{initramfs, VmError};

fn names(plan: &[krbd_vm::deps::PlannedModule]) -> Vec<String> {
    plan.iter().map(|m| format!("{}:{:?}", m.name, m.role)).collect()
}

#[test]
fn load_plan_follows_modinfo_of_the_real_package() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = stock_set(tmp.path());
    let rec = Recorder::default();
    let plan = plan_load_order(package(), &ours, &krbd_vm::cluster::GUEST_SUPPORT_MODULES, &rec).unwrap();
    insta::assert_json_snapshot!("load_plan_6_12", names(&plan));
    // Every `depends` entry of every planned module is planned before it.
    for (i, m) in plan.iter().enumerate() {
        let parsed = krbd_kmod::KernelModule::parse(&m.bytes).unwrap();
        for dep in parsed.info("depends").unwrap_or("").split(',').filter(|d| !d.is_empty()) {
            let at =
                plan.iter().position(|p| p.name == dep).unwrap_or_else(|| panic!("{dep} of {} not planned", m.name));
            assert!(at < i, "{dep} after {}", m.name);
        }
    }
}

#[test]
fn unknown_dependency_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ours = stock_set(tmp.path());
    let rbd = ours.iter_mut().find(|m| m.name == "rbd").unwrap();
    // Same length, so the ELF layout stays intact.
    let at = rbd.bytes.windows(15).position(|w| w == b"depends=libceph").expect("rbd depends on libceph");
    rbd.bytes[at..at + 15].copy_from_slice(b"depends=nosuchm");
    let only_rbd: Vec<OurModule> = ours.into_iter().filter(|m| m.name == "rbd").collect();
    let err = plan_load_order(package(), &only_rbd, &[], &Recorder::default()).unwrap_err();
    let VmError::MissingDependency { module, needed_by, .. } = &err else { panic!("{err:?}") };
    assert_eq!((module.as_str(), needed_by.as_str()), ("nosuchm", "rbd"));
    assert!(err.to_string().contains("add it to the modules folder"), "{err}");
}

#[test]
fn initramfs_is_reproducible_and_holds_the_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = stock_set(tmp.path());
    let plan = plan_load_order(package(), &ours, &[], &Recorder::default()).unwrap();
    assert!(plan.iter().any(|m| m.role == Role::Dependency));
    let busybox = initramfs::read_static_busybox(std::path::Path::new("/bin/busybox")).unwrap();
    let init = initramfs::init_script(&plan, "");
    let a = initramfs::build(&busybox, &plan, &init, &Default::default()).unwrap();
    let b = initramfs::build(&busybox, &plan, &init, &Default::default()).unwrap();
    assert_eq!(a, b, "same input, same bytes");
    // GNU cpio lists what the kernel will unpack.
    let gz = tmp.path().join("i.cpio.gz");
    std::fs::write(&gz, &a).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc '{}' | cpio -t --quiet", gz.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    for (i, m) in plan.iter().enumerate() {
        let p = initramfs::guest_module_path(i, m);
        assert!(listing.lines().any(|l| format!("/{l}") == p), "{p} missing:\n{listing}");
    }
    assert!(listing.lines().any(|l| l == "init") && listing.lines().any(|l| l == "bin/busybox"));
}

#[test]
fn init_script_shape() {
    // The protocol between init and host, on a plan whose bytes do not matter.
    let plan: Vec<krbd_vm::deps::PlannedModule> = [("libcrc32c", Role::Dependency), ("libceph", Role::Ours)]
        .into_iter()
        .map(|(n, role)| krbd_vm::deps::PlannedModule {
            name: n.into(),
            role,
            bytes: vec![],
            srcversion: None,
            origin: String::new(),
            build_id: None,
        })
        .collect();
    insta::assert_snapshot!("init_script", initramfs::init_script(&plan, "# cluster steps here\n"));
}

#[test]
fn dynamic_busybox_is_refused() {
    // /bin/ls is dynamically linked on Debian: it would find no libc in the guest.
    let err = initramfs::read_static_busybox(std::path::Path::new("/bin/ls")).unwrap_err();
    assert!(err.to_string().contains("busybox-static"), "{err}");
    let err = initramfs::read_static_busybox(std::path::Path::new("/nonexistent/busybox")).unwrap_err();
    assert!(err.to_string().contains("install busybox-static"), "{err}");
}
