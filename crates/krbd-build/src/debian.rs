//! A Debian target made ready for the pipeline: its packages resolved through apt and
//! fetched, the headers packages laid out as a sysroot, the image's modules extracted.

use crate::error::BuildError;
use crate::stages::{Stages, LAYOUT_VERSION};
use crate::sysroot::{self, Headers};
use crate::target::{self, DebianTarget, KernelRelease};
use krbd_fetch::apt;
use krbd_fetch::cache::Cache;
use krbd_fetch::deb::DebArchive;
use krbd_fetch::hash::KeyHasher;
use krbd_progress::Listener;
use std::path::{Path, PathBuf};

/// The fetched `.deb` files of a [`DebianTarget`], one field per package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDebs {
    /// `linux-headers-<release>`.
    pub headers: PathBuf,
    /// `linux-headers-<abi>-common`.
    pub headers_common: PathBuf,
    /// `linux-kbuild-<version>`.
    pub kbuild: PathBuf,
    /// `linux-image-<release>`.
    pub image: PathBuf,
    /// `linux-source-<major.minor>`, when it was asked for.
    pub source: Option<PathBuf>,
}

impl KernelDebs {
    /// The headers packages, in the order they are laid into the sysroot.
    pub fn headers_packages(&self) -> [&Path; 3] {
        [&self.headers, &self.headers_common, &self.kbuild]
    }
}

/// A Debian target made ready: packages fetched, headers laid out, the image's modules
/// extracted.
#[derive(Debug, Clone)]
pub struct PreparedTarget {
    pub target: DebianTarget,
    pub debs: KernelDebs,
    pub headers: Headers,
    pub sysroot_key: String,
    /// `lib/modules/<release>` of the target's linux-image package.
    pub modules_dir: PathBuf,
}

/// Resolves, fetches and lays out a Debian target (`None`: the default one).
pub fn prepare_debian(
    cache: &Cache,
    release: Option<&KernelRelease>,
    with_source: bool,
    stages: &mut Stages,
    listener: &dyn Listener,
) -> Result<PreparedTarget, BuildError> {
    let target = stages.run("resolve", || Ok((target::resolve_cached(cache, release, with_source)?, false)))?;
    listener.info(&format!("target {} (Debian {})", target.release, target.headers.version));
    let debs = stages.run("fetch", || fetch_debs(cache, &target, listener))?;
    let sysroot_key = sysroot_key(&target);
    let root = stages.run("headers", || lay_out_headers(cache, &debs, &sysroot_key, listener))?;
    let headers = Headers::open(&root.join("usr/src").join(format!("linux-headers-{}", target.release)))?;
    let image_root = stages.run("image", || extract_image(cache, &target, &debs.image, listener))?;
    let modules_dir = image_root.join("lib/modules").join(target.release.as_str());
    Ok(PreparedTarget { target, debs, headers, sysroot_key, modules_dir })
}

/// Fetches every package of `target`; `true` when all of them were already cached.
fn fetch_debs(cache: &Cache, target: &DebianTarget, listener: &dyn Listener) -> Result<(KernelDebs, bool), BuildError> {
    let mut all_cached = true;
    let mut fetch = |package| -> Result<PathBuf, BuildError> {
        let (path, hit) = apt::fetch(cache, package, listener)?;
        all_cached &= hit;
        Ok(path)
    };
    let debs = KernelDebs {
        headers: fetch(&target.headers)?,
        headers_common: fetch(&target.headers_common)?,
        kbuild: fetch(&target.kbuild)?,
        image: fetch(&target.image)?,
        source: target.source.as_ref().map(&mut fetch).transpose()?,
    };
    Ok((debs, all_cached))
}

/// The sysroot's cache key: the headers packages' hashes, in layout order.
fn sysroot_key(target: &DebianTarget) -> String {
    let mut key = KeyHasher::new(LAYOUT_VERSION);
    for p in target.headers_packages() {
        key.str(&p.sha256);
    }
    key.finish()
}

/// The headers packages laid out as a sysroot, once per `sysroot_key`.
fn lay_out_headers(
    cache: &Cache,
    debs: &KernelDebs,
    sysroot_key: &str,
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    let headers_debs: Vec<DebArchive> =
        debs.headers_packages().into_iter().map(DebArchive::open).collect::<Result<_, _>>()?;
    cache.get_or_create("sysroots", sysroot_key, |staging| sysroot::lay_out(&headers_debs, staging, listener))
}

/// The image package's `lib/modules` and `boot`, extracted once per package hash.
fn extract_image(
    cache: &Cache,
    target: &DebianTarget,
    image_deb: &Path,
    listener: &dyn Listener,
) -> Result<(PathBuf, bool), BuildError> {
    let image = DebArchive::open(image_deb)?;
    let image_key = KeyHasher::new(LAYOUT_VERSION).str(&target.image.sha256).finish();
    cache.get_or_create("images", &image_key, |staging| {
        listener.task_start("extract the kernel image package", None, krbd_progress::Unit::Files);
        let extracted = image.extract_data(staging, |rel| {
            (rel.starts_with("lib/modules") || rel.starts_with("boot")).then(|| rel.to_path_buf())
        });
        listener.task_finish();
        extracted.map(|_| ()).map_err(BuildError::from)
    })
}
