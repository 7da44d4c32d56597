//! Fixtures for the boot tests: the default target's package and its stock Ceph modules
//! standing in for "ours" until the build produces them.

#![allow(dead_code)]

use krbd_vm::deps::OurModule;
use krbd_vm::KernelPackage;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The default target's release, as `krbd-forge targets` names it (never a fixed one: the
/// archive drops old releases).
pub fn release() -> &'static str {
    &krbd_testsupport::default_target().release
}

pub fn image_deb() -> PathBuf {
    let t = krbd_testsupport::default_target();
    krbd_testsupport::debian_package(&format!("linux-image-{}", t.release), Some(&t.version))
}

pub fn package() -> &'static KernelPackage {
    static PKG: OnceLock<KernelPackage> = OnceLock::new();
    PKG.get_or_init(|| KernelPackage::read(&image_deb(), Some(release())).expect("read the default target's package"))
}

/// libceph, ceph and rbd from the package, decompressed, written to `dir` as plain .ko.
pub fn stock_set(dir: &std::path::Path) -> Vec<OurModule> {
    for name in ["libceph", "ceph", "rbd"] {
        let bytes = package().module_bytes(name).expect("decompress").expect("module in package");
        std::fs::write(dir.join(format!("{name}.ko")), bytes).expect("write module");
    }
    krbd_vm::load_our_modules(dir).expect("load the stock set")
}

/// Generous: TCG on a loaded 2-core machine can be several times slower than measured.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Processes whose command line mentions `needle` (to prove nothing was left running).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for e in dir.flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// Removes an appended module signature: [module][signature][12-byte module_signature,
/// big-endian sig_len last][magic].
pub fn strip_signature(ko: &[u8]) -> Vec<u8> {
    const MAGIC: &[u8] = b"~Module signature appended~\n";
    let Some(body) = ko.strip_suffix(MAGIC) else { return ko.to_vec() };
    let info = &body[body.len() - 12..];
    let sig_len = u32::from_be_bytes(info[8..12].try_into().unwrap()) as usize;
    body[..body.len() - 12 - sig_len].to_vec()
}
