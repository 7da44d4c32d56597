//! One follow run at a time per state folder: an advisory lock (flock) on `<state>/lock`,
//! released by the kernel when the process ends, however it ends (kill -9 included), so a
//! stale lock never blocks the next run.

use crate::error::FollowError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct FollowLock {
    _file: File,
    pub path: PathBuf,
}

impl FollowLock {
    /// Takes the lock of `state_dir` without waiting: [`FollowError::Locked`] (with the
    /// holder's pid when it wrote one) if another run holds it.
    pub fn acquire(state_dir: &Path) -> Result<FollowLock, FollowError> {
        std::fs::create_dir_all(state_dir).map_err(FollowError::io("create the state folder", state_dir))?;
        let path = state_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(FollowError::io("open the lock", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(FollowError::Locked { path, holder: text.trim().parse().ok() });
            }
            Err(TryLockError::Error(e)) => return Err(FollowError::io("lock", &path)(e)),
        }
        // Who holds it, for the message another run prints; only informative.
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()));
        Ok(FollowLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = FollowLock::acquire(dir.path()).unwrap();
        match FollowLock::acquire(dir.path()) {
            Err(FollowError::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        // Another test of this binary spawning a process at this moment briefly shares the
        // descriptor (fork, then exec closes it): allow it that moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut again = FollowLock::acquire(dir.path());
        while again.is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            again = FollowLock::acquire(dir.path());
        }
        again.expect("free again once dropped");
    }
}
