//! Shipping a built module set: a kmod RPM, a .deb, an installer tarball and a DKMS source
//! package, all written in Rust from a build's out folder (`out/<release>/`), plus
//! optional module signing in the kernel's appended-signature scheme.
//!
//! Every writer is deterministic: the same out folder, options and `mtime` give the same
//! bytes. Files are written next to their destination and renamed into place, so a failed
//! run leaves nothing half-written.

pub mod deb;
pub mod dkms;
pub mod error;
pub mod host;
pub mod input;
pub mod layout;
pub mod rpm;
pub mod sign;
pub mod tarball;

pub use error::ShipError;
pub use input::BuildSet;
pub use layout::Naming;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The package formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Rpm,
    Deb,
    Tar,
    Dkms,
}

/// Payload/archive compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Gzip,
}

impl Compression {
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Gzip => "gz",
        }
    }
}

/// Compresses `data` deterministically (no names or times in the stream headers).
pub fn compress(data: &[u8], c: Compression) -> Result<Vec<u8>, ShipError> {
    let fail = ShipError::io("compress", Path::new("payload"));
    match c {
        Compression::Xz => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(data).map_err(ShipError::io("compress", Path::new("payload")))?;
            enc.finish().map_err(fail)
        }
        Compression::Gzip => {
            let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
            enc.write_all(data).map_err(ShipError::io("compress", Path::new("payload")))?;
            enc.finish().map_err(fail)
        }
    }
}

/// What one packaging run asks for, validated.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    pub format: Format,
    pub compression: Compression,
    /// Folder the package is written to.
    pub out_dir: PathBuf,
    /// Timestamp of every file and of the package itself, the RPM's build time included
    /// (seconds since the epoch). `None`: when the build published the set (the
    /// modification time of its `build-report.json`), so the same folder gives the same bytes.
    pub mtime: Option<u32>,
    /// `.deb` Maintainer field.
    pub maintainer: String,
    /// The target-side installer binary (tar format).
    pub installer: Option<PathBuf>,
    /// krbd-host's man pages and completions, shipped beside the installer (tar format).
    pub host_docs: Option<host::HostDocs>,
    /// The cache holding the build's patched sources (dkms format).
    pub cache_root: Option<PathBuf>,
    /// Ship the modules with debug information (default: the debug-stripped copies).
    pub debug: bool,
    /// Sign the modules before packing them.
    pub signing: Option<sign::SigningKey>,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageOutcome {
    /// `rpm`, `deb`, `tar`, `dkms`, `host-deb`, `host-rpm`.
    pub format: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub release: String,
    /// Per format details (requires/provides of the RPM, control of the .deb, …).
    pub details: serde_json::Value,
    pub signed: bool,
    pub warnings: Vec<String>,
}

/// Builds the package of `opts.format` from the out folder `set_dir`.
pub fn package(
    set_dir: &Path,
    opts: &PackageOptions,
    listener: &dyn krbd_progress::Listener,
) -> Result<PackageOutcome, ShipError> {
    let mut set = BuildSet::open(set_dir, opts.debug)?;
    let mtime = match opts.mtime {
        Some(t) => t,
        None => set.report_mtime()?,
    };
    let mut signed = false;
    if let Some(key) = &opts.signing {
        listener.info("signing the modules");
        sign::sign_set(&mut set, key)?;
        signed = true;
    }
    let naming = Naming::of(&set);
    let mut warnings = Vec::new();
    let (file_name, bytes, details, name, version) = match opts.format {
        Format::Rpm => {
            listener.info("writing the kmod RPM");
            let (bytes, meta) = rpm::build_rpm(&set, opts.compression, mtime)?;
            let file = format!("{}-{}-{}.x86_64.rpm", meta.name, meta.version, meta.release);
            let details = serde_json::to_value(&meta).unwrap_or_default();
            (file, bytes, details, meta.name, format!("{}-{}", naming.version, naming.revision))
        }
        Format::Deb => {
            listener.info("writing the .deb");
            let (bytes, meta) = deb::build_deb(&set, opts.compression, mtime, &opts.maintainer)?;
            let file = format!("{}_{}_amd64.deb", meta.package, meta.version);
            let details = serde_json::to_value(&meta).unwrap_or_default();
            (file, bytes, details, meta.package, meta.version)
        }
        Format::Tar => {
            listener.info("writing the installer tarball");
            if opts.installer.is_none() {
                warnings.push(
                    "no installer binary in the tarball: pass --installer PATH (build it with scripts/build-target-binary.sh)"
                        .to_string(),
                );
            }
            let installer = opts.installer.as_deref().map(|p| (p, opts.host_docs.as_ref()));
            let (bytes, meta) = tarball::build_tarball(&set, opts.compression, mtime, installer)?;
            let file = format!("{}.tar.{}", naming.tarball_stem, opts.compression.extension());
            let details = serde_json::to_value(&meta).unwrap_or_default();
            (file, bytes, details, naming.tarball_stem.clone(), format!("{}-{}", naming.version, naming.revision))
        }
        Format::Dkms => {
            listener.info("writing the DKMS source tarball");
            let cache = opts.cache_root.as_deref().ok_or_else(|| ShipError::SourcesMissing {
                build_key: set.report.build_key.clone(),
                release: set.release().to_string(),
                looked: PathBuf::from("(no cache folder given)"),
            })?;
            let sources = dkms::sources_in_cache(cache, &set)?;
            let (bytes, meta) = dkms::build_dkms_tarball(&set, &sources, opts.compression, mtime)?;
            let file = format!("{}-{}.dkms.tar.{}", meta.name, meta.version, opts.compression.extension());
            let details = serde_json::to_value(&meta).unwrap_or_default();
            (file, bytes, details, meta.name, meta.version)
        }
    };
    let path = opts.out_dir.join(&file_name);
    write_into_place(&path, &bytes)?;
    Ok(PackageOutcome {
        format: serde_json::to_value(opts.format).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        size: bytes.len() as u64,
        sha256: krbd_formats::digest::sha256_hex(&bytes),
        path,
        name,
        version,
        release: set.release().to_string(),
        details,
        signed,
        warnings,
    })
}

/// The host package's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFormat {
    Deb,
    Rpm,
}

/// What a host package run asks for, validated.
#[derive(Debug, Clone)]
pub struct HostPackageOptions {
    pub format: HostFormat,
    pub installer: PathBuf,
    pub docs: host::HostDocs,
    /// The package version (the tool's).
    pub version: String,
    pub compression: Compression,
    pub out_dir: PathBuf,
    /// Time stamp of every file and of the package. `None`: the installer's modification time.
    pub mtime: Option<u32>,
    pub maintainer: String,
}

/// Builds the host package (`krbd-forge-host`: krbd-host, its man pages, completions and
/// kernel hooks); no module set is involved.
pub fn package_host(
    opts: &HostPackageOptions,
    listener: &dyn krbd_progress::Listener,
) -> Result<PackageOutcome, ShipError> {
    let mtime = match opts.mtime {
        Some(t) => t,
        None => std::fs::metadata(&opts.installer)
            .and_then(|m| m.modified())
            .map_err(|e| ShipError::BadInstaller { path: opts.installer.clone(), reason: e.to_string() })?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32),
    };
    let input = host::HostInput {
        installer: &opts.installer,
        docs: &opts.docs,
        version: &opts.version,
        mtime,
        maintainer: &opts.maintainer,
        compression: opts.compression,
    };
    let (format, (bytes, meta), file_name) = match opts.format {
        HostFormat::Deb => {
            listener.info("writing the host .deb");
            ("host-deb", host::build_host_deb(&input)?, format!("{}_{}_amd64.deb", host::HOST_PACKAGE, opts.version))
        }
        HostFormat::Rpm => {
            listener.info("writing the host RPM");
            ("host-rpm", host::build_host_rpm(&input)?, format!("{}-{}-1.x86_64.rpm", host::HOST_PACKAGE, opts.version))
        }
    };
    let path = opts.out_dir.join(&file_name);
    write_into_place(&path, &bytes)?;
    Ok(PackageOutcome {
        format: format.to_string(),
        size: bytes.len() as u64,
        sha256: krbd_formats::digest::sha256_hex(&bytes),
        path,
        name: meta.package.clone(),
        version: meta.version.clone(),
        release: String::new(),
        details: serde_json::to_value(&meta).unwrap_or_default(),
        signed: false,
        warnings: Vec::new(),
    })
}

/// Writes `path` atomically (krbd-formats' [`krbd_formats::atomic::write_atomic`]: a
/// sibling temporary file, fsync, rename, fsync of the folder), creating its folder first.
fn write_into_place(path: &Path, bytes: &[u8]) -> Result<(), ShipError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(ShipError::io("create folder", dir))?;
    krbd_formats::atomic::write_atomic(path, bytes).map_err(|e| ShipError::Io {
        action: e.step,
        path: e.path,
        source: e.source,
    })
}

/// A tar builder entry with fixed owner and time.
pub(crate) fn tar_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime as u64);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// Appends an entry under its exact name: the tar crate's path setter drops a leading
/// `./`, which dpkg-built archives (and `dpkg-deb -c` listings) carry.
fn tar_append<W: Write>(b: &mut tar::Builder<W>, mut h: tar::Header, path: &str, data: &[u8]) -> std::io::Result<()> {
    if path.len() < 100 {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data)
    } else {
        b.append_data(&mut h, path, data)
    }
}

/// Appends a folder entry.
pub(crate) fn tar_dir<W: Write>(b: &mut tar::Builder<W>, path: &str, mtime: u32) -> std::io::Result<()> {
    tar_append(b, tar_header(tar::EntryType::Directory, 0o755, 0, mtime), path, &[])
}

/// Appends a regular file.
pub(crate) fn tar_file<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    data: &[u8],
    mtime: u32,
) -> std::io::Result<()> {
    tar_append(b, tar_header(tar::EntryType::Regular, mode, data.len() as u64, mtime), path, data)
}

/// Appends every parent folder of `path` not yet in `seen` (so extraction makes them with
/// fixed modes), then nothing else.
pub(crate) fn tar_parents<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    seen: &mut std::collections::BTreeSet<String>,
    mtime: u32,
) -> std::io::Result<()> {
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        let dir = &path[..at + i + 1];
        at += i + 1;
        if dir == "./" && seen.contains(dir) {
            continue;
        }
        if seen.insert(dir.to_string()) {
            tar_dir(b, dir, mtime)?;
        }
    }
    Ok(())
}
