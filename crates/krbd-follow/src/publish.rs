//! Publishing a proven release's packages through krbd-repo: the APT repository for
//! `.deb` files, the YUM repository for `.rpm` files, both signed with the configured key.
//! krbd-repo switches a repository atomically and takes equal bytes again as "unchanged",
//! so a publish that a killed run repeats does no harm.

use crate::config::FollowConfig;
use crate::state::{Artifact, ReleaseRow};
use krbd_progress::Listener;
use krbd_repo::{AptRepo, Signer, YumRepo};
use std::path::PathBuf;

/// The repositories of a configuration, with the signer imported once per run.
pub struct Publisher {
    config: FollowConfig,
    signer: Option<Signer>,
}

impl Publisher {
    pub fn new(config: &FollowConfig) -> Publisher {
        Publisher { config: config.clone(), signer: None }
    }

    fn signer(&mut self) -> Result<&Signer, String> {
        if self.signer.is_none() {
            let home = self.config.state_dir.join("gnupg");
            let signer = Signer::import(
                &self.config.publish.signing_key,
                &home,
                self.config.publish.signing_passphrase_file.as_deref(),
            )
            .map_err(|e| format!("signing key {}: {e}", self.config.publish.signing_key.display()))?;
            self.signer = Some(signer);
        }
        self.signer.as_ref().ok_or_else(|| "no signer".to_string())
    }

    /// The APT repository of the configuration.
    pub fn apt_repo(config: &FollowConfig) -> Option<AptRepo> {
        let root = config.publish.apt_dir.clone()?;
        Some(AptRepo {
            root,
            codename: config.publish.apt_codename.clone(),
            component: "main".into(),
            architectures: vec!["amd64".into()],
            origin: "krbd-forge".into(),
            label: "krbd-forge proven Ceph kernel modules".into(),
        })
    }

    /// Publishes each Debian line's meta package (`krbd-forge-<kernel meta>`, version equal
    /// to the distribution's kernel meta package, depending on it and on the modules) once
    /// the release that kernel meta package points at is published here. Until then the
    /// line's meta package stays at its older version, which keeps the kernel meta package
    /// (and with it the new kernel) back on hosts. Returns the meta packages published.
    pub fn sync_line_metas(
        &mut self,
        apt: &krbd_fetch::apt_config::AptConfig,
        published_releases: &[String],
        listener: &dyn Listener,
    ) -> Result<Vec<String>, String> {
        let config = self.config.clone();
        let Some(repo) = Publisher::apt_repo(&config) else { return Ok(Vec::new()) };
        let out_dir = config.out_dir.join("line-meta");
        let mut done = Vec::new();
        for line in config.debian_lines() {
            let meta = crate::discover::kernel_meta(apt, &line).map_err(|e| e.to_string())?;
            let Some(kernel) = meta.filter(|m| published_releases.contains(&m.release)) else { continue };
            let line_meta = krbd_repo::LineMeta { kernel, maintainer: "krbd-forge <krbd-forge@localhost>".into() };
            let name = line_meta.package_name();
            if repo.contains(&name, &line_meta.kernel.version).map_err(|e| e.to_string())? {
                continue;
            }
            std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
            let deb = krbd_repo::meta_deb(&line_meta, &out_dir).map_err(|e| format!("meta package {name}: {e}"))?;
            let signer = self.signer()?.clone();
            repo.publish(&[deb], &signer, listener).map_err(|e| format!("APT repository: {e}"))?;
            done.push(format!("{name} {}", line_meta.kernel.version));
        }
        Ok(done)
    }

    /// Publishes `packages` of `row`; the published files as artifacts, or why not.
    pub fn publish(
        &mut self,
        row: &ReleaseRow,
        packages: &[PathBuf],
        listener: &dyn Listener,
    ) -> Result<Vec<Artifact>, String> {
        let debs: Vec<PathBuf> =
            packages.iter().filter(|p| p.extension().is_some_and(|e| e == "deb")).cloned().collect();
        let rpms: Vec<PathBuf> =
            packages.iter().filter(|p| p.extension().is_some_and(|e| e == "rpm")).cloned().collect();
        if debs.is_empty() && rpms.is_empty() {
            return Err(format!("the package stage of {} left no .deb or .rpm", row.release));
        }
        let config = self.config.clone();
        let mut publications = Vec::new();
        if !debs.is_empty() {
            let repo = Publisher::apt_repo(&config).ok_or("no publish.apt_dir is configured for .deb packages")?;
            let signer = self.signer()?.clone();
            publications.push(repo.publish(&debs, &signer, listener).map_err(|e| format!("APT repository: {e}"))?);
        }
        if !rpms.is_empty() {
            let root = config.publish.yum_dir.clone().ok_or("no publish.yum_dir is configured for .rpm packages")?;
            let mut rpms = rpms;
            if row.family == "rhel" && row.release.ends_with(".x86_64") {
                // The meta package (`krbd-forge-kernel` at the kernel's version-release, which
                // requires this kernel and its kmod and conflicts with newer kernels) goes out
                // in the same publish as the kmod: what dnf can hold back, docs/repositories.md.
                let out_dir = config.out_dir.join("line-meta");
                let kernel = krbd_repo::RpmKernel { release: row.release.clone() };
                rpms.push(krbd_repo::meta_rpm(&kernel, &out_dir).map_err(|e| format!("meta package: {e}"))?);
            }
            let signer = self.signer()?.clone();
            let repo = YumRepo { root };
            publications.push(repo.publish(&rpms, &signer, listener).map_err(|e| format!("YUM repository: {e}"))?);
        }
        Ok(publications
            .iter()
            .flat_map(|p| {
                p.added.iter().chain(&p.unchanged).map(|pkg| Artifact {
                    path: p.path.join(&pkg.path),
                    sha256: pkg.sha256.clone(),
                    size: std::fs::metadata(p.path.join(&pkg.path)).map(|m| m.len()).unwrap_or(0),
                })
            })
            .collect())
    }
}
