//! Target hosts for the install tests: a root folder laid out like a Debian host of the
//! default target (its real modules from linux-image, its real headers files, depmod run),
//! and the sets to install (built through the shared forge cache).

#![allow(dead_code)]

use krbd_fetch::deb::DebArchive;
use krbd_install::{ShippedSet, TargetHost};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Ceph modules and what they need on 6.12 (crc32c_generic is libcrc32c's soft dep).
pub const CEPH_AND_DEPS: [&str; 6] = ["libceph", "ceph", "rbd", "libcrc32c", "netfs", "crc32c_generic"];

/// Copies files of the linux-image package into `root`: the modules named in `modules`
/// (kept compressed, as installed), and depmod's inputs (modules.order, modules.builtin*).
pub fn extract_image_modules(image_deb: &Path, release: &str, modules: &[&str], root: &Path) {
    let deb = DebArchive::open(image_deb).expect("open linux-image .deb");
    let prefix = format!("lib/modules/{release}/");
    deb.walk_data(|rel, entry| {
        let path = rel.to_string_lossy().trim_start_matches("./").to_string();
        let Some(inside) = path.strip_prefix(&prefix) else { return Ok(true) };
        let file = inside.rsplit('/').next().unwrap_or("");
        let stem = file.split_once(".ko").map(|(s, _)| s);
        let wanted = matches!(file, "modules.order" | "modules.builtin" | "modules.builtin.modinfo")
            || stem.is_some_and(|s| modules.contains(&s));
        if wanted && entry.header().entry_type().is_file() {
            copy_member(entry, &root.join(&path));
        }
        Ok(true)
    })
    .expect("walk linux-image .deb");
}

/// Writes one .deb member to `dest`, creating its folder.
fn copy_member(entry: &mut impl Read, dest: &Path) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let mut data = Vec::new();
    entry.read_to_end(&mut data).unwrap();
    std::fs::write(dest, data).unwrap();
}

/// Copies what the load check reads from the headers package (Module.symvers, .config,
/// the release) to `/usr/src/linux-headers-<release>` under `root`, and the `build` link.
pub fn extract_headers(headers_deb: &Path, release: &str, root: &Path) {
    let deb = DebArchive::open(headers_deb).expect("open linux-headers .deb");
    let dir = format!("usr/src/linux-headers-{release}/");
    deb.walk_data(|rel, entry| {
        let path = rel.to_string_lossy().trim_start_matches("./").to_string();
        if let Some(inside) = path.strip_prefix(&dir) {
            if matches!(
                inside,
                "Module.symvers" | ".config" | "include/generated/utsrelease.h" | "include/config/kernel.release"
            ) {
                copy_member(entry, &root.join(&path));
            }
        }
        Ok(true)
    })
    .expect("walk linux-headers .deb");
    let build = root.join(format!("lib/modules/{release}/build"));
    let _ = std::fs::remove_file(&build);
    std::os::unix::fs::symlink(format!("/usr/src/linux-headers-{release}"), build).unwrap();
}

pub fn depmod(root: &Path, release: &str) {
    let st = Command::new("/usr/sbin/depmod").arg("-a").arg("-b").arg(root).arg(release).status().expect("run depmod");
    assert!(st.success(), "depmod -b {} {release}", root.display());
}

/// `cp -a` (keeps the build symlink and modes).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("run cp");
    assert!(st.success());
}

/// The identity of each of libceph, ceph, rbd.
pub type SetIds = BTreeMap<String, String>;

pub fn ids_of_set(set: &ShippedSet) -> SetIds {
    set.modules.iter().map(|m| (m.name.clone(), m.identity.clone())).collect()
}

/// What depmod's choice and /sys/module say, per module.
pub fn installed_ids(root: &Path, release: &str) -> BTreeMap<String, Option<String>> {
    let host = TargetHost::new(root, Some(release.to_string())).unwrap();
    krbd_install::MODULE_NAMES.iter().map(|n| (n.to_string(), host.installed(n).and_then(|i| i.identity))).collect()
}

pub fn loaded_ids(root: &Path, release: &str) -> BTreeMap<String, Option<String>> {
    let host = TargetHost::new(root, Some(release.to_string())).unwrap();
    krbd_install::MODULE_NAMES
        .iter()
        .map(|n| {
            let l = host.loaded(n);
            (n.to_string(), if l.loaded { l.identity } else { None })
        })
        .collect()
}

/// Files in our install folder whose names are not plain modules (staging leftovers).
pub fn leftovers(root: &Path, release: &str) -> Vec<PathBuf> {
    let dir = root.join(format!("lib/modules/{release}/updates/krbd-forge"));
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).filter(|p| !p.to_string_lossy().ends_with(".ko")).collect())
        .unwrap_or_default()
}

/// Asserts that the host holds exactly `want` (installed by depmod's choice and loaded),
/// with no staging leftovers.
pub fn assert_set(root: &Path, release: &str, want: &SetIds, context: &str) {
    let want: BTreeMap<String, Option<String>> = want.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    assert_eq!(installed_ids(root, release), want, "installed set, {context}");
    assert_eq!(loaded_ids(root, release), want, "loaded set, {context}");
    assert_eq!(leftovers(root, release), Vec::<PathBuf>::new(), "staging leftovers, {context}");
}

/// Bump when the recipe below changes: the cached root is rebuilt under the new name.
pub const ROOTFS_KEY: &str = "rootfs-bookworm-minbase-kmod-v1";

/// A debootstrapped Debian 12 (minbase + kmod), built once into the shared test cache.
pub fn debian_rootfs() -> PathBuf {
    let cache = krbd_testsupport::test_cache_dir();
    let dir = cache.join(ROOTFS_KEY);
    krbd_testsupport::with_lock("rootfs", || {
        if dir.join("usr/sbin/depmod").exists() || dir.join("sbin/depmod").exists() {
            return;
        }
        let staging = cache.join(format!("{ROOTFS_KEY}.tmp"));
        let _ = std::fs::remove_dir_all(&staging);
        let mirror =
            std::env::var("KRBD_TEST_DEBIAN_MIRROR").unwrap_or_else(|_| krbd_vm::guest_root::configured_mirror());
        krbd_vm::guest_root::debootstrap(
            &["kmod".to_string()],
            &mirror,
            &staging,
            &cache.join(format!("{ROOTFS_KEY}.log")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&staging, &dir).expect("publish the root file system");
    });
    dir
}

/// The initramfs: load virtio_blk and ext4 (modules on Debian's 6.12), mount /dev/vda,
/// switch_root into the init named by `krbd.init=`.
pub const INITRAMFS_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 3 > /proc/sys/kernel/printk
for m in /lib/modules/*.ko; do insmod $m || echo "KRBD|value|initramfs_error|insmod $m failed"; done
n=0; while [ ! -b /dev/vda ]; do n=$((n+1)); [ $n -gt 300 ] && break; sleep 0.1; done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "KRBD|value|initramfs_error|mount /dev/vda failed"; echo "KRBD|end"; poweroff -f; }
init=$(sed -n 's/.*krbd.init=\([^ ]*\).*/\1/p' /proc/cmdline)
umount /sys; umount /proc
exec switch_root /newroot "$init"
"#;

/// Writes to `path` the initramfs for a guest whose root is the ext4 disk: busybox, the
/// package's virtio_blk and ext4 modules (and what they need) and [`INITRAMFS_INIT`].
pub fn root_disk_initramfs(pkg: &krbd_vm::KernelPackage, path: &Path) {
    let support = ["virtio_blk", "ext4", "crc32c_generic"];
    let plan = krbd_vm::deps::plan_load_order(pkg, &[], &support, &krbd_progress::Silent).expect("plan");
    let busybox = krbd_vm::initramfs::read_static_busybox(Path::new("/bin/busybox")).expect("busybox-static");
    let initrd = krbd_vm::initramfs::build(&busybox, &plan, INITRAMFS_INIT, &Default::default()).expect("initramfs");
    std::fs::write(path, initrd).unwrap();
}

/// The values a guest reported (`KRBD|value|<label>|<text>`).
pub fn values(events: &[krbd_vm::guest::GuestEvent]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter_map(|e| match e {
            krbd_vm::guest::GuestEvent::Value { key, value } => Some((key.clone(), value.trim().to_string())),
            _ => None,
        })
        .collect()
}

/// A root disk to boot: the disk image, and the folder for its serial logs.
pub struct RootDiskBoot<'a> {
    pub disk: &'a Path,
    pub work: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub memory_mb: u32,
    pub timeout: std::time::Duration,
}

/// Boots `kernel` (QEMU, TCG) with the root-disk initramfs, which switches into the disk's
/// `/sbin/krbd-<phase>`; panics with the serial log's tail unless the guest reached its end.
/// Returns the serial log and the guest's events.
pub fn boot_root_disk(
    b: &RootDiskBoot,
    phase: &str,
    network: Option<krbd_vm::qemu::GuestNetwork>,
) -> (String, Vec<krbd_vm::guest::GuestEvent>) {
    let serial_log = b.work.join(format!("serial-{phase}.log"));
    let spec = krbd_vm::qemu::QemuSpec {
        qemu: PathBuf::from("qemu-system-x86_64"),
        kernel: b.kernel.to_path_buf(),
        initrd: b.initrd.to_path_buf(),
        append: format!(
            "console=ttyS0,115200 panic=-1 rdinit=/init mitigations=off net.ifnames=0 krbd.init=/sbin/krbd-{phase}"
        ),
        memory_mb: b.memory_mb,
        serial_log: serial_log.clone(),
        network,
        timeout: b.timeout,
        drive: Some(b.disk.to_path_buf()),
    };
    let out = krbd_vm::qemu::run(&spec).expect("run QEMU");
    let events = krbd_vm::guest::parse_log(&out.serial);
    let tail: Vec<&str> = out.serial.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        events.contains(&krbd_vm::guest::GuestEvent::End),
        "guest {phase} did not finish (timed out: {}, {:?}); serial log {}:\n{}",
        out.timed_out,
        out.elapsed,
        serial_log.display(),
        tail.join("\n")
    );
    eprintln!("guest {phase}: {:.1} s", out.elapsed.as_secs_f64());
    (out.serial, events)
}
