//! The APT repository: `pool/` and `dists/<codename>/` indexed by `apt-ftparchive`,
//! `Release` signed as `InRelease` and `Release.gpg`.

use crate::generation::{link, write_synced};
use crate::publish::{self, Incoming, Indexer};
use crate::sign::SignatureKind;
use crate::tool::APT_FTPARCHIVE;
use crate::{generation, AptRepo, Publication, PublishedPackage, RepoError, Signer};
use krbd_formats::deb::DebReader;
use krbd_progress::Listener;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The index files of one `binary-<arch>` folder.
const INDEX_FILES: [&str; 3] = ["Packages", "Packages.gz", "Packages.xz"];

impl AptRepo {
    /// Adds the `.deb` files in `add` to the repository and publishes a new signed
    /// generation atomically (waiting for another publish of the same root to finish). A
    /// package whose name, version and architecture are already published with other bytes
    /// is refused ([`RepoError::Conflict`]): a published version never changes. With nothing
    /// new to add the current generation stays; the first publish makes an empty but signed
    /// repository even from no packages.
    pub fn publish(&self, add: &[PathBuf], signer: &Signer, listener: &dyn Listener) -> Result<Publication, RepoError> {
        self.validate()?;
        let incoming = add.iter().map(|p| self.incoming(p)).collect::<Result<Vec<_>, _>>()?;
        publish::publish(&self.root, incoming, self, signer, listener)
    }

    /// Whether the current generation holds `package` at `version` (any architecture).
    pub fn contains(&self, package: &str, version: &str) -> Result<bool, RepoError> {
        Ok(self.packages()?.iter().any(|p| p.name == package && p.version == version))
    }

    /// Every package of the current generation (empty when nothing was published yet).
    pub fn packages(&self) -> Result<Vec<PublishedPackage>, RepoError> {
        generation::current_packages(&self.root)
    }

    /// The `dists/<codename>` folder's path relative to a generation.
    fn dist(&self) -> PathBuf {
        Path::new("dists").join(&self.codename)
    }

    fn validate(&self) -> Result<(), RepoError> {
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        let settings = [("codename", &self.codename), ("component", &self.component)]
            .into_iter()
            .chain(self.architectures.iter().map(|a| ("architecture", a)));
        for (setting, value) in settings {
            if !word(value) {
                return Err(RepoError::BadSetting { setting, value: value.clone() });
            }
        }
        if self.architectures.is_empty() {
            return Err(RepoError::BadSetting { setting: "architectures", value: String::new() });
        }
        Ok(())
    }

    /// Reads a `.deb`'s name, version and architecture; its pool path is Debian's:
    /// `pool/<component>/<prefix>/<package>/<package>_<version without epoch>_<arch>.deb`.
    fn incoming(&self, path: &Path) -> Result<Incoming, RepoError> {
        let bad = |reason: String| RepoError::BadPackage { path: path.into(), reason };
        let control = DebReader::open(path).and_then(|d| d.control()).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| control.get(k).map(str::to_string).ok_or_else(|| bad(format!("its control has no {k}")));
        let (name, version, architecture) = (field("Package")?, field("Version")?, field("Architecture")?);
        if architecture != "all" && !self.architectures.contains(&architecture) {
            return Err(bad(format!("architecture {architecture} is not one of {}", self.architectures.join(", "))));
        }
        let prefix = if name.starts_with("lib") && name.len() > 3 { &name[..4] } else { &name[..1] };
        let upstream = version.split_once(':').map_or(version.as_str(), |(_, v)| v);
        let file = format!("{name}_{upstream}_{architecture}.deb");
        let rel = format!("pool/{}/{prefix}/{name}/{file}", self.component);
        let sha256 = krbd_formats::digest::sha256_file(path, |_| {}).map_err(RepoError::io("read", path))?;
        Ok(Incoming {
            source: path.into(),
            package: PublishedPackage { name, version, architecture, path: rel, sha256 },
        })
    }

    /// `apt-ftparchive packages` for one architecture (its own and `all` packages).
    fn packages_index(&self, staging: &Path, arch: &str) -> Result<Vec<u8>, RepoError> {
        let pool = format!("pool/{}", self.component);
        std::fs::create_dir_all(staging.join(&pool)).map_err(RepoError::io("create", &staging.join(&pool)))?;
        let mut cmd = APT_FTPARCHIVE.command();
        cmd.current_dir(staging).args(["--arch", arch, "packages", &pool]);
        Ok(APT_FTPARCHIVE.run(&mut cmd, "index the .deb packages")?.stdout)
    }

    /// `apt-ftparchive release` over `dists/<codename>`: every index's size and hashes.
    /// Only SHA256 beside the MD5 that old tools read: apt fetches an index through
    /// `by-hash/` under the strongest hash the Release lists, and this repository keeps
    /// `by-hash/SHA256/` only.
    fn release(&self, staging: &Path) -> Result<Vec<u8>, RepoError> {
        let mut cmd = APT_FTPARCHIVE.command();
        cmd.current_dir(staging);
        let fields = [
            ("Origin", self.origin.clone()),
            ("Label", self.label.clone()),
            ("Suite", self.codename.clone()),
            ("Codename", self.codename.clone()),
            ("Architectures", self.architectures.join(" ")),
            ("Components", self.component.clone()),
            ("Acquire-By-Hash", "yes".into()),
            ("Description", format!("{}: proven Ceph kernel client modules", self.label)),
        ];
        for (k, v) in fields {
            cmd.arg("-o").arg(format!("APT::FTPArchive::Release::{k}={v}"));
        }
        for off in ["SHA1", "SHA512"] {
            cmd.arg("-o").arg(format!("APT::FTPArchive::Release::{off}=false"));
        }
        cmd.arg("release").arg(self.dist());
        Ok(APT_FTPARCHIVE.run(&mut cmd, "write the Release file")?.stdout)
    }
}

impl Indexer for AptRepo {
    fn index(
        &self,
        staging: &Path,
        kept: &[PathBuf],
        signer: &Signer,
        listener: &dyn Listener,
    ) -> Result<(), RepoError> {
        for arch in &self.architectures {
            listener.info(&format!("indexing {} {arch}", self.codename));
            let rel = self.dist().join(&self.component).join(format!("binary-{arch}"));
            let dir = staging.join(&rel);
            let packages = self.packages_index(staging, arch)?;
            let files = [
                (INDEX_FILES[0], packages.clone()),
                (INDEX_FILES[1], gzip(&packages)?),
                (INDEX_FILES[2], xz(&packages)?),
            ];
            for (name, bytes) in &files {
                write_synced(&dir.join(name), bytes)?;
            }
            // by-hash: this generation's indices and those of the generations still served,
            // so that a client holding an older Release finds the indices it lists.
            for source in std::iter::once(staging).chain(kept.iter().map(PathBuf::as_path)) {
                link_by_hash(&source.join(&rel), &dir)?;
            }
        }
        let dist = staging.join(self.dist());
        let release = dist.join("Release");
        write_synced(&release, &self.release(staging)?)?;
        listener.info("signing Release");
        signer.sign(&release, &dist.join("InRelease"), SignatureKind::Clearsigned)?;
        signer.sign(&release, &dist.join("Release.gpg"), SignatureKind::DetachedArmored)?;
        Ok(())
    }
}

/// Links each index file of `from` (a `binary-<arch>` folder) into
/// `to/by-hash/SHA256/<its sha256>`. A missing `from` (an architecture added since) is
/// skipped.
fn link_by_hash(from: &Path, to: &Path) -> Result<(), RepoError> {
    for name in INDEX_FILES {
        let file = from.join(name);
        if !file.is_file() {
            continue;
        }
        let sha = krbd_formats::digest::sha256_file(&file, |_| {}).map_err(RepoError::io("read", &file))?;
        link(&file, &to.join("by-hash/SHA256").join(sha))?;
    }
    Ok(())
}

pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>, RepoError> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    enc.write_all(data).and_then(|()| enc.finish()).map_err(RepoError::io("compress", Path::new("an index")))
}

fn xz(data: &[u8]) -> Result<Vec<u8>, RepoError> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data).and_then(|()| enc.finish()).map_err(RepoError::io("compress", Path::new("an index")))
}
