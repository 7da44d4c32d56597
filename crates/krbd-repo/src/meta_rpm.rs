//! The RHEL-family counterpart of the line meta package, built by `rpmbuild` (Debian
//! package `rpm`). Kernels are installonly there, so a `Requires` alone holds nothing back;
//! the `Conflicts` on newer kernels do (see docs/repositories.md for what dnf does with
//! them under `best=True`, `best=False` and `--allowerasing`).

use crate::tool::RPMBUILD;
use crate::RepoError;
use std::path::{Path, PathBuf};

/// The RHEL meta package's name.
pub const RPM_META_NAME: &str = "krbd-forge-kernel";

/// The kernel an RPM meta package pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmKernel {
    /// `uname -r` of the kernel, e.g. `5.14.0-427.13.1.el9_4.x86_64`: what
    /// `kernel-uname-r` is provided as, and what the kmod RPM requires.
    pub release: String,
}

impl RpmKernel {
    /// `(version, release)` of the kernel package: `5.14.0` and `427.13.1.el9_4` for
    /// `5.14.0-427.13.1.el9_4.x86_64`.
    fn version_release(&self) -> Option<(&str, &str)> {
        let without_arch = self.release.strip_suffix(".x86_64")?;
        without_arch.split_once('-')
    }
}

/// `kmod-krbd-forge-<release>`: krbd-ship's kmod RPM name for a kernel release.
pub fn kmod_package_name(release: &str) -> String {
    let safe: String = release
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') { c } else { '-' })
        .collect();
    format!("kmod-krbd-forge-{safe}")
}

/// The spec file `rpmbuild` builds the meta package from.
pub fn meta_rpm_spec(kernel: &RpmKernel) -> Result<String, RepoError> {
    let bad = || RepoError::BadPackage {
        path: PathBuf::from(&kernel.release),
        reason: "not an x86_64 RHEL-family kernel release (<version>-<release>.x86_64)".into(),
    };
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+".contains(c));
    let (version, release) = kernel.version_release().filter(|(v, r)| ok(v) && ok(r)).ok_or_else(bad)?;
    let kmod = kmod_package_name(&kernel.release);
    Ok(format!(
        "Name: {RPM_META_NAME}\n\
         Version: {version}\n\
         Release: {release}\n\
         Summary: Ceph kernel client modules proven for Linux {uname}\n\
         License: GPL-2.0-only\n\
         BuildArch: x86_64\n\
         Requires: kernel-uname-r = {uname}\n\
         Requires: {kmod}\n\
         Conflicts: kernel > {version}-{release}\n\
         Conflicts: kernel-core > {version}-{release}\n\
         %description\n\
         Installs kernel {uname} with its proven Ceph kernel client modules ({kmod}) and\n\
         keeps newer kernels out while no proven set for them is published.\n\
         %files\n",
        uname = kernel.release,
    ))
}

/// Builds `krbd-forge-kernel-<version>-<release>.x86_64.rpm` into `out_dir` and returns its
/// path. Built reproducibly (build time and host fixed), so that building it again for the
/// same kernel gives the same bytes.
pub fn meta_rpm(kernel: &RpmKernel, out_dir: &Path) -> Result<PathBuf, RepoError> {
    let spec = meta_rpm_spec(kernel)?;
    std::fs::create_dir_all(out_dir).map_err(RepoError::io("create", out_dir))?;
    let work = out_dir.join(format!(".rpmbuild-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(RepoError::io("create", &work))?;
    let spec_path = work.join("meta.spec");
    std::fs::write(&spec_path, spec).map_err(RepoError::io("write", &spec_path))?;
    let mut cmd = RPMBUILD.command();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000").arg("-bb").arg("--quiet");
    for (k, v) in [
        ("_topdir", work.display().to_string()),
        ("_rpmdir", work.join("out").display().to_string()),
        ("_build_name_fmt", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm".into()),
        ("use_source_date_epoch_as_buildtime", "1".into()),
        ("clamp_mtime_to_source_date_epoch", "1".into()),
        ("_buildhost", "krbd-forge".into()),
        ("_binary_payload", "w9.gzdio".into()),
    ] {
        cmd.arg("--define").arg(format!("{k} {v}"));
    }
    cmd.arg(&spec_path);
    let built = RPMBUILD.run(&mut cmd, "build the RPM meta package");
    let (version, release) = kernel.version_release().unwrap_or_default();
    let name = format!("{RPM_META_NAME}-{version}-{release}.x86_64.rpm");
    let result = built.and_then(|_| {
        let from = work.join("out").join(&name);
        let to = out_dir.join(&name);
        std::fs::rename(&from, &to).map_err(RepoError::io("move into place", &from))?;
        Ok(to)
    });
    let _ = std::fs::remove_dir_all(&work);
    result
}
