//! The corpus's raw material: Debian's real 6.12.117 modules and headers, unpacked once into
//! the shared test cache.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const RELEASE: &str = "6.12.117+deb12-amd64";
pub const DEB_VERSION: &str = "6.12.117-1~deb12u1";
pub const VERMAGIC: &str = "6.12.117+deb12-amd64 SMP preempt mod_unload modversions ";

/// The modules the corpus is made from, by file name inside the image.
pub const MODULES: &[&str] = &["libceph.ko.xz", "ceph.ko.xz", "rbd.ko.xz", "libcrc32c.ko.xz", "netfs.ko.xz"];

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

/// Unpacks (once, under a lock) the five modules and the headers that the corpus needs.
pub fn fixture() -> Fixture {
    // v2: with include/generated/utsrelease.h.
    let root = krbd_testsupport::test_cache_dir().join(format!("kmod-corpus-v2-{RELEASE}"));
    let modules_dir = root.join("modules");
    let headers_dir = root.join("headers");
    krbd_testsupport::with_lock("kmod-corpus", || {
        let done = root.join(".complete");
        if done.is_file() {
            return;
        }
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&modules_dir).expect("create corpus folder");
        std::fs::create_dir_all(&headers_dir).expect("create corpus folder");

        let image = krbd_testsupport::debian_package(&format!("linux-image-{RELEASE}"), Some(DEB_VERSION));
        extract_from_deb(&image, |path| {
            let file = path.rsplit('/').next()?;
            (path.contains("/lib/modules/") && MODULES.contains(&file)).then(|| modules_dir.join(file))
        });
        for m in MODULES {
            assert!(modules_dir.join(m).is_file(), "{m} not found in the linux-image package");
        }

        let headers = krbd_testsupport::debian_package(&format!("linux-headers-{RELEASE}"), Some(DEB_VERSION));
        let prefix = format!("./usr/src/linux-headers-{RELEASE}/");
        extract_from_deb(&headers, |path| {
            let rel = path.strip_prefix(&prefix)?;
            matches!(rel, "Module.symvers" | ".config" | "include/config/kernel.release" | "include/generated/utsrelease.h")
                .then(|| headers_dir.join(rel))
        });
        for f in ["Module.symvers", ".config", "include/config/kernel.release", "include/generated/utsrelease.h"] {
            assert!(headers_dir.join(f).is_file(), "{f} not found in the headers package");
        }
        std::fs::write(&done, b"").expect("mark corpus complete");
    });
    Fixture { modules_dir, headers_dir }
}

/// Streams a .deb's data tarball (`dpkg-deb --fsys-tarfile`) and writes the entries that
/// `dest` maps to a path.
fn extract_from_deb(deb: &Path, dest: impl Fn(&str) -> Option<PathBuf>) {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run dpkg-deb (package dpkg)");
    let stdout = child.stdout.take().expect("dpkg-deb stdout");
    let mut archive = tar::Archive::new(stdout);
    for entry in archive.entries().expect("read data tarball") {
        let mut entry = entry.expect("tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("entry path").to_string_lossy().into_owned();
        if let Some(out) = dest(&path) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).expect("create folder");
            }
            std::fs::write(&out, bytes).expect("write extracted file");
        }
    }
    // Reading stops at the archive's end marker; drain the rest so dpkg-deb exits cleanly.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    let status = child.wait().expect("wait for dpkg-deb");
    assert!(status.success(), "dpkg-deb --fsys-tarfile {} failed", deb.display());
}

/// Replaces the only occurrence of `from` inside `section` of an ELF image by `to` (same
/// length), the way a corrupted or mismatched build would differ.
pub fn patch_in_section(elf: &mut [u8], section: &str, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "a byte edit keeps the length");
    let (start, end) = section_range(elf, section);
    let hay = &elf[start..end];
    let hits: Vec<usize> = hay.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert_eq!(hits.len(), 1, "expected one occurrence of {:?} in {section}", String::from_utf8_lossy(from));
    elf[start + hits[0]..start + hits[0] + to.len()].copy_from_slice(to);
}

/// File offsets of a section's contents.
pub fn section_range(elf: &[u8], section: &str) -> (usize, usize) {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).expect("parse ELF");
    let s = file.section_by_name(section).unwrap_or_else(|| panic!("no section {section}"));
    let (off, size) = s.file_range().expect("section has file contents");
    (off as usize, (off + size) as usize)
}

/// Sets the CRC that `__versions` records for `symbol`.
pub fn set_import_crc(elf: &mut [u8], symbol: &str, crc: u32) {
    let (start, end) = section_range(elf, "__versions");
    for rec in (start..end).step_by(64) {
        let name = &elf[rec + 8..rec + 64];
        let len = name.iter().position(|b| *b == 0).unwrap_or(56);
        if &name[..len] == symbol.as_bytes() {
            elf[rec..rec + 8].copy_from_slice(&(crc as u64).to_le_bytes());
            return;
        }
    }
    panic!("{symbol} is not in __versions");
}

/// Sets the CRC that the module exports for `symbol` (entry i of `__kcrctab*`).
pub fn set_export_crc(elf: &mut [u8], symbol: &str, crc: u32) {
    let m = krbd_kmod::KernelModule::parse(elf).expect("parse module");
    for (table, crcs, gpl) in [("__ksymtab", "__kcrctab", false), ("__ksymtab_gpl", "__kcrctab_gpl", true)] {
        let names: Vec<&str> = m.exports.iter().filter(|e| e.gpl_only == gpl).map(|e| e.name.as_str()).collect();
        if let Some(i) = names.iter().position(|n| *n == symbol) {
            let _ = table;
            let (start, _) = section_range(elf, crcs);
            elf[start + 4 * i..start + 4 * i + 4].copy_from_slice(&crc.to_le_bytes());
            return;
        }
    }
    panic!("{symbol} is not exported");
}
