//! Writing archive entries below a folder, safely.

use crate::error::FetchError;
use krbd_formats::archive_path::{contained_link_target, entry_relative_path, Refusal};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What an extraction wrote.
#[derive(Debug, Default, Clone)]
pub struct Extracted {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

/// Writes one tar entry at `dest/rel`. `archive` names the source in errors. Regular files,
/// folders, symlinks and hard links are written; device nodes and fifos are skipped.
pub fn write_entry<R: Read>(
    archive: &Path,
    dest: &Path,
    rel: &Path,
    entry: &mut tar::Entry<'_, R>,
    out: &mut Extracted,
) -> Result<(), FetchError> {
    let target = dest.join(rel);
    let kind = entry.header().entry_type();
    let corrupt = |e: std::io::Error| FetchError::CorruptMember {
        path: archive.to_path_buf(),
        member: rel.display().to_string(),
        reason: e.to_string(),
    };
    if kind.is_dir() {
        std::fs::create_dir_all(&target).map_err(FetchError::io("create folder", &target))?;
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(FetchError::io("create folder", parent))?;
    }
    if kind.is_symlink() || kind.is_hard_link() {
        let link = entry
            .link_name()
            .map_err(corrupt)?
            .ok_or_else(|| corrupt(std::io::Error::other("link without a target")))?
            .into_owned();
        let unsafe_entry = |why: Refusal| FetchError::UnsafeEntry {
            path: archive.to_path_buf(),
            entry: format!("{} -> {}", rel.display(), link.display()),
            reason: why.to_string(),
        };
        let _ = std::fs::remove_file(&target);
        if kind.is_symlink() {
            let to = contained_link_target(rel, &link).map_err(unsafe_entry)?;
            std::os::unix::fs::symlink(&to, &target).map_err(FetchError::io("create symlink", &target))?;
        } else {
            // Hard link names are relative to the archive root.
            let from = entry_relative_path(&link).map_err(unsafe_entry)?.ok_or_else(|| unsafe_entry(Refusal::Empty))?;
            let from = dest.join(from);
            std::fs::hard_link(&from, &target).map_err(FetchError::io("create hard link", &target))?;
        }
        out.files.push(rel.to_path_buf());
        return Ok(());
    }
    if !kind.is_file() && kind != tar::EntryType::Continuous && kind != tar::EntryType::GNUSparse {
        return Ok(());
    }
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    let _ = std::fs::remove_file(&target);
    out.bytes += write_member(entry, &target, mode, corrupt)?;
    out.files.push(rel.to_path_buf());
    Ok(())
}

/// Streams one archive member into a new file at `target` with permission bits `mode` and
/// returns the bytes written. Read errors are the archive's (`corrupt`), write errors the
/// destination's. Shared by the .deb and RPM readers.
pub(crate) fn write_member(
    member: &mut impl Read,
    target: &Path,
    mode: u32,
    corrupt: impl Fn(std::io::Error) -> FetchError,
) -> Result<u64, FetchError> {
    let mut file = std::fs::File::create(target).map_err(FetchError::io("create", target))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = member.read(&mut buf).map_err(&corrupt)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(FetchError::io("write", target))?;
        written += n as u64;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)).map_err(FetchError::io("chmod", target))?;
    Ok(written)
}
