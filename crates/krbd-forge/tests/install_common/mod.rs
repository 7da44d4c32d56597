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
