//! The check before anything changes: find the release's headers on the host (or take the
//! folder given) and replay the kernel loader on the set against them (krbd-kmod), so that
//! a set the kernel would refuse is never installed.

use crate::host::TargetHost;
use crate::set::ShippedSet;
use crate::InstallError;
use krbd_kmod::loader::{Outcome as Verdict, SetOptions, SetReport};
use krbd_kmod::TargetSpec;
use std::path::{Path, PathBuf};

/// Against what the set is checked before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadCheck {
    /// The release's headers on the host: `/lib/modules/<release>/build`,
    /// `/usr/src/linux-headers-<release>`, `/usr/src/kernels/<release>`.
    Auto,
    /// A headers folder (Module.symvers, .config, include/generated/utsrelease.h).
    Headers(PathBuf),
    Skip,
}

/// Where the release's headers may be, under the root, in the order they are tried.
pub fn header_candidates(host: &TargetHost) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let build = host.modules_dir().join("build");
    if let Ok(link) = std::fs::read_link(&build) {
        // The link is absolute on the host; resolve it inside the root.
        out.push(if link.is_absolute() {
            host.abs(&link.display().to_string())
        } else {
            host.modules_dir().join(link)
        });
    } else {
        out.push(build);
    }
    out.push(host.abs(&format!("usr/src/linux-headers-{}", host.release)));
    out.push(host.abs(&format!("usr/src/kernels/{}", host.release)));
    out
}

/// The package that holds the release's headers on the target: `linux-headers-<release>`
/// on Debian and its derivatives (`/etc/debian_version`), `kernel-devel-<release>` on the
/// RHEL family (`/etc/redhat-release`), both names when the root says neither.
pub fn headers_package(host: &TargetHost) -> String {
    let release = &host.release;
    if host.abs("etc/debian_version").exists() {
        format!("linux-headers-{release}")
    } else if host.abs("etc/redhat-release").exists() {
        format!("kernel-devel-{release}")
    } else {
        format!("linux-headers-{release} or kernel-devel-{release}")
    }
}

/// The first candidate with a Module.symvers.
fn find_headers(host: &TargetHost) -> Result<PathBuf, InstallError> {
    let candidates = header_candidates(host);
    match candidates.iter().find(|d| d.join("Module.symvers").is_file()) {
        Some(d) => Ok(d.clone()),
        None => Err(InstallError::NoLoadCheckTarget {
            release: host.release.clone(),
            looked: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
            package: headers_package(host),
        }),
    }
}

/// Checks the set against the headers; returns the summary (`None`: skipped), or why the
/// kernel would refuse it.
pub fn load_check(set: &ShippedSet, host: &TargetHost, check: &LoadCheck) -> Result<Option<String>, InstallError> {
    let dir = match check {
        LoadCheck::Skip => return Ok(None),
        LoadCheck::Headers(d) => d.clone(),
        LoadCheck::Auto => find_headers(host)?,
    };
    let kos: Vec<PathBuf> = set.modules.iter().map(|m| m.path.clone()).collect();
    let report = krbd_kmod::check_files(
        &kos,
        &TargetSpec::Headers { dir: dir.clone() },
        Some(&host.modules_dir()),
        &SetOptions::default(),
    )
    .map_err(|source| InstallError::LoadCheck { source })?;
    if !report.all_load() {
        return Err(InstallError::WouldNotLoad { verdicts: refusals(&report) });
    }
    Ok(Some(summary(&report, &dir)))
}

/// One line per refused module and per problem of the set.
fn refusals(report: &SetReport) -> Vec<String> {
    let mut verdicts: Vec<String> = report
        .modules
        .iter()
        .filter(|m| m.verdict == Verdict::Refused)
        .map(|m| format!("  {}: {}", m.module, m.reason.clone().unwrap_or_else(|| "refused".into())))
        .collect();
    verdicts.extend(report.findings.iter().map(|f| format!("  {}", f.message())));
    verdicts
}

fn summary(report: &SetReport, dir: &Path) -> String {
    format!(
        "all {} modules load on {} (checked against {})",
        report.modules.len(),
        report.target_vermagic.trim_end(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch root with a release installed but no headers, and `marker` under etc/.
    fn root_without_headers(marker: Option<&str>) -> (tempfile::TempDir, TargetHost) {
        let dir = tempfile::tempdir().unwrap();
        let release = "6.1.0-1-amd64";
        std::fs::create_dir_all(dir.path().join(format!("lib/modules/{release}"))).unwrap();
        if let Some(m) = marker {
            std::fs::create_dir_all(dir.path().join("etc")).unwrap();
            std::fs::write(dir.path().join("etc").join(m), "12.8\n").unwrap();
        }
        let host = TargetHost::new(dir.path(), Some(release.into())).unwrap();
        (dir, host)
    }

    #[test]
    fn the_missing_headers_hint_names_the_familys_package() {
        for (marker, want, not) in [
            (Some("debian_version"), "(linux-headers-6.1.0-1-amd64)", "kernel-devel"),
            (Some("redhat-release"), "(kernel-devel-6.1.0-1-amd64)", "linux-headers"),
            (None, "(linux-headers-6.1.0-1-amd64 or kernel-devel-6.1.0-1-amd64)", " / "),
        ] {
            let (_dir, host) = root_without_headers(marker);
            let err = find_headers(&host).unwrap_err();
            assert!(matches!(err, InstallError::NoLoadCheckTarget { .. }), "{err}");
            let msg = err.to_string();
            let hint = msg.split("install its headers").nth(1).unwrap_or_default();
            assert!(hint.contains(want) && !hint.contains(not), "{marker:?}: {msg}");
        }
    }
}
