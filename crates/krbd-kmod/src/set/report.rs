//! `build-report.json`: what went in, what was done, what came out. The build writes it
//! into the out folder; every reader of the folder checks the modules against it.
//!
//! The types here are the report's schema only. The build produces them (`krbd-build`
//! re-exports them where it makes them: the toolchain, the patch series' hunks), and the
//! RHEL path converts the RPM signature status it gets from `krbd-fetch` into
//! [`SignatureRecord`].

use serde::{Deserialize, Serialize};

/// Bumped when the report's shape changes incompatibly.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildReport {
    pub format: u32,
    pub tool: String,
    pub release: String,
    /// Hash of every input that shapes the modules; equal keys mean equal modules.
    pub build_key: String,
    /// The modules came from the cache: nothing was extracted, patched or compiled.
    pub cache_hit: bool,
    pub inputs: Vec<InputRecord>,
    pub compiler: Toolchain,
    pub jobs: usize,
    pub series: Option<SeriesReport>,
    /// RHEL-family targets: what the source RPM's `%prep` applied to the Ceph files.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prep: Option<serde_json::Value>,
    pub stages: Vec<StageRecord>,
    /// `krbd-forge check`'s verdicts on the set, against the target's headers and modules.
    pub check: Option<serde_json::Value>,
    pub modules: Vec<ModuleRecord>,
}

/// One input file: a Debian package or a local file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputRecord {
    /// `headers`, `headers-common`, `kbuild`, `image`, `source`, `headers-dir`.
    pub role: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Debian packages chosen to satisfy a relation of the headers package: that relation
    /// as Debian wrote it (`linux-kbuild-6.1 (>= 6.1.170-3)`); `version` is the one chosen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub relation: Option<String>,
    pub sha256: String,
    /// RPMs: their OpenPGP signatures, and whether they were verified (`--rpm-key`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signature: Option<SignatureRecord>,
}

/// What is known of an input package's signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecord {
    /// `verified` (a good signature by the given key), `not verified` (no key was given),
    /// `unsigned`.
    pub status: String,
    pub signatures: Vec<SignerRecord>,
}

/// One OpenPGP signature an input package carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    /// `rsa`, `dsa` (header signatures), `pgp`, `gpg` (header and payload).
    pub tag: String,
    /// The signer's key id (16 hex digits), when the packet names one.
    pub key_id: Option<String>,
}

/// The compiler the kernel was built with, found on this machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Toolchain {
    /// The program, as `CONFIG_CC_VERSION_TEXT` names it (`x86_64-linux-gnu-gcc-12`).
    pub cc: String,
    /// `CONFIG_CC_VERSION_TEXT`.
    pub kernel_cc: String,
    /// The first line of `cc --version` here.
    pub host_cc: String,
}

/// What applying a series did, hunk by hunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesReport {
    pub series: String,
    pub sha256: String,
    pub patches: Vec<PatchReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchReport {
    pub patch: String,
    pub subject: String,
    pub sha256: String,
    pub hunks: Vec<HunkReport>,
}

impl SeriesReport {
    pub fn count(&self, status: HunkStatus) -> usize {
        self.patches.iter().flat_map(|p| &p.hunks).filter(|h| h.status == status).count()
    }
}

/// How a hunk went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HunkStatus {
    /// Matched with all context at the line the diff names (after earlier hunks' offsets).
    Applied,
    /// Matched with all context, elsewhere.
    Offset,
    /// Matched only with context lines dropped at its ends.
    Fuzz,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HunkReport {
    pub file: String,
    /// 1-based, as GNU patch counts them.
    pub hunk: usize,
    pub header: String,
    pub status: HunkStatus,
    /// 1-based line of the original file where the hunk matched (or was expected, if failed).
    pub line: usize,
    /// Lines between where the diff says and where it matched.
    pub offset: i64,
    /// Context lines dropped from each end to make it match.
    pub fuzz: usize,
    /// Why it failed: what the file holds where the hunk was looked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    pub name: String,
    pub seconds: f64,
    /// Served from the cache.
    pub cached: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModuleRecord {
    pub name: String,
    /// Relative to the out folder.
    pub file: String,
    pub stripped_file: String,
    pub vermagic: String,
    pub srcversion: String,
    pub depends: String,
    pub size: u64,
    pub stripped_size: u64,
    /// Of the full module (`file`), as the build wrote it.
    pub sha256: String,
}

impl BuildReport {
    /// The first 12 hex digits of the build key: names this exact set.
    pub fn short_key(&self) -> &str {
        let k = &self.build_key;
        &k[..k.len().min(12)]
    }

    /// The tool version that built the set (`krbd-forge 0.1.0` -> `0.1.0`); this
    /// workspace's version when the report does not say.
    pub fn tool_version(&self) -> String {
        self.tool
            .split_whitespace()
            .last()
            .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or(env!("CARGO_PKG_VERSION"))
            .to_string()
    }

    /// The record of module `name` (`libceph`, `ceph`, `rbd`).
    pub fn module(&self, name: &str) -> Option<&ModuleRecord> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// A few lines for people (the caller prints them on stderr).
    pub fn summary(&self, out: &std::path::Path) -> String {
        let mut s = format!(
            "built {} modules for {}{} in {}\n",
            self.modules.len(),
            self.release,
            if self.cache_hit { " (cached)" } else { "" },
            out.display()
        );
        if let Some(series) = &self.series {
            use HunkStatus::*;
            s += &format!(
                "  series {}: {} patches, {} hunks applied, {} at an offset, {} with fuzz\n",
                series.series,
                series.patches.len(),
                series.count(Applied),
                series.count(Offset),
                series.count(Fuzz)
            );
        }
        for m in &self.modules {
            s += &format!(
                "  {:<8} {:>9} bytes ({:>8} stripped)  vermagic {}\n",
                m.name,
                m.size,
                m.stripped_size,
                m.vermagic.trim_end()
            );
        }
        let total: f64 = self.stages.iter().map(|st| st.seconds).sum();
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|st| format!("{} {:.1}s{}", st.name, st.seconds, if st.cached { " (cached)" } else { "" }))
            .collect();
        s += &format!("  {:.1}s: {}\n", total, stages.join(", "));
        s
    }
}
