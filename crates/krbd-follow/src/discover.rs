//! Discovery: which releases of the followed lines the mirrors offer now.
//!
//! Debian: after `apt-get update` with the private configuration, the concrete ABI headers
//! packages of each line (`linux-headers-6.12.117+deb12-amd64`, `linux-headers-6.1.0-56-amd64`)
//! as apt lists them; the meta packages (`linux-headers-6.12-amd64`) and other flavours
//! (`-cloud-amd64`, `-rt-amd64`) are not releases of the line.
//!
//! RHEL family: each `[[rhel]]` repository's `repodata/repomd.xml` (its signature checked
//! when `archive_key` is set) and the primary data it names: every `kernel-devel` package,
//! `version-release.arch` being the release as `uname -r` prints it
//! (`3.10.0-1160.el7.x86_64`), filtered by the configured series and named by line
//! `rhel/<host>/<series>` ([`crate::config::RhelSource::line`]).

use crate::config::{KernelLine, RhelSource};
use crate::error::FollowError;
use krbd_fetch::apt_config::AptConfig;
use krbd_fetch::deb::ControlFields;
use std::process::Stdio;

/// The distribution family of a line: which stages and package format apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Debian,
    Rhel,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Rhel => "rhel",
        }
    }
}

/// A release a mirror offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discovered {
    /// The line's name (`debian/6.12-amd64`).
    pub line: String,
    pub family: Family,
    /// As `uname -r` prints it.
    pub release: String,
    /// The package version (`6.12.117-1~deb12u1`).
    pub version: String,
    /// The sha256 the mirror's index lists for the headers (Debian) or kernel-devel (RHEL)
    /// package.
    pub index_sha256: String,
}

/// The release named by a headers package of `line`, if it is one.
pub fn line_release(line: &KernelLine, package: &str) -> Option<String> {
    let release = package.strip_prefix("linux-headers-")?;
    let abi = release.strip_suffix(&format!("-{}", line.flavour))?;
    let mut parts = abi.split('-');
    let version = parts.next()?;
    // `6.12.117+deb12` or `6.1.0` followed by `-56`: a concrete ABI of this series.
    let concrete = version.strip_prefix(&format!("{}.", line.series))?;
    let digits_first = concrete.chars().next().is_some_and(|c| c.is_ascii_digit());
    let abi_numbers = parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    (digits_first && abi_numbers).then(|| release.to_string())
}

fn apt_cache(apt: &AptConfig, args: &[String]) -> Result<String, FollowError> {
    let shown = format!("apt-cache {}", args.join(" "));
    let out = apt
        .command("apt-cache")
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FollowError::Apt { command: shown.clone(), detail: e.to_string() })?;
    if !out.status.success() {
        return Err(FollowError::Apt {
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The releases of `lines` that the private apt's lists offer, each line's oldest first.
pub fn debian(apt: &AptConfig, lines: &[KernelLine]) -> Result<Vec<Discovered>, FollowError> {
    let names = apt_cache(apt, &["search".into(), "--names-only".into(), "^linux-headers-[0-9]".into()])?;
    let mut wanted: Vec<(String, &KernelLine, String)> = Vec::new();
    for name in names.lines().filter_map(|l| l.split(" - ").next()).map(str::trim) {
        for line in lines {
            if let Some(release) = line_release(line, name) {
                wanted.push((name.to_string(), line, release));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["show".to_string(), "--no-all-versions".to_string()];
    args.extend(wanted.iter().map(|(n, _, _)| n.clone()));
    let shown = apt_cache(apt, &args)?;
    let mut found = Vec::new();
    for stanza in shown.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let fields = ControlFields::parse(stanza);
        let (Some(name), Some(version), Some(sha)) =
            (fields.get("Package"), fields.get("Version"), fields.get("SHA256"))
        else {
            continue;
        };
        if let Some((_, line, release)) = wanted.iter().find(|(n, _, _)| n == name) {
            found.push(Discovered {
                line: line.name(),
                family: Family::Debian,
                release: release.clone(),
                version: version.to_string(),
                index_sha256: sha.to_string(),
            });
        }
    }
    found.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| krbd_fetch::version::compare(&a.version, &b.version)));
    found.dedup_by(|a, b| a.release == b.release && a.version == b.version);
    Ok(found)
}

/// The kernel-devel releases the RHEL-family repositories list, each line's oldest first.
pub fn rhel(
    sources: &[RhelSource],
    cache: &krbd_fetch::cache::Cache,
    listener: &dyn krbd_progress::Listener,
) -> Result<Vec<Discovered>, FollowError> {
    let mut found = Vec::new();
    for source in sources {
        let repodata_error =
            |e: &dyn std::fmt::Display| FollowError::Repodata { url: source.repo.clone(), detail: e.to_string() };
        let key = match &source.archive_key {
            Some(path) => Some(krbd_fetch::rpm::RpmKeyring::load(path).map_err(|e| repodata_error(&e))?),
            None => None,
        };
        let packages = krbd_fetch::repodata::packages(cache, &source.repo, &["kernel-devel"], key.as_ref(), listener)
            .map_err(|e| repodata_error(&e))?;
        for p in packages {
            let release = p.version_release_arch();
            let Some(line) = source.line(&release) else { continue };
            found.push(Discovered { line, family: Family::Rhel, release, version: p.evr(), index_sha256: p.sha256 });
        }
    }
    // rpm's ordering of versions and Debian's agree on the digits-and-dots releases here.
    found.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| krbd_fetch::version::compare(&a.version, &b.version)));
    found.dedup_by(|a, b| a.line == b.line && a.release == b.release);
    Ok(found)
}

/// The distribution's kernel meta package of `line` as the private apt offers it
/// (`linux-image-6.12-amd64`, else `linux-image-amd64`), if one depends on a release of the
/// line: the package the line's krbd-forge meta package moves in lockstep with.
pub fn kernel_meta(apt: &AptConfig, line: &KernelLine) -> Result<Option<krbd_repo::KernelMeta>, FollowError> {
    let candidates = [format!("linux-image-{}-{}", line.series, line.flavour), format!("linux-image-{}", line.flavour)];
    // apt-cache show fails when one name is unknown; ask for each on its own then.
    let shown: String = candidates
        .iter()
        .filter_map(|c| apt_cache(apt, &["show".into(), "--no-all-versions".into(), c.clone()]).ok())
        .collect::<Vec<_>>()
        .join("\n\n");
    // krbd-repo reads the record the way its line meta package relies on.
    Ok(shown
        .split("\n\n")
        .filter_map(krbd_repo::KernelMeta::from_record)
        .find(|m| line_release(line, &format!("linux-headers-{}", m.release)).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_concrete_abis_of_the_line_are_releases() {
        let l612 = KernelLine { series: "6.12".into(), flavour: "amd64".into() };
        let l61 = KernelLine { series: "6.1".into(), flavour: "amd64".into() };
        let cloud = KernelLine { series: "6.1".into(), flavour: "cloud-amd64".into() };
        assert_eq!(line_release(&l612, "linux-headers-6.12.117+deb12-amd64").as_deref(), Some("6.12.117+deb12-amd64"));
        assert_eq!(line_release(&l61, "linux-headers-6.1.0-56-amd64").as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(line_release(&cloud, "linux-headers-6.1.0-56-cloud-amd64").as_deref(), Some("6.1.0-56-cloud-amd64"));
        for (line, not) in [
            (&l61, "linux-headers-6.12.117+deb12-amd64"),
            (&l612, "linux-headers-6.12-amd64"),
            (&l61, "linux-headers-6.1.0-56-cloud-amd64"),
            (&l61, "linux-headers-6.1.0-56-rt-amd64"),
            (&l61, "linux-headers-6.1.0-56-common"),
            (&l61, "linux-headers-amd64"),
        ] {
            assert_eq!(line_release(line, not), None, "{not}");
        }
    }
}
