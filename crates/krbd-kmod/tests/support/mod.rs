//! The corpus's raw material: Debian's real modules and headers of the default target (as
//! `krbd-forge targets` names it), unpacked once into the shared test cache
//! (krbd_testsupport::kmod_corpus), and the byte edits of krbd_kmod::corpus with failures
//! turned into panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The corpus's release: the default target (never a fixed one: the archive drops them).
pub fn release() -> &'static str {
    &krbd_testsupport::default_target().release
}

/// The vermagic of Debian's amd64 kernels of the default target's line.
pub fn vermagic() -> String {
    format!("{} SMP preempt mod_unload modversions ", release())
}

pub struct Fixture {
    /// `<name>.ko.xz` files, as shipped (signed, compressed).
    pub modules_dir: PathBuf,
    /// A headers folder with `Module.symvers`, `.config`, `include/config/kernel.release` and
    /// `include/generated/utsrelease.h`.
    pub headers_dir: PathBuf,
}

impl Fixture {
    pub fn module_path(&self, name: &str) -> PathBuf {
        self.modules_dir.join(format!("{name}.ko.xz"))
    }

    /// The module decompressed, with its signature cut off: what an unsigned build of the
    /// same source would be (out-of-tree builds are unsigned).
    pub fn unsigned_module(&self, name: &str) -> Vec<u8> {
        let raw = std::fs::read(self.module_path(name)).expect("read corpus module");
        let data = krbd_kmod::module::decompress(&raw, Path::new(name)).expect("decompress corpus module");
        let (elf, sig) = krbd_kmod::module::split_signature(&data).expect("split signature");
        assert!(sig.is_some(), "Debian's {name} is expected to be signed");
        elf.to_vec()
    }
}

pub fn fixture() -> Fixture {
    let c = krbd_testsupport::kmod_corpus();
    Fixture { modules_dir: c.modules_dir, headers_dir: c.headers_dir }
}

pub fn patch_in_section(elf: &mut [u8], section: &str, from: &[u8], to: &[u8]) {
    krbd_kmod::corpus::patch_in_section(elf, section, from, to).unwrap_or_else(|e| panic!("{e}"))
}

pub fn section_range(elf: &[u8], section: &str) -> (usize, usize) {
    krbd_kmod::corpus::section_range(elf, section).unwrap_or_else(|e| panic!("{e}"))
}

pub fn set_import_crc(elf: &mut [u8], symbol: &str, crc: u32) {
    krbd_kmod::corpus::set_import_crc(elf, symbol, crc).unwrap_or_else(|e| panic!("{e}"))
}

pub fn set_export_crc(elf: &mut [u8], symbol: &str, crc: u32) {
    krbd_kmod::corpus::set_export_crc(elf, symbol, crc).unwrap_or_else(|e| panic!("{e}"))
}
