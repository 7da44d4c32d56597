//! Replacing a file so that, after a crash at any point, it holds either its old or its
//! new bytes: the new bytes go to a temporary file in the same folder (a rename is only
//! atomic within one file system), which is fsynced, renamed over the target, and then the
//! folder is fsynced so that the rename itself is durable.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of [`write_atomic`] that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {path}: {source}")]
pub struct AtomicWriteError {
    /// `write` (the temporary file), `rename` (over the target), `fsync the folder of`.
    pub step: &'static str,
    /// The file being replaced.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes `bytes` to `path` atomically and durably. The folder must exist. The temporary
/// name (`.<name>.partial-<pid>`) never ends like the target does, so a scan for `*.ko`
/// or `*.json` cannot pick up a half-written file; it is removed when a step fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let fail = |step: &'static str| move |source| AtomicWriteError { step, path: path.to_path_buf(), source };
    let dir = folder_of(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write")(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("rename")(e));
    }
    sync_dir(dir).map_err(fail("fsync the folder of"))
}

/// Makes the entries of `dir` (renames, new and removed names) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The folder holding `path` (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/folder/x");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert_eq!((err.step, err.path.as_path(), err.source.kind()), ("write", p.as_path(), io::ErrorKind::NotFound));
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty folder cannot be replaced by a file.
        let p = dir.path().join("target");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"keep").unwrap();
        let err = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(err.step, "rename");
        assert_eq!(names(dir.path()), ["target"]);
        assert_eq!(std::fs::read(p.join("inside")).unwrap(), b"keep");
    }
}
