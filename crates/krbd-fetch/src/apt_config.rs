//! Which apt configuration the apt calls of this process use: the system's, or a private
//! one (its own sources list, lists, cache and status) named by an apt.conf file.
//!
//! `krbd-forge follow` keeps a private apt for the mirrors it follows, so that the host's
//! apt is never touched; the builds it runs must then resolve and fetch through that same
//! configuration. apt itself reads the file named by `APT_CONFIG` after its own
//! `apt.conf.d`, so the choice travels to every apt child (and to krbd-forge's own stage
//! commands) as that variable: [`current`] is `APT_CONFIG`'s file when it is set, else the
//! system's configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The variable apt reads its configuration file from.
pub const APT_CONFIG_VAR: &str = "APT_CONFIG";

/// An apt configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AptConfig {
    /// The host's: `/etc/apt`, `/var/lib/apt/lists`.
    System,
    /// A private configuration file; `lists` is its `Dir::State::lists`.
    File { file: PathBuf, lists: PathBuf },
}

/// The configuration apt calls use: `APT_CONFIG`'s file, else the system's (read once).
pub fn current() -> AptConfig {
    static FROM_ENV: OnceLock<AptConfig> = OnceLock::new();
    FROM_ENV
        .get_or_init(|| match std::env::var_os(APT_CONFIG_VAR).filter(|v| !v.is_empty()) {
            Some(file) => AptConfig::from_file(Path::new(&file)),
            None => AptConfig::System,
        })
        .clone()
}

/// `apt-cache`, `apt-get`, ... set up for the current configuration.
pub fn command(program: &str) -> Command {
    current().command(program)
}

impl AptConfig {
    /// A configuration file whose lists folder apt itself reports (`apt-config`); when apt
    /// cannot say, the default folder.
    pub fn from_file(file: &Path) -> AptConfig {
        let lists = Command::new("apt-config")
            .args(["shell", "LISTS", "Dir::State::lists/d"])
            .env(APT_CONFIG_VAR, file)
            .env("LC_ALL", "C")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| parse_shell_value(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| PathBuf::from("/var/lib/apt/lists"));
        AptConfig::File { file: file.to_path_buf(), lists }
    }

    /// A command running `program` under this configuration.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        match self {
            AptConfig::System => cmd.env_remove(APT_CONFIG_VAR),
            AptConfig::File { file, .. } => cmd.env(APT_CONFIG_VAR, file),
        };
        cmd
    }

    /// Where apt keeps the downloaded package lists.
    pub fn lists_dir(&self) -> &Path {
        match self {
            AptConfig::System => Path::new("/var/lib/apt/lists"),
            AptConfig::File { lists, .. } => lists,
        }
    }

    /// The value for `APT_CONFIG`, if any.
    pub fn env_value(&self) -> Option<&Path> {
        match self {
            AptConfig::System => None,
            AptConfig::File { file, .. } => Some(file),
        }
    }
}

/// `LISTS='/var/lib/apt/lists/'` → the path.
fn parse_shell_value(out: &str) -> Option<PathBuf> {
    let value = out.lines().find_map(|l| l.strip_prefix("LISTS="))?;
    let value = value.trim().trim_matches('\'');
    (!value.is_empty()).then(|| PathBuf::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_config_shell_output_is_read() {
        assert_eq!(parse_shell_value("LISTS='/srv/apt/lists/'\n"), Some(PathBuf::from("/srv/apt/lists/")));
        assert_eq!(parse_shell_value(""), None);
    }

    #[test]
    fn a_private_file_travels_as_apt_config() {
        let c = AptConfig::File { file: "/s/apt.conf".into(), lists: "/s/lists".into() };
        let cmd = c.command("apt-cache");
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.iter().any(|(k, v)| *k == APT_CONFIG_VAR && *v == Some(std::ffi::OsStr::new("/s/apt.conf"))));
        assert_eq!(c.lists_dir(), Path::new("/s/lists"));
        let sys = AptConfig::System.command("apt-get");
        assert!(sys.get_envs().any(|(k, v)| k == APT_CONFIG_VAR && v.is_none()), "the system's: variable removed");
    }
}
