//! A binary .deb: its control and data tars, put into the ar container by krbd-formats'
//! [`write_deb`].

use crate::error::ShipError;
use crate::input::BuildSet;
use crate::layout::{self, Naming};
use crate::{compress, tar_dir, tar_file, tar_parents, Compression};
use krbd_formats::deb::{write_deb, TarMember};
use md5::{Digest as _, Md5};
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DebMetadata {
    pub package: String,
    pub version: String,
    pub depends: String,
    pub installed_size_kib: u64,
    pub control: String,
    pub files: Vec<String>,
}

fn maintainer_script(body: &str) -> String {
    format!("#!/bin/sh\nset -e\n{body}exit 0\n")
}

/// `postinst` and `postrm`: refresh the module index. They honour `$DPKG_ROOT` so that an
/// install into another root (`dpkg --root`, `--force-script-chrootless`) indexes that root.
pub fn scripts(release: &str) -> (String, String) {
    let depmod = layout::depmod_lines(release, "${DPKG_ROOT:-}");
    let postinst = maintainer_script(&format!("case \"$1\" in\n    configure)\n{}    ;;\nesac\n", indent(&depmod)));
    let postrm = maintainer_script(&format!("case \"$1\" in\n    remove|purge)\n{}    ;;\nesac\n", indent(&depmod)));
    (postinst, postrm)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("        {l}\n")).collect()
}

/// `data.tar`: every file under `./`, each folder on the way with its own entry.
fn data_tar(files: &[(String, Vec<u8>)], mtime: u32) -> Result<Vec<u8>, ShipError> {
    let io = |what: &'static str| ShipError::io(what, Path::new("the .deb"));
    let mut data = tar::Builder::new(Vec::new());
    let mut seen = BTreeSet::new();
    tar_dir(&mut data, "./", mtime).map_err(io("write data.tar of"))?;
    seen.insert("./".to_string());
    for (path, bytes) in files {
        let rel = format!(".{path}");
        tar_parents(&mut data, &rel, &mut seen, mtime).map_err(io("write data.tar of"))?;
        tar_file(&mut data, &rel, 0o644, bytes, mtime).map_err(io("write data.tar of"))?;
    }
    data.into_inner().map_err(io("finish data.tar of"))
}

/// The Debian version of the kernel a set was built for. Debian builds `linux-image-<release>`
/// (signed and `-unsigned`) and `linux-headers-<release>` from one upload with one version,
/// so the headers input's version is the image's. `None` for sets built from a local
/// headers folder or from RHEL packages.
pub fn kernel_version(set: &BuildSet) -> Option<&str> {
    let headers = format!("linux-headers-{}", set.release());
    set.report.inputs.iter().find(|i| i.role == "headers" && i.name == headers).and_then(|i| i.version.as_deref())
}

/// `Depends:` of the modules package: exactly the kernel the set was built and proven for,
/// signed or unsigned image. With the version pinned, apt can neither upgrade that image to
/// a rebuild the set was not proven against (same release, new version) nor keep the set
/// installed without it.
pub fn depends(release: &str, kernel_version: Option<&str>) -> String {
    match kernel_version {
        Some(v) => format!("linux-image-{release} (= {v}) | linux-image-{release}-unsigned (= {v})"),
        None => format!("linux-image-{release} | linux-image-{release}-unsigned"),
    }
}

/// The package version: `<kernel version>+krbd<tool version>-<revision>` when the kernel's
/// Debian version is known, so that a set for a rebuilt kernel of the same release (a new
/// image version) sorts above the set for the old one and apt upgrades both together;
/// otherwise `<tool version>-<revision>`. The revision (the build key's first 12 hex digits)
/// tells two builds for one kernel and tool version apart but does not order them.
pub fn version(naming: &Naming, kernel_version: Option<&str>) -> String {
    match kernel_version {
        Some(k) => format!("{k}+krbd{}-{}", naming.version, naming.revision),
        None => format!("{}-{}", naming.version, naming.revision),
    }
}

pub fn build_deb(
    set: &BuildSet,
    compression: Compression,
    mtime: u32,
    maintainer: &str,
) -> Result<(Vec<u8>, DebMetadata), ShipError> {
    let naming = Naming::of(set);
    let release = set.release();
    let package = naming.deb_name.clone();
    let kernel_version = kernel_version(set);
    let version = version(&naming, kernel_version);
    let io = |what: &'static str| ShipError::io(what, Path::new("the .deb"));

    let mut files: Vec<(String, Vec<u8>)> =
        set.modules.iter().map(|m| (layout::module_path(release, &m.file_name()), m.bytes.clone())).collect();
    files.push((format!("{}/build-report.json", layout::doc_dir(&package)), set.report_bytes.clone()));

    let data_tar = data_tar(&files, mtime)?;

    // control.tar
    let installed_kib: u64 = files.iter().map(|(_, b)| (b.len() as u64).div_ceil(1024)).sum();
    let depends = depends(release, kernel_version);
    let series = set
        .report
        .series
        .as_ref()
        .map(|s| format!("the patch series {}", s.series))
        .unwrap_or_else(|| "no patch series (stock sources)".into());
    let control = format!(
        "Package: {package}\n\
         Source: krbd-forge\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: {maintainer}\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Section: kernel\n\
         Priority: optional\n\
         Description: Ceph kernel client modules (libceph, ceph, rbd) for Linux {release}\n \
         libceph.ko, ceph.ko and rbd.ko rebuilt by krbd-forge for exactly {release},\n \
         with {series}.\n \
         They are installed under {},\n \
         which depmod searches before the kernel's own modules.\n \
         .\n \
         Build key {}.\n",
        layout::module_dir(release),
        set.report.build_key
    );
    let md5sums: String = files
        .iter()
        .map(|(path, bytes)| format!("{}  {}\n", hex::encode(Md5::digest(bytes)), path.trim_start_matches('/')))
        .collect();
    let (postinst, postrm) = scripts(release);
    let mut ctl = tar::Builder::new(Vec::new());
    tar_dir(&mut ctl, "./", mtime).map_err(io("write control.tar of"))?;
    for (name, mode, text) in [
        ("./control", 0o644, &control),
        ("./md5sums", 0o644, &md5sums),
        ("./postinst", 0o755, &postinst),
        ("./postrm", 0o755, &postrm),
    ] {
        tar_file(&mut ctl, name, mode, text.as_bytes(), mtime).map_err(io("write control.tar of"))?;
    }
    let control_tar = ctl.into_inner().map_err(io("finish control.tar of"))?;

    let ext = compression.extension();
    let (control_name, data_name) = (format!("control.tar.{ext}"), format!("data.tar.{ext}"));
    let out = write_deb(
        TarMember { name: &control_name, bytes: &compress(&control_tar, compression)? },
        TarMember { name: &data_name, bytes: &compress(&data_tar, compression)? },
        mtime.into(),
    )
    .map_err(io("write the ar archive of"))?;
    Ok((
        out,
        DebMetadata {
            package,
            version,
            depends,
            installed_size_kib: installed_kib,
            control,
            files: files.into_iter().map(|(p, _)| p).collect(),
        },
    ))
}

/// A .deb described field by field: the host package's shape (files with their own modes,
/// conffiles, no kernel dependency).
pub struct DebPackage<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub depends: &'a str,
    pub section: &'a str,
    /// The Description's first line.
    pub summary: &'a str,
    /// The long description, one paragraph.
    pub description: &'a str,
    pub maintainer: &'a str,
    pub files: &'a [crate::host::HostFile],
    /// Maintainer scripts: (name, text).
    pub scripts: &'a [(&'a str, String)],
    pub compression: Compression,
    pub mtime: u32,
}

/// Writes the .deb of `p`: data.tar with every parent folder, control.tar with control,
/// md5sums, conffiles (the files marked config) and the scripts.
pub fn write_package(p: &DebPackage<'_>) -> Result<Vec<u8>, ShipError> {
    let io = |what: &'static str| ShipError::io(what, Path::new("the .deb"));
    let mut data = tar::Builder::new(Vec::new());
    let mut seen = BTreeSet::new();
    tar_dir(&mut data, "./", p.mtime).map_err(io("write data.tar of"))?;
    seen.insert("./".to_string());
    for f in p.files {
        let rel = format!(".{}", f.path);
        tar_parents(&mut data, &rel, &mut seen, p.mtime).map_err(io("write data.tar of"))?;
        tar_file(&mut data, &rel, f.mode, &f.data, p.mtime).map_err(io("write data.tar of"))?;
    }
    let data_tar = data.into_inner().map_err(io("finish data.tar of"))?;
    let installed_kib: u64 = p.files.iter().map(|f| (f.data.len() as u64).div_ceil(1024)).sum();
    let long: String = p.description.lines().map(|l| format!(" {l}\n")).collect();
    let control = format!(
        "Package: {}\nSource: krbd-forge\nVersion: {}\nArchitecture: amd64\nMaintainer: {}\n\
         Installed-Size: {installed_kib}\nDepends: {}\nSection: {}\nPriority: optional\n\
         Description: {}\n{long}",
        p.package, p.version, p.maintainer, p.depends, p.section, p.summary
    );
    let md5sums: String = p
        .files
        .iter()
        .map(|f| format!("{}  {}\n", hex::encode(Md5::digest(&f.data)), f.path.trim_start_matches('/')))
        .collect();
    let conffiles: String = p.files.iter().filter(|f| f.config).map(|f| format!("{}\n", f.path)).collect();
    let mut members: Vec<(String, u32, String)> =
        vec![("./control".into(), 0o644, control), ("./md5sums".into(), 0o644, md5sums)];
    if !conffiles.is_empty() {
        members.push(("./conffiles".into(), 0o644, conffiles));
    }
    members.extend(p.scripts.iter().map(|(name, text)| (format!("./{name}"), 0o755, text.clone())));
    let mut ctl = tar::Builder::new(Vec::new());
    tar_dir(&mut ctl, "./", p.mtime).map_err(io("write control.tar of"))?;
    for (name, mode, text) in &members {
        tar_file(&mut ctl, name, *mode, text.as_bytes(), p.mtime).map_err(io("write control.tar of"))?;
    }
    let control_tar = ctl.into_inner().map_err(io("finish control.tar of"))?;
    let ext = p.compression.extension();
    let (control_name, data_name) = (format!("control.tar.{ext}"), format!("data.tar.{ext}"));
    write_deb(
        TarMember { name: &control_name, bytes: &compress(&control_tar, p.compression)? },
        TarMember { name: &data_name, bytes: &compress(&data_tar, p.compression)? },
        p.mtime.into(),
    )
    .map_err(io("write the ar archive of"))
}
