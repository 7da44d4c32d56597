//! Where the exact source RPM and kernel-devel RPM of an RHEL-family kernel live.
//!
//! A release string (`uname -r`) such as `3.10.0-957.27.2.el7.x86_64` names the package
//! version (`3.10.0`), the package release (`957.27.2.el7`) and the architecture. The
//! mirrors keep every old package in "vaults" arranged by OS minor release:
//! - CentOS 7: `<vault>/7.6.1810/{os,updates}/Source/SPackages/kernel-V-R.src.rpm` and
//!   `<vault>/7.6.1810/{os,updates}/x86_64/Packages/kernel-devel-V-R.x86_64.rpm`. The GA
//!   kernel of a minor release (`957.el7`) is in `os/`, its errata (`957.27.2.el7`) in
//!   `updates/`. The minor release follows from the kernel's build number (957 -> 7.6).
//!   buildlogs.centos.org also keeps them, under time-stamped folders that cannot be
//!   derived: it is listed as a folder to browse.
//! - CentOS 8 (8.0-8.5): `<vault>/8.2.2004/BaseOS/{Source/SPackages,x86_64/os/Packages}/`.
//! - Rocky 8 and 9: `<vault>/8.6/BaseOS/source/tree/Packages/k/` and
//!   `<vault>/8.6/BaseOS/x86_64/os/Packages/k/` (kernel-devel moved to AppStream in 9).
//! - Alma 8 and 9: `<vault>/8.6/BaseOS/Source/Packages/`, `<vault>/8.6/BaseOS/x86_64/os/Packages/`
//!   (AppStream for kernel-devel in 9).
//!   The el8/el9 minor release is in the dist tag of errata kernels (`el8_6`), and follows
//!   from the build number for GA kernels (`372.9.1.el8` -> 8.6).

use crate::error::BuildError;

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
use serde::Serialize;

/// The RHEL rebuilds whose vaults are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Centos,
    Rocky,
    Alma,
}

impl Distro {
    pub fn name(self) -> &'static str {
        match self {
            Distro::Centos => "centos",
            Distro::Rocky => "rocky",
            Distro::Alma => "alma",
        }
    }
}

/// A name or URL that does not fit the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogValueError {
    #[error("{name:?}: the distros are centos, rocky, alma")]
    UnknownDistro { name: String },
    #[error("{name:?}: mirrors are centos, buildlogs, rocky, alma")]
    UnknownMirrorSite { name: String },
    #[error("{url:?}: the mirror must be an http:// or https:// URL")]
    NotHttp { url: String },
}

/// `centos`, `rocky`, `alma` (or `almalinux`), in any case.
impl std::str::FromStr for Distro {
    type Err = CatalogValueError;
    fn from_str(s: &str) -> Result<Distro, CatalogValueError> {
        match s.to_ascii_lowercase().as_str() {
            "centos" => Ok(Distro::Centos),
            "rocky" => Ok(Distro::Rocky),
            "alma" | "almalinux" => Ok(Distro::Alma),
            _ => Err(CatalogValueError::UnknownDistro { name: s.to_string() }),
        }
    }
}

/// A site whose vaults can be pointed at a mirror: a distro's, or CentOS's build logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorSite {
    Centos,
    CentosBuildlogs,
    Rocky,
    Alma,
}

impl MirrorSite {
    /// Every site, with the name it goes by.
    pub const ALL: [(MirrorSite, &'static str); 4] = [
        (MirrorSite::Centos, "centos"),
        (MirrorSite::CentosBuildlogs, "buildlogs"),
        (MirrorSite::Rocky, "rocky"),
        (MirrorSite::Alma, "alma"),
    ];
}

/// `centos`, `buildlogs`, `rocky`, `alma` (or `almalinux`).
impl std::str::FromStr for MirrorSite {
    type Err = CatalogValueError;
    fn from_str(s: &str) -> Result<MirrorSite, CatalogValueError> {
        match s {
            "almalinux" => Ok(MirrorSite::Alma),
            _ => MirrorSite::ALL
                .iter()
                .find(|(_, name)| *name == s)
                .map(|(site, _)| *site)
                .ok_or_else(|| CatalogValueError::UnknownMirrorSite { name: s.to_string() }),
        }
    }
}

/// The base URL of a vault: http:// or https://, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MirrorUrl(String);

impl MirrorUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for MirrorUrl {
    type Err = CatalogValueError;
    fn from_str(url: &str) -> Result<MirrorUrl, CatalogValueError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CatalogValueError::NotHttp { url: url.to_string() });
        }
        Ok(MirrorUrl(url.trim_end_matches('/').to_string()))
    }
}

impl std::fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One site's vaults served from another place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub site: MirrorSite,
    pub url: MirrorUrl,
}

/// Base URLs of the vaults. Each can be pointed at a local mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirrors {
    pub centos: MirrorUrl,
    pub centos_buildlogs: MirrorUrl,
    pub rocky: MirrorUrl,
    pub alma: MirrorUrl,
}

impl Default for Mirrors {
    fn default() -> Self {
        let url = |u: &str| MirrorUrl(u.to_string());
        Mirrors {
            centos: url("https://vault.centos.org"),
            centos_buildlogs: url("https://buildlogs.centos.org"),
            rocky: url("https://dl.rockylinux.org/vault/rocky"),
            alma: url("https://vault.almalinux.org"),
        }
    }
}

impl Mirrors {
    /// Points one site at `mirror.url`.
    pub fn set(&mut self, mirror: Mirror) {
        let slot = match mirror.site {
            MirrorSite::Centos => &mut self.centos,
            MirrorSite::CentosBuildlogs => &mut self.centos_buildlogs,
            MirrorSite::Rocky => &mut self.rocky,
            MirrorSite::Alma => &mut self.alma,
        };
        *slot = mirror.url;
    }
}

/// An RHEL-family kernel release, split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RhelRelease {
    /// As `uname -r` prints it.
    pub release: String,
    /// Package version: `3.10.0`.
    pub version: String,
    /// Package release: `957.27.2.el7`.
    pub rpm_release: String,
    pub arch: String,
    /// 7, 8 or 9.
    pub el: u32,
    /// The build number: 957.
    pub build: u32,
    /// An erratum (`957.27.2`) rather than the minor release's GA kernel (`957`).
    pub errata: bool,
    /// The minor release from the dist tag (`el8_6` -> 6), when it has one.
    pub dist_minor: Option<u32>,
}

const ARCHES: [&str; 4] = ["x86_64", "aarch64", "ppc64le", "s390x"];

/// Whether `release` looks like an RHEL-family kernel (`.el7`, `.el8_6`, ...).
pub fn is_rhel_release(release: &str) -> bool {
    RhelRelease::parse(release).is_ok()
}

impl RhelRelease {
    pub fn parse(release: &str) -> Result<RhelRelease, BuildError> {
        let bad = |reason: &str| BuildError::BadRelease { release: release.to_string(), reason: reason.to_string() };
        let (rest, arch) = release
            .rsplit_once('.')
            .filter(|(_, a)| ARCHES.contains(a))
            .ok_or_else(|| bad("an RHEL kernel release ends in its architecture, like 3.10.0-957.el7.x86_64"))?;
        let (version, rpm_release) =
            rest.split_once('-').ok_or_else(|| bad("expected VERSION-RELEASE.ARCH, like 3.10.0-957.el7.x86_64"))?;
        if version.split('.').count() != 3 || !version.split('.').all(|p| p.parse::<u32>().is_ok()) {
            return Err(bad("the version part must be three numbers, like 3.10.0"));
        }
        let dist_at = rpm_release.find(".el").ok_or_else(|| bad("no .elN dist tag (el7, el8, el9)"))?;
        let numbers = &rpm_release[..dist_at];
        let dist = &rpm_release[dist_at + 3..];
        let (el_str, minor_str) = match dist.split_once('_') {
            Some((e, m)) => (e, Some(m)),
            None => (dist, None),
        };
        // `el7` may be followed by more (`el7.centos.plus` style suffixes are not kernels we know).
        let el: u32 = el_str.parse().map_err(|_| bad("the dist tag must be el7, el8 or el9 (optionally el8_6)"))?;
        if !(7..=9).contains(&el) {
            return Err(bad("only el7, el8 and el9 kernels are catalogued"));
        }
        let dist_minor = match minor_str {
            Some(m) => Some(m.parse::<u32>().map_err(|_| bad("the dist tag's minor (el8_6) must be a number"))?),
            None => None,
        };
        let mut parts = numbers.split('.');
        let build: u32 = parts
            .next()
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| bad("the release must start with the build number, like 957"))?;
        if !numbers.split('.').all(|p| p.parse::<u32>().is_ok()) {
            return Err(bad("the release before .elN must be numbers, like 957.27.2"));
        }
        Ok(RhelRelease {
            release: release.to_string(),
            version: version.to_string(),
            rpm_release: rpm_release.to_string(),
            arch: arch.to_string(),
            el,
            build,
            errata: parts.next().is_some(),
            dist_minor,
        })
    }

    /// `kernel-3.10.0-957.el7.src.rpm`
    pub fn srpm_name(&self) -> String {
        format!("kernel-{}-{}.src.rpm", self.version, self.rpm_release)
    }

    /// `kernel-devel-3.10.0-957.el7.x86_64.rpm`
    pub fn devel_name(&self) -> String {
        format!("kernel-devel-{}-{}.{}.rpm", self.version, self.rpm_release, self.arch)
    }

    /// The compiler the distribution builds this kernel with, when the release is one of
    /// the distribution's own kernel line (3.10.0 for el7, 4.18.0 for el8, 5.14.0 for el9):
    /// the release prefix `gcc --version` must show, and how to name it. Every el7 kernel
    /// was built with Red Hat's gcc 4.8, el8's with gcc 8, el9's with gcc 11. Other kernels
    /// with an elN tag (rebuilds of other versions) are judged by their headers only.
    pub fn distribution_compiler(&self) -> Option<(&'static str, &'static str)> {
        match (self.el, self.version.as_str()) {
            (7, "3.10.0") => Some(("4.8", "Red Hat's gcc 4.8 (4.8.5 from 7.2 on)")),
            (8, "4.18.0") => Some(("8", "Red Hat's gcc 8")),
            (9, "5.14.0") => Some(("11", "Red Hat's gcc 11")),
            _ => None,
        }
    }

    /// The OS minor release: from the dist tag, else from the build number.
    pub fn minor(&self) -> Option<u32> {
        if let Some(m) = self.dist_minor {
            return Some(m);
        }
        let table: &[(u32, u32)] = match self.el {
            7 => &EL7_MINORS.map(|(b, m, _)| (b, m)),
            8 => &EL8_MINORS,
            9 => &EL9_MINORS,
            _ => &[],
        };
        // The GA build number of each minor release; errata keep it.
        table.iter().find(|(b, _)| *b == self.build).map(|(_, m)| *m)
    }
}

/// CentOS 7: GA kernel build number, minor release, vault folder.
const EL7_MINORS: [(u32, u32, &str); 10] = [
    (123, 0, "7.0.1406"),
    (229, 1, "7.1.1503"),
    (327, 2, "7.2.1511"),
    (514, 3, "7.3.1611"),
    (693, 4, "7.4.1708"),
    (862, 5, "7.5.1804"),
    (957, 6, "7.6.1810"),
    (1062, 7, "7.7.1908"),
    (1127, 8, "7.8.2003"),
    (1160, 9, "7.9.2009"),
];

/// RHEL 8 GA kernel build numbers by minor release.
const EL8_MINORS: [(u32, u32); 11] =
    [(80, 0), (147, 1), (193, 2), (240, 3), (305, 4), (348, 5), (372, 6), (425, 7), (477, 8), (513, 9), (553, 10)];

/// RHEL 9 GA kernel build numbers by minor release.
const EL9_MINORS: [(u32, u32); 7] = [(70, 0), (162, 1), (284, 2), (362, 3), (427, 4), (503, 5), (570, 6)];

/// CentOS 8's vault folders.
const CENTOS8: [(u32, &str); 6] =
    [(0, "8.0.1905"), (1, "8.1.1911"), (2, "8.2.2004"), (3, "8.3.2011"), (4, "8.4.2105"), (5, "8.5.2111")];

/// One place a package may be, most likely first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub distro: Distro,
    /// The vault's folder: `7.6.1810`, `8.6`.
    pub os_release: String,
    /// `os`, `updates`, `BaseOS`, `AppStream`.
    pub repo: String,
    pub url: String,
}

/// What a release resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub release: RhelRelease,
    /// `7.6`, `8.6`.
    pub os_minor: String,
    pub srpm: Vec<Location>,
    pub devel_rpm: Vec<Location>,
    /// Folders that may also hold them, below time-stamped subfolders (CentOS buildlogs).
    pub browse: Vec<String>,
}

/// Resolves `release` to its package locations; `only` restricts the distros tried.
pub fn resolve(release: &str, mirrors: &Mirrors, only: Option<Distro>) -> Result<Resolved, BuildError> {
    let r = RhelRelease::parse(release)?;
    let minor = r.minor().ok_or_else(|| BuildError::NotCatalogued {
        release: release.to_string(),
        reason: format!(
            "its build number {} is not the GA kernel of a known el{} minor release; kernels with a dist tag like el{}_N resolve by it",
            r.build, r.el, r.el
        ),
    })?;
    let mut out = Resolved {
        os_minor: format!("{}.{minor}", r.el),
        srpm: Vec::new(),
        devel_rpm: Vec::new(),
        browse: Vec::new(),
        release: r,
    };
    let wanted = |d: Distro| only.is_none_or(|o| o == d);
    if out.release.el == 7 {
        if !wanted(Distro::Centos) {
            return Err(no_distro(release, only));
        }
        add_centos7(&mut out, minor, mirrors);
        return Ok(out);
    }
    let early_el8 = out.release.el == 8 && minor < 3;
    if wanted(Distro::Rocky) && !early_el8 {
        add_rebuild(&mut out, Distro::Rocky, &mirrors.rocky);
    }
    if wanted(Distro::Alma) && !early_el8 {
        add_rebuild(&mut out, Distro::Alma, &mirrors.alma);
    }
    if wanted(Distro::Centos) && out.release.el == 8 {
        add_centos8(&mut out, minor, mirrors);
    }
    if out.srpm.is_empty() {
        return Err(no_distro(release, only));
    }
    Ok(out)
}

/// Appends one place for the source RPM and one for the kernel-devel RPM.
fn add_pair(
    out: &mut Resolved,
    distro: Distro,
    os_release: &str,
    (srpm_repo, srpm_url): (&str, String),
    (devel_repo, devel_url): (&str, String),
) {
    let loc =
        |repo: &str, url: String| Location { distro, os_release: os_release.to_string(), repo: repo.to_string(), url };
    out.srpm.push(loc(srpm_repo, srpm_url));
    out.devel_rpm.push(loc(devel_repo, devel_url));
}

/// CentOS 7: the minor release's vault folder, `os/` and `updates/`; and the build logs.
fn add_centos7(out: &mut Resolved, minor: u32, mirrors: &Mirrors) {
    let r = out.release.clone();
    let (srpm, devel) = (r.srpm_name(), r.devel_name());
    let (_, _, folder) = EL7_MINORS.iter().find(|(_, m, _)| *m == minor).copied().unwrap_or((0, 0, ""));
    // Errata are in updates/, the GA kernel in os/; try the likely one first.
    let repos = if r.errata { ["updates", "os"] } else { ["os", "updates"] };
    let base = &mirrors.centos;
    for repo in repos {
        add_pair(
            out,
            Distro::Centos,
            folder,
            (repo, format!("{base}/{folder}/{repo}/Source/SPackages/{srpm}")),
            (repo, format!("{base}/{folder}/{repo}/{}/Packages/{devel}", r.arch)),
        );
    }
    let yymm = folder.rsplit('.').next().unwrap_or("");
    let tree = if r.errata { "u" } else { "00" };
    out.browse.push(format!("{}/c7.{yymm}.{tree}.{}/kernel/", mirrors.centos_buildlogs, r.arch));
}

/// Rocky and Alma 8 and 9: the source RPM in BaseOS; kernel-devel in BaseOS on 8 and in
/// AppStream on 9.
fn add_rebuild(out: &mut Resolved, distro: Distro, base: &MirrorUrl) {
    let r = out.release.clone();
    let (srpm, devel) = (r.srpm_name(), r.devel_name());
    let os = out.os_minor.clone();
    let devel_repo = if r.el == 8 { "BaseOS" } else { "AppStream" };
    // Rocky keeps its packages below k/, by their first letter.
    let (source_dir, letter) = match distro {
        Distro::Rocky => ("source/tree/Packages/k", "k/"),
        _ => ("Source/Packages", ""),
    };
    add_pair(
        out,
        distro,
        &os,
        ("BaseOS", format!("{base}/{os}/BaseOS/{source_dir}/{srpm}")),
        (devel_repo, format!("{base}/{os}/{devel_repo}/{}/os/Packages/{letter}{devel}", r.arch)),
    );
}

/// CentOS 8.0-8.5: BaseOS of the minor release's vault folder.
fn add_centos8(out: &mut Resolved, minor: u32, mirrors: &Mirrors) {
    let Some((_, folder)) = CENTOS8.iter().find(|(m, _)| *m == minor) else { return };
    let r = out.release.clone();
    let (srpm, devel) = (r.srpm_name(), r.devel_name());
    let base = &mirrors.centos;
    add_pair(
        out,
        Distro::Centos,
        folder,
        ("BaseOS", format!("{base}/{folder}/BaseOS/Source/SPackages/{srpm}")),
        ("BaseOS", format!("{base}/{folder}/BaseOS/{}/os/Packages/{devel}", r.arch)),
    );
}

fn no_distro(release: &str, only: Option<Distro>) -> BuildError {
    BuildError::NotCatalogued {
        release: release.to_string(),
        reason: format!(
            "no vault of {} carries it: CentOS has el7 and el8.0-8.5, Rocky and Alma el8.3 and later and el9",
            only.map(|d| d.name()).unwrap_or("any distro")
        ),
    }
}
