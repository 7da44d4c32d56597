//! The target host, addressed under a root folder: where things go, what is installed,
//! what is loaded (by srcversion or GNU build-id), whether it is safe to swap, and who owns a file.

use crate::InstallError;
use krbd_kmod::KernelModule;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Our folder under `updates/`: depmod searches `updates/` before the in-tree modules.
pub const INSTALL_SUBDIR: &str = "updates/krbd-forge";

/// The host and the kernel release we act on.
#[derive(Debug, Clone)]
pub struct TargetHost {
    pub root: PathBuf,
    pub release: String,
}

/// What `/sys/module/<name>` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LoadedModule {
    pub loaded: bool,
    /// `srcversion:…` or `build-id:…` (see [`crate::set::module_identity`]).
    pub identity: Option<String>,
}

/// The file modprobe would load for a module (depmod's choice in modules.dep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledModule {
    /// Relative to `/lib/modules/<release>/`.
    pub path: String,
    pub identity: Option<String>,
    /// `krbd-forge` (our folder), `in-tree` (kernel/) or `other` (another updates/extra copy).
    pub origin: &'static str,
}

impl TargetHost {
    /// `release`: `None` means the running kernel's (`<root>/proc/sys/kernel/osrelease`).
    pub fn new(root: &Path, release: Option<String>) -> Result<TargetHost, InstallError> {
        let release = match release {
            Some(r) => r,
            None => {
                let p = root.join("proc/sys/kernel/osrelease");
                std::fs::read_to_string(&p)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| InstallError::UnknownRelease { reason: format!("cannot read {}: {e}", p.display()) })?
            }
        };
        if release.is_empty() || release.contains('/') || release.starts_with('.') {
            return Err(InstallError::UnknownRelease { reason: format!("{release:?} is not a kernel release") });
        }
        let host = TargetHost { root: root.to_path_buf(), release };
        let dir = host.modules_dir();
        if !dir.is_dir() {
            return Err(InstallError::NoSuchKernel { dir, release: host.release.clone(), root: host.root.clone() });
        }
        Ok(host)
    }

    pub fn is_live_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `<root>/lib/modules/<release>`.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    pub fn install_dir(&self) -> PathBuf {
        self.modules_dir().join(INSTALL_SUBDIR)
    }

    /// Where the journal and the backup live: `<root>/var/lib/krbd-forge/<release>`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("var/lib/krbd-forge").join(&self.release)
    }

    /// A path under the root, from one given relative to it.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// The path relative to the root (for the journal), or the path itself.
    pub fn rel(&self, abs: &Path) -> String {
        abs.strip_prefix(&self.root).unwrap_or(abs).display().to_string()
    }

    /// Why swapping the loaded modules now would pull them from under a user: mapped rbd
    /// devices and mounted CephFS. Empty: safe.
    pub fn busy_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join("sys/bus/rbd/devices")) {
            let mut ids: Vec<String> =
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            ids.sort();
            for id in ids {
                reasons.push(format!("rbd device {id} is mapped (/dev/rbd{id})"));
            }
        }
        if let Ok(mounts) = std::fs::read_to_string(self.root.join("proc/mounts")) {
            for line in mounts.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 3 && f[2] == "ceph" {
                    reasons.push(format!("CephFS {} is mounted at {}", f[0], f[1]));
                }
            }
        }
        reasons
    }

    /// `/sys/module/<name>`: loaded when it has an `initstate` (built-in code has a
    /// /sys/module folder too, but no initstate).
    pub fn loaded(&self, name: &str) -> LoadedModule {
        let dir = self.root.join("sys/module").join(name);
        let loaded = dir.join("initstate").exists();
        let srcversion = std::fs::read_to_string(dir.join("srcversion"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let identity = match srcversion {
            Some(sv) => Some(format!("srcversion:{sv}")),
            None => std::fs::read(dir.join("notes/.note.gnu.build-id"))
                .ok()
                .and_then(|n| crate::set::gnu_build_id(&n))
                .map(|id| format!("build-id:{id}")),
        };
        LoadedModule { loaded, identity: if loaded { identity } else { None } }
    }

    /// The file depmod chose for `name` (from modules.dep), with its srcversion.
    pub fn installed(&self, name: &str) -> Option<InstalledModule> {
        let dep = std::fs::read_to_string(self.modules_dir().join("modules.dep")).ok()?;
        let path = dep
            .lines()
            .filter_map(|l| l.split_once(':').map(|(p, _)| p.trim()))
            .find(|p| module_file_name(p) == Some(name))?;
        let full = if path.starts_with('/') { self.abs(path) } else { self.modules_dir().join(path) };
        let identity = KernelModule::read(&full).ok().and_then(|m| crate::set::module_identity(&m));
        let origin = if path.starts_with(INSTALL_SUBDIR) {
            "krbd-forge"
        } else if path.starts_with("kernel/") {
            "in-tree"
        } else {
            "other"
        };
        Some(InstalledModule { path: path.to_string(), identity, origin })
    }

    /// Module files named like one of ours outside our folder and outside `kernel/` (an
    /// older manual install, DKMS): they would compete with ours in depmod's search.
    pub fn competing_files(&self, names: &[&str]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for top in ["updates", "extra", "weak-updates"] {
            collect_named(&self.modules_dir().join(top), names, &self.install_dir(), &mut out);
        }
        out.sort();
        out
    }

    /// The distribution package that owns a file, asked of dpkg and rpm inside the root.
    pub fn package_owner(&self, path: &Path) -> Option<String> {
        let inside = format!("/{}", self.rel(path).trim_start_matches('/'));
        let dpkg_db = self.root.join("var/lib/dpkg");
        if dpkg_db.join("info").is_dir() {
            let out = Command::new("dpkg-query")
                .arg(format!("--admindir={}", dpkg_db.display()))
                .args(["-S", &inside])
                .output();
            if let Ok(o) = out {
                if o.status.success() {
                    let text = String::from_utf8_lossy(&o.stdout);
                    // "pkg[, pkg2]: /path"
                    if let Some((pkgs, _)) = text.lines().next().and_then(|l| l.split_once(": ")) {
                        return Some(pkgs.trim().to_string());
                    }
                }
            }
        }
        let rpm_db = ["var/lib/rpm", "usr/lib/sysimage/rpm"].iter().any(|d| self.root.join(d).is_dir());
        if rpm_db {
            let out = Command::new("rpm").arg("--root").arg(&self.root).args(["-qf", &inside]).output();
            if let Ok(o) = out {
                if o.status.success() {
                    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
                    if !text.is_empty() {
                        return Some(text);
                    }
                }
            }
        }
        None
    }
}

/// The release to act on when none is named, under a root other than `/` (there the
/// running kernel is not the root's): the set's, else the one release with a krbd-forge
/// journal under the root, else the one release installed under `<root>/lib/modules`.
/// `None` (on `/`, or when that does not settle it): the running kernel's, which
/// [`TargetHost::new`] reads from `<root>/proc`.
pub fn infer_release(root: &Path, set_release: Option<&str>) -> Option<String> {
    if root == Path::new("/") {
        return None;
    }
    if let Some(r) = set_release {
        return Some(r.to_string());
    }
    let journaled = release_dirs(&root.join("var/lib/krbd-forge"), |d| d.join(crate::journal::JOURNAL_FILE).is_file());
    match journaled.as_slice() {
        [one] => return Some(one.clone()),
        [] => {}
        _ => return None,
    }
    match release_dirs(&root.join("lib/modules"), |_| true).as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The names of the folders in `dir` that `keep` accepts, sorted.
fn release_dirs(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir() && keep(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `kernel/net/ceph/libceph.ko.xz` -> `libceph` (module names use `_` where files may use `-`).
pub fn module_file_name(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next()?;
    let (stem, rest) = file.split_once(".ko")?;
    (rest.is_empty() || matches!(rest, ".xz" | ".gz" | ".zst")).then_some(stem)
}

fn collect_named(dir: &Path, names: &[&str], skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_named(&p, names, skip, out),
            Ok(_) => {
                let f = e.file_name().to_string_lossy().into_owned();
                if module_file_name(&f).is_some_and(|n| names.contains(&n)) {
                    out.push(p);
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_is_inferred_from_the_set_the_journal_or_the_one_installed() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert_eq!(infer_release(Path::new("/"), Some("6.1.0-1-amd64")), None, "/ runs its own kernel");
        assert_eq!(infer_release(r, None), None, "nothing there");
        std::fs::create_dir_all(r.join("lib/modules/6.1.0-1-amd64")).unwrap();
        assert_eq!(infer_release(r, None).as_deref(), Some("6.1.0-1-amd64"), "the one installed");
        assert_eq!(infer_release(r, Some("6.1.0-2-amd64")).as_deref(), Some("6.1.0-2-amd64"), "the set's first");
        std::fs::create_dir_all(r.join("lib/modules/6.1.0-2-amd64")).unwrap();
        assert_eq!(infer_release(r, None), None, "two installed, no journal");
        let state = r.join("var/lib/krbd-forge/6.1.0-2-amd64");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join(crate::journal::JOURNAL_FILE), "{}").unwrap();
        assert_eq!(infer_release(r, None).as_deref(), Some("6.1.0-2-amd64"), "the one with a journal");
    }

    #[test]
    fn module_file_names() {
        assert_eq!(module_file_name("kernel/net/ceph/libceph.ko.xz"), Some("libceph"));
        assert_eq!(module_file_name("updates/krbd-forge/rbd.ko"), Some("rbd"));
        assert_eq!(module_file_name("updates/krbd-forge/.rbd.ko.krbd-new"), None);
        assert_eq!(module_file_name("rbd.ko.bak"), None);
    }

    #[test]
    fn busy_reasons_read_sysfs_and_mounts_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lib/modules/r")).unwrap();
        let host = TargetHost::new(root.path(), Some("r".into())).unwrap();
        assert!(host.busy_reasons().is_empty());
        std::fs::create_dir_all(root.path().join("sys/bus/rbd/devices/0")).unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(root.path().join("proc/mounts"), "/dev/vda / ext4 rw 0 0\n10.0.0.1:/ /mnt/cephfs ceph rw 0 0\n")
            .unwrap();
        assert_eq!(
            host.busy_reasons(),
            ["rbd device 0 is mapped (/dev/rbd0)", "CephFS 10.0.0.1:/ is mounted at /mnt/cephfs"]
        );
    }
}
