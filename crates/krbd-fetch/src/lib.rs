//! Debian packages and the content-addressed cache.
//!
//! - [`deb`]: a `.deb` is an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`;
//!   [`deb::DebArchive`] reads them in one streaming pass, without `dpkg`.
//! - [`compress`]: the tar members' compressions (xz, zstd, gzip), with liblzma's multi-threaded
//!   decoder for large xz streams.
//! - [`archive_path`]: where an archive entry may land (never outside its folder).
//! - [`cache`]: the tool's content-addressed cache with atomic, lock-protected entries.
//! - [`apt`]: apt's view of the archive (`apt-cache`) and downloads (`apt-get download`).
//! - [`version`]: Debian version ordering.
//! - [`rpm`]: RPM packages (binary and source), streamed without `rpm`.
//! - [`http`]: resumable, checksum-verified downloads into the cache.

pub mod apt;
pub mod archive_path;
pub mod cache;
pub mod compress;
pub mod deb;
pub mod error;
pub mod extract;
pub mod hash;
pub mod http;
pub mod rpm;
pub mod version;

pub use error::FetchError;
