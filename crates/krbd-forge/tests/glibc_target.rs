//! The host-side binary, krbd-host, must run on CentOS/RHEL 7 (glibc 2.17): built by
//! scripts/build-target-binary.sh with cargo-zigbuild, its highest GLIBC_x.y symbol
//! version must be at most 2.17.
//!
//! The build runs here once per test run (cargo-zigbuild and ziglang are installed by the
//! script when missing; its target folder is target/zigbuild, so an unchanged tree is a
//! fast no-op). Measured: a cold build of the whole krbd-forge this way took about 10
//! minutes on the project's 2-core machines while other builds ran; krbd-host is a fraction
//! of it, and incremental builds take seconds.

mod common;
mod hooks_off;

use object::elf::FileHeader64;
use object::read::elf::FileHeader;
use object::Endianness;
use std::process::Command;

/// Every version name the binary needs from shared libraries (`.gnu.version_r`), with its
/// library.
fn needed_versions(data: &[u8]) -> Vec<(String, String)> {
    let header = FileHeader64::<Endianness>::parse(data).expect("ELF64");
    let endian = header.endian().expect("endianness");
    let sections = header.sections(endian, data).expect("sections");
    let mut out = Vec::new();
    let Some((mut verneeds, link)) = sections.gnu_verneed(endian, data).expect("verneed") else {
        return out;
    };
    let strings = sections.strings(endian, data, link).expect("verneed strings");
    while let Some((need, mut auxes)) = verneeds.next().expect("verneed entry") {
        let file = String::from_utf8_lossy(need.file(endian, strings).expect("file name")).into_owned();
        while let Some(aux) = auxes.next().expect("vernaux entry") {
            let name = String::from_utf8_lossy(aux.name(endian, strings).expect("version name")).into_owned();
            out.push((file.clone(), name));
        }
    }
    out
}

/// `GLIBC_2.17` -> (2, 17).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor))
}

#[test]
fn target_binary_needs_at_most_glibc_2_17() {
    let root = krbd_testsupport::workspace_root();
    let out = krbd_testsupport::test_cache_dir().join("target-bin/krbd-host");
    let status = krbd_testsupport::with_lock("target-bin", || {
        Command::new("bash")
            .arg(root.join("scripts/build-target-binary.sh"))
            .arg(&out)
            .env("JOBS", "2")
            .status()
            .expect("run scripts/build-target-binary.sh")
    });
    assert!(status.success(), "scripts/build-target-binary.sh failed: {status}");
    let data = std::fs::read(&out).expect("the target binary");
    let needed = needed_versions(&data);
    let glibc: Vec<(u32, u32)> = needed.iter().filter_map(|(_, n)| glibc_version(n)).collect();
    assert!(!glibc.is_empty(), "no GLIBC versions found: {needed:?}");
    let highest = glibc.iter().max().copied().unwrap();
    let offenders: Vec<&(String, String)> =
        needed.iter().filter(|(_, n)| glibc_version(n).is_some_and(|v| v > (2, 17))).collect();
    assert!(highest <= (2, 17), "needs GLIBC_{}.{}: {offenders:?}", highest.0, highest.1);
    // Only the C library's own objects: nothing that a CentOS 7 host lacks.
    for (file, _) in &needed {
        assert!(
            [
                "libc.so.6",
                "libm.so.6",
                "libpthread.so.0",
                "libdl.so.2",
                "librt.so.1",
                "libutil.so.1",
                "ld-linux-x86-64.so.2",
                "libgcc_s.so.1"
            ]
            .contains(&file.as_str()),
            "needs {file}"
        );
    }
    // And it runs here.
    let v = Command::new(&out).arg("--version").output().expect("run the target binary");
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("krbd-host "));
    // The slim binary: the host-side commands only.
    let help = Command::new(&out).arg("--help").output().expect("run the target binary");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for command in ["install", "rollback", "status", "check"] {
        assert!(help.lines().any(|l| l.starts_with(&format!("  {command} "))), "{command} missing:\n{help}");
    }
    for forge_only in ["build", "boot-test", "placement", "package"] {
        assert!(!help.lines().any(|l| l.starts_with(&format!("  {forge_only} "))), "{forge_only}:\n{help}");
    }
    // Built as it ships (no `test-hooks` feature, whatever this test run enables): the
    // installer's fault-injection variables do nothing.
    hooks_off::ignores_the_hooks(&out);

    // It is what the tarball ships as its installer.
    let built = common::default_build();
    let dist = tempfile::tempdir().unwrap();
    let pack = common::forge()
        .args(["package", "--format", "tar", "--compression", "gzip", "--json", "--installer"])
        .arg(&out)
        .arg("--out")
        .arg(dist.path())
        .arg(&built.out)
        .output()
        .unwrap();
    assert!(pack.status.success(), "{}", String::from_utf8_lossy(&pack.stderr));
    let v: serde_json::Value = serde_json::from_slice(&pack.stdout).unwrap();
    assert_eq!(v["details"]["installer"], true);
    let x = tempfile::tempdir().unwrap();
    let tar = Command::new("tar").arg("xzf").arg(v["path"].as_str().unwrap()).arg("-C").arg(x.path()).status().unwrap();
    assert!(tar.success());
    let shipped = x.path().join(v["name"].as_str().unwrap()).join("bin/krbd-host");
    assert_eq!(std::fs::read(shipped).unwrap(), data);
}

#[test]
fn glibc_versions_parse() {
    assert_eq!(glibc_version("GLIBC_2.17"), Some((2, 17)));
    assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
    assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
    assert!((2, 3) < (2, 17) && (2, 18) > (2, 17));
}
