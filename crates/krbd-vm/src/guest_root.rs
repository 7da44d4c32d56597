//! The suite guest's root file system: a Debian 12 made with debootstrap, holding the Ceph
//! client tools (`rbd`, `rados`, `ceph`, the udev rules and `ceph-rbdnamer`), udev, the file
//! system tools, python3 and cram. Built once into the cache as an ext4 image, keyed by the
//! recipe (suite, package list, [`RECIPE_VERSION`]): a changed list builds a new image, an
//! equal one reuses it. The image is never written after that: guests attach it with their
//! writes going to a throwaway overlay ([`crate::qemu::Drive::discard_writes`]), so any
//! number of guests share it at once.
//!
//! Building is atomic (a staging folder renamed into place) and serialised by a lock file,
//! so concurrent builders wait for the first and then reuse its image.

use crate::process::run_with_timeout;
use crate::{IoAction, VmError};
use krbd_formats::digest::sha256_hex;
use krbd_progress::{Listener, Unit};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bump when the way the image is made changes (not the package list: that is in the key).
/// 2: the `ubuntu` user.
pub const RECIPE_VERSION: u32 = 2;

/// The account Ceph's QA machines have (teuthology's), with its uid: some of Ceph's
/// workunits hand files to it (`map-snapshot-io.sh`: `sudo chown ubuntu /sys/bus/rbd/add`).
pub const QA_USER: &str = "ubuntu";
const QA_UID: u32 = 1000;

/// The Debian release the root is made of (the Ceph client of the test cluster, 16.2.15).
pub const SUITE: &str = "bookworm";

/// What the suites need besides debootstrap's minbase: the Ceph client and its udev
/// rules, udev itself, module tools, file systems, python3 with cram (0.7), and the small
/// tools Ceph's workunits call (`sudo`, `jq`, `xxd`, `hexdump`, `ip`, `ping`, `ps`, `killall`).
pub const DEFAULT_PACKAGES: &[&str] = &[
    "ceph-common",
    "udev",
    "kmod",
    "xfsprogs",
    "e2fsprogs",
    "util-linux",
    "python3",
    "python3-cram",
    "iproute2",
    "iputils-ping",
    "sudo",
    "jq",
    "procps",
    "psmisc",
    "bsdextrautils",
    "xxd",
];

/// Free space left in the image beyond its files, for what tests write to the root
/// (`$TESTDIR`, /tmp is a tmpfs).
const FREE_BYTES: u64 = 1 << 30;

/// debootstrap of a few hundred packages takes minutes; more means a stuck mirror.
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(1800);

/// How to make the root.
#[derive(Debug, Clone)]
pub struct GuestRootSpec {
    /// The cache root; the image goes to `guest-root/<key>/root.ext4` under it.
    pub cache_dir: PathBuf,
    /// The Debian mirror debootstrap downloads from (apt's configured one).
    pub mirror: String,
    /// Packages on top of minbase.
    pub packages: Vec<String>,
}

/// A built root image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuestRoot {
    pub image: PathBuf,
    /// The cache key: a hash of the recipe and the package list.
    pub key: String,
    /// Seconds spent building it in this call; `None` when the cache had it.
    pub built_secs: Option<f64>,
}

impl GuestRootSpec {
    /// The default package list, from apt's configured Debian mirror.
    pub fn new(cache_dir: PathBuf) -> Self {
        GuestRootSpec {
            cache_dir,
            mirror: configured_mirror(),
            packages: DEFAULT_PACKAGES.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The cache key: recipe version, suite and the sorted package list (not the mirror:
    /// every mirror serves the same archive).
    pub fn key(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let recipe = format!("v{RECIPE_VERSION}\n{SUITE}\n{}\n", packages.join("\n"));
        format!("{SUITE}-{}", &sha256_hex(recipe.as_bytes())[..16])
    }
}

/// The first `http(s)://…/debian` URI of apt's sources (deb822 or one-line format), or
/// deb.debian.org.
pub fn configured_mirror() -> String {
    let mut texts: Vec<String> = std::fs::read_to_string("/etc/apt/sources.list").into_iter().collect();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f.to_string_lossy();
            if name.ends_with(".list") || name.ends_with(".sources") {
                texts.extend(std::fs::read_to_string(&f).ok());
            }
        }
    }
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://")) && w.trim_end_matches('/').ends_with("/debian")
        })
        .map(|w| w.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// The root image for `spec`: from the cache, or built now (under a lock; another process
/// building the same key is waited for).
pub fn ensure(spec: &GuestRootSpec, listener: &dyn Listener) -> Result<GuestRoot, VmError> {
    let key = spec.key();
    let base = spec.cache_dir.join("guest-root");
    let dir = base.join(&key);
    let image = dir.join("root.ext4");
    if image.is_file() {
        return Ok(GuestRoot { image, key, built_secs: None });
    }
    std::fs::create_dir_all(&base).map_err(crate::boot::io_err(IoAction::Create, &base))?;
    let lock_path = base.join(format!("{key}.lock"));
    let _lock = FileLock::acquire(&lock_path)?;
    if image.is_file() {
        return Ok(GuestRoot { image, key, built_secs: None });
    }
    let start = Instant::now();
    listener.task_start(&format!("building the guest root {key} (debootstrap, once)"), Some(3), Unit::Steps);
    let result = build(spec, &base, &key, listener);
    listener.task_finish();
    result?;
    Ok(GuestRoot { image, key, built_secs: Some(start.elapsed().as_secs_f64()) })
}

/// debootstrap into a staging folder, trim, make the ext4 image, rename into place.
fn build(spec: &GuestRootSpec, base: &Path, key: &str, listener: &dyn Listener) -> Result<(), VmError> {
    let staging = base.join(format!("{key}.tmp"));
    let _ = std::fs::remove_dir_all(&staging);
    let tree = staging.join("tree");
    std::fs::create_dir_all(&staging).map_err(crate::boot::io_err(IoAction::Create, &staging))?;
    debootstrap(&spec.packages, &spec.mirror, &tree, &staging.join("debootstrap.log"))?;
    listener.task_progress(1);
    trim_and_prepare(&tree)?;
    listener.task_progress(2);
    let image = staging.join("root.ext4");
    let bytes = tree_bytes(&tree)? + FREE_BYTES;
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-L", "krbd-root", "-E", "root_owner=0:0", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg(format!("{}K", bytes / 1024));
    run_step(cmd, "mkfs.ext4", Duration::from_secs(600), &staging.join("mkfs.log"))?;
    listener.task_progress(3);
    let _ = std::fs::remove_dir_all(&tree);
    let dest = base.join(key);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&staging, &dest).map_err(crate::boot::io_err(IoAction::Write, &dest))?;
    Ok(())
}

/// A Debian 12 minbase with `packages` into the folder `tree` (made; must not exist),
/// docs, manuals, locales and apt's downloads removed; debootstrap's output kept in `log`.
/// Also the base of the install test's root (minbase + kmod), which adds its own files.
pub fn debootstrap(packages: &[String], mirror: &str, tree: &Path, log: &Path) -> Result<(), VmError> {
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", &format!("--include={}", packages.join(",")), SUITE]).arg(tree).arg(mirror);
    run_step(cmd, "debootstrap", DEBOOTSTRAP_TIMEOUT, log)?;
    for d in ["var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"] {
        let _ = std::fs::remove_dir_all(tree.join(d));
    }
    Ok(())
}

/// Runs one build step, its output kept in `log`; a failure names the step and the log.
fn run_step(mut cmd: Command, step: &'static str, timeout: Duration, log: &Path) -> Result<(), VmError> {
    match run_with_timeout(&mut cmd, timeout) {
        Ok(out) => {
            let _ = std::fs::write(log, out);
            Ok(())
        }
        Err(e) => {
            let detail = e.to_string();
            let _ = std::fs::write(log, &detail);
            Err(VmError::GuestRoot { step, log: log.to_path_buf(), detail })
        }
    }
}

/// Adds what the suite's init expects: the payload disk's mount point, a host name, an
/// empty fstab, `cram`, and the QA user.
fn trim_and_prepare(tree: &Path) -> Result<(), VmError> {
    let write = |rel: &str, text: &str| {
        let p = tree.join(rel);
        std::fs::write(&p, text).map_err(crate::boot::io_err(IoAction::Write, &p))
    };
    for d in ["krbd", "lib/modules", "etc/ceph"] {
        let p = tree.join(d);
        std::fs::create_dir_all(&p).map_err(crate::boot::io_err(IoAction::Create, &p))?;
    }
    write("etc/hostname", "krbd-guest\n")?;
    write("etc/hosts", "127.0.0.1 localhost krbd-guest\n")?;
    write("etc/fstab", "")?;
    // Debian's python3-cram names its command cram3.
    let cram = tree.join("usr/local/bin/cram");
    let _ = std::fs::create_dir_all(tree.join("usr/local/bin"));
    let _ = std::fs::remove_file(&cram);
    std::os::unix::fs::symlink("/usr/bin/cram3", &cram).map_err(crate::boot::io_err(IoAction::Write, &cram))?;
    add_qa_user(tree)
}

/// [`QA_USER`] as teuthology sets it up: its own group, a home, a locked password and
/// password-less sudo. Written into the account files directly (minbase has no user of that
/// uid), so that the recipe needs no chroot.
fn add_qa_user(tree: &Path) -> Result<(), VmError> {
    let (user, id) = (QA_USER, QA_UID);
    let append = |rel: &str, line: String| {
        let p = tree.join(rel);
        let mut text = std::fs::read_to_string(&p).map_err(crate::boot::io_err(IoAction::Read, &p))?;
        if text.lines().any(|l| l.split(':').next() == Some(user)) {
            return Ok(());
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        std::fs::write(&p, text).map_err(crate::boot::io_err(IoAction::Write, &p))
    };
    append("etc/passwd", format!("{user}:x:{id}:{id}:Ceph QA user:/home/{user}:/bin/bash\n"))?;
    append("etc/group", format!("{user}:x:{id}:\n"))?;
    append("etc/shadow", format!("{user}:!:19000:0:99999:7:::\n"))?;
    append("etc/gshadow", format!("{user}:!::\n"))?;
    let home = tree.join("home").join(user);
    std::fs::create_dir_all(&home).map_err(crate::boot::io_err(IoAction::Create, &home))?;
    std::os::unix::fs::chown(&home, Some(id), Some(id)).map_err(crate::boot::io_err(IoAction::Write, &home))?;
    let sudoers = tree.join("etc/sudoers.d").join(user);
    std::fs::create_dir_all(tree.join("etc/sudoers.d")).map_err(crate::boot::io_err(IoAction::Create, &sudoers))?;
    std::fs::write(&sudoers, format!("{user} ALL=(ALL) NOPASSWD:ALL\n"))
        .map_err(crate::boot::io_err(IoAction::Write, &sudoers))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440))
        .map_err(crate::boot::io_err(IoAction::Write, &sudoers))
}

/// Bytes of the files under `tree` (`du`), for the image's size.
fn tree_bytes(tree: &Path) -> Result<u64, VmError> {
    let mut cmd = Command::new("du");
    cmd.args(["-sb"]).arg(tree);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120)).map_err(|e| VmError::GuestRoot {
        step: "du",
        log: tree.to_path_buf(),
        detail: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&out);
    let bytes: u64 = text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    // Inodes and directories take room of their own: 20% on top.
    Ok(bytes + bytes / 5)
}

/// An exclusive `flock` on a file, released on drop.
pub(crate) struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, VmError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(crate::boot::io_err(IoAction::Create, path))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; blocks until granted.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(VmError::Io {
                action: IoAction::Lock,
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(FileLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_package_list_not_its_order() {
        let mut a =
            GuestRootSpec { cache_dir: "/c".into(), mirror: "m".into(), packages: vec!["a".into(), "b".into()] };
        let k1 = a.key();
        a.packages.reverse();
        a.mirror = "other".into();
        assert_eq!(a.key(), k1);
        a.packages.push("c".into());
        assert_ne!(a.key(), k1);
        assert!(k1.starts_with("bookworm-"), "{k1}");
    }

    #[test]
    fn the_qa_user_is_added_once_with_its_home_and_sudo() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("etc")).unwrap();
        std::fs::write(tree.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(tree.path().join("etc/group"), "root:x:0:").unwrap();
        std::fs::write(tree.path().join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        std::fs::write(tree.path().join("etc/gshadow"), "root:*::\n").unwrap();
        add_qa_user(tree.path()).unwrap();
        add_qa_user(tree.path()).unwrap();
        let read = |rel: &str| std::fs::read_to_string(tree.path().join(rel)).unwrap();
        assert_eq!(
            read("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ceph QA user:/home/ubuntu:/bin/bash\n"
        );
        assert_eq!(read("etc/group"), "root:x:0:\nubuntu:x:1000:\n");
        assert_eq!(read("etc/shadow").lines().filter(|l| l.starts_with("ubuntu:!:")).count(), 1);
        assert_eq!(read("etc/gshadow").lines().last(), Some("ubuntu:!::"));
        assert_eq!(read("etc/sudoers.d/ubuntu"), "ubuntu ALL=(ALL) NOPASSWD:ALL\n");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let sudoers = std::fs::metadata(tree.path().join("etc/sudoers.d/ubuntu")).unwrap();
        assert_eq!(sudoers.permissions().mode() & 0o777, 0o440);
        assert_eq!(std::fs::metadata(tree.path().join("home/ubuntu")).unwrap().uid(), 1000);
    }
}
