//! The RHEL-family path end to end. No CentOS or Rocky mirror is reachable here, so the
//! test makes one: Debian's 6.12 kernel source is repackaged into a real source RPM (with
//! rpmbuild; its spec's %prep applies a patch touching net/ceph and one that touches no
//! Ceph file) and Debian's 6.12 headers into a kernel-devel RPM laid out like CentOS's
//! (`/usr/src/kernels/<release>/`, one folder, scripts included), released as
//! `6.12.117-284.1.el9_2.x86_64`. Both are served from 127.0.0.1 in the Rocky vault's
//! layout, and `krbd-forge build` finds them through the catalog. The modules must equal
//! the Debian path's for the same kernel, except for what %prep changed.

mod common;

use common::*;
use krbd_kmod::KernelModule;
use krbd_packages::deb::DebArchive;
use krbd_testsupport::http::StaticServer;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEBIAN_RELEASE: &str = "6.12.117+deb12-amd64";
const DEBIAN_VERSION: &str = "6.12.117-1~deb12u1";
const EL_RELEASE: &str = "6.12.117-284.1.el9_2.x86_64";
const MODULES: [&str; 3] = ["libceph", "ceph", "rbd"];

/// The patch %prep applies: one Ceph file (a modinfo line in libceph) and one file outside
/// the Ceph sources, which must be left out.
const PREP_PATCH: &str = "From: test\nSubject: [PATCH] mark libceph as prepared by %prep\n\n---\n\
--- a/net/ceph/ceph_common.c\n+++ b/net/ceph/ceph_common.c\n@@ -926,2 +926,3 @@\n MODULE_DESCRIPTION(\"Ceph core library\");\n MODULE_LICENSE(\"GPL\");\n+MODULE_INFO(krbd_prep, \"applied by the spec's prep\");\n\
--- a/Makefile\n+++ b/Makefile\n@@ -1,1 +1,2 @@\n # SPDX-License-Identifier: GPL-2.0\n+# not a Ceph file\n";

const SPEC: &str = r#"%define rpmversion 6.12.117
%define pkgrelease 284.1.el9_2
%define debug_package %{nil}
Name: kernel
Version: %{rpmversion}
Release: %{pkgrelease}
Summary: Debian's 6.12 kernel, repackaged the way RHEL packages its kernel
License: GPL-2.0-only
AutoReqProv: no
Source0: linux-%{rpmversion}-%{pkgrelease}.tar.xz
Patch999998: linux-kernel-test.patch
Patch999999: debrand-empty.patch

%description
test fixture

%package devel
Summary: headers to build modules against
%description devel
test fixture

%prep
ApplyPatch()
{
  local patch=$1
  shift
  patch -p1 -F1 -s < "$RPM_SOURCE_DIR/$patch"
}

ApplyOptionalPatch()
{
  local patch=$1
  if [ -s $RPM_SOURCE_DIR/$patch ]; then
    ApplyPatch $patch
  fi
}

%setup -q -c -T
ApplyOptionalPatch linux-kernel-test.patch
ApplyOptionalPatch debrand-empty.patch

%build

%install
mkdir -p %{buildroot}/usr/src/kernels
cp -a %{devel_tree} %{buildroot}/usr/src/kernels/%{version}-%{release}.%{_target_cpu}

%files devel
/usr/src/kernels
"#;

/// The Rocky-layout folder served over HTTP, made once and kept in the test cache.
fn fixture() -> PathBuf {
    let root = krbd_testsupport::test_cache_dir().join("rhel-fixture-v1");
    krbd_testsupport::with_lock("rhel-fixture", || {
        let done = root.join("done");
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&root);
            make_fixture(&root);
            std::fs::write(&done, b"").unwrap();
        }
    });
    root.join("www")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn make_fixture(root: &Path) {
    let top = root.join("rpmbuild");
    for d in ["SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS", "BUILDROOT"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    // The kernel tarball, as Debian ships it inside linux-source-6.12.
    let source = krbd_testsupport::debian_package("linux-source-6.12", Some(DEBIAN_VERSION));
    let tarball = top.join("SOURCES/linux-6.12.117-284.1.el9_2.tar.xz");
    DebArchive::open(&source)
        .unwrap()
        .walk_data(|rel, entry| {
            if rel.to_string_lossy().ends_with(".tar.xz") {
                let mut f = std::fs::File::create(&tarball).unwrap();
                std::io::copy(entry, &mut f).unwrap();
                return Ok(false);
            }
            Ok(true)
        })
        .unwrap();
    assert!(tarball.metadata().unwrap().len() > 100 << 20);
    std::fs::write(top.join("SOURCES/linux-kernel-test.patch"), PREP_PATCH).unwrap();
    std::fs::write(top.join("SOURCES/debrand-empty.patch"), b"").unwrap();
    std::fs::write(top.join("SPECS/kernel.spec"), SPEC).unwrap();

    // The headers: Debian's three packages laid out, then merged into the single folder
    // CentOS's kernel-devel has, with the release renamed.
    let sysroot = root.join("sysroot");
    let debs: Vec<DebArchive> = [
        format!("linux-headers-{DEBIAN_RELEASE}"),
        "linux-headers-6.12.117+deb12-common".to_string(),
        "linux-kbuild-6.12.117+deb12".to_string(),
    ]
    .iter()
    .map(|n| DebArchive::open(krbd_testsupport::debian_package(n, Some(DEBIAN_VERSION))).unwrap())
    .collect();
    krbd_build::sysroot::lay_out(&debs, &sysroot, &krbd_progress::Silent).unwrap();
    let src = sysroot.join("usr/src");
    let kbuild = sysroot.join("usr/lib/linux-kbuild-6.12.117+deb12");
    let tree = root.join("devel-tree");
    run(Command::new("cp").arg("-a").arg(src.join("linux-headers-6.12.117+deb12-common")).arg(&tree));
    for link in ["scripts", "tools"] {
        std::fs::remove_file(tree.join(link)).unwrap();
        run(Command::new("cp").arg("-a").arg(kbuild.join(link)).arg(tree.join(link)));
    }
    let arch = src.join(format!("linux-headers-{DEBIAN_RELEASE}"));
    for e in std::fs::read_dir(&arch).unwrap().flatten() {
        let name = e.file_name();
        if ["Makefile", "scripts", "tools"].contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        run(Command::new("cp").arg("-a").arg(e.path()).arg(&tree));
    }
    for f in ["include/config/kernel.release", "include/generated/utsrelease.h"] {
        let p = tree.join(f);
        let text = std::fs::read_to_string(&p).unwrap().replace(DEBIAN_RELEASE, EL_RELEASE);
        std::fs::write(&p, text).unwrap();
    }
    std::fs::remove_dir_all(&sysroot).unwrap();

    let rpmbuild = |args: &[&str]| {
        let mut c = Command::new("rpmbuild");
        c.arg("--define").arg(format!("_topdir {}", top.display()));
        c.arg("--define").arg(format!("devel_tree {}", tree.display()));
        // Fast payloads: gzip level 1 (the SRPM's tarball is xz already).
        c.args(["--define", "_source_payload w1.gzdio", "--define", "_binary_payload w1.gzdio"]);
        c.args(["--define", "__os_install_post %{nil}", "--define", "_build_id_links none"]);
        c.args(["--nodeps", "--target", "x86_64"]);
        c.args(args).arg(top.join("SPECS/kernel.spec"));
        run(&mut c);
    };
    rpmbuild(&["-bs"]);
    // The binary package is made from the prepared headers folder; %prep is the source
    // package's business.
    // %build and %install start in the folder %setup would have made.
    std::fs::create_dir_all(top.join("BUILD/kernel-6.12.117")).unwrap();
    rpmbuild(&["-bb", "--noprep"]);
    let www = root.join("www/rocky/9.2");
    let srpm_dir = www.join("BaseOS/source/tree/Packages/k");
    let devel_dir = www.join("AppStream/x86_64/os/Packages/k");
    std::fs::create_dir_all(&srpm_dir).unwrap();
    std::fs::create_dir_all(&devel_dir).unwrap();
    std::fs::rename(
        top.join("SRPMS/kernel-6.12.117-284.1.el9_2.src.rpm"),
        srpm_dir.join("kernel-6.12.117-284.1.el9_2.src.rpm"),
    )
    .unwrap();
    std::fs::rename(
        top.join("RPMS/x86_64/kernel-devel-6.12.117-284.1.el9_2.x86_64.rpm"),
        devel_dir.join("kernel-devel-6.12.117-284.1.el9_2.x86_64.rpm"),
    )
    .unwrap();
    std::fs::remove_dir_all(&top).unwrap();
    std::fs::remove_dir_all(&tree).unwrap();
}

fn module(out: &Path, file: &str) -> KernelModule {
    let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{}: {e}", out.join(file).display()));
    KernelModule::parse(&bytes).expect("parse built module")
}

fn crcs(m: &KernelModule) -> BTreeMap<String, u32> {
    m.versions.iter().map(|v| (v.name.clone(), v.crc)).collect()
}

#[test]
fn rpm_path_through_the_catalog_equals_the_debian_path_plus_prep() {
    let www = fixture();
    let server = StaticServer::start(&www, None);
    let rocky = format!("rocky={}", server.url("rocky"));
    let el = build(&["--kernel", EL_RELEASE, "--mirror", &rocky, "--series", "none"]);
    let deb = build(&["--kernel", DEBIAN_RELEASE, "--series", "none"]);

    // What was fetched, and from where: the Rocky 9.2 vault layout.
    let log = server.requests();
    assert!(
        log.iter().all(|l| l.contains("/rocky/9.2/")),
        "only the catalog's URLs were asked for: {log:?}"
    );
    let roles: Vec<&str> = el.report["inputs"].as_array().unwrap().iter().filter_map(|i| i["role"].as_str()).collect();
    assert_eq!(roles, ["srpm", "kernel-devel"]);
    assert_eq!(el.report["release"], EL_RELEASE);

    // %prep: the Ceph half of the test patch applied, the other half and the empty patch not.
    let prep = &el.report["prep"];
    assert_eq!(prep["tarball"], "linux-6.12.117-284.1.el9_2.tar.xz", "{prep:#}");
    let patches = prep["patches"].as_array().expect("prep patches");
    assert_eq!(patches.len(), 2, "{prep:#}");
    assert_eq!(patches[0]["name"], "linux-kernel-test.patch");
    assert_eq!(patches[0]["outcome"], "applied");
    assert_eq!(patches[0]["ceph_files"], serde_json::json!(["net/ceph/ceph_common.c"]));
    assert_eq!(patches[1]["outcome"], "empty");
    let hunks = prep["series"]["patches"][0]["hunks"].as_array().expect("hunks");
    assert_eq!(hunks.len(), 1, "only the Ceph file's hunk: {prep:#}");
    assert_eq!(hunks[0]["status"], "applied");

    for name in MODULES {
        let file = format!("{name}.ko");
        let (a, b) = (module(&el.out, &file), module(&deb.out, &file));
        // The release is the only difference in the version magic.
        let (va, vb) = (a.vermagic().unwrap_or(""), b.vermagic().unwrap_or(""));
        assert!(va.starts_with(&format!("{EL_RELEASE} ")), "{name}: {va}");
        assert_eq!(va.split_once(' ').map(|v| v.1), vb.split_once(' ').map(|v| v.1), "{name}: vermagic");
        assert!(!crcs(&a).is_empty());
        assert_eq!(crcs(&a), crcs(&b), "{name}: every imported CRC equals the Debian path's");
        assert_eq!(a.info("depends"), b.info("depends"), "{name}: depends");
        let (sa, sb) = (module(&el.out, &format!("stripped/{file}")), module(&deb.out, &format!("stripped/{file}")));
        assert!(sa.section(".text").is_some_and(|t| !t.is_empty()));
        assert!(sa.section(".text") == sb.section(".text"), "{name}: .text equals the Debian path's");
        // The %prep change shows in libceph only.
        let marker = a.info("krbd_prep");
        if name == "libceph" {
            assert_eq!(marker, Some("applied by the spec's prep"));
        } else {
            assert_eq!(marker, None, "{name}");
        }
        assert_eq!(b.info("krbd_prep"), None);
    }

    // Again: everything from the cache, nothing recompiled.
    let again = build(&["--kernel", EL_RELEASE, "--mirror", &rocky, "--series", "none"]);
    assert_eq!(again.report["cache_hit"], true);
    assert_eq!(again.report["build_key"], el.report["build_key"]);

    // The same packages as local files give the same build.
    let local = build(&[
        "--series",
        "none",
        "--srpm",
        www.join("rocky/9.2/BaseOS/source/tree/Packages/k/kernel-6.12.117-284.1.el9_2.src.rpm").to_str().unwrap(),
        "--devel-rpm",
        www.join("rocky/9.2/AppStream/x86_64/os/Packages/k/kernel-devel-6.12.117-284.1.el9_2.x86_64.rpm").to_str().unwrap(),
    ]);
    assert_eq!(local.report["release"], EL_RELEASE, "the release comes from the kernel-devel RPM");
    assert_eq!(local.report["build_key"], el.report["build_key"]);
}

#[test]
fn targets_shows_the_catalog_and_a_missing_package_is_a_fetch_error() {
    let www = fixture();
    let server = StaticServer::start(&www, None);
    let rocky = format!("rocky={}", server.url("rocky"));
    let out = forge().args(["targets", "--json", "--mirror", &rocky, EL_RELEASE]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "rhel");
    assert_eq!(
        v["srpm"][0]["url"],
        server.url("rocky/9.2/BaseOS/source/tree/Packages/k/kernel-6.12.117-284.1.el9_2.src.rpm")
    );

    // An erratum the mirror does not have: every place is named, exit 4.
    let missing = forge()
        .args(["build", "--json", "--series", "none", "--distro", "rocky", "--mirror", &rocky])
        .args(["--kernel", "6.12.117-284.2.el9_2.x86_64"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", String::from_utf8_lossy(&missing.stderr));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("not found") && err.contains("/rocky/9.2/"), "{err}");
}

#[test]
fn damaged_rpm_from_the_mirror_is_refused() {
    let www = fixture();
    let dir = tempfile::tempdir().unwrap();
    let good = www.join("rocky/9.2/AppStream/x86_64/os/Packages/k/kernel-devel-6.12.117-284.1.el9_2.x86_64.rpm");
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 0x55;
    let bad = dir.path().join("kernel-devel-damaged.rpm");
    std::fs::write(&bad, &bytes).unwrap();
    let srpm = www.join("rocky/9.2/BaseOS/source/tree/Packages/k/kernel-6.12.117-284.1.el9_2.src.rpm");
    let out = forge()
        .args(["build", "--series", "none", "--kernel", EL_RELEASE, "--srpm"])
        .arg(&srpm)
        .arg("--devel-rpm")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("payload digest") || err.contains("MD5"), "{err}");
}

#[test]
fn matrix_builds_a_6_1_and_a_6_12_abi_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = forge()
        .args(["build", "--json", "--series", "none", "--out"])
        .arg(dir.path())
        .args(["--kernel", "6.1.0-56-amd64", "--kernel", DEBIAN_RELEASE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], 0, "{v:#}");
    let rows = v["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, release) in rows.iter().zip(["6.1.0-56-amd64", DEBIAN_RELEASE]) {
        assert_eq!(row["release"], release);
        assert_eq!(row["verdict"], "ok");
        let out = PathBuf::from(row["out"].as_str().unwrap());
        for name in MODULES {
            let m = module(&out, &format!("{name}.ko"));
            assert!(m.vermagic().unwrap_or("").starts_with(&format!("{release} ")), "{name} for {release}");
        }
    }

    // One bad target fails the run, and the table says which.
    let mixed = forge()
        .args(["build", "--series", "none", "--out"])
        .arg(dir.path())
        .args(["--kernel", DEBIAN_RELEASE, "--kernel", "3.10.0-958.el7.x86_64"])
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(3));
    let table = String::from_utf8_lossy(&mixed.stdout);
    assert!(table.contains("1 built, 1 failed"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("3.10.0-958.el7.x86_64") && l.contains("target (3)")), "{table}");
}

#[allow(dead_code)]
fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
