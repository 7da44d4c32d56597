//! The publish both repository kinds share: lock, clean up after a killed run, decide what
//! is new, build the next generation beside the served one, switch.

use crate::generation::{self, copy_synced, link, write_synced, Locked, Manifest};
use crate::{Publication, PublishedPackage, RepoError, Signer};
use krbd_progress::{Listener, Unit};
use std::path::{Path, PathBuf};

/// A package file offered to a publish, with what it was read to be.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub source: PathBuf,
    pub package: PublishedPackage,
}

/// What differs between the repository kinds: writing the indices and their signatures
/// into a staging folder whose package files are in place.
pub(crate) trait Indexer {
    /// `kept`: the generations that stay served beside the new one (newest first), whose
    /// hashed index files the new generation keeps reachable.
    fn index(
        &self,
        staging: &Path,
        kept: &[PathBuf],
        signer: &Signer,
        listener: &dyn Listener,
    ) -> Result<(), RepoError>;
}

/// Name of the armored public key in every generation.
pub(crate) const PUBLIC_KEY_FILE: &str = "signing-key.asc";

pub(crate) fn publish(
    root: &Path,
    incoming: Vec<Incoming>,
    indexer: &dyn Indexer,
    signer: &Signer,
    listener: &dyn Listener,
) -> Result<Publication, RepoError> {
    let locked = Locked::open(root)?;
    let mut removed = locked.remove_leftovers()?;
    let current = generation::current(root)?;
    let existing = match &current {
        Some((_, dir)) => Manifest::read(dir)?.packages,
        None => Vec::new(),
    };
    let (added, unchanged) = classify(&existing, incoming)?;
    if let (true, Some((number, dir))) = (added.is_empty(), &current) {
        listener.info(&format!("nothing new to publish; generation {number} stays current"));
        let path = dir.clone();
        return Ok(Publication { generation: *number, path, added: vec![], unchanged, removed_generations: removed });
    }
    let (number, staging) = locked.staging()?;
    listener.task_start(&format!("build generation {number}"), Some(3), Unit::Steps);
    let next = NextGeneration { locked: &locked, staging: &staging, number, current: current.map(|(_, dir)| dir) };
    let built = next.build(existing, &added, indexer, signer, listener);
    listener.task_finish();
    built?;
    listener.info(&format!("generation {number} built"));
    let path = locked.switch(number, &staging, listener)?;
    removed.extend(locked.prune()?);
    let added = added.into_iter().map(|a| a.package).collect();
    Ok(Publication { generation: number, path, added, unchanged, removed_generations: removed })
}

/// The generation a publish is building.
struct NextGeneration<'a> {
    locked: &'a Locked,
    staging: &'a Path,
    number: u64,
    /// The served generation's folder, if any.
    current: Option<PathBuf>,
}

impl NextGeneration<'_> {
    /// Fills the staging folder: the current generation's packages as hard links, the new
    /// ones copied, the indices and signatures, the public key, and last the manifest that
    /// marks a generation complete.
    fn build(
        &self,
        existing: Vec<PublishedPackage>,
        added: &[Incoming],
        indexer: &dyn Indexer,
        signer: &Signer,
        listener: &dyn Listener,
    ) -> Result<(), RepoError> {
        let staging = self.staging;
        if let Some(dir) = &self.current {
            for p in &existing {
                link(&dir.join(&p.path), &staging.join(&p.path))?;
            }
        }
        for a in added {
            copy_synced(&a.source, &staging.join(&a.package.path))?;
        }
        listener.task_progress(1);
        let kept = self.locked.kept_after_switch()?;
        indexer.index(staging, &kept, signer, listener)?;
        listener.task_progress(2);
        write_synced(&staging.join(PUBLIC_KEY_FILE), signer.public_key_armored()?.as_bytes())?;
        let mut packages: Vec<PublishedPackage> = existing;
        packages.extend(added.iter().map(|a| a.package.clone()));
        packages.sort_by(|a, b| (&a.name, &a.version, &a.architecture).cmp(&(&b.name, &b.version, &b.architecture)));
        Manifest { generation: self.number, packages }.write(staging)?;
        generation::sync_dir(staging)?;
        listener.task_progress(3);
        Ok(())
    }
}

/// Splits `incoming` into new packages and ones already published with equal bytes; the
/// same name, version and architecture with other bytes is a conflict (a published version
/// never changes). Duplicates in `incoming` count once.
fn classify(
    existing: &[PublishedPackage],
    incoming: Vec<Incoming>,
) -> Result<(Vec<Incoming>, Vec<PublishedPackage>), RepoError> {
    let key = |p: &PublishedPackage| (p.name.clone(), p.version.clone(), p.architecture.clone());
    let mut added: Vec<Incoming> = Vec::new();
    let mut unchanged = Vec::new();
    for inc in incoming {
        let k = key(&inc.package);
        let known =
            existing.iter().find(|p| key(p) == k).or_else(|| added.iter().map(|a| &a.package).find(|p| key(p) == k));
        match known {
            Some(p) if p.sha256 == inc.package.sha256 => {
                if existing.iter().any(|e| key(e) == k) {
                    unchanged.push(inc.package);
                }
            }
            Some(_) => {
                return Err(RepoError::Conflict { package: k.0, version: k.1, architecture: k.2 });
            }
            None => added.push(inc),
        }
    }
    Ok((added, unchanged))
}
