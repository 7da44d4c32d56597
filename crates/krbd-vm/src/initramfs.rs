//! The initramfs: busybox-static, the planned modules, and an init script that loads them
//! in order and reports over the serial console in lines `KRBD|<kind>|<field>|...` (see
//! [`crate::guest`]), then powers the machine off. The fixed parts of the init script are
//! `src/guest/boot-init-*.sh`.

use crate::deps::{PlannedModule, Role};
use crate::{BusyboxProblem, VmError};
use flate2::{Compression, GzBuilder};
use krbd_formats::cpio::CpioWriter;
use std::io::Write;
use std::path::Path;

/// Checks that `busybox` is a statically linked ELF: a dynamic one finds no libc in the guest.
pub fn read_static_busybox(path: &Path) -> Result<Vec<u8>, VmError> {
    let data = std::fs::read(path).map_err(|source| VmError::BusyboxUnreadable { path: path.to_path_buf(), source })?;
    use object::read::elf::{FileHeader, ProgramHeader};
    let unusable = |problem| VmError::BusyboxUnusable { path: path.to_path_buf(), problem };
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&data[..])
        .map_err(|_| unusable(BusyboxProblem::NotElf64))?;
    let endian = header.endian().map_err(|_| unusable(BusyboxProblem::BadElf))?;
    let segments =
        header.program_headers(endian, &data[..]).map_err(|_| unusable(BusyboxProblem::BadProgramHeaders))?;
    if segments.iter().any(|s| s.p_type(endian) == object::elf::PT_INTERP) {
        return Err(unusable(BusyboxProblem::DynamicallyLinked));
    }
    Ok(data)
}

/// Extra files for the guest (the cluster test's script and data).
#[derive(Debug, Clone, Default)]
pub struct ExtraFiles {
    /// (path in the guest, mode, contents)
    pub files: Vec<(String, u32, Vec<u8>)>,
}

/// Where the planned modules go inside the guest: numbered so that `ls` order is load order.
pub fn guest_module_path(index: usize, m: &PlannedModule) -> String {
    format!("/lib/modules/{index:02}-{}.ko", m.name)
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Ours => "ours",
        Role::Dependency => "dependency",
        Role::Optional => "optional",
        Role::Support => "support",
    }
}

/// The init script. `after_load` is shell code run after the modules are loaded and
/// reported (the cluster steps), or empty.
///
/// Its pieces: the head (mounts, the `say`/`load` functions), one `load` line per module,
/// the sysfs report over the module names (`boot-init-sysfs.sh` continues the `for m in
/// <names>` line written here), `after_load`, and the tail (final taint, `end`, power off).
pub fn init_script(modules: &[PlannedModule], after_load: &str) -> String {
    let mut s = String::new();
    s.push_str(include_str!("guest/boot-init-head.sh"));
    for (i, m) in modules.iter().enumerate() {
        s.push_str(&format!("load {} {} {}\n", role_word(m.role), m.name, guest_module_path(i, m)));
    }
    s.push_str("for m in");
    for m in modules {
        s.push(' ');
        s.push_str(&m.name);
    }
    s.push_str(include_str!("guest/boot-init-sysfs.sh"));
    s.push_str(after_load);
    s.push_str(include_str!("guest/boot-init-tail.sh"));
    s
}

/// Builds the gzip-compressed newc archive. Same input, same bytes.
pub fn build(busybox: &[u8], modules: &[PlannedModule], init: &str, extra: &ExtraFiles) -> Result<Vec<u8>, VmError> {
    let io = |source| VmError::Initramfs { source };
    let gz = GzBuilder::new().mtime(0).write(Vec::new(), Compression::fast());
    let mut w = CpioWriter::new(gz);
    for dir in ["bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "sys", "tmp"] {
        w.directory(dir, 0o755).map_err(io)?;
    }
    // The kernel opens /dev/console for init before anything is mounted.
    w.char_device("dev/console", 0o600, 5, 1).map_err(io)?;
    w.file("bin/busybox", 0o755, busybox).map_err(io)?;
    w.symlink("bin/sh", "busybox").map_err(io)?;
    let mut extra_sorted = extra.files.clone();
    extra_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, mode, data) in &extra_sorted {
        w.file(path, *mode, data).map_err(io)?;
    }
    for (i, m) in modules.iter().enumerate() {
        w.file(&guest_module_path(i, m), 0o644, &m.bytes).map_err(io)?;
    }
    w.file("init", 0o755, init.as_bytes()).map_err(io)?;
    let mut gz = w.finish().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)
}
