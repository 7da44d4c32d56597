//! The load order of a module set: what each module needs (`depends`, and the softdeps
//! `pre:`/`post:` from modinfo), taken from the modules themselves and the target's package,
//! not from a hand-written list. busybox's insmod knows nothing about dependencies, so the
//! initramfs loads exactly this order.

use crate::linux_image::KernelPackage;
use crate::VmError;
use krbd_kmod::KernelModule;
use krbd_progress::Listener;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a module is in the initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of the modules under test.
    Ours,
    /// Named in some module's `depends`: must load.
    Dependency,
    /// Reached through a softdep (e.g. an implementation of `crc32c`): may fail to load,
    /// as with modprobe (crc32c-intel refuses CPUs without SSE4.2).
    Optional,
    /// Needed by the test itself (network driver, filesystem), not by the set.
    Support,
}

/// A module to put into the initramfs, in load order.
#[derive(Debug, Clone)]
pub struct PlannedModule {
    pub name: String,
    pub role: Role,
    /// Uncompressed .ko.
    pub bytes: Vec<u8>,
    /// `srcversion` from the file's modinfo, to compare with `/sys/module/<name>/srcversion`.
    pub srcversion: Option<String>,
    /// Where it came from: a file of ours or a path inside the package.
    pub origin: String,
    /// The GNU build-id (hex) of the file, to compare with the loaded module's
    /// `/sys/module/<name>/notes/.note.gnu.build-id`: proof that the kernel runs this very
    /// file, also where modinfo has no srcversion (in-tree and most out-of-tree builds).
    pub build_id: Option<String>,
}

/// The GNU build-id in an ELF note blob: one parser for the whole workspace, krbd-install's
/// (the installer and `status` read the same notes).
pub use krbd_install::set::gnu_build_id;

/// A module of ours given by the caller.
#[derive(Debug, Clone)]
pub struct OurModule {
    pub name: String,
    pub bytes: Vec<u8>,
    pub origin: String,
}

struct Resolver<'a> {
    pkg: &'a KernelPackage,
    ours: BTreeMap<String, &'a OurModule>,
    listener: &'a dyn Listener,
    state: BTreeMap<String, bool>, // false = on the stack, true = placed
    order: Vec<PlannedModule>,
}

/// Resolves the load order of `ours` plus `support` (names of package modules) against `pkg`.
pub fn plan_load_order(
    pkg: &KernelPackage,
    ours: &[OurModule],
    support: &[&str],
    listener: &dyn Listener,
) -> Result<Vec<PlannedModule>, VmError> {
    let mut r = Resolver {
        pkg,
        ours: ours.iter().map(|m| (m.name.clone(), m)).collect(),
        listener,
        state: BTreeMap::new(),
        order: Vec::new(),
    };
    for m in ours {
        r.visit(&m.name, Role::Ours, "the command line")?;
    }
    for s in support {
        r.visit(s, Role::Support, "the cluster test")?;
    }
    Ok(r.order)
}

/// Splits a modinfo `softdep` value (`pre: a b post: c`) into its pre and post lists.
pub fn parse_softdep(value: &str) -> (Vec<String>, Vec<String>) {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut current: Option<&mut Vec<String>> = None;
    for word in value.split_whitespace() {
        match word {
            "pre:" => current = Some(&mut pre),
            "post:" => current = Some(&mut post),
            w => {
                if let Some(list) = current.as_deref_mut() {
                    list.push(w.to_string());
                }
            }
        }
    }
    (pre, post)
}

impl Resolver<'_> {
    fn visit(&mut self, name: &str, role: Role, needed_by: &str) -> Result<(), VmError> {
        match self.state.get(name) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(VmError::DependencyCycle { module: name.to_string(), via: needed_by.to_string() })
            }
            None => {}
        }
        let (bytes, origin, role) = if let Some(m) = self.ours.get(name) {
            (m.bytes.clone(), m.origin.clone(), Role::Ours)
        } else if let Some(b) = self.pkg.module_bytes(name)? {
            (b, self.pkg.modules[name].path.clone(), role)
        } else {
            return Err(VmError::MissingDependency {
                module: name.to_string(),
                needed_by: needed_by.to_string(),
                release: self.pkg.release.clone(),
            });
        };
        let parsed =
            KernelModule::parse(&bytes).map_err(|source| VmError::BadModule { origin: origin.clone(), source })?;
        self.state.insert(name.to_string(), false);
        let mut post_all = Vec::new();
        for (key, value) in &parsed.modinfo {
            if key == "softdep" {
                let (pre, post) = parse_softdep(value);
                for alias in pre {
                    self.visit_soft(&alias, name)?;
                }
                post_all.extend(post);
            }
        }
        for dep in parsed.modinfo.iter().filter(|(k, _)| k == "depends").flat_map(|(_, v)| v.split(',')) {
            let dep = dep.trim();
            if dep.is_empty() || (self.pkg.builtin.contains(dep) && !self.ours.contains_key(dep)) {
                continue;
            }
            let dep_role = if role == Role::Optional { Role::Optional } else { Role::Dependency };
            self.visit(dep, dep_role, name)?;
        }
        self.state.insert(name.to_string(), true);
        self.order.push(PlannedModule {
            name: name.to_string(),
            role,
            srcversion: parsed.srcversion().map(str::to_string),
            build_id: parsed.section(".note.gnu.build-id").and_then(gnu_build_id),
            bytes,
            origin,
        });
        for alias in post_all {
            self.visit_soft(&alias, name)?;
        }
        Ok(())
    }

    /// A softdep names a module or an alias; modprobe loads every module providing it.
    fn visit_soft(&mut self, alias: &str, needed_by: &str) -> Result<(), VmError> {
        let as_name = alias.replace('-', "_");
        if self.ours.contains_key(&as_name) || self.pkg.modules.contains_key(&as_name) {
            return self.visit(&as_name, Role::Optional, needed_by);
        }
        if self.pkg.builtin.contains(&as_name) || self.pkg.builtin_aliases.contains(alias) {
            return Ok(());
        }
        for provider in self.providers_of(alias)? {
            self.visit(&provider, Role::Optional, needed_by)?;
        }
        Ok(())
    }

    /// Modules whose modinfo declares `alias=<alias>`. Decompressing all ~4000 modules of
    /// a package to build a full alias index costs seconds, so only modules whose name
    /// starts with the alias's stem (`crypto-crc32c` -> `crc32c*`) are opened; the alias
    /// itself is then checked in their modinfo, so a name match alone never counts.
    fn providers_of(&self, alias: &str) -> Result<Vec<String>, VmError> {
        let stem = alias.strip_prefix("crypto-").unwrap_or(alias).replace('-', "_");
        let mut found = Vec::new();
        for (name, _) in self.pkg.modules.range(stem.clone()..) {
            if !name.starts_with(&stem) {
                break;
            }
            let Some(bytes) = self.pkg.module_bytes(name)? else { continue };
            let Ok(parsed) = KernelModule::parse(&bytes) else { continue };
            if parsed.modinfo.iter().any(|(k, v)| k == "alias" && v == alias) {
                found.push(name.clone());
            }
        }
        if found.is_empty() {
            self.listener.warning(&format!(
                "softdep {alias:?} of {}: no module of the package provides it; going on without it",
                self.pkg.release
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_note() {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(b"GNU\0\xaa\xbb\xcc\0");
        assert_eq!(gnu_build_id(&note).as_deref(), Some("aabbcc"));
        assert_eq!(gnu_build_id(&note[..10]), None);
    }

    #[test]
    fn softdep_lists() {
        assert_eq!(parse_softdep("pre: crc32c"), (vec!["crc32c".to_string()], vec![]));
        assert_eq!(parse_softdep("pre: a b post: c"), (vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]));
        assert_eq!(parse_softdep("junk"), (vec![], vec![]));
    }
}
