//! `build-report.json`: what went in, what was done, what came out.

use crate::kbuild::Toolchain;
use crate::patch::SeriesReport;
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
    pub sha256: String,
    /// RPMs: their OpenPGP signatures, and whether they were verified (`--rpm-key`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signature: Option<krbd_fetch::rpm::SignatureStatus>,
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
    pub sha256: String,
}

impl BuildReport {
    /// A few lines for people, on stderr.
    pub fn summary(&self, out: &std::path::Path) -> String {
        let mut s = format!(
            "built {} modules for {}{} in {}\n",
            self.modules.len(),
            self.release,
            if self.cache_hit { " (cached)" } else { "" },
            out.display()
        );
        if let Some(series) = &self.series {
            use crate::patch::HunkStatus::*;
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
