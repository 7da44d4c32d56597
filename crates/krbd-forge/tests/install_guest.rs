//! `krbd-forge install | rollback | status` on a real Debian root file system in QEMU: the
//! default target's kernel boots a debootstrapped bookworm (minbase + kmod) from a
//! virtio-blk ext4 disk that also holds the target's stock modules, its headers files and
//! this very binary. Two boots of the same disk:
//!
//! 1. stock set loaded with modprobe; install killed (SIGKILL) after `swapped`, rerun:
//!    the new set is loaded; rollback killed after `rollback-unloaded`, rerun: the stock set
//!    is back; install again; then with an RBD image of a real Ceph cluster mapped and an
//!    ext4 on it mounted, a live rollback is refused and the data's checksum is unchanged.
//! 2. "reboot": modprobe finds the new set; rollback restores the stock set.
//!
//! The crash matrix over every journaled step runs on the host (install_cli.rs); here the
//! real kernel, real modprobe/rmmod and real sysfs are checked at two crash points.

mod common;
mod install_common;

use common::*;
use install_common::*;
use krbd_install::ShippedSet;
use krbd_progress::Silent;
use krbd_vm::qemu;
use krbd_vm::KernelPackage;
use krbd_vm::{Cluster, ClusterSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Modules the guest's root needs besides the Ceph set: the NIC for the cluster.
const GUEST_ROOT_MODULES: [&str; 7] = ["libceph", "ceph", "rbd", "libcrc32c", "netfs", "crc32c_generic", "e1000"];

/// Shared by both guest scripts (bash on the real root).
const GUEST_PRELUDE: &str = r#"#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 3 > /proc/sys/kernel/printk
say() { echo "KRBD|$*"; }
F=/usr/local/bin/krbd-forge
SET=/opt/krbd/set
status() { say "value|$1|$($F status --json --set $SET 2>&1 | tr -d '\n')"; }
run() { label=$1; shift; out=$("$@" 2>&1); rc=$?; say "value|rc_$label|$rc"; say "value|out_$label|$(echo "$out" | tr '\n' ' ' | cut -c1-600)"; }
say "begin|$(uname -r)"
"#;

const PHASE1: &str = r#"
modprobe rbd; modprobe ceph
status stock
run crash_install env KRBD_INSTALL_CRASH_AFTER=swapped $F install $SET
status after_crash_install
run resume_install $F install $SET
status resumed
run crash_rollback env KRBD_INSTALL_CRASH_AFTER=rollback-unloaded $F rollback
status after_crash_rollback
run resume_rollback $F rollback
status rolled_back
run install $F install $SET
status installed
# With an image mapped and a file system mounted on it, the live swap must be refused.
modprobe e1000
B=/usr/local/bin/busybox
$B ip link set lo up; $B ip link set eth0 up
$B ip addr add $GUEST_IP/24 dev eth0; $B ip route add default via $GW
n=0; until $B ping -c 1 -W 2 $MON_IP >/dev/null 2>&1; do n=$((n+1)); [ $n -ge 60 ] && break; sleep 1; done
echo "$MON name=admin,secret=$KEY $POOL $GUEST_IMG -" > /sys/bus/rbd/add_single_major
say "value|map_rc|$?"
n=0; while [ ! -b /dev/rbd0 ]; do n=$((n+1)); [ $n -gt 200 ] && break; sleep 0.1; done
mkfs.ext4 -q -F /dev/rbd0 >/dev/null 2>&1; say "value|mkfs_rc|$?"
mkdir -p /mnt/rbd; mount -t ext4 /dev/rbd0 /mnt/rbd; say "value|mount_rc|$?"
head -c 3000000 /usr/local/bin/krbd-forge > /mnt/rbd/data; sync
say "value|sha_before|$(sha256sum /mnt/rbd/data | cut -d' ' -f1)"
run busy_rollback $F rollback
status busy
sync; echo 3 > /proc/sys/vm/drop_caches
say "value|sha_after|$(sha256sum /mnt/rbd/data | cut -d' ' -f1)"
umount /mnt/rbd; say "value|umount_rc|$?"
echo 0 > /sys/bus/rbd/remove_single_major; say "value|unmap_rc|$?"
say "end"
sync
poweroff -f
"#;

const PHASE2: &str = r#"
status boot2
modprobe rbd; modprobe ceph
status boot2_loaded
run boot2_rollback $F rollback
status boot2_rolled_back
say "end"
sync
poweroff -f
"#;

struct Guest {
    vmlinux: PathBuf,
    initrd: PathBuf,
    disk: PathBuf,
    work: PathBuf,
}

fn boot(
    g: &Guest,
    phase: &str,
    network: Option<qemu::GuestNetwork>,
) -> (String, std::collections::BTreeMap<String, String>) {
    let b = RootDiskBoot {
        disk: &g.disk,
        work: &g.work,
        kernel: &g.vmlinux,
        initrd: &g.initrd,
        memory_mb: 1024,
        timeout: Duration::from_secs(900),
    };
    let (serial, events) = boot_root_disk(&b, phase, network);
    (serial, values(&events))
}

fn status_of(v: &std::collections::BTreeMap<String, String>, label: &str) -> Value {
    let text = v.get(label).unwrap_or_else(|| panic!("no status {label}: {v:#?}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("status {label} is not JSON ({e}): {text}"))
}

/// (installed identity, origin, loaded identity) per module.
fn sides(s: &Value) -> Vec<(String, String, String)> {
    s["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["installed"]["identity"].as_str().unwrap_or("-").to_string(),
                m["installed"]["origin"].as_str().unwrap_or("-").to_string(),
                if m["loaded"]["loaded"] == true {
                    m["loaded"]["identity"].as_str().unwrap_or("?").to_string()
                } else {
                    "-".into()
                },
            )
        })
        .collect()
}

fn expect(ids: &SetIds, origin: &str, loaded: bool) -> Vec<(String, String, String)> {
    krbd_install::MODULE_NAMES
        .iter()
        .map(|n| {
            let id = ids[*n].clone();
            (id.clone(), origin.to_string(), if loaded { id } else { "-".into() })
        })
        .collect()
}

/// The guest's root: Debian, the target's modules and headers files, depmod run, this very
/// binary, busybox and the set under /opt/krbd/set. Returns the stock set's identities.
fn prepare_root(root: &Path, built: &Built, release: &str) -> SetIds {
    copy_tree(&debian_rootfs(), root);
    extract_image_modules(&input_deb(&built.report, "image"), release, &GUEST_ROOT_MODULES, root);
    extract_headers(&input_deb(&built.report, "headers"), release, root);
    depmod(root, release);
    let stock: SetIds = krbd_install::MODULE_NAMES
        .iter()
        .map(|n| {
            let host = krbd_install::TargetHost::new(root, Some(release.to_string())).unwrap();
            (n.to_string(), host.installed(n).and_then(|i| i.identity).expect("stock module identity"))
        })
        .collect();
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    let st = Command::new("strip")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_krbd-forge"))
        .arg("-o")
        .arg(root.join("usr/local/bin/krbd-forge"))
        .status()
        .expect("run strip");
    assert!(st.success());
    std::fs::copy("/bin/busybox", root.join("usr/local/bin/busybox")).expect("busybox-static");
    let set_dir = root.join("opt/krbd/set");
    std::fs::create_dir_all(&set_dir).unwrap();
    for f in ["libceph.ko", "ceph.ko", "rbd.ko", "build-report.json"] {
        std::fs::copy(built.out.join(f), set_dir.join(f)).unwrap();
    }
    stock
}

/// An ext4 image of `root` (which is removed).
fn make_disk(root: &Path, work: &Path) -> PathBuf {
    let disk = work.join("disk.ext4");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-E", "root_owner=0:0", "-d"])
        .arg(root)
        .arg(&disk)
        .arg("1200M")
        .output()
        .expect("run mkfs.ext4");
    assert!(out.status.success(), "mkfs.ext4 -d: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(root).unwrap();
    disk
}

/// The kernel (PVH entry of the vmlinux) and an initramfs that mounts the disk.
fn kernel_and_initramfs(built: &Built, release: &str, work: &Path) -> (PathBuf, PathBuf) {
    let pkg = KernelPackage::read(&input_deb(&built.report, "image"), Some(release)).expect("kernel package");
    let vmlinux = krbd_vm::bzimage::extract_vmlinux(&pkg.vmlinuz).expect("vmlinux");
    let vmlinux_path = work.join("vmlinux");
    std::fs::write(&vmlinux_path, vmlinux).unwrap();
    let initrd_path = work.join("initramfs.cpio.gz");
    root_disk_initramfs(&pkg, &initrd_path);
    (vmlinux_path, initrd_path)
}

/// Boot 1: crash and resume an install and a rollback, then a live rollback refused while
/// an RBD image is mapped and mounted.
fn assert_phase1(v: &std::collections::BTreeMap<String, String>, stock: &SetIds, new: &SetIds) {
    assert_eq!(sides(&status_of(v, "stock")), expect(stock, "in-tree", true), "the stock set is loaded first");
    assert_eq!(v["rc_crash_install"], "137", "the installer was killed after swapped: {v:#?}");
    assert_eq!(status_of(v, "after_crash_install")["transaction"]["last_step"], "swapped");
    assert_eq!(v["rc_resume_install"], "0", "{}", v["out_resume_install"]);
    assert!(v["out_resume_install"].contains("resumed the interrupted install"), "{}", v["out_resume_install"]);
    assert_eq!(sides(&status_of(v, "resumed")), expect(new, "krbd-forge", true), "rerun finished the install");
    assert_eq!(v["rc_crash_rollback"], "137", "{v:#?}");
    assert_eq!(v["rc_resume_rollback"], "0", "{}", v["out_resume_rollback"]);
    assert_eq!(sides(&status_of(v, "rolled_back")), expect(stock, "in-tree", true), "rollback restored the stock set");
    assert_eq!(v["rc_install"], "0", "{}", v["out_install"]);
    assert_eq!(sides(&status_of(v, "installed")), expect(new, "krbd-forge", true));
    for k in ["map_rc", "mkfs_rc", "mount_rc"] {
        assert_eq!(v[k], "0", "{k}: {v:#?}");
    }
    assert_eq!(v["rc_busy_rollback"], "11", "live swap refused while mapped: {}", v["out_busy_rollback"]);
    assert!(v["out_busy_rollback"].contains("rbd device 0 is mapped"), "{}", v["out_busy_rollback"]);
    assert_eq!(sides(&status_of(v, "busy")), expect(new, "krbd-forge", true), "nothing changed");
    assert_eq!(v["sha_before"].len(), 64);
    assert_eq!(v["sha_before"], v["sha_after"], "the data on the mapped image is unchanged");
    assert_eq!(v["umount_rc"], "0");
    assert_eq!(v["unmap_rc"], "0");
}

#[test]
fn install_crash_reboot_busy_and_rollback_on_a_real_root_in_qemu() {
    let built = build(&[]);
    let release = built.report["release"].as_str().unwrap().to_string();
    let set = ShippedSet::from_dir(&built.out).expect("the patched set");
    let new = ids_of_set(&set);

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let root = work.join("root");
    let stock = prepare_root(&root, &built, &release);
    assert_ne!(stock, new);

    let cluster_dir = work.join("ceph");
    let cluster =
        Cluster::start(&ClusterSpec { dir: cluster_dir, osds: 1, start_timeout: Duration::from_secs(180) }, &Silent)
            .unwrap_or_else(|e| panic!("cluster did not start: {e}"));
    let session = cluster.guest_session(&work, &Silent).unwrap_or_else(|e| panic!("guest session: {e}"));
    let write_script = |name: &str, body: String| {
        let p = root.join(format!("sbin/krbd-{name}"));
        std::fs::write(&p, body).unwrap();
        let st = Command::new("chmod").arg("755").arg(&p).status().unwrap();
        assert!(st.success());
    };
    write_script("phase1", format!("{GUEST_PRELUDE}{}\n{PHASE1}", session.variables()));
    write_script("phase2", format!("{GUEST_PRELUDE}{PHASE2}"));

    let disk = make_disk(&root, &work);
    let (vmlinux, initrd) = kernel_and_initramfs(&built, &release, &work);
    let g = Guest { vmlinux, initrd, disk, work: work.clone() };

    // Boot 1.
    let (_serial, v) = boot(&g, "phase1", Some(session.network.clone()));
    drop(session);
    drop(cluster);
    assert_phase1(&v, &stock, &new);

    // Boot 2: the same disk.
    let (_serial, v) = boot(&g, "phase2", None);
    assert_eq!(sides(&status_of(&v, "boot2")), expect(&new, "krbd-forge", false), "installed, nothing loaded yet");
    assert_eq!(
        sides(&status_of(&v, "boot2_loaded")),
        expect(&new, "krbd-forge", true),
        "after the reboot modprobe loads the new set"
    );
    assert_eq!(v["rc_boot2_rollback"], "0", "{}", v["out_boot2_rollback"]);
    assert_eq!(
        sides(&status_of(&v, "boot2_rolled_back")),
        expect(&stock, "in-tree", true),
        "rollback restores the stock set"
    );
}
