//! Where an archive entry may land.
//!
//! Every entry name is turned into a relative path made only of normal components before
//! anything is written. A name that is absolute, climbs with `..`, or is empty is refused;
//! so is a link whose target would resolve outside the extraction folder.

use std::path::{Component, Path, PathBuf};

/// Why an entry name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("empty name")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("path climbs out with '..'")]
    ParentDir,
    #[error("link target resolves outside the folder")]
    LinkEscapes,
}

/// Normalises an entry name (`./usr/src/x`, `usr/src/x/`) to a relative path of normal
/// components. `.` components are dropped; the archive root itself yields `Ok(None)`.
pub fn entry_relative_path(name: &Path) -> Result<Option<PathBuf>, Refusal> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(Refusal::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute),
        }
    }
    if out.as_os_str().is_empty() {
        if name.as_os_str().is_empty() {
            return Err(Refusal::Empty);
        }
        return Ok(None);
    }
    Ok(Some(out))
}

/// For a symlink at relative path `link` (inside the extraction root) pointing at `target`,
/// the target to write: relative targets must stay inside the root; absolute targets are
/// taken as rooted at the extraction root (a sysroot) and rewritten to a relative path.
pub fn contained_link_target(link: &Path, target: &Path) -> Result<PathBuf, Refusal> {
    let parent = link.parent().unwrap_or(Path::new(""));
    let depth = parent.components().count();
    if target.is_absolute() {
        // `/usr/src/x` inside a sysroot: climb from the link's folder to the root, then down.
        let inside = entry_relative_path(target.strip_prefix("/").unwrap_or(target))?.unwrap_or_default();
        let mut rel = PathBuf::new();
        for _ in 0..depth {
            rel.push("..");
        }
        rel.push(inside);
        return Ok(rel);
    }
    // Resolve lexically from the link's folder; must never go above the root.
    let mut level = depth as isize;
    for c in target.components() {
        match c {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                level -= 1;
                if level < 0 {
                    return Err(Refusal::LinkEscapes);
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute),
        }
    }
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_names_are_kept() {
        assert_eq!(
            entry_relative_path(Path::new("./usr/src/linux/Makefile")).unwrap(),
            Some(PathBuf::from("usr/src/linux/Makefile"))
        );
        assert_eq!(
            entry_relative_path(Path::new("linux-6.1/net/ceph/")).unwrap(),
            Some(PathBuf::from("linux-6.1/net/ceph"))
        );
        assert_eq!(entry_relative_path(Path::new("./")).unwrap(), None);
    }

    #[test]
    fn escaping_names_are_refused() {
        assert_eq!(entry_relative_path(Path::new("../etc/passwd")), Err(Refusal::ParentDir));
        assert_eq!(entry_relative_path(Path::new("a/../../b")), Err(Refusal::ParentDir));
        assert_eq!(entry_relative_path(Path::new("/etc/passwd")), Err(Refusal::Absolute));
        assert_eq!(entry_relative_path(Path::new("")), Err(Refusal::Empty));
    }

    #[test]
    fn relative_links_must_stay_inside() {
        let link = Path::new("usr/src/linux-headers-6.1.0-1-amd64/scripts");
        let ok = Path::new("../../lib/linux-kbuild-6.1/scripts");
        assert_eq!(contained_link_target(link, ok).unwrap(), ok);
        let bad = Path::new("../../../../etc");
        assert_eq!(contained_link_target(link, bad), Err(Refusal::LinkEscapes));
    }

    #[test]
    fn absolute_links_are_rooted_at_the_sysroot() {
        let link = Path::new("lib/modules/6.1.0-1-amd64/build");
        let got = contained_link_target(link, Path::new("/usr/src/linux-headers-6.1.0-1-amd64"));
        assert_eq!(got.unwrap(), PathBuf::from("../../../usr/src/linux-headers-6.1.0-1-amd64"));
    }
}
