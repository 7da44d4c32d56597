//! The host package with real parts: `package --format host-deb|host-rpm` from this tree's
//! glibc-2.17 krbd-host (scripts/build-target-binary.sh), installed with `dpkg --root` into
//! a scratch root that holds the default target's real kernel (its image, config and
//! modules from the linux-image package); the installed hook then checks (a) the default
//! build's set, (b) no set, (c) the set with one CRC flipped. Also: the packages' file
//! lists, the kernel-install plugin from the RPM, `preflight --json`, and krbd-forge's own
//! man pages and completions.

mod common;
mod install_common;

use common::*;
use install_common::{extract_image_modules, CEPH_AND_DEPS};
use krbd_fetch::deb::DebArchive;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `package --format FORMAT` of the host package into `dir`; the written file.
fn host_package(format: &str, dir: &Path) -> PathBuf {
    let out = forge()
        .args(["package", "--format", format, "--json", "--mtime", "1700000000", "--installer"])
        .arg(target_krbd_host())
        .arg("--out")
        .arg(dir)
        .output()
        .expect("run krbd-forge package");
    assert!(out.status.success(), "package {format}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("package --json");
    assert_eq!(v["format"], format);
    assert_eq!(v["name"], "krbd-forge-host");
    PathBuf::from(v["path"].as_str().expect("path"))
}

/// The default target's release and linux-image package.
fn target() -> (String, PathBuf) {
    let built = default_build();
    (built.report["release"].as_str().expect("release").to_string(), input_deb(&built.report, "image"))
}

/// A root holding the installed kernel `release`: /boot's image and config, and the
/// Ceph modules with their dependencies, from the real linux-image package.
fn kernel_root(root: &Path) {
    let (release, image) = target();
    extract_image_modules(&image, &release, &CEPH_AND_DEPS, root);
    let wanted = [format!("boot/vmlinuz-{release}"), format!("boot/config-{release}")];
    DebArchive::open(&image)
        .expect("open linux-image")
        .walk_data(|rel, entry| {
            let path = rel.to_string_lossy().trim_start_matches("./").to_string();
            if wanted.contains(&path) {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                std::fs::create_dir_all(root.join("boot")).unwrap();
                std::fs::write(root.join(&path), data).unwrap();
            }
            Ok(true)
        })
        .expect("walk linux-image");
    assert!(root.join(&wanted[0]).is_file() && root.join(&wanted[1]).is_file());
}

/// Puts the default build's stripped set where the packages put it; `flip` flips one CRC
/// rbd imports from the kernel itself.
fn install_set(root: &Path, flip: bool) -> String {
    let (release, _) = target();
    let dir = root.join(format!("lib/modules/{release}/updates/krbd-forge"));
    std::fs::create_dir_all(&dir).unwrap();
    let stripped = default_build().out.join("stripped");
    let libceph = krbd_kmod::KernelModule::read(&stripped.join("libceph.ko")).unwrap();
    let mut flipped = String::new();
    for name in ["libceph", "ceph", "rbd"] {
        let mut bytes = std::fs::read(stripped.join(format!("{name}.ko"))).unwrap();
        if flip && name == "rbd" {
            let rbd = krbd_kmod::KernelModule::parse(&bytes).unwrap();
            let import = rbd
                .versions
                .iter()
                .find(|v| v.name != "module_layout" && !libceph.exports.iter().any(|e| e.name == v.name))
                .expect("rbd imports a symbol from the kernel itself");
            flipped = import.name.clone();
            krbd_kmod::corpus::set_import_crc(&mut bytes, &import.name, import.crc ^ 1).unwrap();
        }
        std::fs::write(dir.join(format!("{name}.ko")), bytes).unwrap();
    }
    flipped
}

/// Runs an installed hook script the way its caller does, against `root`.
fn run_hook(root: &Path, hook: &str, args: &[&str], strict: bool) -> Output {
    if strict {
        std::fs::create_dir_all(root.join("etc/default")).unwrap();
        std::fs::write(root.join("etc/default/krbd-forge"), "KRBD_FORGE_HOOK_STRICT=yes\n").unwrap();
    } else {
        let _ = std::fs::remove_file(root.join("etc/default/krbd-forge"));
    }
    Command::new("sh")
        .arg(root.join(hook.trim_start_matches('/')))
        .args(args)
        .env("DPKG_ROOT", root)
        .output()
        .expect("run the hook")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Checks the hook's three cases in `root`: status and what it says.
fn check_cases(root: &Path, hook: &str, args: &[&str]) {
    let (release, _) = target();
    let set = root.join(format!("lib/modules/{release}/updates/krbd-forge"));
    // (a) the built set loads.
    install_set(root, false);
    let o = run_hook(root, hook, args, false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stdout.is_empty(), "hooks write to stderr only: {}", text(&o));
    assert!(text(&o).contains("loads on it"), "{}", text(&o));
    // (b) no set: loud, but the kernel's installation goes on (status 0), unless strict.
    std::fs::remove_dir_all(&set).unwrap();
    let o = run_hook(root, hook, args, false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("WARNING") && text(&o).contains("no krbd-forge module set"), "{}", text(&o));
    let o = run_hook(root, hook, args, true);
    assert_eq!(o.status.code(), Some(3), "strict: {}", text(&o));
    // (c) one flipped CRC: the kernel would refuse rbd.
    let symbol = install_set(root, true);
    let o = run_hook(root, hook, args, false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("REFUSED") && said.contains(&format!("disagrees about version of symbol {symbol}")),
        "{said}"
    );
    let o = run_hook(root, hook, args, true);
    assert_eq!(o.status.code(), Some(10), "strict: {}", text(&o));
}

#[test]
fn the_debian_hook_of_the_installed_host_deb_reports_good_missing_and_broken_sets() {
    let dist = tempfile::tempdir().unwrap();
    let deb = host_package("host-deb", dist.path());
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["var/lib/dpkg/updates", "var/lib/dpkg/info"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    // The scratch root has no libc6 package: --force-depends.
    run(Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args(["--force-script-chrootless", "--force-not-root", "--force-depends", "--log=/dev/null", "-i"])
        .arg(&deb));
    let listed = run(Command::new("dpkg").arg(format!("--root={}", r.display())).args(["-L", "krbd-forge-host"]));
    assert!(listed.lines().any(|l| l == "/etc/kernel/postinst.d/krbd-forge"), "{listed}");
    let conffiles = run(Command::new("dpkg-query").arg(format!("--root={}", r.display())).args([
        "-W",
        "-f=${Conffiles}",
        "krbd-forge-host",
    ]));
    assert!(conffiles.contains("/etc/kernel/postinst.d/krbd-forge"), "{conffiles}");
    kernel_root(r);
    let (release, _) = target();
    let image = format!("/boot/vmlinuz-{release}");
    check_cases(r, "/etc/kernel/postinst.d/krbd-forge", &[&release, &image]);
}

#[test]
fn the_kernel_install_plugin_of_the_host_rpm_reports_good_missing_and_broken_sets() {
    let dist = tempfile::tempdir().unwrap();
    let rpm = host_package("host-rpm", dist.path());
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let cpio =
        run(Command::new("sh").arg("-c").arg("rpm2cpio \"$1\" | cpio -idm --quiet").arg("sh").arg(&rpm).current_dir(r));
    assert!(cpio.is_empty(), "{cpio}");
    kernel_root(r);
    let (release, _) = target();
    let plugin = "/usr/lib/kernel/install.d/99-krbd-forge.install";
    let image = format!("/lib/modules/{release}/vmlinuz");
    check_cases(r, plugin, &["add", &release, "/boot/entry", &image]);
    // Only "add" checks; never 77 (which would skip every later plugin).
    let o = run_hook(r, plugin, &["remove", &release], true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// What `rpm -qlp` and `dpkg-deb -c` list: the files in their standard places.
#[test]
fn host_packages_list_their_files() {
    let dist = tempfile::tempdir().unwrap();
    let deb = host_package("host-deb", dist.path());
    let rpm = host_package("host-rpm", dist.path());
    let deb_files: Vec<String> = run(Command::new("dpkg-deb").arg("-c").arg(&deb))
        .lines()
        .map(|l| format!("{} {}", &l[..10], l.split_whitespace().last().unwrap_or_default()))
        .collect();
    let rpm_files = run(Command::new("rpm").arg("-qlp").arg(&rpm));
    insta::assert_snapshot!("host_deb_contents", deb_files.join("\n"));
    insta::assert_snapshot!("host_rpm_files", rpm_files);
    let checked = run(Command::new("rpm").arg("-K").arg(&rpm));
    assert!(checked.contains("digests OK"), "{checked}");
    // The man pages inside render.
    let x = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(x.path()));
    let page = x.path().join("usr/share/man/man8/krbd-host-preflight.8.gz");
    let shown = run(Command::new("man").arg("-l").arg(&page).env("MANPAGER", "cat"));
    assert!(shown.contains("krbd-host-preflight") && shown.contains("RELEASE"), "{shown}");
}

#[test]
fn preflight_json_names_what_it_checked_against() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    kernel_root(r);
    let (release, _) = target();
    let o = forge().args(["preflight", &release, "--json", "--root"]).arg(r).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON error");
    assert_eq!(v["error"]["kind"], "target");
    assert_eq!(v["error"]["missing_set"], true);
    install_set(r, false);
    let o = forge().args(["preflight", &release, "--json", "--root"]).arg(r).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(v["checked_against"]["kind"], "image", "{v}");
    assert_eq!(v["modules"].as_array().map(Vec::len), Some(3), "{v}");
    let o = forge().args(["preflight", "no-such-release", "--root"]).arg(r).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

/// krbd-forge's own pages: one per command (section 1), each renders; bash completes.
#[test]
fn generated_man_pages_and_completions_cover_every_command() {
    let bin = assert_cmd::cargo::cargo_bin("krbd-forge");
    let dir = tempfile::tempdir().unwrap();
    forge().args(["generate", "man", "--out"]).arg(dir.path()).assert().success();
    let pages = krbd_testsupport::docs::check_man_pages(&bin, "1", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(pages >= 15, "{pages}");
    assert!(
        dir.path().join("krbd-forge-build.1").is_file() && dir.path().join("krbd-forge-placement-plan.1").is_file()
    );
    forge().args(["generate", "completions", "bash", "--out"]).arg(dir.path()).assert().success();
    krbd_testsupport::docs::check_bash_completion(&dir.path().join("krbd-forge"), "krbd-forge", "pref", "preflight")
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The installer tarball carries krbd-host's man pages and completions beside it, listed in
/// its manifest; the pages render in place.
#[test]
fn the_installer_tarball_carries_krbd_host_docs() {
    let dist = tempfile::tempdir().unwrap();
    let out = forge()
        .args(["package", "--format", "tar", "--json", "--installer"])
        .arg(target_krbd_host())
        .arg("--out")
        .arg(dist.path())
        .arg(&default_build().out)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar").arg("xf").arg(v["path"].as_str().unwrap()).arg("-C").arg(x.path()));
    let top = x.path().join(v["name"].as_str().unwrap());
    let checked = run(Command::new("sha256sum").arg("-c").arg("MANIFEST.sha256").current_dir(&top));
    for file in [
        "bin/krbd-host",
        "share/man/man8/krbd-host.8",
        "share/man/man8/krbd-host-preflight.8",
        "share/bash-completion/completions/krbd-host",
        "share/zsh/site-functions/_krbd-host",
        "share/fish/vendor_completions.d/krbd-host.fish",
    ] {
        assert!(checked.contains(&format!("{file}: OK")), "{file} not in the manifest:\n{checked}");
    }
    krbd_testsupport::docs::check_man_pages(&top.join("bin/krbd-host"), "8", &top.join("share/man/man8"))
        .unwrap_or_else(|e| panic!("{e}"));
    krbd_testsupport::docs::check_bash_completion(
        &top.join("share/bash-completion/completions/krbd-host"),
        "krbd-host",
        "ins",
        "install",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let readme = std::fs::read_to_string(top.join("README")).unwrap();
    assert!(readme.contains("man -l share/man/man8/krbd-host.8"), "{readme}");
}
