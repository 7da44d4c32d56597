//! The run's two small disks: the payload (`/dev/vdb`, an ext4 made with `mkfs.ext4 -d`)
//! and the raw results disk (`/dev/vdc`) the guest writes a tar onto.

use super::{SetUnderTest, SuiteSpec};
use crate::boot::io_err;
use crate::cluster::GuestSession;
use crate::linux_image::KernelPackage;
use crate::process::run_with_timeout;
use crate::{IoAction, VmError};
use krbd_progress::Listener;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The raw results disk: sparse, so its size costs nothing until the guest writes.
const RESULTS_DISK_BYTES: u64 = 2 << 30;

/// Lays out the payload folder and makes it into `payload.ext4` (the folder is removed).
pub(super) fn make(
    spec: &SuiteSpec,
    pkg: &KernelPackage,
    session: &GuestSession,
    listener: &dyn Listener,
) -> Result<PathBuf, VmError> {
    let dir = spec.work_dir.join("payload");
    let _ = std::fs::remove_dir_all(&dir);
    write_module_tree(&dir, pkg, &spec.set)?;
    depmod(&dir, &pkg.release)?;
    for (name, text) in session.guest_ceph_files(spec.ms_mode) {
        write(&dir.join("etc/ceph").join(name), text.as_bytes(), 0o600)?;
    }
    copy_suite(&spec.suite_dir, &dir.join("suite"))?;
    let (guest_ip, gw) = session.guest_addresses();
    // name:seconds, each test with its own limit.
    let tests: Vec<String> = spec.tests.iter().map(|t| format!("{}:{}", t.name, spec.timeout_secs(t))).collect();
    let env = format!(
        "#!/bin/bash\nGUEST_IP={guest_ip}\nGW={gw}\nMON_IP=10.254.0.1\nTESTS='{}'\nSET={}\n",
        tests.join(" "),
        spec.set.label()
    );
    let init = env + include_str!("../guest/suite-init.sh");
    write(&dir.join("init.sh"), init.as_bytes(), 0o755)?;
    let disk = spec.work_dir.join("payload.ext4");
    let bytes = dir_bytes(&dir) * 5 / 4 + (64 << 20);
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args(["-q", "-F", "-L", "krbd-payload", "-E", "root_owner=0:0", "-d"])
        .arg(&dir)
        .arg(&disk)
        .arg(format!("{}K", bytes / 1024));
    run_with_timeout(&mut cmd, Duration::from_secs(300)).map_err(|e| VmError::GuestRoot {
        step: "mkfs.ext4 (payload)",
        log: disk.clone(),
        detail: e.to_string(),
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    listener.info(&format!("payload disk {} ({} MiB of files)", disk.display(), bytes >> 20));
    Ok(disk)
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(IoAction::Create, parent))?;
    }
    std::fs::write(path, data).map_err(io_err(IoAction::Write, path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(IoAction::Write, path))
}

/// The package's whole `lib/modules/<release>` (modules as packaged, the built-in lists),
/// and our set in `updates/krbd-forge/` as `krbd-forge install` places it.
fn write_module_tree(dir: &Path, pkg: &KernelPackage, set: &SetUnderTest) -> Result<(), VmError> {
    let tree = dir.join("lib/modules").join(&pkg.release);
    for m in pkg.modules.values() {
        let rel = m.path.strip_prefix("usr/").unwrap_or(&m.path);
        write(&dir.join(rel), &m.raw, 0o644)?;
    }
    for (name, data) in &pkg.builtin_files {
        write(&tree.join(name), data, 0o644)?;
    }
    if let SetUnderTest::Ours(modules) = set {
        let updates = tree.join(krbd_install::host::INSTALL_SUBDIR);
        for m in modules {
            write(&updates.join(format!("{}.ko", m.name)), &m.bytes, 0o644)?;
        }
    }
    Ok(())
}

fn depmod(dir: &Path, release: &str) -> Result<(), VmError> {
    let mut cmd = Command::new("depmod");
    cmd.arg("-a").arg("-b").arg(dir).arg(release);
    run_with_timeout(&mut cmd, Duration::from_secs(300)).map_err(|e| VmError::GuestRoot {
        step: "depmod (payload)",
        log: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Copies the suite folder (files and folders, modes kept; links followed).
fn copy_suite(from: &Path, to: &Path) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(io_err(IoAction::Create, to))?;
    let unreadable = |source| VmError::SuiteUnreadable { dir: from.to_path_buf(), source };
    for entry in std::fs::read_dir(from).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if meta.is_dir() {
            copy_suite(&path, &to.join(entry.file_name()))?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(unreadable)?;
            write(&to.join(entry.file_name()), &data, meta.permissions().mode() & 0o7777)?;
        }
    }
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()) + 4096,
            Ok(m) => m.len().div_ceil(4096) * 4096,
            Err(_) => 0,
        })
        .sum()
}

/// An empty sparse raw disk for the guest's tar of results.
pub(super) fn results_disk(work_dir: &Path) -> Result<PathBuf, VmError> {
    let path = work_dir.join("results.tar");
    let f = std::fs::File::create(&path).map_err(io_err(IoAction::Create, &path))?;
    f.set_len(RESULTS_DISK_BYTES).map_err(io_err(IoAction::Write, &path))?;
    Ok(path)
}

/// What the guest wrote for one test.
#[derive(Debug, Clone, Default)]
pub struct TestFiles {
    pub rc: Option<i32>,
    pub seconds: Option<f64>,
    pub output: Vec<u8>,
    pub dmesg: String,
}

/// Reads the guest's tar from the results disk (nothing there when the guest never got to
/// write it) and keeps each test's files under `dest/<test>/`.
pub(super) fn read_results(disk: &Path, dest: &Path) -> Result<BTreeMap<String, TestFiles>, VmError> {
    let bad = |source| VmError::SuiteResults { path: disk.to_path_buf(), source };
    let file = std::fs::File::open(disk).map_err(bad)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out: BTreeMap<String, TestFiles> = BTreeMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let [test, file] = parts.as_slice() else { continue };
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(bad)?;
        let keep = dest.join(test);
        std::fs::create_dir_all(&keep).map_err(io_err(IoAction::Create, &keep))?;
        std::fs::write(keep.join(file), &data).map_err(io_err(IoAction::Write, &keep))?;
        let t = out.entry(test.clone()).or_default();
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match file.as_str() {
            "rc" => t.rc = text().parse().ok(),
            "seconds" => t.seconds = text().parse().ok(),
            "dmesg" => t.dmesg = String::from_utf8_lossy(&data).into_owned(),
            "output" => t.output = data,
            _ => {}
        }
    }
    Ok(out)
}
