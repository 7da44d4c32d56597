//! The private apt of a follow state: its own sources list, keys, lists, cache and (empty)
//! dpkg status under `<state>/apt/`, named by one apt.conf file. `apt-get update` with it
//! leaves the host's apt untouched, and the builds resolve and fetch through it (see
//! [`krbd_fetch::apt_config`]).

use crate::config::FollowConfig;
use crate::error::FollowError;
use krbd_fetch::apt_config::AptConfig;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The private apt's folder under the state folder.
pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("apt")
}

/// Writes the private apt's configuration for `config`'s Debian sources (again on every
/// run, so that a changed mirror or key takes effect) and returns it.
pub fn prepare(config: &FollowConfig) -> Result<AptConfig, FollowError> {
    let root = root(&config.state_dir);
    for dir in [
        "etc/sources.list.d",
        "etc/preferences.d",
        "etc/trusted.gpg.d",
        "keys",
        "lists/partial",
        "cache/archives/partial",
        "log",
    ] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).map_err(FollowError::io("create the private apt folder", &d))?;
    }
    let status = root.join("status");
    if !status.exists() {
        write(&status, "")?;
    }
    let mut sources = String::from("# Written by krbd-forge follow from its configuration; rewritten on every run.\n");
    for (i, source) in config.debian.iter().enumerate() {
        let key = copy_key(&source.archive_key, &root.join("keys"), i)?;
        for suite in &source.suites {
            let components = source.components.join(" ");
            sources += &format!("deb [signed-by={}] {} {suite} {components}\n", key.display(), source.mirror);
        }
    }
    write(&root.join("etc/sources.list"), &sources)?;
    let file = root.join("apt.conf");
    write(&file, &apt_conf(&root))?;
    Ok(AptConfig::File { file, lists: root.join("lists") })
}

/// The apt.conf of a private apt at `root`. apt reads it after the host's `apt.conf.d`,
/// so these settings win over the host's (a proxy setting there still applies).
fn apt_conf(root: &Path) -> String {
    let p = |rel: &str| root.join(rel).display().to_string();
    format!(
        "// Written by krbd-forge follow: a private apt, beside the host's.\n\
         Dir::Etc::sourcelist \"{}\";\n\
         Dir::Etc::sourceparts \"{}\";\n\
         Dir::Etc::preferences \"{}\";\n\
         Dir::Etc::preferencesparts \"{}\";\n\
         Dir::Etc::trusted \"{}\";\n\
         Dir::Etc::trustedparts \"{}\";\n\
         Dir::State::lists \"{}/\";\n\
         Dir::State::status \"{}\";\n\
         Dir::Cache \"{}/\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         Dir::Log \"{}\";\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"false\";\n\
         Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled \"false\";\n\
         APT::Sandbox::User \"root\";\n",
        p("etc/sources.list"),
        p("etc/sources.list.d"),
        p("etc/preferences"),
        p("etc/preferences.d"),
        p("etc/trusted.gpg"),
        p("etc/trusted.gpg.d"),
        p("lists"),
        p("status"),
        p("cache"),
        p("log"),
    )
}

/// Copies the archive key beside the private apt, keeping its kind (`.asc` armored, else a
/// binary keyring), as `signed-by` reads it.
fn copy_key(key: &Path, keys: &Path, index: usize) -> Result<PathBuf, FollowError> {
    let armored = key.extension().is_some_and(|e| e == "asc");
    let dest = keys.join(format!("archive-{index}.{}", if armored { "asc" } else { "gpg" }));
    let bytes = std::fs::read(key).map_err(FollowError::io("read the archive key", key))?;
    crate::write_atomic(&dest, &bytes)?;
    Ok(dest)
}

fn write(path: &Path, text: &str) -> Result<(), FollowError> {
    crate::write_atomic(path, text.as_bytes())
}

/// `apt-get update` with the private configuration. apt verifies every index against the
/// configured key and fails on a bad signature.
pub fn update(apt: &AptConfig) -> Result<(), FollowError> {
    let out = apt
        .command("apt-get")
        .args(["update", "-q", "-o", "APT::Update::Error-Mode=any"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FollowError::Apt {
            command: "apt-get update".into(),
            detail: format!("{e}; is apt installed?"),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // apt reports unreachable or badly signed sources as W:/E: lines and may still exit 0;
    // this apt's configuration is ours, so any of them is an error.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
    if !out.status.success() || !errors.is_empty() {
        return Err(FollowError::Apt {
            command: "apt-get update (private configuration)".into(),
            detail: if errors.is_empty() { stderr.trim().to_string() } else { errors.join(" / ") },
        });
    }
    Ok(())
}
