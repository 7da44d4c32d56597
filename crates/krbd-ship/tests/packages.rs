//! Each package format read back by the distributions' own tools: rpm, dpkg-deb, dpkg,
//! sha256sum, bash (for dkms.conf), and the kernel's sign-file for signatures.

mod common;

use common::{built, options, redact, run};
use krbd_kmod::set::SetError;
use krbd_kmod::KernelModule;
use krbd_ship::{Format, ShipError};
use std::path::Path;
use std::process::Command;

fn package(format: Format, dir: &Path) -> krbd_ship::PackageOutcome {
    krbd_ship::package(&built().out, &options(format, dir), &krbd_progress::Silent).expect("package")
}

fn release() -> String {
    krbd_ship::BuildSet::open(&built().out, false).expect("open").release().to_string()
}

#[test]
fn rpm_reads_back_with_kernel_pins_symbol_requirements_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(Format::Rpm, dir.path());
    opts.compression = krbd_ship::Compression::Xz;
    let out = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).expect("rpm");
    let rpm = out.path.clone();
    let rel = release();

    // Digests and sizes in the signature header: rpm -K recomputes them.
    let k = run(Command::new("rpm").arg("-K").arg(&rpm));
    assert!(k.trim_end().ends_with("digests OK"), "rpm -K: {k}");

    let info = run(Command::new("rpm").args(["-qip"]).arg(&rpm).env("TZ", "UTC"));
    let info: String = info.lines().filter(|l| !l.starts_with("Size ")).map(|l| format!("{l}\n")).collect();
    insta::assert_snapshot!("rpm_qip", redact(&info));

    // Every imported symbol that the set does not export itself is pinned to its CRC.
    let set = krbd_ship::BuildSet::open(&built().out, false).unwrap();
    let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    let lines: Vec<&str> = requires.lines().collect();
    assert!(lines.contains(&format!("kernel-uname-r = {rel}").as_str()), "{requires}");
    let libceph = &set.modules[0].parsed;
    let layout = libceph.version_of("module_layout").expect("module_layout CRC");
    assert!(lines.contains(&format!("kernel(module_layout) = 0x{layout:08x}").as_str()));
    let rbd = &set.modules[2].parsed;
    let mut checked = 0;
    for v in &rbd.versions {
        let own = libceph.exports.iter().any(|e| e.name == v.name);
        let line = format!("kernel({}) = 0x{:08x}", v.name, v.crc);
        assert_eq!(lines.contains(&line.as_str()), !own, "{line}: provided by libceph = {own}");
        checked += 1;
    }
    assert!(checked > 100, "rbd imports {checked} symbols");
    assert!(lines.iter().any(|l| l.starts_with("rpmlib(PayloadIsXz)")));

    let provides = run(Command::new("rpm").args(["-qp", "--provides"]).arg(&rpm));
    for m in ["libceph", "ceph", "rbd"] {
        assert!(provides.lines().any(|l| l == format!("kmod({m}.ko)")), "{provides}");
    }
    for e in libceph.exports.iter().take(20) {
        let line = format!("ksym({}) = 0x{:08x}", e.name, e.crc.expect("modversions CRC"));
        assert!(provides.lines().any(|l| l == line), "missing {line}");
    }

    let scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    insta::assert_snapshot!("rpm_scripts", redact(&scripts));

    let files = run(Command::new("rpm").args(["-qlp"]).arg(&rpm));
    insta::assert_snapshot!("rpm_files", redact(&files));

    // The payload holds exactly the shipped bytes.
    let x = tempfile::tempdir().unwrap();
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("rpm2cpio '{}' | cpio -idm --quiet", rpm.display()))
        .current_dir(x.path()));
    for m in &set.modules {
        let got = std::fs::read(x.path().join(format!("lib/modules/{rel}/updates/krbd-forge/{}.ko", m.name))).unwrap();
        assert_eq!(got, m.bytes, "{} in the payload", m.name);
    }
}

#[test]
fn packages_are_reproducible() {
    for format in [Format::Rpm, Format::Deb, Format::Tar] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pa = package(format, a.path());
        let pb = package(format, b.path());
        assert_eq!(std::fs::read(&pa.path).unwrap(), std::fs::read(&pb.path).unwrap(), "{format:?}");
        assert_eq!(pa.sha256, pb.sha256);
        if format == Format::Rpm {
            // The gzip payload variant passes rpm's digest checks too.
            let k = run(Command::new("rpm").arg("-K").arg(&pa.path));
            assert!(k.trim_end().ends_with("digests OK"), "rpm -K: {k}");
            let c = run(Command::new("rpm").args(["-qp", "--qf", "%{PAYLOADCOMPRESSOR}"]).arg(&pa.path));
            assert_eq!(c, "gzip");
        }
    }
}

#[test]
fn deb_has_control_data_and_installs_into_a_scratch_root() {
    let dir = tempfile::tempdir().unwrap();
    let deb = package(Format::Deb, dir.path()).path;
    let rel = release();
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    let fields: String = info
        .lines()
        .filter(|l| !l.trim_start().starts_with("size ") && !l.contains(" bytes, "))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("deb_info", redact(&fields));
    // The set depends on exactly the image it was built for: the version Debian's own index
    // gives linux-image-<release>.
    let image = run(Command::new("apt-cache").args(["show", "--no-all-versions", &format!("linux-image-{rel}")]));
    let image_version = image.lines().find_map(|l| l.strip_prefix("Version: ")).expect("apt knows the image").trim();
    let depends = format!("linux-image-{rel} (= {image_version}) | linux-image-{rel}-unsigned (= {image_version})");
    for (field, want) in [("Architecture", "amd64".to_string()), ("Depends", depends)] {
        let got = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(field));
        assert_eq!(got.trim(), want);
    }
    let size: u64 = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Installed-Size")).trim().parse().unwrap();
    let set = krbd_ship::BuildSet::open(&built().out, false).unwrap();
    assert!(size * 1024 >= set.modules_size(), "Installed-Size {size} KiB");

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    insta::assert_snapshot!("deb_contents", redact(&names.join("\n")));

    // Install into a scratch root: dpkg runs postinst on the host with DPKG_ROOT set, and
    // the script's depmod indexes that root.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(r.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", r.display()))
            .args(["--force-depends", "--force-script-chrootless", "--log=/dev/null"])
            .args(args))
    };
    dpkg(&["-i", deb.to_str().unwrap()]);
    let updates = r.join(format!("lib/modules/{rel}/updates/krbd-forge"));
    for m in &set.modules {
        let got = std::fs::read(updates.join(format!("{}.ko", m.name))).expect("module installed under updates/");
        assert_eq!(got, m.bytes);
    }
    let dep = std::fs::read_to_string(r.join(format!("lib/modules/{rel}/modules.dep"))).expect("postinst ran depmod");
    assert!(dep.contains("updates/krbd-forge/rbd.ko: updates/krbd-forge/libceph.ko"), "{dep}");
    let name = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Package"));
    dpkg(&["-r", name.trim()]);
    assert!(!updates.join("rbd.ko").exists(), "removal takes the modules away");
    let dep = std::fs::read_to_string(r.join(format!("lib/modules/{rel}/modules.dep"))).unwrap_or_default();
    assert!(!dep.contains("updates/krbd-forge/rbd.ko"), "postrm re-ran depmod: {dep}");
}

#[test]
fn tarball_unpacks_to_an_out_folder_whose_manifest_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(Format::Tar, dir.path());
    // Any ELF executable that runs on glibc 2.17 stands for the installer here (busybox-static
    // needs no glibc at all); the real one is tested in glibc_target.rs.
    opts.installer = Some("/bin/busybox".into());
    let out = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).expect("tar");
    assert!(out.warnings.is_empty());
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar").arg("xzf").arg(&out.path).arg("-C").arg(x.path()));
    let top = x.path().join(out.name.clone());
    let checked = run(Command::new("sha256sum").arg("-c").arg("MANIFEST.sha256").current_dir(&top));
    assert_eq!(checked.lines().count(), 6, "{checked}");
    let mut listed = krbd_ship::tarball::verify_manifest(&top).expect("manifest verifies");
    listed.sort();
    insta::assert_snapshot!("tar_files", listed.join("\n"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(top.join("bin/krbd-host")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    let readme = std::fs::read_to_string(top.join("README")).unwrap();
    assert!(readme.contains("sudo ./bin/krbd-host install ."), "{readme}");

    // The unpacked folder reads as a build's out folder.
    let set = krbd_ship::BuildSet::open(&top, false).expect("unpacked tarball is an out folder");
    assert_eq!(set.release(), release());

    // Damage is found.
    let mut rbd = std::fs::read(top.join("rbd.ko")).unwrap();
    let last = rbd.len() - 1;
    rbd[last] ^= 0xff;
    std::fs::write(top.join("rbd.ko"), &rbd).unwrap();
    let err = krbd_ship::tarball::verify_manifest(&top).unwrap_err();
    assert!(err.to_string().contains("rbd.ko") && err.to_string().contains("manifest says"), "{err}");
    rbd[last] ^= 0xff;
    std::fs::write(top.join("rbd.ko"), &rbd).unwrap();
    std::fs::write(top.join("extra.ko"), b"x").unwrap();
    let err = krbd_ship::tarball::verify_manifest(&top).unwrap_err();
    assert!(err.to_string().contains("not listed"), "{err}");
}

#[test]
fn tarball_refuses_an_installer_that_needs_a_newer_glibc() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(Format::Tar, dir.path());
    // The host's own /bin/true is built against this host's glibc, newer than 2.17.
    opts.installer = Some("/bin/true".into());
    let err = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).unwrap_err();
    let ShipError::InstallerNeedsNewerGlibc { version, library, .. } = &err else {
        panic!("{err}");
    };
    assert!(krbd_ship::tarball::glibc_version(version).unwrap() > (2, 17), "{err}");
    assert!(library.starts_with("libc.so"), "{err}");
    assert!(err.to_string().contains(version.as_str()), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 0, "nothing written");
}

#[test]
fn tarball_without_installer_says_how_to_pass_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = package(Format::Tar, dir.path());
    assert!(out.warnings.iter().any(|w| w.contains("--installer")), "{:?}", out.warnings);
    let mut opts = options(Format::Tar, dir.path());
    opts.installer = Some(built().out.join("build-report.json"));
    let err = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).unwrap_err();
    assert!(matches!(err, ShipError::BadInstaller { .. }), "{err}");
}

#[test]
fn dkms_tree_has_conf_sources_and_relocatable_kbuild() {
    let dir = tempfile::tempdir().unwrap();
    let out = package(Format::Dkms, dir.path());
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar").arg("xzf").arg(&out.path).arg("-C").arg(x.path()));
    let tree = x.path().join(out.details["tree"].as_str().unwrap());
    assert!(tree.starts_with(x.path().join("usr/src")));
    // DKMS sources dkms.conf with bash, with its own variables set.
    let script = "kernelver=KVER; kernel_source_dir=KSRC; . ./dkms.conf; \
        echo \"$PACKAGE_NAME-$PACKAGE_VERSION\"; echo \"${MAKE[0]}\"; \
        for i in 0 1 2; do echo \"${BUILT_MODULE_NAME[$i]} ${BUILT_MODULE_LOCATION[$i]} ${DEST_MODULE_LOCATION[$i]}\"; done; \
        echo \"$AUTOINSTALL $BUILD_EXCLUSIVE_KERNEL\"";
    let parsed = run(Command::new("bash").arg("-c").arg(script).current_dir(&tree));
    assert_eq!(tree.file_name().unwrap().to_str().unwrap(), parsed.lines().next().unwrap());
    insta::assert_snapshot!("dkms_conf_parsed", redact(&parsed));
    // The patched sources the build compiled are there, and no Kbuild names a build folder.
    let src = krbd_ship::dkms::sources_in_cache(
        &common::cache_root(),
        &krbd_ship::BuildSet::open(&built().out, false).unwrap(),
    )
    .unwrap();
    for rel in ["net/ceph/osdmap.c", "fs/ceph/super.c", "drivers/block/rbd.c", "include/linux/ceph/osdmap.h"] {
        assert_eq!(std::fs::read(tree.join(rel)).unwrap(), std::fs::read(src.join(rel)).unwrap(), "{rel}");
    }
    for k in ["Kbuild", "net/ceph/Kbuild", "fs/ceph/Kbuild", "drivers/block/Kbuild", "Makefile"] {
        let text = std::fs::read_to_string(tree.join(k)).unwrap();
        assert!(!text.contains(&src.display().to_string()) && !text.contains("/builds/"), "{k}: {text}");
    }
    let makefile = std::fs::read_to_string(tree.join("Makefile")).unwrap();
    assert!(makefile.contains("KBUILD_EXTRA_SYMBOLS=$(TOP)/net/ceph/Module.symvers"));
}

#[test]
fn dkms_without_the_builds_sources_says_to_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(Format::Dkms, dir.path());
    opts.cache_root = Some(dir.path().join("empty-cache"));
    let err = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).unwrap_err();
    assert!(matches!(err, ShipError::SourcesMissing { .. }), "{err}");
    assert!(err.to_string().contains("krbd-forge build --kernel"), "{err}");
}

#[test]
fn corrupt_out_folders_are_refused_and_nothing_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let dist = scratch.path().join("dist");
    let try_pack = |dir: &Path| krbd_ship::package(dir, &options(Format::Deb, &dist), &krbd_progress::Silent);

    let no_report = scratch.path().join("a");
    let out = common::copy_of_out(&no_report);
    std::fs::remove_file(out.join("build-report.json")).unwrap();
    let err = try_pack(&out).unwrap_err();
    assert!(matches!(err, ShipError::Set(SetError::NoReport { .. })), "{err}");
    assert!(err.to_string().contains("krbd-forge build"), "{err}");

    let missing = scratch.path().join("b");
    let out = common::copy_of_out(&missing);
    std::fs::remove_file(out.join("stripped/ceph.ko")).unwrap();
    std::fs::remove_file(out.join("ceph.ko")).unwrap();
    let err = try_pack(&out).unwrap_err();
    assert!(matches!(&err, ShipError::Set(SetError::MissingModule { file, .. }) if file == "ceph.ko"), "{err}");

    let changed = scratch.path().join("c");
    let out = common::copy_of_out(&changed);
    let mut rbd = std::fs::read(out.join("rbd.ko")).unwrap();
    rbd[100] ^= 1;
    std::fs::write(out.join("rbd.ko"), rbd).unwrap();
    let err = try_pack(&out).unwrap_err();
    assert!(matches!(err, ShipError::Set(SetError::Sha256Mismatch { .. })), "{err}");

    let garbage = scratch.path().join("d");
    let out = common::copy_of_out(&garbage);
    std::fs::write(out.join("build-report.json"), b"{\"format\": 1").unwrap();
    assert!(matches!(try_pack(&out).unwrap_err(), ShipError::Set(SetError::BadReport { .. })));

    assert!(!dist.exists() || std::fs::read_dir(&dist).unwrap().next().is_none(), "nothing written");
}

#[test]
fn signed_modules_match_the_kernels_sign_file_and_name_their_signer() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = common::throwaway_key(dir.path());
    let mut opts = options(Format::Tar, dir.path());
    opts.signing =
        Some(krbd_ship::sign::SigningKey { key: key.clone(), cert: Some(cert.clone()), hash: "sha256".into() });
    let out = krbd_ship::package(&built().out, &opts, &krbd_progress::Silent).expect("signed tar");
    assert!(out.signed);
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar").arg("xzf").arg(&out.path).arg("-C").arg(x.path()));
    let top = x.path().join(&out.name);
    krbd_ship::tarball::verify_manifest(&top).expect("manifest");
    let serial = run(Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(&cert));
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    for m in ["libceph", "ceph", "rbd"] {
        let signed = std::fs::read(top.join(format!("{m}.ko"))).unwrap();
        let parsed = KernelModule::parse(&signed).expect("signed module parses");
        let sig = parsed.signature.expect("signature");
        let signer = sig.signer.expect("PKCS#7 signer");
        assert_eq!(signer.signer.as_deref(), Some("krbd-forge throwaway test key"));
        assert_eq!(signer.hash, "sha256");
        assert_eq!(signer.key_id.replace(':', ""), serial.to_uppercase(), "key id is the certificate's serial");
        // modinfo (kmod) reads the same signature.
        let modinfo = run(Command::new("modinfo").arg("-F").arg("signer").arg(top.join(format!("{m}.ko"))));
        assert_eq!(modinfo.trim(), "krbd-forge throwaway test key");
    }
    // The kernel's own sign-file (from the target's linux-kbuild package) gives the same bytes.
    if let Some(sign_file) = find_sign_file() {
        let plain = built().out.join("stripped/rbd.ko");
        let copy = dir.path().join("rbd.ko");
        std::fs::copy(&plain, &copy).unwrap();
        run(Command::new(&sign_file).arg("sha256").arg(&key).arg(&cert).arg(&copy));
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(top.join("rbd.ko")).unwrap(), "same as sign-file");
    }
}

fn find_sign_file() -> Option<std::path::PathBuf> {
    let sysroots = common::cache_root().join("sysroots");
    for e in std::fs::read_dir(sysroots).ok()?.flatten() {
        for k in std::fs::read_dir(e.path().join("usr/lib")).into_iter().flatten().flatten() {
            let p = k.path().join("scripts/sign-file");
            if k.file_name().to_string_lossy().starts_with("linux-kbuild-6.12") && p.is_file() {
                return Some(p);
            }
        }
    }
    None
}
