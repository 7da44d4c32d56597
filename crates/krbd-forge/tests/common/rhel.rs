//! The RHEL-family fixture the RHEL tests share: Debian's kernel of the default target
//! repackaged as a real source RPM and kernel-devel RPM (rpmbuild), in the Rocky 9.2
//! vault's layout, made once per RPM release and kept in the test cache. See rhel_build.rs.

use super::{forge, run};
use krbd_fetch::deb::DebArchive;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian kernel repackaged, and the RHEL-style names it gets.
pub struct Target {
    /// `6.12.117+deb12-amd64`
    pub debian: String,
    /// The Debian package version: `6.12.117-1~deb12u1`.
    pub version: String,
    /// `6.12.117`
    pub upstream: String,
    /// The RPM release: `284.1.el9_2`.
    pub pkgrelease: String,
    /// `6.12.117-284.1.el9_2.x86_64`
    pub el: String,
}

impl Target {
    pub fn srpm(&self) -> String {
        format!("kernel-{}-{}.src.rpm", self.upstream, self.pkgrelease)
    }
    pub fn devel(&self) -> String {
        format!("kernel-devel-{}-{}.x86_64.rpm", self.upstream, self.pkgrelease)
    }

    /// The same kernel under another RPM release (`284.2.el9_2`).
    pub fn with_pkgrelease(&self, pkgrelease: &str) -> Target {
        Target {
            debian: self.debian.clone(),
            version: self.version.clone(),
            upstream: self.upstream.clone(),
            pkgrelease: pkgrelease.to_string(),
            el: format!("{}-{pkgrelease}.x86_64", self.upstream),
        }
    }
}

/// `krbd-forge targets --json`: the default target, and the newest 6.1 ABI with source.
pub fn targets() -> (Target, String) {
    let out = forge().args(["targets", "--json"]).output().expect("run targets");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let rows = list.as_array().expect("a list of targets");
    let default = rows.iter().find(|t| t["default"] == true).expect("a default target");
    let debian = default["release"].as_str().unwrap().to_string();
    let upstream = debian.split(['+', '-']).next().unwrap().to_string();
    let six_one = rows
        .iter()
        .find(|t| t["source_available"] == true && t["release"].as_str().is_some_and(|r| r.starts_with("6.1.0-")))
        .and_then(|t| t["release"].as_str())
        .expect("apt offers a 6.1 ABI with its source")
        .to_string();
    let el = format!("{upstream}-{FIRST}.x86_64");
    let version = default["version"].as_str().unwrap().to_string();
    let target = Target { version, debian, upstream, pkgrelease: FIRST.to_string(), el };
    (target, six_one)
}

/// The patch %prep applies: one Ceph file (a modinfo line in libceph) and one file outside
/// the Ceph sources, which must be left out.
const PREP_PATCH: &str = "From: test\nSubject: [PATCH] mark libceph as prepared by %prep\n\n---\n\
--- a/net/ceph/ceph_common.c\n+++ b/net/ceph/ceph_common.c\n@@ -926,2 +926,3 @@\n MODULE_DESCRIPTION(\"Ceph core library\");\n MODULE_LICENSE(\"GPL\");\n+MODULE_INFO(krbd_prep, \"applied by the spec's prep\");\n\
--- a/Makefile\n+++ b/Makefile\n@@ -1,1 +1,2 @@\n # SPDX-License-Identifier: GPL-2.0\n+# not a Ceph file\n";

const SPEC: &str = r#"%define rpmversion @UPSTREAM@
%define pkgrelease @PKGRELEASE@
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

/// The RPM release of the fixture's first kernel.
pub const FIRST: &str = "284.1.el9_2";

/// The Rocky-layout folder served over HTTP, made once and kept in the test cache.
pub fn fixture() -> (Target, PathBuf) {
    fixture_release(FIRST)
}

/// [`fixture`] for the same kernel under the RPM release `pkgrelease` (its own folder).
pub fn fixture_release(pkgrelease: &str) -> (Target, PathBuf) {
    let (t, _) = targets();
    let t = t.with_pkgrelease(pkgrelease);
    let name = match pkgrelease {
        FIRST => format!("rhel-fixture-v2-{}", t.debian),
        other => format!("rhel-fixture-v2-{}-{other}", t.debian),
    };
    let root = krbd_testsupport::test_cache_dir().join(name);
    krbd_testsupport::with_lock("rhel-fixture", || {
        let done = root.join("done");
        if !done.exists() {
            let _ = std::fs::remove_dir_all(&root);
            make_fixture(&root, &t);
            std::fs::write(&done, b"").unwrap();
        }
    });
    (t, root.join("www"))
}

fn make_fixture(root: &Path, t: &Target) {
    let top = root.join("rpmbuild");
    for d in ["SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS", "BUILDROOT"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    write_sources(&top, t);
    let tree = make_devel_tree(root, t);
    build_rpms(&top, &tree, t);
    publish_vault_layout(root, &top, t);
    std::fs::remove_dir_all(&top).unwrap();
    std::fs::remove_dir_all(&tree).unwrap();
}

/// SOURCES and SPECS of the source RPM.
fn write_sources(top: &Path, t: &Target) {
    // The kernel tarball, as Debian ships it inside linux-source-6.12.
    let major_minor: Vec<&str> = t.upstream.split('.').take(2).collect();
    let source = krbd_testsupport::debian_package(&format!("linux-source-{}", major_minor.join(".")), Some(&t.version));
    let tarball = top.join(format!("SOURCES/linux-{}-{}.tar.xz", t.upstream, t.pkgrelease));
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
    let spec = SPEC.replace("@UPSTREAM@", &t.upstream).replace("@PKGRELEASE@", &t.pkgrelease);
    std::fs::write(top.join("SPECS/kernel.spec"), spec).unwrap();
}

/// The folder a CentOS kernel-devel package holds, made from Debian's headers packages.
fn make_devel_tree(root: &Path, t: &Target) -> PathBuf {
    // The headers: Debian's three packages laid out, then merged into the single folder
    // CentOS's kernel-devel has, with the release renamed.
    let sysroot = root.join("sysroot");
    let headers =
        DebArchive::open(krbd_testsupport::debian_package(&format!("linux-headers-{}", t.debian), Some(&t.version)))
            .unwrap();
    let depends = headers.control().unwrap().get("Depends").unwrap_or("").to_string();
    let dep = |prefix: &str, suffix: &str| {
        depends
            .split(',')
            .map(|d| d.split_whitespace().next().unwrap_or("").to_string())
            .find(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .unwrap_or_else(|| panic!("{} depends on no {prefix}*{suffix}: {depends}", t.debian))
    };
    let (common, kbuild_name) = (dep("linux-headers-", "-common"), dep("linux-kbuild-", ""));
    let debs = vec![
        headers,
        DebArchive::open(krbd_testsupport::debian_package(&common, Some(&t.version))).unwrap(),
        DebArchive::open(krbd_testsupport::debian_package(&kbuild_name, Some(&t.version))).unwrap(),
    ];
    krbd_build::sysroot::lay_out(&debs, &sysroot, &krbd_progress::Silent).unwrap();
    let src = sysroot.join("usr/src");
    let kbuild = sysroot.join("usr/lib").join(&kbuild_name);
    let tree = root.join("devel-tree");
    run(Command::new("cp").arg("-a").arg(src.join(&common)).arg(&tree));
    for link in ["scripts", "tools"] {
        std::fs::remove_file(tree.join(link)).unwrap();
        run(Command::new("cp").arg("-a").arg(kbuild.join(link)).arg(tree.join(link)));
    }
    let arch = src.join(format!("linux-headers-{}", t.debian));
    for e in std::fs::read_dir(&arch).unwrap().flatten() {
        let name = e.file_name();
        if ["Makefile", "scripts", "tools"].contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        run(Command::new("cp").arg("-a").arg(e.path()).arg(&tree));
    }
    for f in ["include/config/kernel.release", "include/generated/utsrelease.h"] {
        let p = tree.join(f);
        let text = std::fs::read_to_string(&p).unwrap().replace(&t.debian, &t.el);
        std::fs::write(&p, text).unwrap();
    }
    std::fs::remove_dir_all(&sysroot).unwrap();
    tree
}

/// The source RPM and the kernel-devel RPM, with fast payloads.
fn build_rpms(top: &Path, tree: &Path, t: &Target) {
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
    std::fs::create_dir_all(top.join(format!("BUILD/kernel-{}", t.upstream))).unwrap();
    rpmbuild(&["-bb", "--noprep"]);
}

/// Both RPMs where the Rocky 9.2 vault keeps them, under `root/www`.
fn publish_vault_layout(root: &Path, top: &Path, t: &Target) {
    let www = root.join("www/rocky/9.2");
    let srpm_dir = www.join("BaseOS/source/tree/Packages/k");
    let devel_dir = www.join("AppStream/x86_64/os/Packages/k");
    std::fs::create_dir_all(&srpm_dir).unwrap();
    std::fs::create_dir_all(&devel_dir).unwrap();
    std::fs::rename(top.join("SRPMS").join(t.srpm()), srpm_dir.join(t.srpm())).unwrap();
    std::fs::rename(top.join("RPMS/x86_64").join(t.devel()), devel_dir.join(t.devel())).unwrap();
}
