//! `krbd-forge package`: formats, --json, exit codes, and `check` naming a signer.

mod common;

use common::{default_build, forge};
use serde_json::Value;
use std::process::Command;

#[test]
fn package_json_names_the_file_and_its_metadata() {
    let built = default_build();
    let dist = tempfile::tempdir().unwrap();
    let out = forge()
        .args(["package", "--format", "deb", "--compression", "gzip", "--json", "--out"])
        .arg(dist.path())
        .arg(&built.out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let path = std::path::PathBuf::from(v["path"].as_str().unwrap());
    assert!(path.is_file() && path.starts_with(dist.path()));
    assert_eq!(v["format"], "deb");
    assert_eq!(v["release"], built.report["release"]);
    let mut shape = v.clone();
    for k in ["path", "sha256", "size", "name", "version", "release"] {
        shape[k] = Value::String(format!("[{k}]"));
    }
    shape["details"] = Value::String("[details]".into());
    insta::assert_json_snapshot!("package_deb_json", shape);
}

#[test]
fn package_errors_have_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // An out folder without a report: bad input (5), and --json says so.
    let out = forge()
        .args(["package", "--format", "rpm", "--json", "--out"])
        .arg(dir.path().join("dist"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "bad-input");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no build-report.json"));
    assert!(!dir.path().join("dist").exists());

    // No out folder given and none below ./out: usage (2).
    let out = forge().args(["package", "--format", "tar"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OUT_FOLDER"));

    // An unknown digest for signing: usage (2).
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "x").unwrap();
    let out = forge()
        .args(["package", "--format", "tar", "--sign-key"])
        .arg(&key)
        .args(["--sign-hash", "md4"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256"));

    // A key that is not a key: bad input (5), openssl's reason shown.
    let built = default_build();
    let out = forge()
        .args(["package", "--format", "tar", "--compression", "gzip", "--sign-key"])
        .arg(&key)
        .arg("--out")
        .arg(dir.path().join("dist"))
        .arg(&built.out)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.path().join("dist").exists() || std::fs::read_dir(dir.path().join("dist")).unwrap().next().is_none());
}

#[test]
fn check_reports_the_signer_of_a_signed_module() {
    let built = default_build();
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-batch", "-x509", "-days", "30", "-sha256"])
        .args(["-subj", "/CN=check test key", "-newkey", "rsa:2048", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = forge()
        .args(["package", "--format", "tar", "--compression", "gzip", "--sign-key"])
        .arg(&key)
        .arg("--sign-cert")
        .arg(&cert)
        .arg("--out")
        .arg(dir.path())
        .arg(&built.out)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tarball = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    assert!(Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(&x).status().unwrap().success());
    let top = std::fs::read_dir(&x).unwrap().flatten().next().unwrap().path();
    let release = built.report["release"].as_str().unwrap();
    let out = forge()
        .arg("check")
        .args(["libceph", "ceph", "rbd"].map(|m| top.join(format!("{m}.ko"))))
        .args(["--kernel", release])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("signed by \"check test key\", key ").count(), 3, "{text}");
    assert!(text.contains("hash sha256"), "{text}");
}

/// Packages and `krbd-forge install` must put modules in the same folder: two copies of a
/// module under `updates/` leave depmod's choice between them to directory order.
#[test]
fn packages_and_install_share_the_module_folder() {
    // A made-up release: only the path rule is compared, nothing is fetched.
    let release = "6.12.0-1-amd64";
    assert_eq!(
        krbd_ship::layout::module_dir(release),
        format!("/lib/modules/{release}/{}", krbd_install::host::INSTALL_SUBDIR)
    );
}

#[test]
fn an_installer_that_needs_a_glibc_newer_than_2_17_is_refused() {
    let built = default_build();
    let dist = tempfile::tempdir().unwrap();
    // This host's /bin/true is linked against this host's glibc, newer than RHEL 7's.
    let out = forge()
        .args(["package", "--format", "tar", "--json", "--installer", "/bin/true", "--out"])
        .arg(dist.path())
        .arg(&built.out)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "bad-input");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("needs GLIBC_2.") && msg.contains("newer than glibc 2.17"), "{msg}");
    assert_eq!(std::fs::read_dir(dist.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn the_rpm_build_time_is_source_date_epoch_or_the_builds_not_1970() {
    let built = default_build();
    let published = std::fs::metadata(built.out.join("build-report.json")).unwrap().modified().unwrap();
    let published = published.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(published > 0);
    for (epoch, want) in [(Some("1700000000"), 1_700_000_000), (None, published)] {
        let dist = tempfile::tempdir().unwrap();
        let mut c = forge();
        c.args(["package", "--format", "rpm", "--compression", "gzip", "--json", "--out"]).arg(dist.path());
        c.arg(&built.out);
        match epoch {
            Some(e) => c.env("SOURCE_DATE_EPOCH", e),
            None => c.env_remove("SOURCE_DATE_EPOCH"),
        };
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let q = Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{BUILDTIME}"])
            .arg(v["path"].as_str().unwrap())
            .output()
            .expect("run rpm");
        let found: u64 = String::from_utf8_lossy(&q.stdout).trim().parse().unwrap_or_else(|_| panic!("{q:?}"));
        assert_eq!(found, want, "SOURCE_DATE_EPOCH {epoch:?}");
    }
}
