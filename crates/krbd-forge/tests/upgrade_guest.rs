//! End to end on a guest (issue #14): a kernel upgrade through apt on a real Debian 12 root,
//! from one proven pair (kernel + its patched Ceph set) to the next, in QEMU under TCG.
//!
//! The two consecutive 6.12 ABIs `targets` lists last (O older, N newer) are built (the
//! shared forge cache makes that a cache hit) and packed by `krbd-forge package --format
//! deb`. A signed APT repository made by krbd-repo lives on the guest's own disk
//! (`file:/srv/krbd-repo/current`) and holds three generations:
//! 1. Debian's real linux-image-O and linux-base, the distribution's kernel meta package of
//!    the line at O's version, our krbd-forge-modules-O and line meta package, and the host
//!    package krbd-forge-host (this tree's glibc-2.17 krbd-host with the kernel hooks);
//! 2. plus Debian's real linux-image-N and the kernel meta at N's version: no proven set;
//! 3. plus krbd-forge-modules-N and our line meta at N's version.
//!
//! The kernel meta packages are built here with dpkg-deb, shaped like Debian's
//! (`Depends: linux-image-<release> (= <version>)`): the archive keeps only its newest
//! version. A stub providing `linux-initramfs-tool` stands in for initramfs-tools: the
//! guest boots with the test's own busybox initramfs, as install_guest does.
//!
//! Before the first boot, generation 1 is installed in a chroot on the host with apt. Two
//! boots of one disk:
//! - O's vmlinuz as apt installed it in /boot: modprobe loads the set from updates/krbd-forge
//!   (build-ids equal to the files in krbd-forge-modules-O, unequal to Debian's); the guest
//!   switches the repository's `current` link to generation 2: `apt-get upgrade
//!   --with-new-pkgs` (what `apt upgrade` runs) and `apt-get full-upgrade` keep the kernel
//!   back, no linux-image-N appears; then to generation 3: `apt-get upgrade --with-new-pkgs`
//!   installs linux-image-N and krbd-forge-modules-N in one apt transaction (one entry of
//!   apt's history.log), and the kernel hook run by linux-image-N's postinst says N's set
//!   loads. Plain `apt-get upgrade` never installs a package not installed before (a new
//!   kernel's image is one), so it would hold the kernel back even with a proven set.
//! - "Reboot": N's vmlinuz read back from the disk (equal to Debian's package content),
//!   modprobe loads N's set (build-ids of krbd-forge-modules-N), RBD images of a real Ceph
//!   cluster (in a network namespace) map, data written and read with equal checksums on
//!   both sides; then O's set is broken (one CRC flipped in rbd.ko) and O's postinst.d
//!   hooks run as linux-image-O's postinst runs them: the hook says so loudly, exit 0, and
//!   with KRBD_FORGE_HOOK_STRICT=yes it exits 10 (would be refused).

mod common;
mod install_common;

use common::{build, forge, input_deb, run, stock_module, target_krbd_host, two_newest_612, Built};
use install_common::{boot_root_disk, copy_tree, debian_rootfs, root_disk_initramfs, values, RootDiskBoot};
use krbd_fetch::deb::DebArchive;
use krbd_kmod::KernelModule;
use krbd_progress::Silent;
use krbd_repo::{AptRepo, KernelMeta, LineMeta, Signer};
use krbd_vm::guest::GuestEvent;
use krbd_vm::qemu::GuestNetwork;
use krbd_vm::{Cluster, ClusterSpec, KernelPackage};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODULES: [&str; 3] = ["libceph", "ceph", "rbd"];
const REPO_DIR: &str = "srv/krbd-repo";
const MAINTAINER: &str = "Test Maintainer <test@example.invalid>";

/// One kernel of the test: its proven set and packages.
struct Kernel {
    release: String,
    /// The Debian version of its linux-image package.
    version: String,
    built: Built,
    image_deb: PathBuf,
    /// krbd-forge-modules-<release>, as `package --format deb` writes it.
    modules_deb: PathBuf,
    /// GNU build-id of each module in that package (the published files).
    published: BTreeMap<String, String>,
}

impl Kernel {
    fn new(release: &str, debs: &Path) -> Kernel {
        let built = build(&["--kernel", release]);
        let image_deb = input_deb(&built.report, "image");
        let version = built.report["inputs"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["role"] == "image"))
            .and_then(|i| i["version"].as_str())
            .expect("the image input's version")
            .to_string();
        let out = forge()
            .args(["package", "--format", "deb", "--json", "--maintainer", MAINTAINER, "--out"])
            .arg(debs)
            .arg(&built.out)
            .output()
            .expect("run package");
        assert!(out.status.success(), "package --format deb: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("package --json");
        let modules_deb = PathBuf::from(v["path"].as_str().expect("path"));
        let published = build_ids_in_deb(&modules_deb);
        assert_eq!(published.len(), 3, "{} holds libceph, ceph, rbd: {published:?}", modules_deb.display());
        Kernel { release: release.into(), version, built, image_deb, modules_deb, published }
    }

    /// The distribution's kernel meta package of this kernel's line (`linux-image-6.12-amd64`).
    fn meta_name(&self) -> String {
        let mut parts = self.release.split(['.', '-', '+']);
        format!("linux-image-{}.{}-amd64", parts.next().unwrap(), parts.next().unwrap())
    }
}

/// The GNU build-id of each module (by name) among a package's `.ko` files.
fn build_ids_in_deb(deb: &Path) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    DebArchive::open(deb)
        .expect("open the modules package")
        .walk_data(|rel, entry| {
            let path = rel.to_string_lossy().into_owned();
            if let Some(name) = path.rsplit('/').next().and_then(|f| f.strip_suffix(".ko")) {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                ids.insert(name.to_string(), build_id(&bytes));
            }
            Ok(true)
        })
        .expect("walk the modules package");
    ids
}

fn build_id(module: &[u8]) -> String {
    let m = KernelModule::parse(module).expect("a module");
    m.section(".note.gnu.build-id").and_then(krbd_install::set::gnu_build_id).expect("a GNU build-id note")
}

/// A package made by dpkg-deb from a control file alone.
fn control_only_deb(control: &str, dir: &Path) -> PathBuf {
    let field = |name: &str| control.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap().to_string();
    let name = format!("{}_{}", field("Package"), field("Version"));
    let tree = dir.join(&name);
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::write(tree.join("DEBIAN/control"), control).unwrap();
    let deb = dir.join(format!("{name}.deb"));
    run(Command::new("dpkg-deb").args(["--build", "--root-owner-group"]).arg(&tree).arg(&deb));
    deb
}

/// The distribution's kernel meta package at `k`'s version, shaped like Debian's.
fn kernel_meta_deb(k: &Kernel, dir: &Path) -> PathBuf {
    control_only_deb(
        &format!(
            "Package: {}\nVersion: {v}\nArchitecture: amd64\nMaintainer: {MAINTAINER}\n\
             Depends: linux-image-{} (= {v})\nSection: kernel\nPriority: optional\n\
             Description: Linux for 64-bit PCs (meta-package, made by the test)\n",
            k.meta_name(),
            k.release,
            v = k.version
        ),
        dir,
    )
}

/// Our line's meta package at `k`'s version (krbd-repo's, as `follow` publishes it).
fn line_meta_deb(k: &Kernel, dir: &Path) -> PathBuf {
    let kernel = KernelMeta { package: k.meta_name(), version: k.version.clone(), release: k.release.clone() };
    krbd_repo::meta_deb(&LineMeta { kernel, maintainer: MAINTAINER.into() }, dir).expect("the line meta package")
}

/// `krbd-forge package --format host-deb` with this tree's glibc-2.17 krbd-host.
fn host_deb(dir: &Path) -> PathBuf {
    let out = forge()
        .args(["package", "--format", "host-deb", "--json", "--mtime", "1700000000", "--installer"])
        .arg(target_krbd_host())
        .arg("--out")
        .arg(dir)
        .output()
        .expect("run package");
    assert!(out.status.success(), "package host-deb: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(v["path"].as_str().unwrap())
}

/// A throwaway ed25519 signing key imported by krbd-repo; its armored public key.
fn throwaway_signer(dir: &Path) -> (Signer, String) {
    let maker = dir.join("key-maker");
    std::fs::create_dir_all(&maker).unwrap();
    let gpg = || {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&maker).args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]);
        c
    };
    run(gpg().args(["--quick-gen-key", "krbd-forge guest test <guest@example.invalid>", "ed25519", "sign", "never"]));
    let secret = dir.join("secret.asc");
    run(gpg().arg("--armor").arg("--output").arg(&secret).arg("--export-secret-keys"));
    let _ = Command::new("gpgconf").arg("--homedir").arg(&maker).args(["--kill", "gpg-agent"]).status();
    let signer = Signer::import(&secret, &dir.join("gpg"), None).expect("import the throwaway key");
    let public = signer.public_key_armored().expect("export the public key");
    (signer, public)
}

/// The repository's three generations on the root `root` (see the module's comment);
/// `current` is left at generation 1. Returns the generations' numbers.
fn publish_generations(root: &Path, o: &Kernel, n: &Kernel, work: &Path) -> [u64; 3] {
    let debs = work.join("debs");
    let linux_base = krbd_testsupport::debian_package("linux-base", None);
    let no_initramfs = control_only_deb(
        "Package: krbd-test-no-initramfs\nVersion: 1\nArchitecture: all\nMaintainer: Test <t@example.invalid>\n\
         Provides: linux-initramfs-tool\nDescription: the test boots with its own busybox initramfs\n",
        &debs,
    );
    let (signer, public) = throwaway_signer(work);
    std::fs::create_dir_all(root.join("etc/apt/keyrings")).unwrap();
    std::fs::write(root.join("etc/apt/keyrings/krbd-forge.asc"), public).unwrap();
    let repo = AptRepo {
        root: root.join(REPO_DIR),
        codename: "bookworm".into(),
        component: "main".into(),
        architectures: vec!["amd64".into()],
        origin: "krbd-forge-test".into(),
        label: "krbd-forge".into(),
    };
    let first = [
        linux_base,
        no_initramfs,
        o.image_deb.clone(),
        kernel_meta_deb(o, &debs),
        o.modules_deb.clone(),
        line_meta_deb(o, &debs),
        host_deb(&debs),
    ];
    let second = [n.image_deb.clone(), kernel_meta_deb(n, &debs)];
    let third = [n.modules_deb.clone(), line_meta_deb(n, &debs)];
    let generations = [&first[..], &second[..], &third[..]].map(|add| {
        // One second apart, so that each generation's Release carries a Date of its own
        // (apt-ftparchive writes whole seconds), as publishes by `follow` runs would.
        std::thread::sleep(Duration::from_millis(1100));
        repo.publish(add, &signer, &Silent).expect("publish a generation").generation
    });
    signer.stop_agent();
    switch_current(&root.join(REPO_DIR), generations[0]);
    generations
}

/// Points the repository's `current` at generation `number`, as krbd-repo switches: a new
/// link renamed over the old one.
fn switch_current(repo: &Path, number: u64) {
    let temp = repo.join("current.test");
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(format!("generations/{number}"), &temp).unwrap();
    std::fs::rename(&temp, repo.join(krbd_repo::CURRENT_LINK)).unwrap();
}

/// apt in a chroot of `root`, non-interactive, without Recommends (Debian's image
/// recommends apparmor and firmware the repository does not hold).
fn chroot_apt(root: &Path, args: &[&str]) -> String {
    run(Command::new("chroot")
        .arg(root)
        .args(["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        .args(["apt-get", "-y", "-o", "APT::Install-Recommends=false", "-o", "APT::Sandbox::User=root"])
        .args(["-o", "Dpkg::Use-Pty=0"])
        .args(args))
}

/// The guest's root: Debian 12 minbase, apt reading only the repository on its own disk,
/// generation 1 installed with apt (the line meta package pulls in the kernel meta,
/// linux-image-O and krbd-forge-modules-O), plus krbd-forge-host.
fn prepare_root(root: &Path, o: &Kernel, n: &Kernel, work: &Path) -> [u64; 3] {
    copy_tree(&debian_rootfs(), root);
    let generations = publish_generations(root, o, n, work);
    let _ = std::fs::remove_dir_all(root.join("etc/apt/sources.list.d"));
    std::fs::create_dir_all(root.join("etc/apt/sources.list.d")).unwrap();
    std::fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [signed-by=/etc/apt/keyrings/krbd-forge.asc] file:/{REPO_DIR}/current bookworm main\n"),
    )
    .unwrap();
    chroot_apt(root, &["update"]);
    let line_meta = krbd_repo::meta_package_name(&o.meta_name());
    chroot_apt(root, &["install", &line_meta, "krbd-forge-host"]);
    std::fs::copy("/bin/busybox", root.join("usr/local/bin/busybox")).expect("busybox-static");
    generations
}

/// O's published rbd.ko with one CRC of a symbol it imports from the kernel flipped, for the
/// hook to find; returns the symbol.
fn broken_rbd(o: &Kernel, dest: &Path) -> String {
    let mut rbd = Vec::new();
    DebArchive::open(&o.modules_deb)
        .unwrap()
        .walk_data(|rel, entry| {
            if rel.to_string_lossy().ends_with("/rbd.ko") {
                entry.read_to_end(&mut rbd).unwrap();
            }
            Ok(true)
        })
        .unwrap();
    let libceph = KernelModule::read(&o.built.out.join("libceph.ko")).unwrap();
    let parsed = KernelModule::parse(&rbd).unwrap();
    let import = parsed
        .versions
        .iter()
        .find(|v| v.name != "module_layout" && !libceph.exports.iter().any(|e| e.name == v.name))
        .expect("rbd imports a symbol from the kernel itself");
    krbd_kmod::corpus::set_import_crc(&mut rbd, &import.name, import.crc ^ 1).unwrap();
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(dest, rbd).unwrap();
    import.name.clone()
}

/// Shared by both guest scripts (bash on the real root).
const GUEST_PRELUDE: &str = r#"#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
echo 3 > /proc/sys/kernel/printk
say() { echo "KRBD|$*"; }
oneline() { tr '\n' ' ' | sed 's/ *$//'; }
report_dmesg() { dmesg -c | while IFS= read -r l; do say "dmesg|$1|$l"; done; }
# Output goes to /var/log/krbd-<label>.log, which the host reads back from the disk.
run() { label=$1; shift; "$@" >/var/log/krbd-$label.log 2>&1; say "value|rc_$label|$?"; }
say "begin|$(uname -r)"
for m in rbd ceph; do modprobe $m || say "value|modprobe_failed|$m"; done
for m in libceph ceph rbd; do
    say "buildid|$m|$(od -An -v -tx1 /sys/module/$m/notes/.note.gnu.build-id | tr -d ' \n')"
    say "value|path_$m|$(modinfo -n $m)"
done
images() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-*' | awk '$1 == "ii" {print $2}' | sort | oneline; }
export DEBIAN_FRONTEND=noninteractive
APT="apt-get -y -o APT::Install-Recommends=false -o Dpkg::Use-Pty=0"
"#;

/// Boot 1 (kernel O): the repository's `current` moves to generation $NO_SET, then $PROVEN.
const UPGRADE: &str = r#"
switch() { ln -sfn generations/$1 /srv/krbd-repo/current.new && mv -T /srv/krbd-repo/current.new /srv/krbd-repo/current; }
say "value|images_before|$(images)"
switch $NO_SET
run update_no_set $APT update
run upgrade_no_set $APT --with-new-pkgs upgrade
run full_upgrade_no_set $APT full-upgrade
say "value|images_no_set|$(images)"
switch $PROVEN
run update_proven $APT update
run upgrade_proven $APT --with-new-pkgs upgrade
say "value|images_proven|$(images)"
say "value|modules_n|$(dpkg-query -W -f='${db:Status-Abbrev}' krbd-forge-modules-$N)"
say "end"
sync
poweroff -f
"#;

/// Boot 2 (kernel N): the hook on a broken set for O, then RBD I/O against the cluster.
const REBOOT: &str = r#"
hook() { /etc/kernel/postinst.d/krbd-forge "$1" /boot/vmlinuz-$1; }
run hook_n hook $N
cp /opt/krbd/broken-rbd.ko /lib/modules/$O/updates/krbd-forge/rbd.ko
# As linux-image-O's postinst runs its hooks.
run hook_broken run-parts --report --exit-on-error --arg=$O --arg=/boot/vmlinuz-$O /etc/kernel/postinst.d
echo KRBD_FORGE_HOOK_STRICT=yes > /etc/default/krbd-forge
run hook_broken_strict hook $O
rm /etc/default/krbd-forge
modprobe e1000
mkdir -p /run/bb && /usr/local/bin/busybox --install -s /run/bb && export PATH=/run/bb:$PATH
"#;

struct Guest {
    disk: PathBuf,
    work: PathBuf,
}

/// Boots `kernel` with `initrd` on the guest's disk, running `/sbin/krbd-<phase>`.
fn boot(g: &Guest, kernel: &Path, initrd: &Path, phase: &str, network: Option<GuestNetwork>) -> Vec<GuestEvent> {
    let b = RootDiskBoot {
        disk: &g.disk,
        work: &g.work,
        kernel,
        initrd,
        memory_mb: 1536,
        timeout: Duration::from_secs(1200),
    };
    boot_root_disk(&b, phase, network).1
}

/// The build-ids the guest's kernel reports for its loaded modules.
fn loaded_build_ids(events: &[GuestEvent]) -> BTreeMap<String, String> {
    events
        .iter()
        .filter_map(|e| match e {
            GuestEvent::BuildIdNote { module, note_hex } => {
                let note = hex::decode(note_hex.trim()).unwrap_or_default();
                Some((module.clone(), krbd_install::set::gnu_build_id(&note).unwrap_or_else(|| "-".into())))
            }
            _ => None,
        })
        .collect()
}

/// A file of the (powered-off) guest's disk, read with debugfs.
fn disk_file(disk: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs").arg("-R").arg(format!("cat {path}")).arg(disk).output().expect("run debugfs");
    assert!(out.status.success(), "debugfs cat {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn disk_text(disk: &Path, path: &str) -> String {
    String::from_utf8_lossy(&disk_file(disk, path)).into_owned()
}

/// The guest's kernel as apt installed it (/boot/vmlinuz-<release>), checked equal to
/// Debian's package content, and an initramfs made from the package's modules.
fn installed_kernel(g: &Guest, k: &Kernel) -> (PathBuf, PathBuf) {
    let vmlinuz = disk_file(&g.disk, &format!("/boot/vmlinuz-{}", k.release));
    let pkg = KernelPackage::read(&k.image_deb, Some(&k.release)).expect("read linux-image");
    assert!(vmlinuz == pkg.vmlinuz, "/boot/vmlinuz-{} on the disk is the package's", k.release);
    let kernel = g.work.join(format!("vmlinuz-{}", k.release));
    std::fs::write(&kernel, vmlinuz).unwrap();
    let initrd = g.work.join(format!("initramfs-{}.cpio.gz", k.release));
    root_disk_initramfs(&pkg, &initrd);
    (kernel, initrd)
}

/// An ext4 image of `root` (which is removed), with room for the upgrade.
fn make_disk(root: &Path, work: &Path) -> PathBuf {
    let disk = work.join("disk.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-E", "root_owner=0:0", "-d"])
        .arg(root)
        .arg(&disk)
        .arg("3G"));
    std::fs::remove_dir_all(root).unwrap();
    disk
}

fn write_script(root: &Path, phase: &str, body: &str) {
    let p = root.join(format!("sbin/krbd-{phase}"));
    std::fs::write(&p, body).unwrap();
    run(Command::new("chmod").arg("755").arg(&p));
}

/// The set the guest's kernel runs: the published files' build-ids, loaded from our folder.
fn assert_runs_published_set(events: &[GuestEvent], k: &Kernel, stock: &BTreeMap<String, String>) {
    let v = values(events);
    assert!(events.contains(&GuestEvent::Begin { release: k.release.clone() }), "booted {}: {v:#?}", k.release);
    assert_eq!(loaded_build_ids(events), k.published, "{}: the loaded modules are the published files", k.release);
    for m in MODULES {
        assert_ne!(k.published[m], stock[m], "{m}: the published set is not Debian's");
        let path = &v[&format!("path_{m}")];
        assert!(path.contains(&format!("/lib/modules/{}/updates/krbd-forge/", k.release)), "{m}: {path}");
    }
}

/// Build-ids of Debian's own modules in the kernel's image package.
fn stock_build_ids(k: &Kernel) -> BTreeMap<String, String> {
    MODULES.iter().map(|m| (m.to_string(), build_id(&stock_module(&k.image_deb, m)))).collect()
}

/// Boot 1's apt runs, read back from the disk: kept back without a set, then one transaction.
fn assert_upgrade(g: &Guest, events: &[GuestEvent], o: &Kernel, n: &Kernel) {
    let v = values(events);
    let log = |label: &str| disk_text(&g.disk, &format!("/var/log/krbd-{label}.log"));
    let image = |k: &Kernel| format!("linux-image-{}", k.release);
    // Installed kernel images, beside the kernel meta package.
    let images =
        |key: &str| -> Vec<String> { v[key].split(' ').filter(|p| *p != o.meta_name()).map(String::from).collect() };
    assert_eq!(images("images_before"), [image(o)], "{v:#?}");
    for label in ["update_no_set", "upgrade_no_set", "full_upgrade_no_set", "update_proven", "upgrade_proven"] {
        assert_eq!(v[&format!("rc_{label}")], "0", "{label}:\n{}", log(label));
    }
    for label in ["upgrade_no_set", "full_upgrade_no_set"] {
        let out = log(label);
        assert!(out.contains("kept back") && out.contains(&o.meta_name()), "{label} keeps the kernel back:\n{out}");
        assert!(out.contains("0 upgraded, 0 newly installed, 0 to remove"), "{label} changes nothing:\n{out}");
    }
    assert_eq!(images("images_no_set"), [image(o)], "no new kernel without a proven set");
    assert_eq!(images("images_proven"), [image(o), image(n)], "{v:#?}");
    assert_eq!(v["modules_n"], "ii", "krbd-forge-modules-{} installed", n.release);
    let out = log("upgrade_proven");
    let hook_says = format!("kernel {}: its Ceph module set (libceph, ceph, rbd) loads on it", n.release);
    assert!(out.contains(&hook_says), "linux-image-N's postinst ran the krbd-forge hook:\n{out}");

    // apt's history: one entry (one transaction) installs both, upgrades both meta packages.
    let history = disk_text(&g.disk, "/var/log/apt/history.log");
    let entries: Vec<&str> = history.split("\n\n").filter(|e| e.contains("Commandline:")).collect();
    let last = entries.last().expect("apt's history");
    assert!(last.contains("--with-new-pkgs upgrade"), "the last transaction is the upgrade:\n{history}");
    let field = |name: &str| last.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").to_string();
    let (install, upgrade) = (field("Install: "), field("Upgrade: "));
    for pkg in [image(n), format!("krbd-forge-modules-{}", n.release)] {
        assert!(install.contains(&format!("{pkg}:amd64 ({}", n.version)), "{pkg} in one transaction:\n{last}");
    }
    for pkg in [n.meta_name(), krbd_repo::meta_package_name(&n.meta_name())] {
        assert!(upgrade.contains(&format!("{pkg}:amd64 ({}, {})", o.version, n.version)), "{pkg}:\n{last}");
    }
    let upgrades =
        entries.iter().filter(|e| e.lines().any(|l| l.starts_with("Commandline:") && l.contains("upgrade"))).count();
    assert_eq!(upgrades, 1, "the runs without a proven set changed nothing:\n{history}");
}

/// Boot 2's hook runs: N's set is fine; O's broken set is reported, strict exits 10.
fn assert_hook_reports_broken_set(g: &Guest, v: &BTreeMap<String, String>, n: &Kernel, o: &Kernel, symbol: &str) {
    let log = |label: &str| disk_text(&g.disk, &format!("/var/log/krbd-{label}.log"));
    assert_eq!(v["rc_hook_n"], "0", "{}", log("hook_n"));
    assert!(log("hook_n").contains(&format!("kernel {}: its Ceph module set", n.release)), "{}", log("hook_n"));
    let said = log("hook_broken");
    assert_eq!(v["rc_hook_broken"], "0", "a broken set does not break the kernel's installation: {said}");
    assert!(said.contains(&format!("WARNING: kernel {}", o.release)) && said.contains("REFUSED"), "{said}");
    assert!(said.contains(&format!("disagrees about version of symbol {symbol}")), "{said}");
    assert_eq!(v["rc_hook_broken_strict"], "10", "strict: {}", log("hook_broken_strict"));
}

#[test]
fn apt_upgrades_a_guest_to_the_next_kernel_with_its_proven_set_and_the_set_loads_after_reboot() {
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new().prefix("krbd-upgrade-guest.").tempdir_in("/var/tmp").unwrap();
    let work = tmp.path().to_path_buf();
    let (older, newer) = two_newest_612();
    let (o, n) = (Kernel::new(&older, &work.join("debs")), Kernel::new(&newer, &work.join("debs")));
    eprintln!("[{:>5.1} s] sets of {} and {} built and packaged", t0.elapsed().as_secs_f64(), o.release, n.release);

    let root = work.join("root");
    let [_, no_set, proven] = prepare_root(&root, &o, &n, &work);
    let symbol = broken_rbd(&o, &root.join("opt/krbd/broken-rbd.ko"));
    let names = format!("O={}\nN={}\nNO_SET={no_set}\nPROVEN={proven}\n", o.release, n.release);
    write_script(&root, "upgrade", &format!("{GUEST_PRELUDE}{names}{UPGRADE}"));
    eprintln!("[{:>5.1} s] guest root ready (generation 1 installed in a chroot)", t0.elapsed().as_secs_f64());

    let cluster_dir = work.join("ceph");
    let cluster =
        Cluster::start(&ClusterSpec { dir: cluster_dir, osds: 1, start_timeout: Duration::from_secs(180) }, &Silent)
            .unwrap_or_else(|e| panic!("cluster did not start: {e}"));
    let session = cluster.guest_session(&work, &Silent).unwrap_or_else(|e| panic!("guest session: {e}"));
    let pattern = session.extra_files().files.into_iter().find(|f| f.0 == "pattern.bin").expect("pattern.bin");
    std::fs::write(root.join("pattern.bin"), &pattern.2).unwrap();
    let reboot = format!("{GUEST_PRELUDE}{names}{REBOOT}{}\nsay end\nsync\npoweroff -f\n", session.guest_script());
    write_script(&root, "reboot", &reboot);
    let g = Guest { disk: make_disk(&root, &work), work: work.clone() };

    let (kernel, initrd) = installed_kernel(&g, &o);
    let events = boot(&g, &kernel, &initrd, "upgrade", None);
    assert_runs_published_set(&events, &o, &stock_build_ids(&o));
    assert_upgrade(&g, &events, &o, &n);
    eprintln!("[{:>5.1} s] boot 1: O's set loaded; kept back, then upgraded in one go", t0.elapsed().as_secs_f64());

    let (kernel, initrd) = installed_kernel(&g, &n);
    let events = boot(&g, &kernel, &initrd, "reboot", Some(session.network.clone()));
    assert_runs_published_set(&events, &n, &stock_build_ids(&n));
    let report = session.verify(&events, &Silent);
    assert!(report.problems.is_empty(), "RBD I/O on N's set: {:#?}", report);
    assert_hook_reports_broken_set(&g, &values(&events), &n, &o, &symbol);
    eprintln!("[{:>5.1} s] boot 2: N's set loaded, RBD data equal, broken set reported", t0.elapsed().as_secs_f64());
}
