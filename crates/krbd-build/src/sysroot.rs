//! Kernel headers, laid out where kbuild accepts them without installing anything.
//!
//! Debian splits a kernel's headers over three packages: `linux-headers-<release>` (the
//! `.config`, `Module.symvers` and generated headers), `linux-headers-<abi>-common` (the
//! tree's headers and Makefiles) and `linux-kbuild-<ver>` (the host tools). Extracted into
//! one folder their relative symlinks work; the one absolute reference that matters is the
//! arch package's `Makefile` (`include /usr/src/linux-headers-<abi>-common/Makefile`),
//! which is made relative so the sysroot can live anywhere.

use crate::error::BuildError;
use crate::target::KernelRelease;
use krbd_fetch::deb::DebArchive;
use krbd_progress::{Listener, Unit};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A kernel's `.config`.
#[derive(Debug, Clone, Default)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> KernelConfig {
        let mut values = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("CONFIG_") {
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    values.insert(k.to_string(), v.replace("\\\"", "\""));
                }
            }
        }
        KernelConfig { values }
    }

    /// The value of `CONFIG_<name>`, or `None` when it is not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&format!("CONFIG_{name}")).map(|s| s.as_str())
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Some("y") | Some("m"))
    }
}

/// A usable headers folder (`make -C` target).
#[derive(Debug, Clone)]
pub struct Headers {
    pub dir: PathBuf,
    pub release: KernelRelease,
    pub config: KernelConfig,
}

impl Headers {
    pub fn symvers(&self) -> PathBuf {
        self.dir.join("Module.symvers")
    }

    /// Checks that `dir` holds what an external module build needs.
    pub fn open(dir: &Path) -> Result<Headers, BuildError> {
        let bad = |reason: String| BuildError::BadHeaders { headers: dir.to_path_buf(), reason };
        for needed in ["Makefile", ".config", "Module.symvers", "include/config/kernel.release"] {
            if !dir.join(needed).exists() {
                return Err(bad(format!("{needed} is missing")));
            }
        }
        let release = read_release(dir).map_err(bad)?;
        let release = KernelRelease::parse(&release)?;
        let config = std::fs::read_to_string(dir.join(".config")).map_err(|e| bad(format!(".config: {e}")))?;
        Ok(Headers { dir: dir.to_path_buf(), release, config: KernelConfig::parse(&config) })
    }
}

/// The release modules built against `dir` carry in their vermagic: `UTS_RELEASE` from
/// `include/generated/utsrelease.h`. Debian's 6.1 headers say `6.1.192` in
/// `include/config/kernel.release` but `6.1.0-56-amd64` there, as `uname -r` does.
fn read_release(dir: &Path) -> Result<String, String> {
    let uts = dir.join("include/generated/utsrelease.h");
    if let Ok(text) = std::fs::read_to_string(&uts) {
        if let Some(r) = uts_release(&text) {
            return Ok(r);
        }
    }
    std::fs::read_to_string(dir.join("include/config/kernel.release"))
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("include/config/kernel.release: {e}"))
}

fn uts_release(header: &str) -> Option<String> {
    header.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("#define UTS_RELEASE")?;
        Some(rest.trim().trim_matches('"').to_string())
    })
}

/// Extracts the headers packages into `staging` (a relocatable sysroot).
pub fn lay_out(debs: &[DebArchive], staging: &Path, listener: &dyn Listener) -> Result<(), BuildError> {
    listener.task_start("lay out the kernel headers", Some(debs.len() as u64), Unit::Files);
    for (i, deb) in debs.iter().enumerate() {
        deb.extract_data(staging, |rel| {
            // Module folders and docs are not needed to build; `lib/modules/*/build` would
            // only point back into the sysroot.
            let skip = rel.starts_with("lib/modules") || rel.starts_with("usr/share");
            (!skip).then(|| rel.to_path_buf())
        })?;
        listener.task_progress(i as u64 + 1);
    }
    listener.task_finish();
    let src = staging.join("usr/src");
    for entry in std::fs::read_dir(&src).map_err(BuildError::io("read", &src))?.flatten() {
        let makefile = entry.path().join("Makefile");
        if !entry.path().is_dir() || makefile.is_symlink() || !makefile.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&makefile).map_err(BuildError::io("read", &makefile))?;
        let dir = Path::new("usr/src").join(entry.file_name());
        if let Some(rewritten) = reroot_includes(&text, &dir) {
            std::fs::write(&makefile, rewritten).map_err(BuildError::io("write", &makefile))?;
        }
    }
    Ok(())
}

/// Rewrites `include /abs/path` lines of the Makefile in `makefile_dir` (relative to the
/// sysroot's top) into includes relative to the Makefile's own folder, so that the sysroot
/// keeps working wherever the cache lives. `None` when there is nothing to rewrite.
pub fn reroot_includes(makefile: &str, makefile_dir: &Path) -> Option<String> {
    let up = "../".repeat(makefile_dir.components().count());
    let mut changed = false;
    let out: Vec<String> = makefile
        .lines()
        .map(|l| match l.strip_prefix("include /") {
            Some(rest) => {
                changed = true;
                // make runs with -C in this folder; MAKEFILE_LIST names the file as read.
                format!("include $(dir $(lastword $(MAKEFILE_LIST))){up}{rest}")
            }
            None => l.to_string(),
        })
        .collect();
    changed.then(|| out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_unquoted() {
        let c = KernelConfig::parse(
            "CONFIG_CEPH_LIB=m\n# CONFIG_FOO is not set\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14) 12.2.0\"\n",
        );
        assert_eq!(c.get("CEPH_LIB"), Some("m"));
        assert_eq!(c.get("FOO"), None);
        assert_eq!(c.get("CC_VERSION_TEXT"), Some("gcc-12 (Debian 12.2.0-14) 12.2.0"));
        assert!(c.is_enabled("CEPH_LIB"));
    }

    #[test]
    fn release_comes_from_uts_release() {
        assert_eq!(uts_release("#define UTS_RELEASE \"6.1.0-56-amd64\"\n").as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(uts_release("/* nothing */\n"), None);
    }

    #[test]
    fn absolute_include_points_into_the_sysroot() {
        let got = reroot_includes(
            "include /usr/src/linux-headers-6.1.0-56-common/Makefile\n",
            Path::new("usr/src/linux-headers-6.1.0-56-amd64"),
        );
        assert_eq!(
            got.as_deref(),
            Some(
                "include $(dir $(lastword $(MAKEFILE_LIST)))../../../usr/src/linux-headers-6.1.0-56-common/Makefile\n"
            )
        );
        assert_eq!(reroot_includes("obj-m := x.o\n", Path::new("usr/src/x")), None);
    }
}
