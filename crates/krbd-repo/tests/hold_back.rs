//! The package relations that keep hosts safe, resolved by apt itself in a private root.
//!
//! A host runs the older of the two versions of Debian's kernel meta package
//! `linux-image-amd64` that the archive offers (its real records from `apt-cache show`),
//! with our line meta package and that kernel's modules package installed. A mirror offers
//! the newer kernel meta and image (real records again). Our repository, signed and served
//! on 127.0.0.1, first holds no proven set for the newer kernel: `apt upgrade` must keep the
//! kernel back. Then it offers the set (krbd-ship's real .deb, built for the newer kernel
//! through the shared test cache) and the line meta package at the newer version: the
//! kernel and its proven modules are upgraded in one transaction.

mod common;

use common::{apt_records, built_set, field, run, ship, text, throwaway_signer, AptRoot};
use krbd_progress::Silent;
use krbd_repo::{meta_deb, AptRepo, KernelMeta, LineMeta};
use krbd_testsupport::http::StaticServer;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL_META: &str = "linux-image-amd64";

/// `(version, release)` of the kernel meta package's oldest and newest record in the
/// archive's index: `Depends: linux-image-<release> (= <version>)`.
fn kernel_meta_versions() -> ((String, String), (String, String)) {
    let mut versions: Vec<(String, String)> = apt_records(KERNEL_META)
        .iter()
        .map(|r| KernelMeta::from_record(r).unwrap_or_else(|| panic!("a kernel meta record: {r}")))
        .map(|k| (k.version, k.release))
        .collect();
    versions.sort_by(|a, b| {
        let lt = Command::new("dpkg").args(["--compare-versions", &a.0, "lt", &b.0]).status().unwrap().success();
        if lt {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    assert!(versions.len() >= 2, "the archive offers two versions of {KERNEL_META}: {versions:?}");
    (versions[0].clone(), versions[versions.len() - 1].clone())
}

/// An index record (or a control file) as an installed package's dpkg status entry.
fn installed(record: &str) -> String {
    let mut out = String::new();
    for line in record.trim_end().lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Package: ") {
            out.push_str("Status: install ok installed\n");
        }
    }
    out.push('\n');
    out
}

/// The host's dpkg status with the older kernel installed: the packages apt on this host
/// would install or upgrade for `linux-image-amd64=<old>` (their real records) replace or
/// join the host's entries, so the installed state is one apt itself found consistent.
fn status_with_kernel(old_version: &str) -> String {
    let host = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let sim = run(Command::new("apt-get")
        .args(["-s", "--no-install-recommends", "install"])
        .arg(format!("{KERNEL_META}={old_version}")));
    let mut entries: Vec<String> =
        host.split("\n\n").map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect();
    for line in sim.lines().filter_map(|l| l.strip_prefix("Inst ")) {
        let name = line.split(' ').next().unwrap();
        let version = line.split('(').nth(1).and_then(|v| v.split(' ').next()).expect("Inst line with a version");
        let record = apt_records(&format!("{name}={version}")).remove(0);
        entries.retain(|e| field(e, "Package") != Some(name));
        entries.push(installed(&record).trim().to_string());
    }
    entries.iter().map(|e| format!("{e}\n\n")).collect()
}

/// A flat repository of index records only (no package files: apt only simulates).
fn mirror(dir: &Path, records: &[String]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let packages: String = records.iter().map(|r| format!("{}\n", r.trim_end())).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.join("Packages"), packages).unwrap();
    let release = run(Command::new("apt-ftparchive").arg("release").arg(".").current_dir(dir));
    std::fs::write(dir.join("Release"), release).unwrap();
    format!("deb [trusted=yes] file:{} ./\n", dir.display())
}

fn control_of(deb: &Path) -> String {
    run(Command::new("dpkg-deb").arg("-f").arg(deb))
}

fn line_meta(version: &str, release: &str, out: &Path) -> PathBuf {
    let kernel = KernelMeta { package: KERNEL_META.into(), version: version.into(), release: release.into() };
    meta_deb(&LineMeta { kernel, maintainer: "Test Maintainer <test@example.invalid>".into() }, out).expect("meta .deb")
}

/// `apt-get update`, then a simulated `apt upgrade` (`upgrade --with-new-pkgs`) or `apt
/// full-upgrade` (`dist-upgrade`): its `Inst`/`Remv` lines and its whole output.
/// Recommends are off: the mirror holds the kernel's records only, so the image's
/// Recommends (firmware, apparmor) cannot be met here, and apt's upgrade keeps back a
/// package whose Recommends break (on a host the full archive meets them).
fn upgrade(apt: &AptRoot, how: &str) -> (Vec<String>, String) {
    let update = apt.apt_get(&["update"]);
    assert!(update.status.success() && !text(&update).contains("W:"), "apt-get update:\n{}", text(&update));
    let mut args = vec!["-s", "-o", "APT::Install-Recommends=false"];
    if how == "upgrade" {
        args.push("--with-new-pkgs");
    }
    args.push(how);
    let out = apt.apt_get(&args);
    assert!(out.status.success(), "apt-get -s {how}:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let actions = stdout.lines().filter(|l| l.starts_with("Inst ") || l.starts_with("Remv ")).map(str::to_string);
    (actions.collect(), stdout)
}

#[test]
fn apt_upgrades_kernel_and_proven_set_together_and_holds_the_kernel_back_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ((old_v, old_rel), (new_v, new_rel)) = kernel_meta_versions();
    let set = built_set(Some(&new_rel), &d.join("out"));
    let new_modules = ship(&set, krbd_ship::Format::Deb, &d.join("debs"));
    let old_meta = line_meta(&old_v, &old_rel, &d.join("debs"));
    let new_meta = line_meta(&new_v, &new_rel, &d.join("debs"));

    // Installed: the older kernel, its proven modules (their control is the newer set's
    // with the older kernel's release and version: only its relations matter here) and the
    // line meta package at the older version.
    let old_modules = control_of(&new_modules).replace(&new_rel, &old_rel).replace(&new_v, &old_v);
    let status =
        format!("{}{}{}", status_with_kernel(&old_v), installed(&old_modules), installed(&control_of(&old_meta)));
    let kernel_records: Vec<String> = [&old_v, &new_v]
        .iter()
        .map(|v| apt_records(&format!("{KERNEL_META}={v}")).remove(0))
        .chain(
            [(&old_rel, &old_v), (&new_rel, &new_v)]
                .iter()
                .map(|(r, v)| apt_records(&format!("linux-image-{r}={v}")).remove(0)),
        )
        .collect();

    let (signer, public) = throwaway_signer(d, "hold");
    let repo = AptRepo {
        root: d.join("repo"),
        codename: "bookworm".into(),
        component: "main".into(),
        architectures: vec!["amd64".into()],
        origin: "krbd-forge-test".into(),
        label: "krbd-forge".into(),
    };
    repo.publish(&[old_meta], &signer, &Silent).expect("publish the installed meta package");
    let server = StaticServer::start(&repo.root, None);
    let sources = format!(
        "{}deb [signed-by={}] {} bookworm main\n",
        mirror(&d.join("mirror"), &kernel_records),
        public.display(),
        server.url("current")
    );
    let apt = AptRoot::new(&d.join("apt"), &sources, &status);

    // No proven set for the newer kernel: the kernel stays where it is, through `apt
    // upgrade` and through `apt full-upgrade` (which would remove our meta package to make
    // room, were it not Protected).
    for how in ["upgrade", "dist-upgrade"] {
        let (actions, out) = upgrade(&apt, how);
        assert!(actions.is_empty(), "{how} changed something without a proven set:\n{out}");
        assert!(out.contains("kept back") && out.contains(KERNEL_META), "{how} keeps {KERNEL_META} back:\n{out}");
    }

    // The proven set and the line meta package at the newer version: one transaction.
    repo.publish(&[new_modules.clone(), new_meta], &signer, &Silent).expect("publish the proven set");
    signer.stop_agent();
    let modules_pkg = format!("krbd-forge-modules-{new_rel}");
    for how in ["upgrade", "dist-upgrade"] {
        let (actions, out) = upgrade(&apt, how);
        let wanted = [
            format!("Inst {KERNEL_META} [{old_v}] ({new_v} "),
            format!("Inst linux-image-{new_rel} ({new_v} "),
            format!("Inst {modules_pkg} ("),
            format!("Inst krbd-forge-{KERNEL_META} [{old_v}] ({new_v} "),
        ];
        for want in &wanted {
            assert!(actions.iter().any(|l| l.starts_with(want)), "{how}: missing {want:?} in one apt run:\n{out}");
        }
        assert_eq!(actions.len(), wanted.len(), "{how} does exactly that:\n{out}");
    }
}
