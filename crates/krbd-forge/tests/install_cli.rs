//! `krbd-forge install | rollback | status` on scratch roots laid out like the default
//! target's Debian host (real modules from its linux-image, real headers files, real
//! depmod), with the kernel simulated inside the root (KRBD_INSTALL_SIMULATE_KERNEL) and the
//! process killed (SIGKILL) after every journaled step.

mod common;
mod install_common;

use common::*;
use install_common::*;
use krbd_install::{Kernel, ShippedSet, SimulatedKernel, TargetHost};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// Every journaled step, and points inside the steps that change several things (after
/// the first and second module: `<step>:<module>`), where a crash leaves a mix behind.
const INSTALL_STEPS: [&str; 16] = [
    "begin",
    "staged",
    "backed-up",
    "swapped:libceph",
    "swapped:ceph",
    "swapped",
    "depmod",
    "unloaded:rbd",
    "unloaded:ceph",
    "unloaded",
    "loaded:libceph",
    "loaded:ceph",
    "loaded",
    "verified",
    "initramfs",
    "committed",
];
const ROLLBACK_STEPS: [&str; 14] = [
    "rollback-begin",
    "rollback-restored:libceph",
    "rollback-restored:ceph",
    "rollback-restored",
    "rollback-depmod",
    "rollback-unloaded:rbd",
    "rollback-unloaded:ceph",
    "rollback-unloaded",
    "rollback-loaded:libceph",
    "rollback-loaded:ceph",
    "rollback-loaded",
    "rollback-verified",
    "rollback-initramfs",
    "rolled-back",
];

struct Fixture {
    release: String,
    /// The patched set (the product) and the unpatched one (the "previous" set).
    patched: ShippedSet,
    unpatched: ShippedSet,
    stock: SetIds,
    /// A host with the stock modules loaded.
    stock_root: tempfile::TempDir,
    /// The same host after `install` of the unpatched set: the starting point of most tests.
    upgraded_root: tempfile::TempDir,
    _patched_build: Built,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let patched_build = build(&[]);
        let unpatched_dir = default_build().out.clone();
        let release = patched_build.report["release"].as_str().unwrap().to_string();
        let patched = ShippedSet::from_dir(&patched_build.out).expect("patched set");
        let unpatched = ShippedSet::from_dir(&unpatched_dir).expect("unpatched set");
        let image = input_deb(&patched_build.report, "image");
        let headers = input_deb(&patched_build.report, "headers");

        let stock_root = tempfile::tempdir().unwrap();
        let root = stock_root.path();
        extract_image_modules(&image, &release, &CEPH_AND_DEPS, root);
        extract_headers(&headers, &release, root);
        depmod(root, &release);
        // The simulated running kernel.
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::write(root.join("proc/sys/kernel/osrelease"), format!("{release}\n")).unwrap();
        // A simulated initramfs that holds the Ceph modules, so --update-initramfs acts.
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join(format!("boot/initrd.img-{release}")), "kernel/net/ceph/libceph.ko.xz\n").unwrap();
        // "Boot": the stock set is loaded.
        let host = TargetHost::new(root, Some(release.clone())).unwrap();
        for n in krbd_install::MODULE_NAMES {
            SimulatedKernel::default().load(&host, n).expect("load stock module");
        }
        let stock: SetIds =
            loaded_ids(root, &release).into_iter().map(|(k, v)| (k, v.expect("stock module has a build-id"))).collect();
        assert_ne!(stock, ids_of_set(&patched));

        let upgraded_root = tempfile::tempdir().unwrap();
        let up = upgraded_root.path().join("r");
        copy_tree(root, &up);
        let out = forge_install(&up, &["install"], Some(&unpatched_dir), &[]);
        assert_eq!(out.status.code(), Some(0), "install unpatched: {}", String::from_utf8_lossy(&out.stderr));
        assert_set(&up, &release, &ids_of_set(&unpatched), "after installing the unpatched set");
        Fixture { release, patched, unpatched, stock, stock_root, upgraded_root, _patched_build: patched_build }
    })
}

impl Fixture {
    fn upgraded(&self) -> PathBuf {
        self.upgraded_root.path().join("r")
    }

    /// A fresh copy of a template root.
    fn copy_of(&self, template: &Path) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        copy_tree(template, &root);
        (dir, root)
    }
}

/// Runs `krbd-forge <args> [SET] --root ROOT` with the simulated kernel and extra env.
fn forge_install(root: &Path, args: &[&str], set: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = forge();
    c.env("KRBD_INSTALL_SIMULATE_KERNEL", "1").env_remove("KRBD_INSTALL_CRASH_AFTER").args(args);
    if let Some(s) = set {
        c.arg(s);
    }
    c.arg("--root").arg(root);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run krbd-forge")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_killed(o: &Output, step: &str) {
    assert_eq!(o.status.signal(), Some(9), "the crash hook fired after {step}: {}", text(o));
}

fn journal(root: &Path, release: &str) -> serde_json::Value {
    let p = root.join(format!("var/lib/krbd-forge/{release}/journal.json"));
    serde_json::from_slice(&std::fs::read(p).expect("journal")).expect("journal JSON")
}

fn initramfs_ids(root: &Path, release: &str) -> String {
    std::fs::read_to_string(root.join(format!("boot/initrd.img-{release}"))).unwrap_or_default()
}

#[test]
fn kill_9_at_every_install_step_then_rerun_finishes_and_rollback_restores() {
    let f = fixture();
    let new = ids_of_set(&f.patched);
    let old = ids_of_set(&f.unpatched);
    let set = f.patched.source.clone();
    let mut crashed = 0;
    for step in INSTALL_STEPS {
        // Rerun the same install: it finishes.
        let (_d, root) = f.copy_of(&f.upgraded());
        let o =
            forge_install(&root, &["install", "--update-initramfs"], Some(&set), &[("KRBD_INSTALL_CRASH_AFTER", step)]);
        assert_killed(&o, step);
        crashed += 1;
        if !step.contains(':') {
            assert_eq!(journal(&root, &f.release)["steps"].as_array().unwrap().last().unwrap(), step);
        }
        let o = forge_install(&root, &["install", "--update-initramfs", "--json"], Some(&set), &[]);
        assert_eq!(o.status.code(), Some(0), "rerun after a crash at {step}: {}", text(&o));
        assert_set(&root, &f.release, &new, &format!("rerun install after a kill at {step}"));
        assert_eq!(journal(&root, &f.release)["state"], "installed");
        for id in new.values() {
            assert!(
                initramfs_ids(&root, &f.release).contains(id.as_str()),
                "initramfs rebuilt with the new set after {step}"
            );
        }

        // Or roll it back: the previous set returns.
        let (_d2, root) = f.copy_of(&f.upgraded());
        let o =
            forge_install(&root, &["install", "--update-initramfs"], Some(&set), &[("KRBD_INSTALL_CRASH_AFTER", step)]);
        assert_killed(&o, step);
        let o = forge_install(&root, &["rollback", "--json"], None, &[]);
        assert_eq!(o.status.code(), Some(0), "rollback after a crash at {step}: {}", text(&o));
        assert_set(&root, &f.release, &old, &format!("rollback after a kill at {step}"));
        assert_eq!(journal(&root, &f.release)["state"], "rolled-back");
    }
    assert_eq!(crashed, INSTALL_STEPS.len());
}

#[test]
fn kill_9_at_every_rollback_step_then_rerun_restores() {
    let f = fixture();
    let (_d, installed) = f.copy_of(&f.upgraded());
    let o = forge_install(&installed, &["install", "--update-initramfs"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_set(&installed, &f.release, &ids_of_set(&f.patched), "installed");
    for step in ROLLBACK_STEPS {
        let (_d, root) = f.copy_of(&installed);
        let o = forge_install(&root, &["rollback"], None, &[("KRBD_INSTALL_CRASH_AFTER", step)]);
        assert_killed(&o, step);
        // A rerun of install would also finish the rollback first; rollback is the natural one.
        let o = forge_install(&root, &["rollback", "--json"], None, &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if step == "rolled-back" {
            // The journal already says done: a rerun has nothing left to do.
            assert_eq!(o.status.code(), Some(14), "{}", text(&o));
        } else {
            assert_eq!(o.status.code(), Some(0), "rerun rollback after a kill at {step}: {}", text(&o));
            assert!(v["recovered"].as_str().unwrap_or("").contains("interrupted rollback"), "{v}");
        }
        assert_set(&root, &f.release, &ids_of_set(&f.unpatched), &format!("rollback rerun after a kill at {step}"));
    }
}

#[test]
fn install_places_the_stripped_copies_as_the_packages_do() {
    let f = fixture();
    let (_d, root) = f.copy_of(f.stock_root.path());
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for n in krbd_install::MODULE_NAMES {
        let installed =
            std::fs::read(root.join(format!("lib/modules/{}/updates/krbd-forge/{n}.ko", f.release))).unwrap();
        let stripped = std::fs::read(f.patched.source.join(format!("stripped/{n}.ko"))).unwrap();
        let full = std::fs::read(f.patched.source.join(format!("{n}.ko"))).unwrap();
        assert!(stripped.len() < full.len(), "{n}: the stripped copy is smaller");
        assert!(installed == stripped, "{n}: the stripped copy is installed, not the one with debug information");
        let full_id = krbd_install::set::module_identity(&krbd_kmod::KernelModule::parse(&full).unwrap());
        assert_eq!(full_id.as_deref(), Some(f.patched.module(n).unwrap().identity.as_str()), "{n}: same identity");
    }
    // The loaded modules are still recognised by the build-id the full modules carry.
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "installed stripped");
}

#[test]
fn install_over_stock_then_rollback_restores_the_stock_set() {
    let f = fixture();
    let (_d, root) = f.copy_of(f.stock_root.path());
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["load_check"].as_str().unwrap().starts_with("all 3 modules load"), "{v}");
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "installed over stock");
    // The stock files were never touched: they are still in kernel/, shadowed by updates/.
    for m in ["kernel/net/ceph/libceph.ko.xz", "kernel/fs/ceph/ceph.ko.xz", "kernel/drivers/block/rbd.ko.xz"] {
        let a = std::fs::read(root.join(format!("lib/modules/{}/{m}", f.release))).unwrap();
        let b = std::fs::read(f.stock_root.path().join(format!("lib/modules/{}/{m}", f.release))).unwrap();
        assert_eq!(a, b, "{m} untouched");
    }
    let o = forge_install(&root, &["rollback"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_set(&root, &f.release, &f.stock, "rolled back to stock");
    let o = forge_install(&root, &["rollback", "--json"], None, &[]);
    assert_eq!(o.status.code(), Some(14), "{}", text(&o));
}

#[test]
fn a_failed_load_rolls_back_by_itself() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let bad = f.patched.module("rbd").unwrap().identity.clone();
    let o = forge_install(
        &root,
        &["install", "--json"],
        Some(&f.patched.source),
        &[("KRBD_INSTALL_SIMULATE_FAIL_LOAD", &bad)],
    );
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("failed at step loaded") && msg.contains("previous set was restored"), "{msg}");
    assert_set(&root, &f.release, &ids_of_set(&f.unpatched), "after the automatic rollback");
    let j = journal(&root, &f.release);
    assert_eq!(j["state"], "rolled-back");
    assert!(j["failure"].as_str().unwrap().contains("rbd"), "{j}");
}

#[test]
fn a_mapped_device_or_cephfs_refuses_the_live_swap_and_no_reload_defers_it() {
    let f = fixture();
    let old = ids_of_set(&f.unpatched);
    let new = ids_of_set(&f.patched);
    let (_d, root) = f.copy_of(&f.upgraded());
    let before = journal(&root, &f.release);
    std::fs::create_dir_all(root.join("sys/bus/rbd/devices/0")).unwrap();
    let o = forge_install(&root, &["install"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rbd device 0 is mapped"), "{}", text(&o));
    assert_set(&root, &f.release, &old, "refused: nothing changed");
    assert_eq!(journal(&root, &f.release), before, "refused: journal untouched");

    std::fs::remove_dir_all(root.join("sys/bus/rbd/devices/0")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(
        root.join("proc/mounts"),
        "/dev/vda / ext4 rw 0 0\n10.254.0.1:6789:/ /mnt/fs ceph rw,name=admin 0 0\n",
    )
    .unwrap();
    let o = forge_install(&root, &["install"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CephFS 10.254.0.1:6789:/ is mounted at /mnt/fs"),
        "{}",
        text(&o)
    );
    assert_set(&root, &f.release, &old, "refused: nothing changed");

    let o = forge_install(&root, &["install", "--no-reload"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let want_installed: std::collections::BTreeMap<_, _> =
        new.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    let want_loaded: std::collections::BTreeMap<_, _> = old.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    assert_eq!(installed_ids(&root, &f.release), want_installed, "the new set is installed for the next boot");
    assert_eq!(loaded_ids(&root, &f.release), want_loaded, "the loaded set was not touched");
    let o = forge_install(&root, &["status", "--json", "--set"], Some(&f.patched.source), &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["shipped_installed"], true, "{v}");
    assert_eq!(v["shipped_loaded"], false, "{v}");
    assert_eq!(v["busy"][0], "CephFS 10.254.0.1:6789:/ is mounted at /mnt/fs");
}

/// A copy of a set folder to break.
fn set_copy(set: &ShippedSet) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&set.source).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
    }
    d
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_changes() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let before = journal(&root, &f.release);
    let check = |o: &Output, code: i32, needle: &str| {
        assert_eq!(o.status.code(), Some(code), "{}", text(o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o)));
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        assert_set(&root, &f.release, &ids_of_set(&f.unpatched), needle);
        assert_eq!(journal(&root, &f.release), before, "journal untouched: {needle}");
    };

    // Another release on the same host.
    let other = "6.1.0-99-amd64";
    std::fs::create_dir_all(root.join(format!("lib/modules/{other}"))).unwrap();
    let o = forge_install(&root, &["install", "--json", "--kernel", other], Some(&f.patched.source), &[]);
    check(&o, 3, &format!("the set is built for {} but the target runs/names {other}", f.release));
    // A release that is not installed at all.
    let o = forge_install(&root, &["install", "--json", "--kernel", "6.12.999-amd64"], Some(&f.patched.source), &[]);
    check(&o, 3, "kernel 6.12.999-amd64 is not installed");

    // A module missing from the set.
    let d = set_copy(&f.patched);
    std::fs::remove_file(d.path().join("rbd.ko")).unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(d.path()), &[]);
    check(&o, 5, "rbd.ko is missing");

    // A corrupt module: its report catches it, and without a report the parser does.
    let d = set_copy(&f.patched);
    let ko = d.path().join("libceph.ko");
    let bytes = std::fs::read(&ko).unwrap();
    std::fs::write(&ko, &bytes[..bytes.len() / 3]).unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(d.path()), &[]);
    check(&o, 5, "does not match its build report: sha256");
    std::fs::remove_file(d.path().join("build-report.json")).unwrap();
    let o = forge_install(&root, &["install", "--json", "--no-build-report"], Some(d.path()), &[]);
    check(&o, 5, "not a usable kernel module");

    // A mixed set (patched libceph, unpatched ceph and rbd): the kernel would refuse it.
    let d = set_copy(&f.unpatched);
    std::fs::remove_file(d.path().join("build-report.json")).unwrap();
    std::fs::copy(f.patched.source.join("libceph.ko"), d.path().join("libceph.ko")).unwrap();
    let o = forge_install(&root, &["install", "--json", "--no-build-report"], Some(d.path()), &[]);
    check(&o, 10, "the kernel would refuse this set");
}

#[test]
fn a_set_without_its_build_report_needs_no_build_report() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let before = journal(&root, &f.release);
    let d = set_copy(&f.patched);
    std::fs::remove_file(d.path().join("build-report.json")).unwrap();
    // Nothing vouches for the modules' sha256: refused as bad input, with the way out.
    let o = forge_install(&root, &["install", "--json"], Some(d.path()), &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert!(v["error"]["message"].as_str().unwrap().contains("no build-report.json"), "{v}");
    assert!(v["error"]["hint"].as_str().unwrap().contains("--no-build-report"), "{v}");
    assert_set(&root, &f.release, &ids_of_set(&f.unpatched), "refused: nothing changed");
    assert_eq!(journal(&root, &f.release), before, "refused: journal untouched");
    // Asked for explicitly: checked by names and vermagic, and installed.
    let o = forge_install(&root, &["install", "--json", "--no-build-report"], Some(d.path()), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "installed without a report");
}

#[test]
fn files_owned_by_a_package_are_never_touched() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    // A competing rbd.ko in updates/ that dpkg says belongs to a package.
    let owned = root.join(format!("lib/modules/{}/updates/rbd.ko", f.release));
    std::fs::copy(f.unpatched.source.join("rbd.ko"), &owned).unwrap();
    let dpkg = root.join("var/lib/dpkg");
    std::fs::create_dir_all(dpkg.join("info")).unwrap();
    std::fs::write(
        dpkg.join("status"),
        "Package: ceph-kmod-test\nStatus: install ok installed\nPriority: optional\nSection: kernel\nMaintainer: t <t@example.org>\nArchitecture: amd64\nVersion: 1\nDescription: test\n\n",
    )
    .unwrap();
    std::fs::write(dpkg.join("info/ceph-kmod-test.list"), format!("/lib/modules/{}/updates/rbd.ko\n", f.release))
        .unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("owned by the package ceph-kmod-test"), "{}", text(&o));
    assert_eq!(std::fs::read(&owned).unwrap(), std::fs::read(f.unpatched.source.join("rbd.ko")).unwrap());

    // Not owned: moved aside (backed up) and put back by rollback.
    std::fs::remove_file(dpkg.join("info/ceph-kmod-test.list")).unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!owned.exists(), "the competing copy was moved aside");
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "installed");
    let o = forge_install(&root, &["rollback"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(owned.exists(), "the competing copy is back");
}

#[test]
fn status_shows_installed_loaded_and_shipped_side_by_side() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let o = forge_install(&root, &["install", "--no-reload"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let redact = |s: &str| {
        let mut s =
            s.replace(&root.display().to_string(), "[root]").replace(&f.patched.source.display().to_string(), "[set]");
        for (label, set) in [("patched", &f.patched), ("unpatched", &f.unpatched)] {
            for m in &set.modules {
                s = s.replace(&m.identity, &format!("[{label} {}]", m.name));
            }
        }
        s.replace(&f.release, "[release]")
    };
    let o = forge_install(&root, &["status", "--json", "--set"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    insta::assert_snapshot!("install_status_json", redact(&String::from_utf8_lossy(&o.stdout)));
    let o = forge_install(&root, &["status", "--set"], Some(&f.patched.source), &[]);
    insta::assert_snapshot!("install_status_text", redact(&String::from_utf8_lossy(&o.stdout)));
}

#[test]
fn installing_the_installed_set_again_keeps_the_rollback_target() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let o = forge_install(&root, &["install", "--no-reload"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Again, now with the live swap: only the loaded modules change.
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["notes"][0].as_str().unwrap().contains("already installed"), "{v}");
    assert_eq!(v["steps"], serde_json::json!(["unloaded", "loaded", "verified"]));
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "reloaded");
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["steps"], serde_json::json!([]));
    // The previous set is still what rollback restores.
    let o = forge_install(&root, &["rollback"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_set(&root, &f.release, &ids_of_set(&f.unpatched), "rolled back to the set before");
}

#[test]
fn a_live_swap_for_a_kernel_that_is_not_running_is_refused() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-99-amd64\n").unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("is not the running kernel (6.1.0-99-amd64)"), "{}", text(&o));
    assert_set(&root, &f.release, &ids_of_set(&f.unpatched), "nothing changed");
    let o = forge_install(&root, &["install", "--no-reload", "--kernel", &f.release], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_root_other_than_slash_installs_without_reload_and_says_so() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    // The real kernel (no simulation): it cannot swap the modules of a scratch root, so no
    // --no-reload is needed; the files change, the loaded modules do not.
    for (op, set) in [("install", Some(f.patched.source.as_path())), ("rollback", None)] {
        let mut c = forge();
        c.env_remove("KRBD_INSTALL_SIMULATE_KERNEL").env_remove("KRBD_INSTALL_CRASH_AFTER").args([op, "--json"]);
        c.args(set).arg("--root").arg(&root);
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{op}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["reloaded"], false, "{v}");
        assert!(v["notes"].to_string().contains("is not the running system's root"), "{v}");
        assert!(!v["steps"].to_string().contains("loaded"), "{v}");
    }
    let want: std::collections::BTreeMap<_, _> =
        ids_of_set(&f.unpatched).into_iter().map(|(k, v)| (k, Some(v))).collect();
    assert_eq!(installed_ids(&root, &f.release), want, "installed, then rolled back");
    assert_eq!(loaded_ids(&root, &f.release), want, "the loaded set was never touched");
}

#[test]
fn status_and_rollback_infer_the_release_under_a_root_as_install_does() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    // No running kernel to ask under this root: the journal names the release.
    std::fs::remove_file(root.join("proc/sys/kernel/osrelease")).unwrap();
    let o = forge_install(&root, &["status", "--json"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["release"], f.release.as_str(), "{v}");
    let o = forge_install(&root, &["install", "--no-reload"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = forge_install(&root, &["rollback", "--json", "--no-reload"], None, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["release"], f.release.as_str());
    let want: std::collections::BTreeMap<_, _> =
        ids_of_set(&f.unpatched).into_iter().map(|(k, v)| (k, Some(v))).collect();
    assert_eq!(installed_ids(&root, &f.release), want, "rolled back");
}

/// The layout of an unpacked `krbd-forge package --format tar`: the debug-stripped copies
/// under the out folder's names, the build report and a sha256 manifest.
fn unpacked_tarball(set: &ShippedSet) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    for n in ["libceph", "ceph", "rbd"] {
        let bytes = std::fs::read(set.source.join(format!("stripped/{n}.ko"))).unwrap();
        std::fs::write(d.path().join(format!("{n}.ko")), &bytes).unwrap();
        use sha2::Digest;
        manifest += &format!("{}  {n}.ko\n", hex::encode(sha2::Sha256::digest(&bytes)));
    }
    std::fs::copy(set.source.join("build-report.json"), d.path().join("build-report.json")).unwrap();
    std::fs::write(d.path().join("MANIFEST.sha256"), manifest).unwrap();
    d
}

#[test]
fn an_unpacked_installer_tarball_installs_with_the_same_identity() {
    let f = fixture();
    let t = unpacked_tarball(&f.patched);
    let stripped = ShippedSet::from_dir(t.path()).expect("the unpacked tarball is a set");
    assert_eq!(ids_of_set(&stripped), ids_of_set(&f.patched), "stripping keeps the GNU build-id");
    let (_d, root) = f.copy_of(&f.upgraded());
    let o = forge_install(&root, &["install"], Some(t.path()), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_set(&root, &f.release, &ids_of_set(&f.patched), "installed from the tarball");
    // A file the manifest does not vouch for is refused.
    let mut bytes = std::fs::read(t.path().join("rbd.ko")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(t.path().join("rbd.ko"), bytes).unwrap();
    let o = forge_install(&root, &["install", "--json"], Some(t.path()), &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("does not match its build report"), "{}", text(&o));
}

#[test]
fn a_second_installer_waits_for_nobody_and_changes_nothing() {
    let f = fixture();
    let (_d, root) = f.copy_of(&f.upgraded());
    let lock = std::fs::File::create(root.join(format!("var/lib/krbd-forge/{}/lock", f.release))).unwrap();
    lock.try_lock().expect("take the installer's lock");
    let o = forge_install(&root, &["install", "--json"], Some(&f.patched.source), &[]);
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("another krbd-forge install or rollback is running"),
        "{}",
        text(&o)
    );
    assert_set(&root, &f.release, &ids_of_set(&f.unpatched), "nothing changed");
    drop(lock);
}
