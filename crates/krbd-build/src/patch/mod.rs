//! Patch series: parsing unified diffs and applying them hunk by hunk, reporting for each
//! hunk whether it applied where the diff says, at an offset, with fuzz, or not at all.
//!
//! The search follows GNU patch: a hunk is first tried with all its context at the expected
//! line, then outward from there; then with one, then two context lines dropped from each
//! end. A hunk never applies before the end of the previous one.

pub mod apply;
pub mod parse;
pub mod series;
pub mod variants;

pub use apply::{apply_file, FileOutcome, HunkReport, HunkStatus};
pub use parse::{FilePatch, Hunk, HunkLine, ParseError, PatchFile};
pub use series::{apply_series, Series, SeriesError, SeriesReport};
pub use variants::{SeriesSource, Variant};
