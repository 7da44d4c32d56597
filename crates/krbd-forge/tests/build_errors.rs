//! Bad input: each gets a clear message, its documented exit code, and leaves no
//! half-written out folder.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;

fn release() -> String {
    default_build().report["release"].as_str().unwrap().to_string()
}

struct Failure {
    code: i32,
    stderr: String,
}

fn build_fails(out: &Path, args: &[&str]) -> Failure {
    let o = forge().args(["build", "--out"]).arg(out).args(args).output().expect("run build");
    assert!(!o.status.success(), "build {args:?} should fail");
    Failure { code: o.status.code().unwrap_or(-1), stderr: String::from_utf8_lossy(&o.stderr).into_owned() }
}

/// Nothing but an empty out folder (no release folder, no partial or old copies).
fn assert_out_untouched(out: &Path) {
    let left: Vec<_> = std::fs::read_dir(out).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "out folder has leftovers: {left:?}");
}

fn series_dir(patch: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("series"), "0001-test.patch\n").unwrap();
    std::fs::write(d.path().join("0001-test.patch"), patch).unwrap();
    d
}

#[test]
fn unknown_release_names_the_near_ones() {
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", "6.1.0-999-amd64"]);
    assert_eq!(f.code, 3, "{}", f.stderr);
    assert!(f.stderr.contains("apt offers no kernel 6.1.0-999-amd64"), "{}", f.stderr);
    assert!(f.stderr.contains("near ones: 6.1.0-"), "{}", f.stderr);
    assert_out_untouched(out.path());
}

#[test]
fn malformed_release_is_refused_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", "../../etc"]);
    assert_eq!(f.code, 3, "{}", f.stderr);
    assert!(f.stderr.contains("is not a kernel release"), "{}", f.stderr);
}

#[test]
fn truncated_source_package_is_a_bad_input() {
    let built = default_build();
    let source = std::fs::read(input_deb(&built.report, "source")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("linux-source-truncated.deb");
    std::fs::write(&cut, &source[..source.len() / 3]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", &release(), "--source-tarball", cut.to_str().unwrap()]);
    assert_eq!(f.code, 5, "{}", f.stderr);
    assert!(f.stderr.contains("corrupt or truncated"), "{}", f.stderr);
    assert_out_untouched(out.path());
}

#[test]
fn tarball_without_ceph_sources_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("linux-9.9.tar.xz");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_path("linux-9.9/Makefile").unwrap();
    h.set_cksum();
    tar.append(&h, &b"all:"[..]).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar.into_inner().unwrap()).unwrap();
    std::fs::write(&tarball, xz.finish().unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", &release(), "--source-tarball", tarball.to_str().unwrap()]);
    assert_eq!(f.code, 5, "{}", f.stderr);
    assert!(f.stderr.contains("no Ceph sources") && f.stderr.contains("net/ceph/osdmap.c"), "{}", f.stderr);
    assert_out_untouched(out.path());
}

#[test]
fn patch_that_does_not_apply_shows_the_hunk_and_where() {
    let series = series_dir(
        "Subject: [PATCH] broken\n\n---\n--- a/net/ceph/ceph_common.c\n+++ b/net/ceph/ceph_common.c\n\
@@ -10,3 +10,3 @@\n this line\n-is not in\n+the file\n at all\n",
    );
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", &release(), "--series", series.path().to_str().unwrap()]);
    assert_eq!(f.code, 6, "{}", f.stderr);
    assert!(f.stderr.contains("0001-test.patch does not apply"), "{}", f.stderr);
    assert!(f.stderr.contains("net/ceph/ceph_common.c hunk #1 failed"), "{}", f.stderr);
    assert!(f.stderr.contains("looked for it from line 10"), "{}", f.stderr);
    assert!(f.stderr.contains("-is not in"), "the hunk is shown: {}", f.stderr);
    assert_out_untouched(out.path());
}

#[test]
fn compiler_failure_shows_the_first_errors_and_the_log() {
    let series = series_dir(
        "Subject: [PATCH] break the build\n\n---\n--- a/net/ceph/ceph_strings.c\n+++ b/net/ceph/ceph_strings.c\n\
@@ -1,2 +1,3 @@\n // SPDX-License-Identifier: GPL-2.0\n+#error krbd-forge test: this must not compile\n #include <linux/module.h>\n",
    );
    let out = tempfile::tempdir().unwrap();
    let f = build_fails(out.path(), &["--kernel", &release(), "--series", series.path().to_str().unwrap()]);
    assert_eq!(f.code, 8, "{}", f.stderr);
    assert!(f.stderr.contains("compiling libceph failed"), "{}", f.stderr);
    assert!(f.stderr.contains("error: #error krbd-forge test"), "{}", f.stderr);
    assert!(f.stderr.contains("libceph.log"), "{}", f.stderr);
    assert_out_untouched(out.path());
}

/// A tmpfs mounted for the test; unmounted on drop.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mounting a tmpfs needs root (the test suite runs as root)");
        Mount(dir)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn no_space_in_out_is_an_environment_error_and_leaves_nothing() {
    default_build();
    let small = Mount::tmpfs("size=2m");
    let f = build_fails(small.0.path(), &["--kernel", &release()]);
    assert_eq!(f.code, 9, "{}", f.stderr);
    assert!(f.stderr.contains("No space left") && f.stderr.contains("hint: no space left"), "{}", f.stderr);
    assert_out_untouched(small.0.path());
}

#[test]
fn read_only_out_is_an_environment_error() {
    default_build();
    let ro = Mount::tmpfs("ro,size=1m");
    let f = build_fails(&ro.0.path().join("out"), &["--kernel", &release()]);
    assert_eq!(f.code, 9, "{}", f.stderr);
    assert!(f.stderr.contains("hint: cannot write there"), "{}", f.stderr);
}
