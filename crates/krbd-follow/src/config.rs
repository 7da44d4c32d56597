//! The follow configuration: a TOML file read and validated once into typed values.
//! Unknown keys are errors that name the key (serde's `deny_unknown_fields`), so that a
//! misspelt proof switch never silently means its default.

use crate::error::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where `follow` looks for its configuration without `--config`.
pub const DEFAULT_CONFIG: &str = "/etc/krbd-forge/follow.toml";
/// The state folder (SQLite database, lock, private apt, work) by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/krbd-forge/follow";
/// The package and build cache by default.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/krbd-forge";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    series: Option<String>,
    #[serde(default)]
    proofs: RawProofs,
    publish: RawPublish,
    #[serde(default)]
    debian: Vec<RawDebian>,
    #[serde(default)]
    rhel: Vec<RawRhel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProofs {
    check: Option<bool>,
    boot_test_cluster: Option<bool>,
    guest_suite: Option<PathBuf>,
    boot_test_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    apt_dir: Option<PathBuf>,
    yum_dir: Option<PathBuf>,
    signing_key: PathBuf,
    signing_passphrase_file: Option<PathBuf>,
    apt_codename: Option<String>,
    module_sign_key: Option<PathBuf>,
    module_sign_cert: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDebian {
    mirror: String,
    suites: Vec<String>,
    components: Option<Vec<String>>,
    archive_key: PathBuf,
    flavour: Option<String>,
    series: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRhel {
    repo: String,
    archive_key: Option<PathBuf>,
    series: Option<Vec<String>>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Where each release's stage results go (`<out_dir>/<release>/<stage>/`).
    pub out_dir: PathBuf,
    /// The patch series, as `build --series` takes it (a name or a folder).
    pub series: String,
    pub proofs: Proofs,
    pub publish: Publish,
    pub debian: Vec<DebianSource>,
    pub rhel: Vec<RhelSource>,
}

/// Which proofs a release needs before it is packaged. `check` is always required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proofs {
    /// `boot-test --cluster` for Debian releases (their linux-image boots under QEMU).
    pub boot_test_cluster: bool,
    /// `boot-test --suite DIR` for Debian releases: the suite folder (workunit scripts and
    /// cram tests, e.g. the repository's `qa/krbd`) every release must pass before it is
    /// packaged; `None`: no suite stage.
    pub guest_suite: Option<PathBuf>,
    /// The boot test's hard limit, in seconds.
    pub boot_test_timeout: u64,
}

/// Where proven packages go, and the keys that sign them.
#[derive(Debug, Clone)]
pub struct Publish {
    pub apt_dir: Option<PathBuf>,
    pub yum_dir: Option<PathBuf>,
    /// The OpenPGP secret key (armored file) that signs the repositories.
    pub signing_key: PathBuf,
    /// A file holding the signing key's passphrase, if it has one.
    pub signing_passphrase_file: Option<PathBuf>,
    /// The APT repository's suite (`dists/<codename>/`): by default the first suite of the
    /// first Debian mirror (`bookworm`).
    pub apt_codename: String,
    /// The kernel module signing key (PEM) and its certificate, if modules are signed.
    pub module_sign_key: Option<PathBuf>,
    pub module_sign_cert: Option<PathBuf>,
}

/// One APT mirror and the kernel lines followed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianSource {
    pub mirror: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// The archive's signing key (a keyring `.gpg` or armored `.asc` file).
    pub archive_key: PathBuf,
    pub lines: Vec<KernelLine>,
}

/// A kernel line: a series (`6.1`, `6.12`) of one flavour (`amd64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelLine {
    pub series: String,
    pub flavour: String,
}

impl KernelLine {
    /// `debian/6.12-amd64`: how the state and the reports name the line.
    pub fn name(&self) -> String {
        format!("debian/{}-{}", self.series, self.flavour)
    }
}

/// An RHEL-family repository whose repodata lists kernel-devel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RhelSource {
    pub repo: String,
    pub archive_key: Option<PathBuf>,
    /// Only releases starting with one of these (`5.14.0`), or all.
    pub series: Vec<String>,
}

impl FollowConfig {
    /// Reads and validates `path`. Relative paths inside are relative to its folder.
    pub fn load(path: &Path) -> Result<FollowConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        FollowConfig::parse(&text, path)
    }

    /// Validates `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<FollowConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string().trim().to_string() })?;
        // Relative paths inside are relative to the file's folder, made absolute once: the
        // private apt and the child commands run from elsewhere.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let invalid =
            |key: &str, reason: String| ConfigError::Invalid { path: path.to_path_buf(), key: key.into(), reason };
        let state_dir = abs(raw.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        if raw.proofs.check == Some(false) {
            return Err(invalid("proofs.check", "the offline loader check is always required; remove the key".into()));
        }
        let guest_suite = raw.proofs.guest_suite.clone().map(&abs);
        if let Some(dir) = &guest_suite {
            if !dir.is_dir() {
                return Err(invalid("proofs.guest_suite", format!("{}: not a folder of suite tests", dir.display())));
            }
        }
        let boot_test_timeout = raw.proofs.boot_test_timeout.unwrap_or(600);
        if !(30..=7200).contains(&boot_test_timeout) {
            return Err(invalid("proofs.boot_test_timeout", format!("{boot_test_timeout}: give 30 to 7200 seconds")));
        }
        let debian = raw
            .debian
            .into_iter()
            .enumerate()
            .map(|(i, d)| debian_source(d, i, &abs, &invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let rhel = raw
            .rhel
            .into_iter()
            .enumerate()
            .map(|(i, r)| rhel_source(r, i, &abs, &invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let publish = publish_section(raw.publish, &debian, &rhel, &abs, &invalid)?;
        if !rhel.is_empty() {
            // Said plainly rather than followed silently: nothing discovers them yet.
            return Err(invalid(
                "rhel",
                "following RHEL-family repositories (repodata kernel-devel discovery) is not implemented yet; \
                 remove the [[rhel]] tables and build those releases with `krbd-forge build`"
                    .into(),
            ));
        }
        let series = raw.series.unwrap_or_else(|| "recovery-weight".into());
        if series.trim().is_empty() {
            return Err(invalid("series", "empty: name a series (recovery-weight), a folder, or none".into()));
        }
        Ok(FollowConfig {
            path: path.to_path_buf(),
            cache_dir: abs(raw.cache_dir.unwrap_or_else(|| DEFAULT_CACHE_DIR.into())),
            out_dir: abs(raw.out_dir.unwrap_or_else(|| state_dir.join("out"))),
            state_dir,
            series,
            proofs: Proofs {
                boot_test_cluster: raw.proofs.boot_test_cluster.unwrap_or(true),
                guest_suite,
                boot_test_timeout,
            },
            publish,
            debian,
            rhel,
        })
    }

    /// Every Debian line followed, each once.
    pub fn debian_lines(&self) -> Vec<KernelLine> {
        let mut lines: Vec<KernelLine> = self.debian.iter().flat_map(|d| d.lines.iter().cloned()).collect();
        lines.sort();
        lines.dedup();
        lines
    }
}

/// The `[publish]` table, checked against the lines followed.
fn publish_section(
    publish: RawPublish,
    debian: &[DebianSource],
    rhel: &[RhelSource],
    abs: &dyn Fn(PathBuf) -> PathBuf,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Publish, ConfigError> {
    if publish.apt_dir.is_none() && publish.yum_dir.is_none() {
        return Err(invalid("publish", "name apt_dir, yum_dir or both: where proven packages are published".into()));
    }
    if debian.is_empty() && rhel.is_empty() {
        return Err(invalid("debian", "no kernel line to follow: add a [[debian]] or [[rhel]] table".into()));
    }
    if !debian.is_empty() && publish.apt_dir.is_none() {
        return Err(invalid(
            "publish.apt_dir",
            "Debian lines are followed, so an APT repository folder is needed".into(),
        ));
    }
    if !rhel.is_empty() && publish.yum_dir.is_none() {
        return Err(invalid("publish.yum_dir", "RHEL lines are followed, so a YUM repository folder is needed".into()));
    }
    let apt_codename = match publish.apt_codename {
        Some(c) if is_word(&c) && !c.contains('/') => c,
        Some(c) => return Err(invalid("publish.apt_codename", format!("{c:?}: a suite name such as bookworm"))),
        None => debian.first().and_then(|d| d.suites.first()).cloned().unwrap_or_else(|| "stable".into()),
    };
    Ok(Publish {
        apt_dir: publish.apt_dir.map(abs),
        yum_dir: publish.yum_dir.map(abs),
        signing_key: abs(publish.signing_key),
        signing_passphrase_file: publish.signing_passphrase_file.map(abs),
        apt_codename,
        module_sign_key: publish.module_sign_key.map(abs),
        module_sign_cert: publish.module_sign_cert.map(abs),
    })
}

fn check_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let ok = ["http://", "https://", "file:/"].iter().any(|p| url.starts_with(p));
    if !ok || url.contains(char::is_whitespace) {
        return Err(format!("{url:?}: expected an http://, https:// or file:/ URL"));
    }
    Ok(url.to_string())
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~/".contains(c))
}

fn debian_source(
    raw: RawDebian,
    index: usize,
    abs: &dyn Fn(PathBuf) -> PathBuf,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<DebianSource, ConfigError> {
    let key = |k: &str| format!("debian[{index}].{k}");
    let mirror = check_url(&raw.mirror).map_err(|r| invalid(&key("mirror"), r))?;
    if raw.suites.is_empty() || !raw.suites.iter().all(|s| is_word(s)) {
        return Err(invalid(&key("suites"), "name at least one suite, such as bookworm or bookworm-security".into()));
    }
    let components = raw.components.unwrap_or_else(|| vec!["main".into()]);
    if components.is_empty() || !components.iter().all(|c| is_word(c)) {
        return Err(invalid(&key("components"), "name at least one component, such as main".into()));
    }
    let flavour = raw.flavour.unwrap_or_else(|| "amd64".into());
    if !is_word(&flavour) || flavour.contains('/') {
        return Err(invalid(&key("flavour"), format!("{flavour:?}: a kernel flavour such as amd64 or cloud-amd64")));
    }
    if raw.series.is_empty() {
        return Err(invalid(&key("series"), "name at least one kernel series, such as \"6.1\" or \"6.12\"".into()));
    }
    let mut lines = Vec::new();
    for s in raw.series {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 2 || !parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
            return Err(invalid(&key("series"), format!("{s:?}: a kernel series is MAJOR.MINOR, such as \"6.12\"")));
        }
        lines.push(KernelLine { series: s, flavour: flavour.clone() });
    }
    Ok(DebianSource { mirror, suites: raw.suites, components, archive_key: abs(raw.archive_key), lines })
}

fn rhel_source(
    raw: RawRhel,
    index: usize,
    abs: &dyn Fn(PathBuf) -> PathBuf,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<RhelSource, ConfigError> {
    let repo = check_url(&raw.repo).map_err(|r| invalid(&format!("rhel[{index}].repo"), r))?;
    Ok(RhelSource { repo, archive_key: raw.archive_key.map(abs), series: raw.series.unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
state_dir = "state"
series = "recovery-weight"
[publish]
apt_dir = "/srv/apt"
signing_key = "repo.asc"
[[debian]]
mirror = "http://deb.debian.org/debian/"
suites = ["bookworm", "bookworm-security"]
archive_key = "/usr/share/keyrings/debian-archive-keyring.gpg"
series = ["6.1", "6.12"]
"#;

    fn parse(text: &str) -> Result<FollowConfig, ConfigError> {
        FollowConfig::parse(text, Path::new("/etc/krbd-forge/follow.toml"))
    }

    /// `proofs.guest_suite` names a suite folder: Debian releases get a guest-suite stage
    /// between the boot test and packaging, running `boot-test --suite` on the built set; a
    /// folder that is not there is refused by name.
    #[test]
    fn a_guest_suite_folder_adds_the_suite_stage() {
        use crate::discover::Family;
        use crate::job::{self, Layout, Stage};
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("follow.toml");
        let suite = dir.path().join("qa");
        std::fs::create_dir(&suite).unwrap();
        let text = format!("{GOOD}\n[proofs]\nguest_suite = \"qa\"\n");
        let c = FollowConfig::parse(&text, &config_path).unwrap();
        assert_eq!(c.proofs.guest_suite.as_deref(), Some(suite.as_path()));
        let stages = Stage::for_release(Family::Debian, &c);
        assert_eq!(
            stages,
            [Stage::Build, Stage::Check, Stage::BootTest, Stage::GuestSuite, Stage::Package, Stage::Publish]
        );
        struct Here(PathBuf);
        impl Layout for Here {
            fn dir(&self, stage: Stage) -> PathBuf {
                self.0.join(stage.name())
            }
        }
        let layout = Here(dir.path().join("out"));
        let inputs = job::CommandInputs {
            family: Family::Debian,
            release: "6.12.1+deb12-amd64",
            config: &c,
            series: "recovery-weight",
            layout: &layout,
            cache_dir: None,
        };
        let cmd = job::command(Stage::GuestSuite, &inputs, &dir.path().join("o")).expect("a command line");
        let line = cmd.shell_line("krbd-forge");
        let set = layout.dir(Stage::Build).join("6.12.1+deb12-amd64");
        assert!(line.starts_with("krbd-forge boot-test --kernel 6.12.1+deb12-amd64 --modules "), "{line}");
        assert!(line.contains(&format!("--modules {} --suite {} ", set.display(), suite.display())), "{line}");
        assert!(line.ends_with(" --json"), "{line}");

        let missing = format!("{GOOD}\n[proofs]\nguest_suite = \"no-such-suite\"\n");
        let e = FollowConfig::parse(&missing, &config_path).unwrap_err().to_string();
        assert!(e.contains("proofs.guest_suite") && e.contains("no-such-suite"), "{e}");
        assert_eq!(Stage::for_release(Family::Debian, &parse(GOOD).unwrap()).len(), 5, "off when absent");
    }

    #[test]
    fn a_good_config_gets_its_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.state_dir, Path::new("/etc/krbd-forge/state"));
        assert_eq!(c.out_dir, Path::new("/etc/krbd-forge/state/out"));
        assert_eq!(c.cache_dir, Path::new(DEFAULT_CACHE_DIR));
        assert_eq!(c.publish.signing_key, Path::new("/etc/krbd-forge/repo.asc"));
        assert!(c.proofs.boot_test_cluster, "boot-test --cluster is on by default");
        assert!(c.proofs.guest_suite.is_none(), "no suite stage unless configured");
        assert_eq!(c.debian[0].mirror, "http://deb.debian.org/debian");
        assert_eq!(c.debian[0].components, ["main"]);
        let names: Vec<String> = c.debian_lines().iter().map(KernelLine::name).collect();
        assert_eq!(names, ["debian/6.1-amd64", "debian/6.12-amd64"]);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../dist/follow.toml.example");
        let c = FollowConfig::parse(text, Path::new("/etc/krbd-forge/follow.toml")).unwrap();
        assert_eq!(c.debian_lines().len(), 2);
        assert_eq!(c.publish.apt_codename, "bookworm-security");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse(&GOOD.replace("series = [", "seires = [")).unwrap_err().to_string();
        assert!(e.contains("seires"), "{e}");
        let e = parse(&format!("{GOOD}\n[proofs]\nboot_test_clutser = false\n")).unwrap_err().to_string();
        assert!(e.contains("boot_test_clutser"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (GOOD.replace("\"6.1\", ", "\"6\", "), "debian[0].series"),
            (GOOD.replace("http://deb", "ftp://deb"), "debian[0].mirror"),
            (GOOD.replace("apt_dir = \"/srv/apt\"", "yum_dir = \"/srv/yum\""), "publish.apt_dir"),
            (format!("{GOOD}\n[proofs]\ncheck = false\n"), "proofs.check"),
            (GOOD.replace("[[debian]]", "[[unused]]"), "unused"),
        ];
        for (text, key) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
