//! File formats that krbd-forge both reads and writes, each known in one place.
//!
//! - [`rpm`]: the RPM lead, the header structure (index entries over a data store, value
//!   encoders and decoders) and the tag numbers; read by krbd-fetch, written by krbd-ship.
//! - [`deb`]: a `.deb` (an `ar` archive of `debian-binary`, `control.tar.*`, `data.tar.*`):
//!   read in one streaming pass with the `debian-binary` check, and written.
//! - [`cpio`]: the "newc" cpio format of RPM payloads and initramfs images, both ways.
//! - [`archive_path`]: the one rule for where an archive entry may land.
//! - [`compress`]: the compressions of packages, payloads, modules and kernel images,
//!   recognised by name or by magic bytes.
//! - [`digest`]: SHA-256 as lowercase hex, of bytes or of a file.
//! - [`atomic`]: replacing a file so that a crash leaves either the old or the new bytes.
//!
//! Nothing here prints or knows about the tool's commands: callers wrap these errors in
//! their own.

pub mod archive_path;
pub mod atomic;
pub mod bzimage;
pub mod compress;
pub mod cpio;
pub mod deb;
pub mod digest;
pub mod rpm;
