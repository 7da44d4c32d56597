//! `build-report.json`: what went in, what was done, what came out. The schema lives with
//! the module set it describes ([`krbd_kmod::set::report`]); the build fills it in and
//! writes it ([`crate::pipeline`]).

pub use krbd_kmod::set::report::*;
