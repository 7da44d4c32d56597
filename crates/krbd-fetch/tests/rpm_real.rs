//! RPMs made by the real `rpmbuild` (Debian's `rpm` package), read back with
//! `krbd_fetch::rpm`: every payload compressor, a source package, and digests.

use krbd_fetch::rpm::{payload::PayloadCompressor, RpmPackage};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = r#"Name: demo-devel
Version: 3.10.0
Release: 957.el7
Summary: a kernel-devel look-alike
License: GPL-2.0
BuildArch: x86_64
Source0: linux-demo.tar.gz
Patch1: fix.patch
Provides: kernel-devel-x86_64 = %{version}-%{release}
Requires: perl

%description
test

%prep

%build

%install
mkdir -p %{buildroot}/usr/src/kernels/%{version}-%{release}.x86_64/include/linux/ceph
mkdir -p %{buildroot}/lib/modules/%{version}-%{release}.x86_64
echo 'CONFIG_CEPH_LIB=m' > %{buildroot}/usr/src/kernels/%{version}-%{release}.x86_64/.config
echo '#define X 1' > %{buildroot}/usr/src/kernels/%{version}-%{release}.x86_64/include/linux/ceph/x.h
ln -s /usr/src/kernels/%{version}-%{release}.x86_64 %{buildroot}/lib/modules/%{version}-%{release}.x86_64/build

%files
/usr/src/kernels
/lib/modules/%{version}-%{release}.x86_64/build
"#;

fn rpmbuild(top: &Path, args: &[&str], payload: &str) -> PathBuf {
    let out = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("_binary_payload {payload}"))
        .arg("--define")
        .arg(format!("_source_payload {payload}"))
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--nodeps")
        .args(args)
        .arg(top.join("SPECS/demo.spec"))
        .output()
        .expect("rpmbuild runs (scripts/install-deps.sh installs Debian's rpm package)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = if args.contains(&"-bs") { top.join("SRPMS") } else { top.join("RPMS/x86_64") };
    let found = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let moved = top.join(format!("{}.{}", payload.replace('.', "-"), found.file_name().unwrap().to_string_lossy()));
    std::fs::rename(&found, &moved).unwrap();
    moved
}

fn tree(top: &Path) {
    for d in ["SPECS", "SOURCES", "BUILD", "RPMS", "SRPMS"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    std::fs::write(top.join("SPECS/demo.spec"), SPEC).unwrap();
    std::fs::write(top.join("SOURCES/linux-demo.tar.gz"), b"not really a tarball").unwrap();
    std::fs::write(top.join("SOURCES/fix.patch"), b"--- a/x\n+++ b/x\n").unwrap();
}

#[test]
fn binary_packages_with_every_compressor() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    for (payload, compressor) in [
        ("w9.gzdio", PayloadCompressor::Gzip),
        ("w2.xzdio", PayloadCompressor::Xz),
        ("w3.zstdio", PayloadCompressor::Zstd),
        ("w9.bzdio", PayloadCompressor::Bzip2),
    ] {
        let path = rpmbuild(dir.path(), &["-bb"], payload);
        let rpm = RpmPackage::open(&path).unwrap();
        assert_eq!(rpm.compressor(), compressor, "{payload}");
        assert_eq!(rpm.info.nvra(), "demo-devel-3.10.0-957.el7.x86_64");
        assert!(!rpm.info.is_source);
        assert!(rpm.info.requires.iter().any(|d| d.name == "perl"));
        assert!(rpm
            .info
            .provides
            .iter()
            .any(|d| d.name == "kernel-devel-x86_64" && d.constraint == "= 3.10.0-957.el7"));
        assert!(rpm
            .info
            .files
            .iter()
            .any(|f| f.path == "/usr/src/kernels/3.10.0-957.el7.x86_64/include/linux/ceph/x.h"));
        let dest = dir.path().join(format!("root-{payload}"));
        let (out, checked) = rpm.extract(&dest, |r| Some(r.to_path_buf())).unwrap();
        assert!(checked.header_sha256 && checked.payload_digest, "{payload}: {checked:?}");
        assert!(out.files.len() >= 3);
        let k = dest.join("usr/src/kernels/3.10.0-957.el7.x86_64");
        assert_eq!(std::fs::read_to_string(k.join(".config")).unwrap(), "CONFIG_CEPH_LIB=m\n");
        assert_eq!(std::fs::read_to_string(k.join("include/linux/ceph/x.h")).unwrap(), "#define X 1\n");
        // The absolute link now points inside the extraction folder.
        let build = dest.join("lib/modules/3.10.0-957.el7.x86_64/build");
        assert!(build.join(".config").is_file(), "{payload}");
    }
}

#[test]
fn source_package_lists_spec_tarball_and_patches() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let path = rpmbuild(dir.path(), &["-bs"], "w9.gzdio");
    let rpm = RpmPackage::open(&path).unwrap();
    assert!(rpm.info.is_source && rpm.lead.is_source);
    let mut names = Vec::new();
    let checked = rpm
        .walk_payload(|e| {
            names.push(e.path.display().to_string());
            Ok(true)
        })
        .unwrap()
        .unwrap();
    names.sort();
    assert_eq!(names, ["demo.spec", "fix.patch", "linux-demo.tar.gz"]);
    assert!(checked.header_sha256);
}

#[test]
fn truncated_real_package_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let path = rpmbuild(dir.path(), &["-bb"], "w2.xzdio");
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.rpm");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let err = RpmPackage::open(&cut).and_then(|r| r.verify()).unwrap_err();
    assert!(matches!(err, krbd_fetch::FetchError::CorruptRpm { .. }), "{err}");
    assert!(err.to_string().contains("fetch it again"), "{err}");
}
