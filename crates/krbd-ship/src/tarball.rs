//! The installer tarball. Unpacked, its top folder is laid out like a build's out folder
//! (`libceph.ko`, `ceph.ko`, `rbd.ko`, `build-report.json`), so whatever reads an out
//! folder reads it too, plus:
//! - `bin/krbd-host`: the slim host-side binary (install, rollback, status, check; built
//!   for glibc 2.17), when given;
//! - `MANIFEST.sha256`: `sha256sum -c` format, one line per other file;
//! - `share/`: krbd-host's man pages (section 8) and shell completions, laid out as under
//!   `/usr`, when the installer is given with them;
//! - `README`: the one command to run.

use crate::error::ShipError;
use crate::host::{completion_paths, Family, HostDocs};
use crate::input::BuildSet;
use crate::layout::{self, Naming};
use crate::{compress, tar_dir, tar_file, Compression};
use krbd_formats::digest::sha256_hex;
use std::path::Path;

/// The manifest the set model checks an unpacked tarball's stripped modules against.
pub const MANIFEST: &str = krbd_kmod::set::MANIFEST_FILE;
pub const INSTALLER: &str = "bin/krbd-host";

#[derive(Debug, Clone, serde::Serialize)]
pub struct TarballMetadata {
    pub top: String,
    pub files: Vec<String>,
    pub installer: bool,
}

fn readme(set: &BuildSet, has_installer: bool, has_docs: bool) -> String {
    let release = set.release();
    let install = if has_installer {
        let docs = if has_docs {
            "\nIts manual: man -l share/man/man8/krbd-host.8 (one page per command, e.g.\n\
             krbd-host-install.8); shell completions are under share/ as a /usr prefix lays them out.\n"
        } else {
            ""
        };
        format!("    sudo ./bin/krbd-host install .\n{docs}")
    } else {
        "    sudo krbd-host install .\n\n(this tarball carries no installer binary: copy a krbd-host built with\nscripts/build-target-binary.sh, or repackage with `krbd-forge package --format tar --installer PATH`)\n".to_string()
    };
    format!(
        "Ceph kernel client modules (libceph, ceph, rbd) for Linux {release}\n\
         built by {} (build key {}).\n\n\
         Check the files, then install the set on the target host from this folder:\n\n\
         \x20   sha256sum -c {MANIFEST}\n{install}\n\
         The modules go to {}/, which depmod searches before the kernel's own\n\
         modules. build-report.json says how they were built.\n",
        set.report.tool,
        set.report.build_key,
        layout::module_dir(release),
    )
}

/// The newest glibc the installer may need: RHEL/CentOS 7's.
pub const MAX_GLIBC: (u32, u32) = (2, 17);
const MAX_GLIBC_TEXT: &str = "2.17";

/// `GLIBC_2.17` → (2, 17); `GLIBC_2.2.5` → (2, 2); other version names → `None`.
pub fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    Some((major, minor))
}

/// The newest `GLIBC_x.y` symbol version an ELF64 binary needs from a shared library (its
/// `.gnu.version_r`), with that library: `None` when it needs none (a static binary).
pub fn newest_glibc_needed(data: &[u8]) -> object::read::Result<Option<(String, String)>> {
    use object::read::elf::FileHeader;
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? else { return Ok(None) };
    let strings = sections.strings(endian, data, link)?;
    let mut newest: Option<((u32, u32), String, String)> = None;
    while let Some((need, mut versions)) = needs.next()? {
        let library = String::from_utf8_lossy(need.file(endian, strings)?).into_owned();
        while let Some(aux) = versions.next()? {
            let name = String::from_utf8_lossy(aux.name(endian, strings)?).into_owned();
            let Some(v) = glibc_version(&name) else { continue };
            if newest.as_ref().is_none_or(|(n, _, _)| v > *n) {
                newest = Some((v, name, library.clone()));
            }
        }
    }
    Ok(newest.map(|(_, name, library)| (name, library)))
}

/// Checks an installer binary before shipping it: an ELF executable that runs on glibc
/// 2.17 (nothing newer in its `.gnu.version_r`).
pub(crate) fn read_installer(path: &Path) -> Result<Vec<u8>, ShipError> {
    let bytes =
        std::fs::read(path).map_err(|e| ShipError::BadInstaller { path: path.to_path_buf(), reason: e.to_string() })?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ShipError::BadInstaller {
            path: path.to_path_buf(),
            reason: "not an ELF executable; build it with scripts/build-target-binary.sh".into(),
        });
    }
    let needed = newest_glibc_needed(&bytes).map_err(|e| ShipError::BadInstaller {
        path: path.to_path_buf(),
        reason: format!("not a readable 64-bit ELF ({e}); build it with scripts/build-target-binary.sh"),
    })?;
    if let Some((version, library)) = needed.filter(|(v, _)| glibc_version(v).is_some_and(|v| v > MAX_GLIBC)) {
        return Err(ShipError::InstallerNeedsNewerGlibc {
            path: path.to_path_buf(),
            version,
            library,
            max: MAX_GLIBC_TEXT,
        });
    }
    Ok(bytes)
}

pub fn build_tarball(
    set: &BuildSet,
    compression: Compression,
    mtime: u32,
    installer: Option<(&Path, Option<&HostDocs>)>,
) -> Result<(Vec<u8>, TarballMetadata), ShipError> {
    let naming = Naming::of(set);
    let top = naming.tarball_stem.clone();
    let mut files: Vec<(String, u32, Vec<u8>)> =
        set.modules.iter().map(|m| (m.file_name(), 0o644, m.bytes.clone())).collect();
    files.push((crate::input::REPORT_FILE.to_string(), 0o644, set.report_bytes.clone()));
    if let Some((p, docs)) = installer {
        files.push((INSTALLER.to_string(), 0o755, read_installer(p)?));
        files.extend(docs.map(host_docs_files).unwrap_or_default());
    }
    files.push((
        "README".to_string(),
        0o644,
        readme(set, installer.is_some(), installer.is_some_and(|(_, d)| d.is_some())).into_bytes(),
    ));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let manifest: String = files.iter().map(|(p, _, b)| format!("{}  {p}\n", sha256_hex(b))).collect();
    files.push((MANIFEST.to_string(), 0o644, manifest.into_bytes()));

    let io = ShipError::io("write the tarball", Path::new(&top));
    let mut b = tar::Builder::new(Vec::new());
    let result = (|| -> std::io::Result<()> {
        let mut seen = std::collections::BTreeSet::from([format!("{top}/")]);
        tar_dir(&mut b, &format!("{top}/"), mtime)?;
        for (p, mode, data) in &files {
            crate::tar_parents(&mut b, &format!("{top}/{p}"), &mut seen, mtime)?;
            tar_file(&mut b, &format!("{top}/{p}"), *mode, data, mtime)?;
        }
        Ok(())
    })();
    result.map_err(ShipError::io("write the tarball", Path::new(&top)))?;
    let raw = b.into_inner().map_err(io)?;
    Ok((
        compress(&raw, compression)?,
        TarballMetadata { top, files: files.into_iter().map(|(p, _, _)| p).collect(), installer: installer.is_some() },
    ))
}

/// krbd-host's man pages (`share/man/man8/`, uncompressed so that `man -l` reads them in
/// place) and completions (`share/...`, the layout of a `/usr` prefix).
fn host_docs_files(docs: &HostDocs) -> Vec<(String, u32, Vec<u8>)> {
    let mut files: Vec<(String, u32, Vec<u8>)> = docs
        .man_pages
        .iter()
        .map(|(name, roff)| {
            let section = name.rsplit('.').next().unwrap_or("8");
            (format!("share/man/man{section}/{name}"), 0o644, roff.clone())
        })
        .collect();
    for (path, data) in completion_paths(Family::Rhel).into_iter().zip([&docs.bash, &docs.zsh, &docs.fish]) {
        files.push((path.to_string(), 0o644, data.clone()));
    }
    files
}

/// Verifies an unpacked tarball's folder against its manifest: every listed file has its
/// digest, and no other file is there. Returns the files checked.
pub fn verify_manifest(dir: &Path) -> Result<Vec<String>, ShipError> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).map_err(ShipError::io("read", &manifest_path))?;
    let mut listed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |problem: String| ShipError::Verify {
            path: manifest_path.clone(),
            problem: format!("line {}: {problem}", n + 1),
        };
        let (digest, rel) = line.split_once("  ").ok_or_else(|| bad("not `<sha256>  <path>`".into()))?;
        if rel.starts_with('/') || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(bad(format!("{rel:?} is not a path inside the folder")));
        }
        let path = dir.join(rel);
        let bytes = std::fs::read(&path).map_err(|e| ShipError::Verify {
            path: path.clone(),
            problem: format!("listed in {MANIFEST} but unreadable: {e}"),
        })?;
        let found = sha256_hex(&bytes);
        if found != digest {
            return Err(ShipError::Verify {
                path,
                problem: format!("sha256 {found}, the manifest says {digest}: the file was changed or damaged"),
            });
        }
        listed.push(rel.to_string());
    }
    let mut present = Vec::new();
    collect_files(dir, dir, &mut present).map_err(ShipError::io("list", dir))?;
    for rel in present {
        if rel != MANIFEST && !listed.contains(&rel) {
            return Err(ShipError::Verify {
                path: dir.join(&rel),
                problem: format!("not listed in {MANIFEST}: it does not belong to the set"),
            });
        }
    }
    Ok(listed)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect_files(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_compare_by_number() {
        assert_eq!(glibc_version("GLIBC_2.17"), Some((2, 17)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_2"), Some((2, 0)));
        assert_eq!(glibc_version("GCC_3.0"), None);
        assert!(glibc_version("GLIBC_2.34").unwrap() > MAX_GLIBC);
        assert!(glibc_version("GLIBC_2.3.4").unwrap() <= MAX_GLIBC);
    }
}
