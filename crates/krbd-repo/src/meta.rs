//! The meta package of a followed line: its version moves in lockstep with the
//! distribution's kernel meta package, and it pins that meta package and the proven
//! modules of the kernel it points at.

use crate::apt::gzip;
use crate::{modules_package_name, LineMeta, RepoError};
use krbd_formats::deb::{write_deb, TarMember};
use std::path::{Path, PathBuf};

/// Every member's time: the package's bytes depend only on its fields, so that writing it
/// again for the same kernel meta version gives the same file (and a publish finds it
/// unchanged instead of conflicting).
const MTIME: u64 = 1_700_000_000;

/// The meta package's `control` file. `Protected: yes` (apt 2.2 and later) keeps apt's
/// resolver from removing it to make room for a kernel without a proven set, as
/// `apt full-upgrade` would otherwise do; removing it takes an explicit
/// `apt remove --allow-remove-essential`.
pub fn control(line: &LineMeta) -> String {
    let k = &line.kernel;
    let name = line.package_name();
    let modules = modules_package_name(&k.release);
    format!(
        "Package: {name}\n\
         Source: krbd-forge\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: {maintainer}\n\
         Installed-Size: 1\n\
         Depends: {kernel} (= {version}), {modules}\n\
         Section: kernel\n\
         Priority: optional\n\
         Protected: yes\n\
         Description: Ceph kernel client modules proven for the kernel {kernel} points at\n \
         Installs the kernel that {kernel} {version} depends on ({release}) together\n \
         with its proven Ceph kernel client modules ({modules}).\n \
         .\n \
         Its version follows {kernel}: while no proven set for a newer kernel is\n \
         published, upgrades keep {kernel} (and so the kernel) back; once one is,\n \
         the kernel and its modules are upgraded in one transaction.\n",
        version = k.version,
        maintainer = line.maintainer,
        kernel = k.package,
        release = k.release,
    )
}

/// Writes the line's meta package `<name>_<V without epoch>_amd64.deb` into `out_dir`
/// (atomically) and returns its path.
pub fn meta_deb(line: &LineMeta, out_dir: &Path) -> Result<PathBuf, RepoError> {
    check_fields(line)?;
    let name = line.package_name();
    let control = control(line);
    let readme = format!(
        "{name} pins {} to the version whose kernel has a proven set of Ceph kernel\nclient modules ({}).\n",
        line.kernel.package,
        modules_package_name(&line.kernel.release)
    );
    let doc = format!("./usr/share/doc/{name}/");
    let io = RepoError::io("write the meta package", out_dir);
    let data = tar(&[
        ("./", None),
        ("./usr/", None),
        ("./usr/share/", None),
        ("./usr/share/doc/", None),
        (&doc, None),
        (&format!("{doc}README"), Some(readme.as_bytes())),
    ]);
    let control_tar = tar(&[("./", None), ("./control", Some(control.as_bytes()))]);
    let (data, control_tar) =
        (data.map_err(RepoError::io("write the meta package", out_dir))?, control_tar.map_err(io)?);
    let bytes = write_deb(
        TarMember { name: "control.tar.gz", bytes: &gzip(&control_tar)? },
        TarMember { name: "data.tar.gz", bytes: &gzip(&data)? },
        MTIME,
    )
    .map_err(RepoError::io("write the meta package", out_dir))?;
    let upstream = line.kernel.version.split_once(':').map_or(line.kernel.version.as_str(), |(_, v)| v);
    let path = out_dir.join(format!("{name}_{upstream}_amd64.deb"));
    std::fs::create_dir_all(out_dir).map_err(RepoError::io("create", out_dir))?;
    krbd_formats::atomic::write_atomic(&path, &bytes).map_err(|e| RepoError::Io {
        action: e.step,
        path: e.path,
        source: e.source,
    })?;
    Ok(path)
}

/// Package names and versions as Debian allows them, so that no field can break the
/// control file.
fn check_fields(line: &LineMeta) -> Result<(), RepoError> {
    let k = &line.kernel;
    let name_ok =
        |s: &str| s.len() > 1 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let version_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c))
    };
    let bad = |what: &str, v: &str| RepoError::BadPackage {
        path: PathBuf::from(v),
        reason: format!("not a valid Debian {what}"),
    };
    if !name_ok(&k.package) {
        return Err(bad("package name", &k.package));
    }
    if !name_ok(&modules_package_name(&k.release)) {
        return Err(bad("kernel release", &k.release));
    }
    if !version_ok(&k.version) {
        return Err(bad("version", &k.version));
    }
    if line.maintainer.contains('\n') || line.maintainer.trim().is_empty() {
        return Err(bad("Maintainer field", &line.maintainer));
    }
    Ok(())
}

/// A tar of folders (`None`) and files, owned by root, all with [`MTIME`].
fn tar(entries: &[(&str, Option<&[u8]>)]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        let (kind, mode, data): (_, _, &[u8]) = match bytes {
            None => (tar::EntryType::Directory, 0o755, &[]),
            Some(d) => (tar::EntryType::Regular, 0o644, d),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        if path.len() < 100 {
            // The exact name: the tar crate's path setter drops the leading `./` that
            // dpkg-built archives carry.
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data)?;
        } else {
            b.append_data(&mut h, path, data)?;
        }
    }
    b.into_inner()
}
