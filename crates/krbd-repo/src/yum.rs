//! The YUM/DNF repository: `Packages/*.rpm` and `repodata/` written by `createrepo_c`,
//! `repomd.xml` signed as `repomd.xml.asc`.

use crate::generation::link;
use crate::publish::{self, Incoming, Indexer};
use crate::sign::SignatureKind;
use crate::tool::CREATEREPO;
use crate::{generation, Publication, PublishedPackage, RepoError, Signer, YumRepo};
use krbd_formats::rpm::{header::Header, lead, tag};
use krbd_progress::Listener;
use std::io::Read;
use std::path::{Path, PathBuf};

impl YumRepo {
    /// Adds the `.rpm` files in `add` and publishes a new signed generation atomically,
    /// with the same rules as [`crate::AptRepo::publish`].
    pub fn publish(&self, add: &[PathBuf], signer: &Signer, listener: &dyn Listener) -> Result<Publication, RepoError> {
        let incoming = add.iter().map(|p| incoming(p)).collect::<Result<Vec<_>, _>>()?;
        publish::publish(&self.root, incoming, self, signer, listener)
    }

    /// Whether the current generation holds `package` at `version`
    /// (`[<epoch>:]<version>-<release>`, any architecture).
    pub fn contains(&self, package: &str, version: &str) -> Result<bool, RepoError> {
        Ok(self.packages()?.iter().any(|p| p.name == package && p.version == version))
    }

    /// Every package of the current generation.
    pub fn packages(&self) -> Result<Vec<PublishedPackage>, RepoError> {
        generation::current_packages(&self.root)
    }
}

impl Indexer for YumRepo {
    fn index(
        &self,
        staging: &Path,
        kept: &[PathBuf],
        signer: &Signer,
        listener: &dyn Listener,
    ) -> Result<(), RepoError> {
        listener.info("indexing the RPMs");
        // Hashed file names keep every generation's metadata files distinct, so that they
        // can be carried over to the next generations.
        let mut cmd = CREATEREPO.command();
        cmd.args(["--quiet", "--unique-md-filenames"]).arg(staging);
        CREATEREPO.run(&mut cmd, "index the RPMs")?;
        // The metadata files of the generations still served, so that a client holding an
        // older repomd.xml finds the files it lists.
        let repodata = staging.join("repodata");
        for dir in kept {
            for href in metadata_files(&dir.join("repodata/repomd.xml"))? {
                let from = dir.join(&href);
                if from.is_file() {
                    link(&from, &staging.join(&href))?;
                }
            }
        }
        let repomd = repodata.join("repomd.xml");
        listener.info("signing repomd.xml");
        signer.sign(&repomd, &repodata.join("repomd.xml.asc"), SignatureKind::DetachedArmored)
    }
}

/// The `repodata/...` files a `repomd.xml` lists (its `<location href="..."/>`s).
fn metadata_files(repomd: &Path) -> Result<Vec<String>, RepoError> {
    let text = match std::fs::read_to_string(repomd) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RepoError::io("read", repomd)(e)),
    };
    Ok(text
        .split("<location href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("repodata/") && !href.contains(".."))
        .map(str::to_string)
        .collect())
}

/// Reads an RPM's name, `[epoch:]version-release` and architecture from its header; its
/// path in the repository is `Packages/<name>-<version>-<release>.<arch>.rpm`.
fn incoming(path: &Path) -> Result<Incoming, RepoError> {
    let bad = |reason: String| RepoError::BadPackage { path: path.into(), reason };
    let header = read_main_header(path).map_err(|e| bad(format!("not a readable RPM ({e})")))?;
    let text = |t: u32, what: &str| header.string(t).map(str::to_string).ok_or_else(|| bad(format!("no {what} tag")));
    let (name, version, release, arch) = (
        text(tag::NAME, "name")?,
        text(tag::VERSION, "version")?,
        text(tag::RELEASE, "release")?,
        text(tag::ARCH, "arch")?,
    );
    let evr = match header.int(tag::EPOCH) {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let rel = format!("Packages/{name}-{version}-{release}.{arch}.rpm");
    let sha256 = krbd_formats::digest::sha256_file(path, |_| {}).map_err(RepoError::io("read", path))?;
    Ok(Incoming {
        source: path.into(),
        package: PublishedPackage { name, version: evr, architecture: arch, path: rel, sha256 },
    })
}

/// The lead, the signature header and its padding, then the main header.
fn read_main_header(path: &Path) -> Result<Header, String> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| e.to_string())?);
    let mut lead_bytes = [0u8; lead::LEAD_SIZE];
    f.read_exact(&mut lead_bytes).map_err(|e| e.to_string())?;
    lead::parse(&lead_bytes).map_err(|e| e.to_string())?;
    let signature = Header::read(&mut f).map_err(|e| e.to_string())?;
    let mut pad = vec![0u8; krbd_formats::rpm::header::signature_padding(signature.len())];
    f.read_exact(&mut pad).map_err(|e| e.to_string())?;
    Header::read(&mut f).map_err(|e| e.to_string())
}
