//! `krbd-forge patch check` from the outside: what a wrong --source says.

mod common;

use common::forge;

#[test]
fn a_missing_source_path_is_no_such_file_with_exit_9() {
    let out = forge().args(["patch", "check", "--source", "/no/such/dir", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("/no/such/dir: no such file"), "{stderr}");
    assert!(!stderr.contains("is not a kernel release"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(v["error"]["kind"], "environment");
    assert_eq!(v["error"]["exit_code"], 9);
}

#[test]
fn a_missing_tarball_in_the_working_folder_is_no_such_file_too() {
    let cwd = tempfile::tempdir().unwrap();
    let out = forge().current_dir(cwd.path()).args(["patch", "check", "--source", "linux.tar.xz"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("linux.tar.xz: no such file"), "{stderr}");
}

#[test]
fn a_malformed_release_is_still_a_target_error() {
    let out = forge().args(["patch", "check", "--source", "not a release"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not a kernel release"), "{stderr}");
}

/// `krbd-forge targets --json`: the default release and its Debian version.
fn default_target() -> (String, String) {
    let out = forge().args(["targets", "--json"]).output().unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    let default = rows.as_array().unwrap().iter().find(|r| r["default"] == true).expect("a default target");
    (default["release"].as_str().unwrap().to_string(), default["version"].as_str().unwrap().to_string())
}

#[test]
fn a_release_needs_only_its_source_package() {
    let (release, version) = default_target();
    let major_minor: Vec<&str> = release.split(['.', '-', '+']).take(2).collect();
    let source = krbd_testsupport::debian_package(&format!("linux-source-{}", major_minor.join(".")), Some(&version));
    // A fresh cache, so that nothing resolved earlier answers for apt; the source .deb is
    // linked in (it is what `apt-get download` would fetch, under its sha256), and its
    // extracted Ceph files copied from the shared cache (extracting them takes half a minute).
    let cache = tempfile::tempdir_in(krbd_testsupport::test_cache_dir()).unwrap();
    let sha = krbd_formats::digest::sha256_file(&source, |_| {}).unwrap();
    std::fs::create_dir(cache.path().join("debs")).unwrap();
    std::fs::hard_link(&source, cache.path().join("debs").join(format!("{sha}.deb"))).unwrap();
    let shared = krbd_fetch::cache::Cache::open(common::cache_dir()).unwrap();
    let (subset, _) = krbd_build::source::cached_subset(&shared, &source, &sha, &krbd_progress::Silent).unwrap();
    let copy = cache.path().join(subset.strip_prefix(shared.root()).unwrap());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp").arg("-a").arg(&subset).arg(&copy).status().unwrap();
    assert!(status.success());
    // apt as on a mirror that lost every package but the headers and the source: a build
    // could not resolve this release; checking the patches of its source must not care.
    let bin = cache.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = cache.path().join("apt-cache.log");
    let wrapper = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nfor a do shift; case $a in linux-kbuild-*|linux-image-*|linux-headers-*-common*) continue;; esac; set -- \"$@\" \"$a\"; done\nexec /usr/bin/apt-cache \"$@\"\n",
        log.display()
    );
    std::fs::write(bin.join("apt-cache"), wrapper).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("apt-cache"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let out = forge()
        .env("PATH", path)
        .env("KRBD_FORGE_CACHE", cache.path())
        .args(["patch", "check", "--json", "--source", &release])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("patch check --json");
    assert_eq!(v["source"], format!("linux-source-{} {version}", major_minor.join(".")));
    assert!(v["variants"].as_array().unwrap().iter().any(|c| c["applies"] == true), "{v:#}");
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!asked.contains("linux-kbuild") && !asked.contains("linux-image"), "only headers and source: {asked}");
}
