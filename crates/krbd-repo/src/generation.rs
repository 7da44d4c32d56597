//! Numbered generations under a repository root and the one `current` symlink that is
//! switched with rename(2): the atomic publish both repository kinds share.

use crate::{PublishedPackage, RepoError, CURRENT_LINK, KEEP_GENERATIONS};
use krbd_progress::Listener;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The folder holding the generations.
pub(crate) const GENERATIONS: &str = "generations";
/// Every generation lists its packages here (the repository's own record, read by
/// `contains`/`packages` and by the next publish).
pub(crate) const MANIFEST: &str = "krbd-forge-manifest.json";
const STAGING_PREFIX: &str = ".staging-";
const LINK_TEMP: &str = ".current.new";

/// A generation's manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Manifest {
    pub generation: u64,
    pub packages: Vec<PublishedPackage>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, RepoError> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(RepoError::io("read", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RepoError::Corrupt { root: dir.into(), reason: format!("{MANIFEST} is unreadable: {e}") })
    }

    pub fn write(&self, dir: &Path) -> Result<(), RepoError> {
        let path = dir.join(MANIFEST);
        let bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        write_synced(&path, &bytes)
    }
}

/// The served generation of `root`, if any: its number and folder.
pub(crate) fn current(root: &Path) -> Result<Option<(u64, PathBuf)>, RepoError> {
    let link = root.join(CURRENT_LINK);
    let target = match std::fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RepoError::io("read the link", &link)(e)),
    };
    let corrupt = |reason: String| RepoError::Corrupt { root: root.into(), reason };
    let number =
        target.strip_prefix(GENERATIONS).ok().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()).ok_or_else(
            || corrupt(format!("{CURRENT_LINK} points at {}, not at {GENERATIONS}/<number>", target.display())),
        )?;
    let dir = root.join(&target);
    if !dir.join(MANIFEST).is_file() {
        return Err(corrupt(format!("{CURRENT_LINK} points at {}, which is not a complete generation", dir.display())));
    }
    Ok(Some((number, dir)))
}

/// The manifest of the served generation (empty before the first publish).
pub(crate) fn current_packages(root: &Path) -> Result<Vec<PublishedPackage>, RepoError> {
    match current(root)? {
        Some((_, dir)) => Ok(Manifest::read(&dir)?.packages),
        None => Ok(Vec::new()),
    }
}

/// A repository root while this process holds its lock: one publish at a time.
pub(crate) struct Locked {
    pub root: PathBuf,
    _lock: File,
}

impl Locked {
    /// Takes the root's lock (waiting for another publish to finish).
    pub fn open(root: &Path) -> Result<Locked, RepoError> {
        let gens = root.join(GENERATIONS);
        std::fs::create_dir_all(&gens).map_err(RepoError::io("create", &gens))?;
        let path = root.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(RepoError::io("open the lock", &path))?;
        lock.lock().map_err(RepoError::io("lock", &path))?;
        Ok(Locked { root: root.into(), _lock: lock })
    }

    fn generations(&self) -> PathBuf {
        self.root.join(GENERATIONS)
    }

    /// The numbered generation folders, ascending.
    fn numbered(&self) -> Result<Vec<u64>, RepoError> {
        let dir = self.generations();
        let mut numbers: Vec<u64> = std::fs::read_dir(&dir)
            .map_err(RepoError::io("list", &dir))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Removes what a killed publish left: staging folders, a half-made link, generations
    /// newer than the served one (built but never switched to). Returns their names.
    pub fn remove_leftovers(&self) -> Result<Vec<String>, RepoError> {
        let current = current(&self.root)?.map(|(n, _)| n);
        let mut removed = Vec::new();
        let _ = std::fs::remove_file(self.root.join(LINK_TEMP));
        let dir = self.generations();
        for entry in std::fs::read_dir(&dir).map_err(RepoError::io("list", &dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = match name.parse::<u64>() {
                Ok(n) => current.is_none_or(|c| n > c),
                Err(_) => name.starts_with(STAGING_PREFIX),
            };
            if stale {
                remove_tree(&entry.path())?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// The generations that stay after the next switch (besides the new one): the newest
    /// `KEEP_GENERATIONS - 1`, newest first.
    pub fn kept_after_switch(&self) -> Result<Vec<PathBuf>, RepoError> {
        let numbers = self.numbered()?;
        Ok(numbers.iter().rev().take(KEEP_GENERATIONS - 1).map(|n| self.generations().join(n.to_string())).collect())
    }

    /// A fresh staging folder for the next generation: its number and path.
    pub fn staging(&self) -> Result<(u64, PathBuf), RepoError> {
        let next = self.numbered()?.last().copied().unwrap_or(0) + 1;
        let dir = self.generations().join(format!("{STAGING_PREFIX}{next}"));
        if dir.exists() {
            remove_tree(&dir)?;
        }
        std::fs::create_dir_all(&dir).map_err(RepoError::io("create", &dir))?;
        Ok((next, dir))
    }

    /// Moves the finished staging folder to `generations/<number>`, then points `current`
    /// at it: a new symlink renamed over the old one, so that a reader resolves the old
    /// generation or the new one. Each rename is made durable before the next step.
    pub fn switch(&self, number: u64, staging: &Path, listener: &dyn Listener) -> Result<PathBuf, RepoError> {
        let gens = self.generations();
        let dest = gens.join(number.to_string());
        std::fs::rename(staging, &dest).map_err(RepoError::io("move into place", staging))?;
        sync_dir(&gens)?;
        listener.info(&format!("generation {number} in place"));
        let temp = self.root.join(LINK_TEMP);
        let _ = std::fs::remove_file(&temp);
        let target = Path::new(GENERATIONS).join(number.to_string());
        std::os::unix::fs::symlink(&target, &temp).map_err(RepoError::io("create the link", &temp))?;
        let link = self.root.join(CURRENT_LINK);
        std::fs::rename(&temp, &link).map_err(RepoError::io("switch", &link))?;
        sync_dir(&self.root)?;
        listener.info(&format!("generation {number} is current"));
        Ok(dest)
    }

    /// Removes the generations beyond the newest [`KEEP_GENERATIONS`]. Returns their names.
    pub fn prune(&self) -> Result<Vec<String>, RepoError> {
        let numbers = self.numbered()?;
        let excess = numbers.len().saturating_sub(KEEP_GENERATIONS);
        let mut removed = Vec::new();
        for n in &numbers[..excess] {
            remove_tree(&self.generations().join(n.to_string()))?;
            removed.push(n.to_string());
        }
        Ok(removed)
    }
}

fn remove_tree(dir: &Path) -> Result<(), RepoError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RepoError::io("remove", dir)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), RepoError> {
    krbd_formats::atomic::sync_dir(dir).map_err(RepoError::io("sync", dir))
}

/// Writes a new file and flushes it to disk (a generation's files are durable before the
/// switch that makes them visible).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(RepoError::io("create", dir))?;
    }
    let mut f = File::create(path).map_err(RepoError::io("create", path))?;
    f.write_all(bytes).map_err(RepoError::io("write", path))?;
    f.sync_all().map_err(RepoError::io("sync", path))
}

/// Copies `from` to the new file `to` and flushes it.
pub(crate) fn copy_synced(from: &Path, to: &Path) -> Result<(), RepoError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(RepoError::io("create", dir))?;
    }
    std::fs::copy(from, to).map_err(RepoError::io("copy", from))?;
    File::open(to).and_then(|f| f.sync_all()).map_err(RepoError::io("sync", to))
}

/// Hard-links `from` (a file of an earlier generation, never rewritten) to `to`.
pub(crate) fn link(from: &Path, to: &Path) -> Result<(), RepoError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(RepoError::io("create", dir))?;
    }
    match std::fs::hard_link(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(RepoError::io("link", from)(e)),
        _ => Ok(()),
    }
}
