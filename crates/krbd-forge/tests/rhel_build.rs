//! The RHEL-family path end to end. No CentOS or Rocky mirror is reachable here, so the
//! test makes one: Debian's 6.12 kernel source is repackaged into a real source RPM (with
//! rpmbuild; its spec's %prep applies a patch touching net/ceph and one that touches no
//! Ceph file) and Debian's 6.12 headers into a kernel-devel RPM laid out like CentOS's
//! (`/usr/src/kernels/<release>/`, one folder, scripts included), released as
//! `<upstream version>-284.1.el9_2.x86_64`. Both are served from 127.0.0.1 in the Rocky
//! vault's layout, and `krbd-forge build` finds them through the catalog. The modules must
//! equal the Debian path's for the same kernel, except for what %prep changed. The Debian
//! kernel is the default target (the one the other build tests use), so the packages are
//! already in the shared test cache.

mod common;

use common::rhel::{fixture, targets};
use common::*;
use krbd_kmod::KernelModule;
use krbd_testsupport::http::StaticServer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: [&str; 3] = ["libceph", "ceph", "rbd"];

fn module(out: &Path, file: &str) -> KernelModule {
    let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{}: {e}", out.join(file).display()));
    KernelModule::parse(&bytes).expect("parse built module")
}

fn crcs(m: &KernelModule) -> BTreeMap<String, u32> {
    m.versions.iter().map(|v| (v.name.clone(), v.crc)).collect()
}

#[test]
fn rpm_path_through_the_catalog_equals_the_debian_path_plus_prep() {
    let (t, www) = fixture();
    let server = StaticServer::start(&www, None);
    let rocky = format!("rocky={}", server.url("rocky"));
    let el = build(&["--kernel", &t.el, "--mirror", &rocky, "--series", "none"]);
    let deb = build(&["--kernel", &t.debian, "--series", "none"]);

    // What was fetched, and from where: the Rocky 9.2 vault layout.
    let log = server.requests();
    assert!(log.iter().all(|l| l.contains("/rocky/9.2/")), "only the catalog's URLs were asked for: {log:?}");
    let roles: Vec<&str> = el.report["inputs"].as_array().unwrap().iter().filter_map(|i| i["role"].as_str()).collect();
    assert_eq!(roles, ["srpm", "kernel-devel"]);
    // No --rpm-key: each RPM's signature status is recorded (the fixture's are unsigned).
    for input in el.report["inputs"].as_array().unwrap() {
        assert_eq!(input["signature"]["status"], "unsigned", "{input:#}");
    }
    assert_eq!(el.report["release"], t.el.as_str());

    // %prep: the Ceph half of the test patch applied, the other half and the empty patch not.
    let prep = &el.report["prep"];
    assert_eq!(prep["tarball"], format!("linux-{}-284.1.el9_2.tar.xz", t.upstream), "{prep:#}");
    let patches = prep["patches"].as_array().expect("prep patches");
    assert_eq!(patches.len(), 2, "{prep:#}");
    assert_eq!(patches[0]["name"], "linux-kernel-test.patch");
    assert_eq!(patches[0]["outcome"], "applied");
    assert_eq!(patches[0]["ceph_files"], serde_json::json!(["net/ceph/ceph_common.c"]));
    assert_eq!(patches[1]["outcome"], "empty");
    let hunks = prep["series"]["patches"][0]["hunks"].as_array().expect("hunks");
    assert_eq!(hunks.len(), 1, "only the Ceph file's hunk: {prep:#}");
    // At the line the patch names, or at an offset in a later 6.12 release.
    assert!(hunks[0]["status"] == "applied" || hunks[0]["status"] == "offset", "{prep:#}");

    for name in MODULES {
        let file = format!("{name}.ko");
        let (a, b) = (module(&el.out, &file), module(&deb.out, &file));
        // The release is the only difference in the version magic.
        let (va, vb) = (a.vermagic().unwrap_or(""), b.vermagic().unwrap_or(""));
        assert!(va.starts_with(&format!("{} ", t.el)), "{name}: {va}");
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
    let again = build(&["--kernel", &t.el, "--mirror", &rocky, "--series", "none"]);
    assert_eq!(again.report["cache_hit"], true);
    assert_eq!(again.report["build_key"], el.report["build_key"]);

    // The same packages as local files give the same build.
    let local = build(&[
        "--series",
        "none",
        "--srpm",
        www.join("rocky/9.2/BaseOS/source/tree/Packages/k").join(t.srpm()).to_str().unwrap(),
        "--devel-rpm",
        www.join("rocky/9.2/AppStream/x86_64/os/Packages/k").join(t.devel()).to_str().unwrap(),
    ]);
    assert_eq!(local.report["release"], t.el.as_str(), "the release comes from the kernel-devel RPM");
    assert_eq!(local.report["build_key"], el.report["build_key"]);
}

#[test]
fn targets_shows_the_catalog_and_a_missing_package_is_a_fetch_error() {
    let (t, www) = fixture();
    let server = StaticServer::start(&www, None);
    let rocky = format!("rocky={}", server.url("rocky"));
    let out = forge().args(["targets", "--json", "--mirror", &rocky, &t.el]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "rhel");
    assert_eq!(v["srpm"][0]["url"], server.url(&format!("rocky/9.2/BaseOS/source/tree/Packages/k/{}", t.srpm())));

    // An erratum the mirror does not have: every place is named, exit 4.
    let missing = forge()
        .args(["build", "--json", "--series", "none", "--distro", "rocky", "--mirror", &rocky])
        .args(["--kernel", &format!("{}-284.2.el9_2.x86_64", t.upstream)])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", String::from_utf8_lossy(&missing.stderr));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("not found") && err.contains("/rocky/9.2/"), "{err}");
}

#[test]
fn damaged_rpm_from_the_mirror_is_refused() {
    let (t, www) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let good = www.join("rocky/9.2/AppStream/x86_64/os/Packages/k").join(t.devel());
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 0x55;
    let bad = dir.path().join("kernel-devel-damaged.rpm");
    std::fs::write(&bad, &bytes).unwrap();
    let srpm = www.join("rocky/9.2/BaseOS/source/tree/Packages/k").join(t.srpm());
    let out = forge()
        .args(["build", "--series", "none", "--kernel", &t.el, "--srpm"])
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
    let (t, six_one) = targets();
    assert!(t.debian.starts_with("6.12."), "the default target is a 6.12 ABI: {}", t.debian);
    let dir = tempfile::tempdir().unwrap();
    let out = forge()
        .args(["build", "--json", "--series", "none", "--out"])
        .arg(dir.path())
        .args(["--kernel", &six_one, "--kernel", &t.debian])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], 0, "{v:#}");
    let rows = v["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, release) in rows.iter().zip([six_one.as_str(), t.debian.as_str()]) {
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
        .args(["--kernel", &t.debian, "--kernel", "3.10.0-958.el7.x86_64"])
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(3));
    let table = String::from_utf8_lossy(&mixed.stdout);
    assert!(table.contains("1 built, 1 failed"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("3.10.0-958.el7.x86_64") && l.contains("target (3)")), "{table}");
}

#[test]
fn rpm_key_refuses_unsigned_packages_and_debian_targets() {
    let (t, www) = fixture();
    let dir = tempfile::Builder::new().prefix("krbd-key").tempdir_in("/tmp").unwrap();
    let home = dir.path().join("g");
    std::fs::create_dir(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = dir.path().join("key.asc");
    let gpg = |args: &[&str]| {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&home).args(["--batch", "--no-tty", "--passphrase", ""]).args(args);
        run(&mut c);
    };
    gpg(&["--quick-gen-key", "Test Vendor <v@example.org>", "rsa2048", "sign", "never"]);
    gpg(&["--armor", "--output", key.to_str().unwrap(), "--export", "Test Vendor"]);
    let _ = Command::new("gpgconf").arg("--homedir").arg(&home).args(["--kill", "all"]).status();

    // The fixture's RPMs are unsigned: with a key they are refused before anything is built.
    let out_dir = dir.path().join("out");
    let out = forge()
        .args(["build", "--series", "none", "--kernel", &t.el, "--out"])
        .arg(&out_dir)
        .arg("--srpm")
        .arg(www.join("rocky/9.2/BaseOS/source/tree/Packages/k").join(t.srpm()))
        .arg("--devel-rpm")
        .arg(www.join("rocky/9.2/AppStream/x86_64/os/Packages/k").join(t.devel()))
        .arg("--rpm-key")
        .arg(&key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("carries no OpenPGP signature"), "{err}");
    assert!(!out_dir.join(&t.el).exists());

    // Debian targets have no RPMs to check: the flag is a usage error, not ignored.
    let out = forge().args(["build", "--kernel", &t.debian, "--rpm-key"]).arg(&key).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--rpm-key"), "{err}");
}

/// An el7 GA release of the catalog with a variant in the shipped series (`true`) or
/// without one (`false`); vault releases do not move, but the series may gain variants.
fn el7_release(with_variant: bool) -> String {
    let dir = krbd_testsupport::workspace_root().join("patches/recovery-weight");
    let series = krbd_build::patch::SeriesSource::open(&dir).unwrap();
    [123, 229, 327, 514, 693, 862, 957, 1062, 1127, 1160]
        .iter()
        .map(|build| format!("3.10.0-{build}.el7.x86_64"))
        .find(|r| series.select(r).is_ok() == with_variant)
        .unwrap_or_else(|| panic!("no el7 GA release {} a variant", if with_variant { "with" } else { "without" }))
}

/// An el8 release: the shipped series has no variant for any.
const EL8: &str = "4.18.0-372.9.1.el8_6.x86_64";

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/vault")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn no_variant_and_no_distribution_compiler_are_refused_before_any_download() {
    let empty = tempfile::tempdir().unwrap();
    let server = StaticServer::start(empty.path(), None);
    let mirrors: Vec<String> =
        ["centos", "rocky", "alma"].iter().map(|site| format!("--mirror={site}={}", server.url(site))).collect();
    let dir = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str]| forge().args(["build", "--out"]).arg(dir.path()).args(&mirrors).args(args).output().unwrap();
    // No variant: exit 6, naming the variants there are and what --series none builds.
    for release in [EL8.to_string(), el7_release(false)] {
        let out = run(&["--kernel", &release]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(6), "{release}: {err}");
        assert!(err.contains(&format!("recovery-weight has no variant for {release}")), "{err}");
        assert!(err.contains("el7-327 (3.10.0-327.*)") && err.contains("linux-6.1-6.12"), "{err}");
        assert!(err.contains("`build --series none` builds the stock libceph, ceph and rbd"), "{err}");
        assert!(!err.contains("/series/"), "the series by its name, not its cache folder: {err}");
    }
    // A variant, or no series, but not the distribution's compiler on this (Debian) host.
    let host_gcc = Command::new("gcc").arg("-dumpfullversion").output().map(|o| o.stdout).unwrap_or_default();
    assert!(
        !host_gcc.starts_with(b"4.8") && !host_gcc.starts_with(b"8."),
        "this test needs a gcc other than el7's/el8's"
    );
    for (release, series, system) in
        [(el7_release(true), "recovery-weight", "centos:7"), (EL8.to_string(), "none", "Rocky or Alma 8")]
    {
        let out = run(&["--kernel", &release, "--series", series]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(7), "{release}: {err}");
        assert!(err.contains("this host's gcc is") && err.contains(system), "{err}");
        assert!(err.contains("nothing was downloaded"), "{err}");
    }
    // `patch check` of a release without a variant: refused before the source RPM is fetched.
    let out = forge().args(["patch", "check", "--source", EL8]).args(&mirrors).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("has no variant for") && err.contains("--series none"), "{err}");
    assert_eq!(server.requests(), Vec::<String>::new(), "nothing may be downloaded");
}

#[test]
fn targets_says_which_variant_or_that_there_is_none() {
    let out = forge().args(["targets", EL8]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("vault"), "the URLs are still listed: {text}");
    assert!(text.contains("patch series recovery-weight: no variant for this release"), "{text}");
    assert!(
        text.contains(&format!("`build --kernel {EL8} --series none` builds its stock libceph, ceph and rbd")),
        "{text}"
    );
    assert!(text.contains("compiler: Red Hat's gcc 8"), "{text}");

    let out = forge().args(["targets", "--json", EL8]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    assert_eq!(v["patch"]["series"], "recovery-weight");
    assert_eq!(v["patch"]["variant"], serde_json::Value::Null);
    let names: Vec<&str> =
        v["patch"]["variants"].as_array().unwrap().iter().filter_map(|x| x["name"].as_str()).collect();
    assert!(names.contains(&"el7-327"), "{v:#}");
    assert!(v["patch"]["summary"].as_str().unwrap().contains("--series none"), "{v:#}");

    let with = el7_release(true);
    let out = forge().args(["targets", "--json", &with]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("targets --json");
    assert!(v["patch"]["variant"]["name"].as_str().is_some_and(|n| n.starts_with("el7-")), "{v:#}");
    assert!(v["compiler"].as_str().is_some_and(|c| c.contains("gcc 4.8")), "{v:#}");
}

#[test]
fn an_unreachable_mirror_is_said_once_with_its_override() {
    let closed = closed_port_url();
    // build, with the mirror from the environment ...
    let (t, _) = targets();
    let el = format!("{}-284.1.el9_2.x86_64", t.upstream);
    let out = forge()
        .env("KRBD_FORGE_MIRROR_ROCKY", &closed)
        .args(["build", "--json", "--series", "none", "--distro", "rocky", "--kernel", &el])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "the failure once: {err}");
    assert!(!err.contains("warning"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    let hint = v["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("--mirror rocky=URL") && hint.contains("KRBD_FORGE_MIRROR_ROCKY"), "{v:#}");
    assert_eq!(v["error"]["message"].as_str().unwrap_or_default().matches("Connection refused").count(), 1);
    // ... and patch check of an el7 release, through the catalog (not apt), by flag.
    let release = el7_release(true);
    let out = forge()
        .args(["patch", "check", "--source", &release, "--mirror"])
        .arg(format!("centos={closed}"))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(!err.contains("apt offers no kernel"), "an RHEL release is not looked up in apt: {err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "two URLs, one failure: {err}");
    assert!(err.contains(&format!("the centos mirror {}", closed.trim_end_matches("/vault"))), "{err}");
    assert!(err.contains("--mirror centos=URL") && err.contains("KRBD_FORGE_MIRROR_CENTOS"), "{err}");
}

#[test]
fn patch_check_of_an_rhel_release_fetches_only_the_source_rpm_and_checks_its_variant() {
    let (t, www) = fixture();
    let server = StaticServer::start(&www, None);
    // A series with a variant for the fixture's release and one for other kernels.
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("rw");
    let shipped = krbd_testsupport::workspace_root().join("patches/recovery-weight/linux-6.1-6.12");
    std::fs::create_dir(&series).unwrap();
    for variant in ["other", "el9-fixture"] {
        run(Command::new("cp").arg("-a").arg(&shipped).arg(series.join(variant)));
    }
    std::fs::write(
        series.join("variants.toml"),
        "[[variant]]\nname = \"other\"\nreleases = [\"6.1.*\"]\n\n\
         [[variant]]\nname = \"el9-fixture\"\nreleases = [\"*.el9_2.x86_64\"]\n",
    )
    .unwrap();
    let out = forge()
        .args(["patch", "check", "--json", "--distro", "rocky", "--source", &t.el, "--series"])
        .arg(&series)
        .arg("--mirror")
        .arg(format!("rocky={}", server.url("rocky")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("patch check --json");
    assert!(v["source"].as_str().unwrap().starts_with(&t.srpm()), "{v:#}");
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 1, "only the release's variant: {v:#}");
    assert_eq!(variants[0]["series"], "rw/el9-fixture");
    assert_eq!(variants[0]["applies"], true, "{v:#}");
    let log = server.requests();
    assert!(!log.is_empty() && log.iter().all(|l| l.contains(&t.srpm())), "only the source RPM: {log:?}");
}
