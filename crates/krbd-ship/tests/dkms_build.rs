//! The DKMS source tree builds with the kernel's own kbuild, the way DKMS drives it
//! (`make KVER=… KDIR=…` in the tree), against the target's headers sysroot, and the
//! modules it makes agree with the shipped set: same vermagic, same imported CRCs, same
//! exported CRCs (so the host-built libceph, ceph and rbd load together as the shipped ones
//! do). About 40 s of compiling at -j2 on an idle machine, several minutes on a busy one.

mod common;

use common::{built, options, run};
use krbd_build::{prepare_debian, KernelRelease, Stages};
use krbd_fetch::cache::Cache;
use krbd_kmod::KernelModule;
use krbd_ship::Format;
use std::process::Command;

#[test]
fn dkms_tree_builds_with_plain_make_and_matches_the_shipped_set() {
    let set = krbd_ship::BuildSet::open(&built().out, false).expect("set");
    let release = KernelRelease::parse(set.release()).expect("release");
    let cache = Cache::open(common::cache_root()).expect("cache");
    let prepared = prepare_debian(&cache, Some(&release), false, &mut Stages::default(), &krbd_progress::Silent)
        .expect("the target's headers");

    let dir = tempfile::tempdir().unwrap();
    let out =
        krbd_ship::package(&built().out, &options(Format::Dkms, dir.path()), &krbd_progress::Silent).expect("dkms");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    run(Command::new("tar").arg("xzf").arg(&out.path).arg("-C").arg(&root));
    let tree = root.join(out.details["tree"].as_str().unwrap());

    run(Command::new("timeout")
        .arg("1800")
        .arg("make")
        .arg("-j2")
        .arg(format!("KVER={}", set.release()))
        .arg(format!("KDIR={}", prepared.headers.dir.display()))
        .arg(format!("CC={}", set.report.compiler.cc))
        .current_dir(&tree));

    for (shipped, dir) in set.modules.iter().zip(["net/ceph", "fs/ceph", "drivers/block"]) {
        let path = tree.join(dir).join(shipped.file_name());
        let host = KernelModule::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = &shipped.name;
        assert_eq!(host.vermagic(), shipped.parsed.vermagic(), "{name} vermagic");
        let crcs = |m: &KernelModule| {
            let mut v: Vec<(String, u32)> = m.versions.iter().map(|v| (v.name.clone(), v.crc)).collect();
            v.sort();
            v
        };
        assert_eq!(crcs(&host), crcs(&shipped.parsed), "{name}: imported CRCs");
        let exports = |m: &KernelModule| {
            let mut v: Vec<(String, Option<u32>)> = m.exports.iter().map(|e| (e.name.clone(), e.crc)).collect();
            v.sort();
            v
        };
        assert_eq!(exports(&host), exports(&shipped.parsed), "{name}: exported CRCs");
        assert_eq!(host.depends(), shipped.parsed.depends(), "{name}: depends");
    }
}
