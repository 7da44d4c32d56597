//! The placement model: decode stock Ceph and fork OSDMaps, run CRUSH bit-exactly, and map
//! every placement group the way the cluster (and a patched kernel client) does.
//!
//! Library code never prints; callers format [`placement::PgMapping`]s themselves.

pub mod crc;
pub mod crush;
pub mod encode;
pub mod error;
pub mod hash;
pub mod incremental;
mod ln_table;
pub mod mapper;
pub mod osdmap;
pub mod placement;
pub mod plan;
pub mod reader;
pub mod stats;

pub use crc::CrcCheck;
pub use error::DecodeError;
pub use osdmap::{OsdMap, PgId, Pool};
pub use placement::PgMapping;
