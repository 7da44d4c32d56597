//! What every stage of a build shares: its timing for the report, and the version of the
//! cache layout its entries are keyed under.
//!
//! The Debian path, the RHEL path and the pipeline all record their stages here; this
//! module depends on none of them, so they depend on each other one way only (the
//! pipeline on the two paths).

use crate::error::BuildError;
use crate::report::StageRecord;
use std::time::Instant;

/// Raised when a cache entry's layout changes, so old entries are not reused.
pub(crate) const LAYOUT_VERSION: &str = "krbd-forge-build-v2";

/// Stage timings, in the order the stages ran, as the report lists them.
#[derive(Debug, Clone, Default)]
pub struct Stages(Vec<StageRecord>);

impl Stages {
    /// Runs one stage; `f` returns its value and whether it was served from the cache.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, bool), BuildError>) -> Result<T, BuildError> {
        let start = Instant::now();
        let (value, cached) = f()?;
        self.record(name, start, cached);
        Ok(value)
    }

    /// Records a stage that started at `start` and has just finished.
    pub fn record(&mut self, name: &str, start: Instant, cached: bool) {
        self.0.push(StageRecord { name: name.to_string(), seconds: seconds_since(start), cached });
    }

    /// Appends stages recorded elsewhere (a cached build's own).
    pub fn extend(&mut self, records: impl IntoIterator<Item = StageRecord>) {
        self.0.extend(records);
    }

    pub fn into_records(self) -> Vec<StageRecord> {
        self.0
    }
}

/// Seconds since `start`, to the hundredth (the report's precision).
fn seconds_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 100.0).round() / 100.0
}
