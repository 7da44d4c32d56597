//! The target described by an installed kernel alone, without its headers: what a host has
//! right after its package manager put a new kernel in place (`/lib/modules/<release>/`
//! and `/boot/`), which is when the kernel-install hooks run.
//!
//! "The kernel's own symbols" are the export tables its loader will consult: the
//! `__ksymtab*`/`__kcrctab*` sections of the vmlinux inside the kernel image, and the
//! exports of the kernel's modules that the checked set depends on. When the kernel package
//! ships its build's `Module.symvers` (the RHEL family's `symvers.gz`), that list is used
//! instead: it was written by the same build. The vermagic is taken from one of the
//! kernel's own modules (exactly `VERMAGIC_STRING`), else rebuilt from the release and the
//! `.config`; the loader's policy comes from that `.config`.

use crate::check::{collect_module_names, finish_target, vermagic_string, CheckError};
use crate::config::KernelConfig;
use crate::loader::Target;
use crate::module::KernelModule;
use crate::symvers::{Symvers, SymversEntry};
use object::read::elf::{ElfFile64, FileHeader};
use object::{Object, ObjectSection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the symbols of an installed kernel were read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SymbolSource {
    /// The kernel build's own `Module.symvers`, shipped with the image (`symvers.gz`).
    Symvers { path: PathBuf },
    /// The export tables of the vmlinux in the image, plus the named modules' exports.
    Image { path: PathBuf, modules: Vec<PathBuf> },
}

/// An installed kernel's target, and where its description came from.
#[derive(Debug)]
pub struct InstalledTarget {
    pub target: Target,
    pub source: SymbolSource,
    pub config: PathBuf,
}

/// The first existing path of `candidates`.
fn first_file(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}

/// Describes the kernel `release` installed under `root` (`/` on the host itself).
/// `providers` are the module names the checked set depends on (its `depends=` minus its own
/// modules): their exports complete the image's.
pub fn installed_target(root: &Path, release: &str, providers: &[String]) -> Result<InstalledTarget, CheckError> {
    let modules_dir = root.join("lib/modules").join(release);
    if !modules_dir.is_dir() {
        return Err(CheckError::NotInstalled { release: release.to_string(), dir: modules_dir.display().to_string() });
    }
    let boot = root.join("boot");
    let config_path =
        first_file(&[boot.join(format!("config-{release}")), modules_dir.join("config")]).ok_or_else(|| {
            CheckError::ImageMissing {
                release: release.to_string(),
                what: "config",
                looked: format!("{}/config-{release}, {}/config", boot.display(), modules_dir.display()),
            }
        })?;
    let config = KernelConfig::read(&config_path)
        .map_err(|source| CheckError::Read { path: config_path.display().to_string(), source })?;
    let files = module_files(&modules_dir)?;
    let symvers_file = first_file(&[modules_dir.join("symvers.gz"), boot.join(format!("symvers-{release}.gz"))]);
    let (symvers, source) = match symvers_file {
        Some(path) => (read_symvers_gz(&path)?, SymbolSource::Symvers { path }),
        None => image_symbols(&boot, &modules_dir, release, providers, &files)?,
    };
    let vermagic = kernel_vermagic(&files).unwrap_or_else(|| vermagic_string(release, &config, &modules_dir));
    let target = finish_target(symvers, vermagic, Some(config), Some(&modules_dir))?;
    Ok(InstalledTarget { target, source, config: config_path })
}

/// Every module file under `dir` by module name, the kernel's own (`kernel/`) first: a
/// name also found elsewhere (`updates/`, `extra/`) is the copy depmod would prefer, but
/// the kernel's exports are those of the build, so the stock copy describes the target.
fn module_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, CheckError> {
    let mut names = std::collections::BTreeSet::new();
    let mut first = None;
    let mut all = Vec::new();
    collect_module_names(dir, &mut names, &mut first, &mut all)?;
    let mut out = BTreeMap::new();
    all.sort_by_key(|p| !p.strip_prefix(dir).is_ok_and(|r| r.starts_with("kernel")));
    for path in all {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let stem = file.split_once(".ko").map_or(file, |(s, _)| s);
        out.entry(crate::module::normalize_module_name(stem)).or_insert(path);
    }
    Ok(out)
}

/// The kernel's `VERMAGIC_STRING`, as one of its own modules records it.
fn kernel_vermagic(files: &BTreeMap<String, PathBuf>) -> Option<String> {
    let (_, path) = files.iter().find(|(_, p)| p.components().any(|c| c.as_os_str() == "kernel"))?;
    let module = KernelModule::read(path).ok()?;
    module.vermagic().map(str::to_string)
}

fn read_symvers_gz(path: &Path) -> Result<Symvers, CheckError> {
    let raw = std::fs::read(path).map_err(|source| CheckError::Read { path: path.display().to_string(), source })?;
    let text = krbd_formats::compress::decompress(&raw, krbd_formats::compress::Streams::All)
        .map_err(|e| CheckError::Read { path: path.display().to_string(), source: e.source })?;
    Ok(Symvers::parse(&String::from_utf8_lossy(&text), &path.display().to_string())?)
}

/// The image's exports and those of the `providers` modules.
fn image_symbols(
    boot: &Path,
    modules_dir: &Path,
    release: &str,
    providers: &[String],
    files: &BTreeMap<String, PathBuf>,
) -> Result<(Symvers, SymbolSource), CheckError> {
    let image =
        first_file(&[boot.join(format!("vmlinuz-{release}")), modules_dir.join("vmlinuz")]).ok_or_else(|| {
            CheckError::ImageMissing {
                release: release.to_string(),
                what: "image",
                looked: format!("{}/vmlinuz-{release}, {}/vmlinuz", boot.display(), modules_dir.display()),
            }
        })?;
    let bytes =
        std::fs::read(&image).map_err(|source| CheckError::Read { path: image.display().to_string(), source })?;
    let bad = |reason: String| CheckError::ExportTable { path: image.display().to_string(), reason };
    let vmlinux = krbd_formats::bzimage::extract_vmlinux(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut entries = vmlinux_exports(&vmlinux).map_err(bad)?;
    let mut read = Vec::new();
    for name in providers {
        let Some(path) = files.get(name) else { continue };
        let module = KernelModule::read(path)
            .map_err(|source| CheckError::Module { path: path.display().to_string(), source })?;
        let rel = path.strip_prefix(modules_dir).unwrap_or(path).display().to_string();
        let rel = rel.split_once(".ko").map_or(rel.as_str(), |(s, _)| s).to_string();
        for e in &module.exports {
            let kind = if e.gpl_only { "EXPORT_SYMBOL_GPL" } else { "EXPORT_SYMBOL" };
            entries.push(SymversEntry::new(e.crc.unwrap_or(0), &e.name, &rel, kind, e.namespace.as_deref()));
        }
        read.push(path.clone());
    }
    Ok((Symvers::from_entries(entries), SymbolSource::Image { path: image, modules: read }))
}

/// The exports of a linked vmlinux: `__ksymtab` and `__ksymtab_gpl` entry by entry, each
/// naming its symbol in `__ksymtab_strings`, with the CRC at the same index of the
/// parallel `__kcrctab*` array. Entry layouts: 12 bytes of 32-bit place-relative offsets
/// (value, name, namespace; x86-64 since 4.19), or absolute pointers (value, name[,
/// namespace]) of 16 or 24 bytes; CRCs are 4 bytes (8 before 4.10's relative CRCs).
pub fn vmlinux_exports(data: &[u8]) -> Result<Vec<SymversEntry>, String> {
    let file = ElfFile64::<object::Endianness>::parse(data).map_err(|e| format!("not a 64-bit ELF vmlinux: {e}"))?;
    let little = file.elf_header().is_little_endian();
    let strings = file.section_by_name("__ksymtab_strings").ok_or("no __ksymtab_strings section")?;
    let strings_data = strings.data().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (table, crcs, kind) in
        [("__ksymtab", "__kcrctab", "EXPORT_SYMBOL"), ("__ksymtab_gpl", "__kcrctab_gpl", "EXPORT_SYMBOL_GPL")]
    {
        let Some(section) = file.section_by_name(table) else { continue };
        let tab = section.data().map_err(|e| e.to_string())?;
        let crc = match file.section_by_name(crcs) {
            Some(s) => Some(s.data().map_err(|e| e.to_string())?),
            None => None,
        };
        let layout = Layout::of(tab.len(), crc.map(<[u8]>::len))
            .ok_or_else(|| format!("{table} ({} bytes) and {crcs} do not pair up in any known layout", tab.len()))?;
        let ctx =
            Tables { little, tab, tab_addr: section.address(), strings: strings_data, strings_addr: strings.address() };
        for i in 0..layout.count {
            let (name, namespace) =
                ctx.entry(&layout, i).ok_or_else(|| format!("{table} entry {i} names no string"))?;
            let crc = crc.map_or(0, |c| read_uint(c, i * layout.crc_size, layout.crc_size, little) as u32);
            let ns = (!namespace.is_empty()).then_some(namespace.as_str());
            out.push(SymversEntry::new(crc, &name, "vmlinux", kind, ns));
        }
    }
    if out.is_empty() {
        return Err("no __ksymtab sections: not a kernel with exports".into());
    }
    Ok(out)
}

/// How one export table is laid out.
struct Layout {
    count: usize,
    entry_size: usize,
    relative: bool,
    crc_size: usize,
}

impl Layout {
    fn of(table_len: usize, crc_len: Option<usize>) -> Option<Layout> {
        let shapes = [(12, true, 4), (24, false, 4), (16, false, 4), (16, false, 8), (24, false, 8)];
        shapes.into_iter().find_map(|(entry_size, relative, crc_size)| {
            if !table_len.is_multiple_of(entry_size) {
                return None;
            }
            let count = table_len / entry_size;
            match crc_len {
                Some(c) if c != count * crc_size => None,
                _ => Some(Layout { count, entry_size, relative, crc_size }),
            }
        })
    }
}

/// The data an entry's references point into.
struct Tables<'a> {
    little: bool,
    tab: &'a [u8],
    tab_addr: u64,
    strings: &'a [u8],
    strings_addr: u64,
}

impl Tables<'_> {
    /// Entry `i`'s name and namespace (empty when it has none).
    fn entry(&self, layout: &Layout, i: usize) -> Option<(String, String)> {
        let at = i * layout.entry_size;
        let field = |k: usize| -> Option<u64> {
            if layout.relative {
                let off = read_uint(self.tab, at + 4 * k, 4, self.little) as u32 as i32;
                Some(self.tab_addr.wrapping_add((at + 4 * k) as u64).wrapping_add(off as i64 as u64))
            } else {
                let size = layout.entry_size / if layout.entry_size == 24 { 3 } else { 2 };
                Some(read_uint(self.tab, at + size * k, size, self.little))
            }
        };
        let name = self.string_at(field(1)?)?;
        let has_namespace = layout.relative || layout.entry_size == 24;
        let namespace =
            if has_namespace { field(2).and_then(|a| self.string_at(a)).unwrap_or_default() } else { String::new() };
        Some((name, namespace))
    }

    /// The NUL-terminated string at address `addr` of `__ksymtab_strings`.
    fn string_at(&self, addr: u64) -> Option<String> {
        let start = usize::try_from(addr.checked_sub(self.strings_addr)?).ok()?;
        let rest = self.strings.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

fn read_uint(data: &[u8], at: usize, size: usize, little: bool) -> u64 {
    let Some(bytes) = data.get(at..at + size) else { return 0 };
    let mut v = 0u64;
    for (k, b) in bytes.iter().enumerate() {
        let shift = if little { 8 * k } else { 8 * (size - 1 - k) };
        v |= u64::from(*b) << shift;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_pair_tables_with_their_crcs() {
        let l = Layout::of(12 * 5, Some(4 * 5)).unwrap();
        assert!(l.relative && l.count == 5);
        let l = Layout::of(16 * 3, Some(8 * 3)).unwrap();
        assert!(!l.relative && l.crc_size == 8);
        assert!(Layout::of(13, Some(4)).is_none());
        assert!(vmlinux_exports(b"not elf").is_err());
    }
}
