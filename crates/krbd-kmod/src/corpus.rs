//! A corpus of module sets made from a target's real modules by editing their bytes the way
//! a wrong build would differ: a flipped vermagic, another release, a changed CRC, a missing
//! export, another `struct module` size, a missing dependency. The same cases feed the
//! offline tests (`tests/corpus.rs`, with the lines the kernel is known to print) and the
//! agreement run of krbd-vm, which loads every case into the real target kernel and compares
//! its verdicts and messages with [`crate::check_set`]'s.
//!
//! Every case here can be reproduced in one booted kernel: a case differs from the target
//! only by its module files and by target modules that must not be loaded ([`CorpusCase::absent`]).
//! Cases that need another kernel (enforced signatures, lockdown, a symbol moved into a
//! namespace) stay in the offline tests.

use crate::loader::{Candidate, Target};
use crate::module::{decompress, normalize_module_name, split_signature, KernelModule, ModuleError};
use crate::symvers::Symvers;
use std::collections::BTreeMap;
use std::path::Path;

/// Why a corpus module could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("the corpus needs {module}.ko from the target's modules, which was not given")]
    MissingModule { module: String },
    #[error("{module}: {source}")]
    Module {
        module: String,
        #[source]
        source: ModuleError,
    },
    #[error("case {case}: cannot edit {module}: {reason} (the module differs from the 6.x layout the corpus expects)")]
    Edit { case: &'static str, module: String, reason: String },
}

/// A byte edit that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EditError(pub String);

/// The target's own modules the corpus is made from, decompressed, as shipped (Debian's
/// are signed).
#[derive(Debug, Clone, Default)]
pub struct CorpusSource {
    modules: BTreeMap<String, Vec<u8>>,
}

/// The modules a full corpus needs.
pub const SOURCE_MODULES: &[&str] = &["libceph", "ceph", "rbd", "libcrc32c"];

impl CorpusSource {
    /// From module images by name (compressed or not).
    pub fn from_images(images: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Self, CorpusError> {
        let mut modules = BTreeMap::new();
        for (name, raw) in images {
            let data = decompress(&raw, Path::new(&name))
                .map_err(|source| CorpusError::Module { module: name.clone(), source })?;
            modules.insert(normalize_module_name(&name), data);
        }
        Ok(CorpusSource { modules })
    }

    /// From a folder holding `<name>.ko[.xz|.zst|.gz]` files.
    pub fn from_dir(dir: &Path) -> Result<Self, CorpusError> {
        let mut images = Vec::new();
        for name in SOURCE_MODULES {
            let found = ["ko", "ko.xz", "ko.zst", "ko.gz"]
                .iter()
                .map(|ext| dir.join(format!("{name}.{ext}")))
                .find(|p| p.is_file());
            let Some(path) = found else { continue };
            let raw = std::fs::read(&path).map_err(|e| CorpusError::Module {
                module: name.to_string(),
                source: ModuleError::Read { path: path.display().to_string(), source: e },
            })?;
            images.push((name.to_string(), raw));
        }
        Self::from_images(images)
    }

    /// The module as shipped (signature kept), decompressed.
    pub fn shipped(&self, name: &str) -> Result<Vec<u8>, CorpusError> {
        self.modules.get(name).cloned().ok_or_else(|| CorpusError::MissingModule { module: name.to_string() })
    }

    /// The module with its signature cut off: what an unsigned (out-of-tree) build of the
    /// same source is.
    pub fn unsigned(&self, name: &str) -> Result<Vec<u8>, CorpusError> {
        let data = self.modules.get(name).ok_or_else(|| CorpusError::MissingModule { module: name.to_string() })?;
        let (elf, _) =
            split_signature(data).map_err(|source| CorpusError::Module { module: name.to_string(), source })?;
        Ok(elf.to_vec())
    }
}

/// One module file of a case.
#[derive(Debug, Clone)]
pub struct CorpusModule {
    /// The module's name (as the kernel knows it).
    pub name: String,
    /// The uncompressed image, maybe signed.
    pub bytes: Vec<u8>,
}

/// One module set, loaded into a kernel in the given order (dependencies first).
#[derive(Debug, Clone)]
pub struct CorpusCase {
    /// A stable identifier, e.g. `vermagic_flipped`.
    pub name: &'static str,
    /// What was changed, in words.
    pub what: &'static str,
    pub modules: Vec<CorpusModule>,
    /// Target modules that must not be loaded (and that the target does not provide) for
    /// this case, e.g. a missing dependency.
    pub absent: Vec<String>,
}

impl CorpusCase {
    /// The case's modules as check candidates; a file is named `<case>/<module>.ko`.
    pub fn candidates(&self) -> Result<Vec<Candidate>, CorpusError> {
        self.modules
            .iter()
            .map(|m| {
                let module = KernelModule::parse(&m.bytes)
                    .map_err(|source| CorpusError::Module { module: m.name.clone(), source })?;
                Ok(Candidate { file: format!("{}/{}.ko", self.name, m.name), module })
            })
            .collect()
    }

    /// The target as this case sees it: without the [`CorpusCase::absent`] modules.
    pub fn target(&self, base: &Target) -> Target {
        let mut t = base.clone();
        if !self.absent.is_empty() {
            let keep = t
                .symvers
                .entries
                .iter()
                .filter(|e| !self.absent.iter().any(|a| a == e.module_name()))
                .cloned()
                .collect();
            t.symvers = Symvers::from_entries(keep);
            for a in &self.absent {
                t.extra_modules.remove(a);
            }
        }
        t
    }
}

/// The cases that one booted kernel can replay. Missing source modules or edits that do
/// not apply to this kernel's modules are errors: the corpus is meant for the 6.x layout.
pub fn bootable_cases(src: &CorpusSource) -> Result<Vec<CorpusCase>, CorpusError> {
    let crcs = StockCrcs::read(src)?;
    let mut cases = whole_set_cases(src)?;
    cases.extend(edited_cases(src, &crcs)?);
    Ok(cases)
}

/// The unshipped set: libceph, ceph, rbd.
const SET: [&str; 3] = ["libceph", "ceph", "rbd"];

fn unsigned_set(src: &CorpusSource) -> Result<Vec<CorpusModule>, CorpusError> {
    SET.iter().map(|n| Ok(CorpusModule { name: n.to_string(), bytes: src.unsigned(n)? })).collect()
}

/// The unsigned set with one module replaced by an edited copy.
fn edited(
    src: &CorpusSource,
    case: &'static str,
    what: &'static str,
    name: &str,
    edit: &dyn Fn(&mut Vec<u8>) -> Result<(), EditError>,
) -> Result<CorpusCase, CorpusError> {
    let mut modules = unsigned_set(src)?;
    let m = modules
        .iter_mut()
        .find(|m| m.name == name)
        .ok_or_else(|| CorpusError::MissingModule { module: name.to_string() })?;
    edit(&mut m.bytes).map_err(|e| CorpusError::Edit { case, module: name.to_string(), reason: e.0 })?;
    Ok(CorpusCase { name: case, what, modules, absent: vec![] })
}

fn parse_unsigned(src: &CorpusSource, name: &str) -> Result<KernelModule, CorpusError> {
    KernelModule::parse(&src.unsigned(name)?).map_err(|source| CorpusError::Module { module: name.into(), source })
}

/// The stock CRCs that the CRC cases change.
struct StockCrcs {
    /// rbd's recorded CRC of libceph's `ceph_osdc_start_request`.
    osdc: u32,
    /// rbd's recorded CRC of the kernel's `blk_mq_alloc_tag_set`.
    tag_set: u32,
    /// rbd's recorded CRC of `module_layout`.
    layout: u32,
    /// libceph's exported CRC of `ceph_osdc_start_request`.
    export: u32,
}

impl StockCrcs {
    fn read(src: &CorpusSource) -> Result<StockCrcs, CorpusError> {
        let rbd = parse_unsigned(src, "rbd")?;
        let version = |symbol: &str| {
            rbd.version_of(symbol).ok_or_else(|| CorpusError::Edit {
                case: "import_crc_changed",
                module: "rbd".into(),
                reason: format!("rbd records no version of {symbol}"),
            })
        };
        let libceph = parse_unsigned(src, "libceph")?;
        let export =
            libceph.exports.iter().find(|e| e.name == "ceph_osdc_start_request").and_then(|e| e.crc).ok_or_else(
                || CorpusError::Edit {
                    case: "export_crc_changed",
                    module: "libceph".into(),
                    reason: "libceph exports no ceph_osdc_start_request with a CRC".into(),
                },
            )?;
        Ok(StockCrcs {
            osdc: version("ceph_osdc_start_request")?,
            tag_set: version("blk_mq_alloc_tag_set")?,
            layout: version("module_layout")?,
            export,
        })
    }
}

/// The cases made of whole stock modules, first while libcrc32c has never been loaded.
fn whole_set_cases(src: &CorpusSource) -> Result<Vec<CorpusCase>, CorpusError> {
    Ok(vec![
        CorpusCase {
            name: "missing_dependency",
            what: "libcrc32c (libceph's depends=) is not loaded and not in the set",
            modules: unsigned_set(src)?,
            absent: vec!["libcrc32c".into()],
        },
        CorpusCase {
            name: "dependency_in_the_set",
            what: "the missing libcrc32c shipped in the set",
            modules: std::iter::once(Ok(CorpusModule { name: "libcrc32c".into(), bytes: src.unsigned("libcrc32c")? }))
                .chain(SET.iter().map(|n| Ok(CorpusModule { name: n.to_string(), bytes: src.unsigned(n)? })))
                .collect::<Result<_, CorpusError>>()?,
            absent: vec!["libcrc32c".into()],
        },
        CorpusCase {
            name: "stock_signed",
            what: "the target's own signed modules",
            modules: SET
                .iter()
                .map(|n| Ok(CorpusModule { name: n.to_string(), bytes: src.shipped(n)? }))
                .collect::<Result<_, CorpusError>>()?,
            absent: vec![],
        },
        CorpusCase {
            name: "stock_unsigned",
            what: "the target's modules without signature",
            modules: unsigned_set(src)?,
            absent: vec![],
        },
    ])
}

/// The cases with one edited module, in the order they are loaded after the whole sets.
fn edited_cases(src: &CorpusSource, crcs: &StockCrcs) -> Result<Vec<CorpusCase>, CorpusError> {
    let mut cases = edited_vermagic_and_crc_cases(src, crcs)?;
    cases.extend(edited_symbol_and_layout_cases(src, crcs)?);
    Ok(cases)
}

fn edited_vermagic_and_crc_cases(src: &CorpusSource, crcs: &StockCrcs) -> Result<Vec<CorpusCase>, CorpusError> {
    Ok(vec![
        edited(src, "vermagic_flipped", "rbd: one byte of vermagic after the release changed", "rbd", &|b| {
            patch_in_section(b, ".modinfo", b"SMP preempt mod_unload", b"SMP preemPt mod_unload")
        })?,
        edited(src, "release_changed", "rbd: another release in vermagic, CRCs unchanged", "rbd", &|b| {
            bump_vermagic_release(b)
        })?,
        edited(
            src,
            "import_crc_changed_set_symbol",
            "rbd: the CRC it recorded for libceph's ceph_osdc_start_request",
            "rbd",
            &|b| set_import_crc(b, "ceph_osdc_start_request", crcs.osdc ^ 0x0000_0100),
        )?,
        edited(
            src,
            "import_crc_changed_kernel_symbol",
            "rbd: the CRC it recorded for the kernel's blk_mq_alloc_tag_set",
            "rbd",
            &|b| set_import_crc(b, "blk_mq_alloc_tag_set", crcs.tag_set ^ 0x0000_0100),
        )?,
        edited(src, "module_layout_changed", "rbd: the CRC of module_layout", "rbd", &|b| {
            set_import_crc(b, "module_layout", crcs.layout.wrapping_add(1))
        })?,
    ])
}

fn edited_symbol_and_layout_cases(src: &CorpusSource, crcs: &StockCrcs) -> Result<Vec<CorpusCase>, CorpusError> {
    Ok(vec![
        edited(
            src,
            "symbol_unknown_to_the_kernel",
            "rbd imports blk_mq_alloc_tag_seX, which the kernel lacks",
            "rbd",
            &|b| patch_in_section(b, ".strtab", b"\0blk_mq_alloc_tag_set\0", b"\0blk_mq_alloc_tag_seX\0"),
        )?,
        edited(
            src,
            "export_removed_from_libceph",
            "libceph exports ceph_osdc_start_requesX instead",
            "libceph",
            &|b| {
                patch_in_section(b, "__ksymtab_strings", b"\0ceph_osdc_start_request\0", b"\0ceph_osdc_start_requesX\0")
            },
        )?,
        edited(
            src,
            "export_crc_changed_in_libceph",
            "libceph exports ceph_osdc_start_request with another CRC (a patched struct)",
            "libceph",
            &|b| set_export_crc(b, "ceph_osdc_start_request", crcs.export ^ 0x5a5a_5a5a),
        )?,
        CorpusCase {
            name: "rbd_alone",
            what: "rbd without libceph: it binds to the target's own libceph",
            modules: vec![CorpusModule { name: "rbd".into(), bytes: src.unsigned("rbd")? }],
            absent: vec![],
        },
        edited(src, "out_of_tree", "rbd without intree=Y", "rbd", &|b| {
            patch_in_section(b, ".modinfo", b"\0intree=Y\0", b"\0intreX=Y\0")
        })?,
        edited(
            src,
            "struct_module_size_changed",
            "rbd's .gnu.linkonce.this_module 64 bytes shorter (another .config)",
            "rbd",
            &|b| {
                let size = section_size(b, ".gnu.linkonce.this_module")?;
                set_section_size(b, ".gnu.linkonce.this_module", size.saturating_sub(64))
            },
        )?,
        // Last: it leaves the kernel with the F taint.
        edited(
            src,
            "no_versions_and_release_changed",
            "rbd without __versions and with another release: force-loaded, then refused",
            "rbd",
            &|b| {
                bump_vermagic_release(b)?;
                patch_in_section(b, ".shstrtab", b"__versions", b"__versionz")
            },
        )?,
    ])
}

/// Changes the release in a module's `vermagic=` (same length, see [`bump_release`]).
fn bump_vermagic_release(elf: &mut [u8]) -> Result<(), EditError> {
    let m = KernelModule::parse(elf).map_err(|e| EditError(e.to_string()))?;
    let magic = m.vermagic().ok_or_else(|| EditError("no vermagic".into()))?;
    let release = magic.split(' ').next().unwrap_or("").to_string();
    let other =
        bump_release(&release).ok_or_else(|| EditError(format!("release {release:?} has no digit to change")))?;
    patch_in_section(elf, ".modinfo", format!("vermagic={release}").as_bytes(), format!("vermagic={other}").as_bytes())
}

/// `6.12.117+deb12-amd64` -> `6.12.118+deb12-amd64`: the last digit of the version part
/// (before `+`/`-`) changed, so that the length stays (the corpus tests use it to name
/// "another release" of whatever release they run on).
pub fn bump_release(release: &str) -> Option<String> {
    let end = release.find(['+', '-']).unwrap_or(release.len());
    let at = release[..end].rfind(|c: char| c.is_ascii_digit())?;
    let d = release.as_bytes()[at] - b'0';
    let mut s = release.to_string();
    s.replace_range(at..at + 1, &(((d + 1) % 10).to_string()));
    Some(s)
}

/// File offsets of a section's contents.
pub fn section_range(elf: &[u8], section: &str) -> Result<(usize, usize), EditError> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| EditError(format!("not an ELF object: {e}")))?;
    let s = file.section_by_name(section).ok_or_else(|| EditError(format!("no section {section}")))?;
    let (off, size) = s.file_range().ok_or_else(|| EditError(format!("section {section} has no file contents")))?;
    Ok((off as usize, (off + size) as usize))
}

fn section_size(elf: &[u8], section: &str) -> Result<u64, EditError> {
    section_range(elf, section).map(|(a, b)| (b - a) as u64)
}

/// Replaces the only occurrence of `from` inside `section` by `to` (same length).
pub fn patch_in_section(elf: &mut [u8], section: &str, from: &[u8], to: &[u8]) -> Result<(), EditError> {
    if from.len() != to.len() {
        return Err(EditError("a byte edit keeps the length".into()));
    }
    let (start, end) = section_range(elf, section)?;
    let hay = &elf[start..end];
    let hits: Vec<usize> = hay.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    if hits.len() != 1 {
        return Err(EditError(format!(
            "expected one occurrence of {:?} in {section}, found {}",
            String::from_utf8_lossy(from),
            hits.len()
        )));
    }
    elf[start + hits[0]..start + hits[0] + to.len()].copy_from_slice(to);
    Ok(())
}

/// Sets the CRC that `__versions` records for `symbol` (64-byte records: u64 CRC, name).
pub fn set_import_crc(elf: &mut [u8], symbol: &str, crc: u32) -> Result<(), EditError> {
    let (start, end) = section_range(elf, "__versions")?;
    for rec in (start..end).step_by(64) {
        let Some(name) = elf.get(rec + 8..rec + 64) else { break };
        let len = name.iter().position(|b| *b == 0).unwrap_or(56);
        if &name[..len] == symbol.as_bytes() {
            elf[rec..rec + 8].copy_from_slice(&(crc as u64).to_le_bytes());
            return Ok(());
        }
    }
    Err(EditError(format!("{symbol} is not in __versions")))
}

/// Sets the CRC that the module exports for `symbol` (its entry of `__kcrctab*`, literal
/// u32s since 5.19).
pub fn set_export_crc(elf: &mut [u8], symbol: &str, crc: u32) -> Result<(), EditError> {
    let m = KernelModule::parse(elf).map_err(|e| EditError(e.to_string()))?;
    for (crcs, gpl) in [("__kcrctab", false), ("__kcrctab_gpl", true)] {
        let names: Vec<&str> = m.exports.iter().filter(|e| e.gpl_only == gpl).map(|e| e.name.as_str()).collect();
        if let Some(i) = names.iter().position(|n| *n == symbol) {
            let (start, end) = section_range(elf, crcs)?;
            if start + 4 * i + 4 > end {
                return Err(EditError(format!("{crcs} is shorter than the export table")));
            }
            elf[start + 4 * i..start + 4 * i + 4].copy_from_slice(&crc.to_le_bytes());
            return Ok(());
        }
    }
    Err(EditError(format!("{symbol} is not exported")))
}

/// Sets a section's `sh_size` in the section header table (64-bit little-endian ELF).
pub fn set_section_size(elf: &mut [u8], section: &str, size: u64) -> Result<(), EditError> {
    use object::{Object, ObjectSection};
    let index = {
        let file = object::File::parse(&*elf).map_err(|e| EditError(format!("not an ELF object: {e}")))?;
        let s = file.section_by_name(section).ok_or_else(|| EditError(format!("no section {section}")))?;
        s.index().0
    };
    let word = |at: usize, n: usize| -> Result<u64, EditError> {
        let b = elf.get(at..at + n).ok_or_else(|| EditError("ELF header truncated".into()))?;
        Ok(b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64))
    };
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(EditError("not a 64-bit little-endian ELF".into()));
    }
    let shoff = word(0x28, 8)? as usize;
    let shentsize = word(0x3a, 2)? as usize;
    // Elf64_Shdr: name, type (4 each), flags, addr, offset (8 each), then size.
    let at = shoff + index * shentsize + 32;
    let field = elf.get_mut(at..at + 8).ok_or_else(|| EditError("section header out of the file".into()))?;
    field.copy_from_slice(&size.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_bumps_keep_the_length() {
        assert_eq!(bump_release("6.12.117+deb12-amd64").as_deref(), Some("6.12.118+deb12-amd64"));
        assert_eq!(bump_release("6.1.0-56-amd64").as_deref(), Some("6.1.1-56-amd64"));
        assert_eq!(bump_release("6.1.9").as_deref(), Some("6.1.0"));
        assert_eq!(bump_release("abc"), None);
    }

    #[test]
    fn edits_refuse_non_elf_input() {
        let mut junk = vec![0u8; 64];
        assert!(patch_in_section(&mut junk, ".modinfo", b"a", b"b").is_err());
        assert!(set_import_crc(&mut junk, "x", 1).is_err());
        assert!(set_section_size(&mut junk, ".x", 1).is_err());
    }
}
