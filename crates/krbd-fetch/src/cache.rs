//! The tool's cache: content-addressed packages plus derived entries (extracted sysroots,
//! source subsets, builds), each written in a staging folder and renamed into place, so
//! that an entry either exists whole or not at all, and guarded by a lock file so that
//! concurrent runs wait for each other instead of doing the work twice.

use crate::error::FetchError;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A held lock; released on drop.
pub struct CacheLock {
    file: File,
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Cache {
    /// `$XDG_CACHE_HOME/krbd-forge`, else `~/.cache/krbd-forge`.
    pub fn default_root() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("krbd-forge");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache").join("krbd-forge")
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<Cache, FetchError> {
        let root = root.into();
        for sub in ["debs", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(FetchError::io("create cache folder", &d))?;
        }
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the package with this sha256 lives once fetched.
    pub fn deb_path(&self, sha256: &str) -> PathBuf {
        self.root.join("debs").join(format!("{sha256}.deb"))
    }

    /// The folder of a derived entry `kind/key` (it may not exist yet).
    pub fn entry_path(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join(kind).join(key)
    }

    /// An exclusive lock named `kind/key`.
    pub fn lock(&self, kind: &str, key: &str) -> Result<CacheLock, FetchError> {
        let dir = self.root.join("locks").join(kind);
        std::fs::create_dir_all(&dir).map_err(FetchError::io("create lock folder", &dir))?;
        let path = dir.join(format!("{key}.lock"));
        let file = File::create(&path).map_err(FetchError::io("create lock", &path))?;
        file.lock().map_err(FetchError::io("lock", &path))?;
        Ok(CacheLock { file })
    }

    /// A fresh staging folder on the cache's file system (so a rename publishes it atomically).
    pub fn staging(&self, label: &str) -> Result<Staging, FetchError> {
        let tmp = self.root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(FetchError::io("create cache folder", &tmp))?;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = tmp.join(format!("{label}.{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(FetchError::io("create staging folder", &path))?;
        Ok(Staging { path: Some(path) })
    }

    /// Returns `kind/key`, creating it with `fill(staging_dir)` when missing. `Ok((path, true))`
    /// means it was already there.
    pub fn get_or_create<E: From<FetchError>>(
        &self,
        kind: &str,
        key: &str,
        fill: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, bool), E> {
        let path = self.entry_path(kind, key);
        if path.is_dir() {
            return Ok((path, true));
        }
        let _lock = self.lock(kind, key)?;
        if path.is_dir() {
            return Ok((path, true));
        }
        let staging = self.staging(kind)?;
        fill(staging.path())?;
        staging.publish(&path)?;
        Ok((path, false))
    }
}

/// A staging folder, removed on drop unless published.
pub struct Staging {
    path: Option<PathBuf>,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the staging folder to `dest` (whose parent is created).
    pub fn publish(mut self, dest: &Path) -> Result<(), FetchError> {
        let Some(from) = self.path.take() else { return Ok(()) };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(FetchError::io("create folder", parent))?;
        }
        std::fs::rename(&from, dest).map_err(FetchError::io("publish cache entry", dest))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_created_once_and_failures_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let failed: Result<_, FetchError> = cache.get_or_create("things", "k1", |d| {
            std::fs::write(d.join("half"), b"x").unwrap();
            Err(FetchError::NoAptLists)
        });
        assert!(failed.is_err());
        assert!(!cache.entry_path("things", "k1").exists());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let (p, hit) = cache
            .get_or_create::<FetchError>("things", "k1", |d| {
                std::fs::write(d.join("file"), b"x").map_err(FetchError::io("write", d))
            })
            .unwrap();
        assert!(!hit);
        assert!(p.join("file").exists());
        let (_, hit) = cache.get_or_create::<FetchError>("things", "k1", |_| panic!("must not rebuild")).unwrap();
        assert!(hit);
    }
}
