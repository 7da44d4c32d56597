//! Debian packages and the content-addressed cache.
//!
//! The formats themselves (.deb, RPM headers, cpio, compressions, where an archive entry may
//! land) are krbd-formats'; this crate reads packages with them into the cache and onto disk.
//!
//! - [`deb`]: [`deb::DebArchive`] reads a `.deb` in one streaming pass, without `dpkg`, and
//!   extracts its data entries ([`extract`]).
//! - [`cache`]: the tool's content-addressed cache with atomic, lock-protected entries.
//! - [`apt`]: apt's view of the archive (`apt-cache`) and downloads (`apt-get download`).
//! - [`apt_config`]: which apt configuration those calls use (the system's or a private one).
//! - [`version`]: Debian version ordering.
//! - [`relation`]: Debian package relations and the version apt picks for one.
//! - [`rpm`]: RPM packages (binary and source), streamed without `rpm`.
//! - [`http`]: resumable, checksum-verified downloads into the cache.
//! - [`hash`]: the cache's keys.

pub mod apt;
pub mod apt_config;
pub mod cache;
pub mod deb;
pub mod error;
pub mod extract;
pub mod hash;
pub mod http;
pub mod relation;
pub mod repodata;
pub mod rpm;
pub mod version;

pub use error::FetchError;
