//! apt's view of the Debian archive. Queries go through `apt-cache`; downloads through
//! `apt-get download`, which verifies each file against the signed index. Nothing is
//! installed into the system. Every call runs under the process's apt configuration
//! ([`apt_config`]: the system's, or a private one).

use crate::apt_config;
use crate::cache::Cache;
use crate::deb::ControlFields;
use crate::error::FetchError;
use crate::relation::{self, Relation};
use krbd_progress::{Listener, Unit};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One version of one binary package, as apt's index describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AptPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
    pub size: u64,
    /// The `Depends` field, verbatim.
    pub depends: String,
    /// The source package name (`linux-6.12`), without its version.
    pub source: String,
}

impl AptPackage {
    fn from_fields(f: &ControlFields) -> Option<AptPackage> {
        let name = f.get("Package")?.to_string();
        Some(AptPackage {
            source: f
                .get("Source")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                .unwrap_or_else(|| name.clone()),
            name,
            version: f.get("Version")?.to_string(),
            architecture: f.get("Architecture").unwrap_or("").to_string(),
            sha256: f.get("SHA256")?.to_string(),
            size: f.get("Size")?.parse().ok()?,
            depends: f.get("Depends").unwrap_or("").to_string(),
        })
    }

    /// `name=version`, as apt takes it.
    pub fn spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }

    /// The `Depends` field as relations, in the order written.
    pub fn depends(&self) -> Result<Vec<Relation>, FetchError> {
        relation::parse_field(&self.depends)
    }
}

fn run(cmd: &mut Command) -> Result<(bool, String, String), FetchError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FetchError::AptFailed { command: shown, detail: format!("{e}; is apt installed?") })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The candidate (or the given) version of `name`.
pub fn show(name: &str, version: Option<&str>) -> Result<AptPackage, FetchError> {
    let spec = match version {
        Some(v) => format!("{name}={v}"),
        None => name.to_string(),
    };
    let (ok, stdout, _) = run(apt_config::command("apt-cache").args(["show", "--no-all-versions", &spec]))?;
    let stanza = stdout.split("\n\n").find(|s| !s.trim().is_empty());
    match stanza.and_then(|s| AptPackage::from_fields(&ControlFields::parse(s))) {
        Some(p) if ok => Ok(p),
        _ => Err(FetchError::UnknownPackage { spec, hint: String::new() }),
    }
}

/// Package names matching an extended regular expression (`apt-cache search --names-only`).
pub fn search_names(regex: &str) -> Result<Vec<String>, FetchError> {
    let (ok, stdout, stderr) = run(apt_config::command("apt-cache").args(["search", "--names-only", regex]))?;
    if !ok {
        return Err(FetchError::AptFailed {
            command: format!("apt-cache search --names-only {regex}"),
            detail: stderr.trim().to_string(),
        });
    }
    let mut names: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every version of `name` that apt can fetch, newest first.
pub fn versions(name: &str) -> Result<Vec<String>, FetchError> {
    let (_, stdout, _) = run(apt_config::command("apt-cache").args(["madison", name]))?;
    let mut vs: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split('|').nth(1))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    vs.sort_by(|a, b| crate::version::compare(b, a));
    vs.dedup();
    Ok(vs)
}

/// Errors out with [`FetchError::NoAptLists`] when apt has never been updated.
pub fn require_lists() -> Result<(), FetchError> {
    let config = apt_config::current();
    let any = std::fs::read_dir(config.lists_dir())
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains("_Packages")))
        .unwrap_or(false);
    if any {
        Ok(())
    } else {
        Err(FetchError::NoAptLists)
    }
}

/// Makes `pkg` present in the cache and returns its path. A cached file of the right size
/// is trusted (it was verified against apt's sha256 when it was stored).
pub fn fetch(cache: &Cache, pkg: &AptPackage, listener: &dyn Listener) -> Result<(PathBuf, bool), FetchError> {
    let dest = cache.deb_path(&pkg.sha256);
    let cached = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len() == pkg.size).unwrap_or(false);
    if cached(&dest) {
        return Ok((dest, true));
    }
    let _lock = cache.lock("debs", &pkg.sha256)?;
    if cached(&dest) {
        return Ok((dest, true));
    }
    let staging = cache.staging("download")?;
    let dir = staging.path().to_path_buf();
    listener.task_start(&format!("download {}", pkg.spec()), Some(pkg.size), Unit::Bytes);
    let mut child = apt_config::command("apt-get")
        .args(["download", "-q=2", &pkg.spec()])
        .current_dir(&dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FetchError::AptFailed {
            command: format!("apt-get download {}", pkg.spec()),
            detail: e.to_string(),
        })?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {
                listener.task_progress(folder_bytes(&dir));
                std::thread::sleep(Duration::from_millis(150));
            }
            Err(e) => {
                listener.task_finish();
                return Err(FetchError::io("wait for apt-get", &dir)(e));
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut stderr);
    }
    listener.task_finish();
    if !status.success() {
        return Err(FetchError::AptFailed {
            command: format!("apt-get download {}", pkg.spec()),
            detail: stderr.trim().to_string(),
        });
    }
    let file = std::fs::read_dir(&dir)
        .map_err(FetchError::io("read", &dir))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| FetchError::AptFailed {
            command: format!("apt-get download {}", pkg.spec()),
            detail: "no .deb was written".into(),
        })?;
    verify_sha256(&file, &pkg.sha256, listener)?;
    std::fs::rename(&file, &dest).map_err(FetchError::io("store", &dest))?;
    Ok((dest, false))
}

/// Checks a file against an expected sha256, with progress.
pub fn verify_sha256(file: &std::path::Path, expected: &str, listener: &dyn Listener) -> Result<(), FetchError> {
    let size = std::fs::metadata(file).map(|m| m.len()).ok();
    listener.task_start(
        &format!("verify {}", file.file_name().unwrap_or_default().to_string_lossy()),
        size,
        Unit::Bytes,
    );
    let actual = krbd_formats::digest::sha256_file(file, |n| listener.task_progress(n));
    listener.task_finish();
    let actual = actual.map_err(FetchError::io("read", file))?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(FetchError::ChecksumMismatch { path: file.to_path_buf(), expected: expected.to_string(), actual });
    }
    Ok(())
}

fn folder_bytes(dir: &std::path::Path) -> u64 {
    fn walk(d: &std::path::Path) -> u64 {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}

/// The candidate versions of several packages in one `apt-cache` call; unknown names are
/// left out.
pub fn show_many(names: &[String]) -> Result<Vec<AptPackage>, FetchError> {
    show_stanzas(names, true)
}

/// Every version apt's index holds of several packages, in one `apt-cache` call (each call
/// parses all of apt's lists: batching is what keeps listings fast); unknown names are
/// left out, and a version that several suites carry appears once.
pub fn show_all_versions(names: &[String]) -> Result<Vec<AptPackage>, FetchError> {
    let mut all = show_stanzas(names, false)?;
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert((p.name.clone(), p.version.clone())));
    Ok(all)
}

fn show_stanzas(names: &[String], candidates_only: bool) -> Result<Vec<AptPackage>, FetchError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = apt_config::command("apt-cache");
    cmd.arg("show");
    if candidates_only {
        cmd.arg("--no-all-versions");
    }
    let (_, stdout, _) = run(cmd.args(names))?;
    Ok(stdout
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .filter_map(|s| AptPackage::from_fields(&ControlFields::parse(s)))
        .collect())
}
