//! One `.ko` file, parsed the way the kernel's loader reads it.

use krbd_formats::compress::{self, Streams};
use object::read::elf::{ElfFile64, FileHeader};
use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, SymbolSection};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Length of one `struct modversion_info` record on 64-bit kernels: a u64 CRC then a
/// 56-byte NUL-padded name (`MODULE_NAME_LEN` = 64 - sizeof(unsigned long)).
pub const MODVERSION_RECORD_LEN: usize = 64;

/// The marker that ends a signed module (`MODULE_SIG_STRING`).
pub const MODULE_SIG_MAGIC: &[u8] = b"~Module signature appended~\n";

/// `sizeof(struct module_signature)`: algo, hash, id_type, signer_len, key_id_len, 3 pad
/// bytes, then the big-endian signature length.
pub const MODULE_SIGNATURE_INFO_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("not an ELF object: {reason}")]
    NotElf { reason: String },
    #[error("section {section} is malformed: {reason}")]
    BadSection { section: &'static str, reason: String },
    #[error("the signature trailer is malformed: {reason}; the file is truncated or not a kernel module")]
    BadSignature { reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decompress {path} ({format}): {source}; check that the file is complete")]
    Decompress {
        path: String,
        format: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// One entry of `__versions` (or of the extended version tables): the CRC of `name` that
/// this module was compiled against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedVersion {
    pub name: String,
    pub crc: u32,
}

/// A symbol this module exports (`EXPORT_SYMBOL*`), read from `__ksymtab*`/`__kcrctab*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedSymbol {
    pub name: String,
    /// `None` when the module was built without modversions (no `__crc_` for it).
    pub crc: Option<u32>,
    /// `EXPORT_SYMBOL_GPL` (found only by GPL-compatible modules).
    pub gpl_only: bool,
    /// The symbol namespace, when the symbol is exported into one.
    pub namespace: Option<String>,
}

/// A symbol the module needs from the kernel or another module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndefinedSymbol {
    pub name: String,
    /// A weak reference may stay unresolved.
    pub weak: bool,
}

/// The appended signature's description (`struct module_signature`); its cryptographic
/// validity is not checked here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleSignature {
    pub algo: u8,
    pub hash: u8,
    /// 2 = PKCS#7, the only kind kernels since 4.x accept.
    pub id_type: u8,
    pub signer_len: u8,
    pub key_id_len: u8,
    pub sig_len: u32,
    /// Bytes of the ELF image that the signature covers.
    pub signed_len: usize,
    /// Who signed, with which key and digest, read from the PKCS#7 blob (id_type 2).
    pub signer: Option<crate::pkcs7::SignerInfo>,
}

/// A parsed kernel module.
#[derive(Debug, Clone)]
pub struct KernelModule {
    /// `.modinfo` in file order; a key may repeat (`alias`, `import_ns`, …).
    pub modinfo: Vec<(String, String)>,
    /// `__versions`, in file order.
    pub versions: Vec<ImportedVersion>,
    /// Whether a `__versions` section exists at all (even empty): the loader's
    /// `info->index.vers != 0`, which decides the vermagic relaxation.
    pub has_versions_section: bool,
    /// `__version_ext_crcs` + `__version_ext_names` (kernels 6.13 and later), paired in order;
    /// `None` when the module has no extended version tables.
    pub ext_versions: Option<Vec<ImportedVersion>>,
    /// Exported symbols in table order (`__ksymtab` then `__ksymtab_gpl`; kbuild sorts each
    /// table by name, and the loader's binary search relies on it).
    pub exports: Vec<ExportedSymbol>,
    /// Undefined symbols in symbol table order (the order the loader resolves them in).
    pub undefined: Vec<UndefinedSymbol>,
    /// The appended signature, if any.
    pub signature: Option<ModuleSignature>,
    /// `e_machine` of the ELF header.
    pub machine: u16,
    /// Every section's name and raw contents (empty for SHT_NOBITS).
    pub sections: BTreeMap<String, Vec<u8>>,
}

impl KernelModule {
    /// Parses a module image: an ELF relocatable object, optionally followed by a signature.
    pub fn parse(data: &[u8]) -> Result<Self, ModuleError> {
        let (elf_bytes, signature) = split_signature(data)?;
        let file = ElfFile64::<object::Endianness>::parse(elf_bytes)
            .map_err(|e| ModuleError::NotElf { reason: e.to_string() })?;
        let little_endian = file.is_little_endian();
        let machine = file.elf_header().e_machine(file.endian()).0;
        let (sections, section_names) = read_sections(&file);
        let modinfo = sections.get(".modinfo").map(|d| parse_modinfo(d)).unwrap_or_default();
        let has_versions_section = sections.contains_key("__versions");
        let versions = match sections.get("__versions") {
            Some(d) => parse_versions(d, little_endian)?,
            None => Vec::new(),
        };
        let ext_versions = match (sections.get("__version_ext_crcs"), sections.get("__version_ext_names")) {
            (Some(crcs), Some(names)) => Some(parse_ext_versions(crcs, names, little_endian)?),
            _ => None,
        };
        let mut labels = SymbolLabels::read(&file, &sections, &section_names, little_endian)?;
        let undefined = std::mem::take(&mut labels.undefined);
        // What the loader itself reads wins over the labels: entry i of `__ksymtab*` names
        // its symbol through a relocation into `__ksymtab_strings`, and its CRC is entry i
        // of the parallel `__kcrctab*` array.
        let exports = match exports_from_tables(&file, &sections, little_endian, &labels.ksymtab)? {
            Some(list) => list,
            None => labels.exports(),
        };
        Ok(KernelModule {
            modinfo,
            versions,
            has_versions_section,
            ext_versions,
            exports,
            undefined,
            signature,
            machine,
            sections,
        })
    }

    /// Reads a module from disk, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz` (recognised
    /// by their magic bytes, not by name).
    pub fn read(path: &Path) -> Result<Self, ModuleError> {
        let raw =
            std::fs::read(path).map_err(|source| ModuleError::Read { path: path.display().to_string(), source })?;
        let data = decompress(&raw, path)?;
        Self::parse(&data)
    }

    /// The first value of a `.modinfo` key.
    pub fn info(&self, key: &str) -> Option<&str> {
        self.modinfo.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a `.modinfo` key, in file order.
    pub fn info_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.modinfo.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn vermagic(&self) -> Option<&str> {
        self.info("vermagic")
    }

    pub fn srcversion(&self) -> Option<&str> {
        self.info("srcversion")
    }

    /// The module's name: `.modinfo`'s `name=` (kbuild has written it since 5.x).
    pub fn name(&self) -> Option<&str> {
        self.info("name")
    }

    /// `depends=`: the modules this one needs loaded first, as modpost computed them.
    pub fn depends(&self) -> Vec<String> {
        self.info_all("depends")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(normalize_module_name)
            .collect()
    }

    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections.get(name).map(|v| v.as_slice())
    }

    /// The CRC this module recorded for `symbol` (plain `__versions`).
    pub fn version_of(&self, symbol: &str) -> Option<u32> {
        self.versions.iter().find(|v| v.name == symbol).map(|v| v.crc)
    }
}

/// Every section's contents by name, and the names by index.
fn read_sections(file: &ElfFile64<object::Endianness>) -> (BTreeMap<String, Vec<u8>>, HashMap<SectionIndex, String>) {
    let mut sections = BTreeMap::new();
    let mut section_names: HashMap<SectionIndex, String> = HashMap::new();
    for section in file.sections() {
        let Ok(name) = section.name() else { continue };
        let bytes = section.data().unwrap_or(&[]).to_vec();
        section_names.insert(section.index(), name.to_string());
        sections.insert(name.to_string(), bytes);
    }
    (sections, section_names)
}

/// What the symbol table says about exports and imports.
///
/// Exports: `__ksymtab_<sym>` labels an entry of `__ksymtab`/`__ksymtab_gpl`; `__crc_<sym>`
/// labels its CRC (a u32 in `__kcrctab*` since 5.19, an absolute symbol whose value is the
/// CRC before); `__kstrtabns_<sym>` its namespace string.
#[derive(Default)]
struct SymbolLabels {
    /// Exported names and whether they are GPL-only, in symbol-table order.
    ksymtab: Vec<(String, bool)>,
    crcs: HashMap<String, u32>,
    namespaces: HashMap<String, String>,
    undefined: Vec<UndefinedSymbol>,
}

impl SymbolLabels {
    fn read(
        file: &ElfFile64<object::Endianness>,
        sections: &BTreeMap<String, Vec<u8>>,
        section_names: &HashMap<SectionIndex, String>,
        little_endian: bool,
    ) -> Result<SymbolLabels, ModuleError> {
        let mut labels = SymbolLabels::default();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            match sym.section() {
                SymbolSection::Undefined => {
                    labels.undefined.push(UndefinedSymbol { name: name.to_string(), weak: sym.is_weak() });
                }
                SymbolSection::Absolute => {
                    if let Some(s) = name.strip_prefix("__crc_") {
                        labels.crcs.insert(s.to_string(), sym.address() as u32);
                    }
                }
                SymbolSection::Section(idx) => {
                    let Some(sec_name) = section_names.get(&idx) else { continue };
                    let data = &sections[sec_name];
                    labels.read_label(name, sec_name, data, sym.address() as usize, little_endian)?;
                }
                _ => {}
            }
        }
        Ok(labels)
    }

    /// A symbol defined in section `sec_name` (contents `data`) at `offset`.
    fn read_label(
        &mut self,
        name: &str,
        sec_name: &str,
        data: &[u8],
        offset: usize,
        little_endian: bool,
    ) -> Result<(), ModuleError> {
        if let Some(s) = name.strip_prefix("__ksymtab_") {
            if sec_name == "__ksymtab" || sec_name == "__ksymtab_gpl" {
                self.ksymtab.push((s.to_string(), sec_name == "__ksymtab_gpl"));
            }
        } else if let Some(s) = name.strip_prefix("__crc_") {
            if sec_name.starts_with("__kcrctab") {
                let crc = data.get(offset..offset + 4).map(|b| read_u32(b, little_endian)).ok_or_else(|| {
                    ModuleError::BadSection {
                        section: "__kcrctab",
                        reason: format!("__crc_{s} points past the section's end"),
                    }
                })?;
                self.crcs.insert(s.to_string(), crc);
            }
        } else if let Some(s) = name.strip_prefix("__kstrtabns_") {
            if let Some(rest) = data.get(offset..) {
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                if end > 0 {
                    self.namespaces.insert(s.to_string(), String::from_utf8_lossy(&rest[..end]).into_owned());
                }
            }
        }
        Ok(())
    }

    /// The exports as the labels describe them.
    fn exports(self) -> Vec<ExportedSymbol> {
        let SymbolLabels { ksymtab, crcs, namespaces, .. } = self;
        ksymtab
            .into_iter()
            .map(|(name, gpl_only)| ExportedSymbol {
                crc: crcs.get(&name).copied(),
                namespace: namespaces.get(&name).cloned(),
                gpl_only,
                name,
            })
            .collect()
    }
}

/// A u32 from the first four bytes of `b`.
fn read_u32(b: &[u8], little_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if little_endian {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

/// Reads `__ksymtab` and `__ksymtab_gpl` entry by entry, as the loader does. An entry is a
/// `struct kernel_symbol`: value and name (and since 5.4 a namespace), as 32-bit
/// place-relative offsets on architectures with PREL32 relocations, as pointers elsewhere.
/// In a `.ko` these fields are still relocations, so a field's target is the relocation's
/// symbol + addend. The entry count is the number of `__ksymtab_<sym>` labels, which gives
/// the entry size and so the layout of any kernel generation. `__kcrctab*` is the parallel
/// array of CRCs: literal u32 since 5.19, before that relocations against absolute
/// `__crc_<sym>` symbols (4 or 8 bytes each).
/// Returns `None` when the tables cannot be read this way (the caller falls back to labels).
fn exports_from_tables(
    file: &ElfFile64<object::Endianness>,
    sections: &BTreeMap<String, Vec<u8>>,
    little_endian: bool,
    labels: &[(String, bool)],
) -> Result<Option<Vec<ExportedSymbol>>, ModuleError> {
    let mut out = Vec::new();
    let mut any_table = false;
    for (table, crc_table, gpl_only) in [("__ksymtab", "__kcrctab", false), ("__ksymtab_gpl", "__kcrctab_gpl", true)] {
        let Some(section) = file.section_by_name(table) else { continue };
        any_table = true;
        let count = labels.iter().filter(|(_, gpl)| *gpl == gpl_only).count() as u64;
        if section.size() == 0 && count == 0 {
            continue;
        }
        // field offset within the table -> (target section, offset in it)
        let mut fields: BTreeMap<u64, (SectionIndex, u64)> = BTreeMap::new();
        for (offset, reloc) in section.relocations() {
            let object::RelocationTarget::Symbol(idx) = reloc.target() else { continue };
            let Ok(sym) = file.symbol_by_index(idx) else { continue };
            let Some(sec) = sym.section_index() else { continue };
            let at = (sym.address() as i64).wrapping_add(reloc.addend());
            fields.insert(offset, (sec, at as u64));
        }
        if fields.is_empty() || count == 0 || section.size() % count != 0 {
            return Ok(None);
        }
        let entry = section.size() / count;
        let field = match entry {
            8 | 12 => 4u64,
            16 | 24 => 8u64,
            _ => return Ok(None),
        };
        let has_namespace = entry == 3 * field;
        let string_at = |(sec, at): (SectionIndex, u64)| -> Option<String> {
            let data = file.section_by_index(sec).ok()?.data().ok()?;
            let rest = data.get(at as usize..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        let crcs = read_crc_table(file, sections, crc_table, count, little_endian);
        for i in 0..count {
            let base = i * entry;
            let name =
                fields.get(&(base + field)).and_then(|f| string_at(*f)).ok_or_else(|| ModuleError::BadSection {
                    section: if gpl_only { "__ksymtab_gpl" } else { "__ksymtab" },
                    reason: format!("entry {i} has no readable name"),
                })?;
            let namespace = if has_namespace {
                fields.get(&(base + 2 * field)).and_then(|f| string_at(*f)).filter(|s| !s.is_empty())
            } else {
                None
            };
            let crc = crcs.as_ref().and_then(|c| c.get(i as usize).copied());
            out.push(ExportedSymbol { name, crc, gpl_only, namespace });
        }
    }
    Ok(any_table.then_some(out))
}

/// The CRC array parallel to a ksymtab of `count` entries, or `None` without one.
fn read_crc_table(
    file: &ElfFile64<object::Endianness>,
    sections: &BTreeMap<String, Vec<u8>>,
    name: &str,
    count: u64,
    little_endian: bool,
) -> Option<Vec<u32>> {
    let data = sections.get(name)?;
    let section = file.section_by_name(name)?;
    if count == 0 || !(data.len() as u64).is_multiple_of(count) {
        return None;
    }
    let width = data.len() / count as usize;
    // Older kernels: each slot is a relocation against an absolute `__crc_<sym>`.
    let mut relocated: HashMap<u64, u32> = HashMap::new();
    for (offset, reloc) in section.relocations() {
        let object::RelocationTarget::Symbol(idx) = reloc.target() else { continue };
        let Ok(sym) = file.symbol_by_index(idx) else { continue };
        relocated.insert(offset, (sym.address() as i64).wrapping_add(reloc.addend()) as u32);
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = i * width;
        if let Some(crc) = relocated.get(&(at as u64)) {
            out.push(*crc);
            continue;
        }
        let b = data.get(at..at + 4)?;
        let a = [b[0], b[1], b[2], b[3]];
        // A CRC in an 8-byte slot is an `unsigned long`: its low 32 bits come first on
        // little-endian machines and second on big-endian ones.
        let v = if little_endian {
            u32::from_le_bytes(a)
        } else if width == 8 {
            let b = data.get(at + 4..at + 8)?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_be_bytes(a)
        };
        out.push(v);
    }
    Some(out)
}

/// Module names as the kernel keeps them: kbuild turns `-` into `_`.
pub fn normalize_module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Splits an appended signature off; returns the ELF part and the signature's header.
pub fn split_signature(data: &[u8]) -> Result<(&[u8], Option<ModuleSignature>), ModuleError> {
    if !data.ends_with(MODULE_SIG_MAGIC) {
        return Ok((data, None));
    }
    let before_magic = data.len() - MODULE_SIG_MAGIC.len();
    if before_magic < MODULE_SIGNATURE_INFO_LEN {
        return Err(ModuleError::BadSignature {
            reason: "the marker is present but no module_signature struct precedes it".into(),
        });
    }
    let info = &data[before_magic - MODULE_SIGNATURE_INFO_LEN..before_magic];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]);
    let signed_len = (before_magic - MODULE_SIGNATURE_INFO_LEN).checked_sub(sig_len as usize).ok_or_else(|| {
        ModuleError::BadSignature { reason: format!("it claims {sig_len} signature bytes, more than the file holds") }
    })?;
    Ok((
        &data[..signed_len],
        Some(ModuleSignature {
            algo: info[0],
            hash: info[1],
            id_type: info[2],
            signer_len: info[3],
            key_id_len: info[4],
            sig_len,
            signed_len,
            signer: if info[2] == 2 {
                crate::pkcs7::parse_signer(&data[signed_len..signed_len + sig_len as usize])
            } else {
                None
            },
        }),
    ))
}

/// Decompresses a module image by its magic bytes (krbd-formats' one decompressor);
/// returns uncompressed input unchanged.
pub fn decompress(raw: &[u8], path: &Path) -> Result<Vec<u8>, ModuleError> {
    compress::decompress(raw, Streams::All).map_err(|e| ModuleError::Decompress {
        path: path.display().to_string(),
        format: e.compression.name(),
        source: e.source,
    })
}

fn parse_modinfo(data: &[u8]) -> Vec<(String, String)> {
    data.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn parse_versions(data: &[u8], little_endian: bool) -> Result<Vec<ImportedVersion>, ModuleError> {
    if !data.len().is_multiple_of(MODVERSION_RECORD_LEN) {
        return Err(ModuleError::BadSection {
            section: "__versions",
            reason: format!("{} bytes is not a whole number of {MODVERSION_RECORD_LEN}-byte records", data.len()),
        });
    }
    Ok(data
        .chunks_exact(MODVERSION_RECORD_LEN)
        .map(|rec| {
            let mut crc_bytes = [0u8; 8];
            crc_bytes.copy_from_slice(&rec[..8]);
            let crc = if little_endian { u64::from_le_bytes(crc_bytes) } else { u64::from_be_bytes(crc_bytes) } as u32;
            let name = &rec[8..];
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            ImportedVersion { name: String::from_utf8_lossy(&name[..end]).into_owned(), crc }
        })
        .collect())
}

/// Kernels 6.13+: `__version_ext_crcs` is an array of u32, `__version_ext_names` the same
/// number of NUL-terminated names, paired by position.
fn parse_ext_versions(crcs: &[u8], names: &[u8], little_endian: bool) -> Result<Vec<ImportedVersion>, ModuleError> {
    if !crcs.len().is_multiple_of(4) {
        return Err(ModuleError::BadSection {
            section: "__version_ext_crcs",
            reason: format!("{} bytes is not a whole number of u32 CRCs", crcs.len()),
        });
    }
    let name_list: Vec<&[u8]> = names.split(|b| *b == 0).collect();
    // A well-formed table ends with a NUL, which leaves one empty piece at the end.
    let name_count = name_list.len().saturating_sub(1);
    if name_count != crcs.len() / 4 {
        return Err(ModuleError::BadSection {
            section: "__version_ext_names",
            reason: format!("{name_count} names for {} CRCs", crcs.len() / 4),
        });
    }
    Ok(crcs
        .chunks_exact(4)
        .zip(name_list)
        .map(|(c, n)| {
            let a = [c[0], c[1], c[2], c[3]];
            ImportedVersion {
                name: String::from_utf8_lossy(n).into_owned(),
                crc: if little_endian { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_splits_on_nul_and_first_equals() {
        let got = parse_modinfo(b"license=GPL\0\0vermagic=6.1.0 SMP mod_unload \0a=b=c\0");
        assert_eq!(
            got,
            vec![
                ("license".into(), "GPL".into()),
                ("vermagic".into(), "6.1.0 SMP mod_unload ".into()),
                ("a".into(), "b=c".into())
            ]
        );
    }

    #[test]
    fn versions_records_are_64_bytes() {
        let mut rec = vec![0u8; 64];
        rec[..8].copy_from_slice(&0xdead_beefu64.to_le_bytes());
        rec[8..8 + 13].copy_from_slice(b"module_layout");
        let got = parse_versions(&rec, true).unwrap();
        assert_eq!(got, vec![ImportedVersion { name: "module_layout".into(), crc: 0xdead_beef }]);
        assert!(parse_versions(&rec[..63], true).is_err());
    }

    #[test]
    fn ext_versions_pair_crcs_with_names() {
        let mut crcs = Vec::new();
        crcs.extend_from_slice(&1u32.to_le_bytes());
        crcs.extend_from_slice(&2u32.to_le_bytes());
        let got = parse_ext_versions(&crcs, b"a_very_long_symbol\0b\0", true).unwrap();
        assert_eq!(got[0], ImportedVersion { name: "a_very_long_symbol".into(), crc: 1 });
        assert_eq!(got[1], ImportedVersion { name: "b".into(), crc: 2 });
        assert!(parse_ext_versions(&crcs, b"a\0", true).is_err());
    }

    #[test]
    fn signature_trailer_is_split_off() {
        let mut data = b"ELFBODY".to_vec();
        data.extend_from_slice(b"SIG");
        data.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        data.extend_from_slice(&3u32.to_be_bytes());
        data.extend_from_slice(MODULE_SIG_MAGIC);
        let (body, sig) = split_signature(&data).unwrap();
        assert_eq!(body, b"ELFBODY");
        let sig = sig.unwrap();
        assert_eq!((sig.id_type, sig.sig_len, sig.signed_len), (2, 3, 7));

        let mut short = vec![0u8; 8];
        short.extend_from_slice(&100u32.to_be_bytes());
        short.extend_from_slice(MODULE_SIG_MAGIC);
        assert!(matches!(split_signature(&short), Err(ModuleError::BadSignature { .. })));
        assert!(split_signature(b"plain").unwrap().1.is_none());
    }
}
