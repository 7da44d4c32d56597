use object::{Object, ObjectSection};
use serde::Serialize;
use std::collections::BTreeMap;

/// Length of one `struct modversion_info` record on 64-bit kernels: a u64 CRC then a
/// 56-byte NUL-padded name (`MODULE_NAME_LEN` = 64 - sizeof(unsigned long)).
pub const MODVERSION_RECORD_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("not an ELF object: {reason}")]
    NotElf { reason: String },
    #[error("section {section} is malformed: {reason}")]
    BadSection { section: &'static str, reason: String },
}

/// One entry of `__versions`: the CRC of `name` that this module was compiled against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedVersion {
    pub name: String,
    pub crc: u32,
}

/// A parsed kernel module.
#[derive(Debug, Clone)]
pub struct KernelModule {
    /// `.modinfo` in file order; a key may repeat (`alias`, `depends` on old kernels).
    pub modinfo: Vec<(String, String)>,
    /// `__versions`, in file order.
    pub versions: Vec<ImportedVersion>,
    /// Every section's name and raw contents (empty for SHT_NOBITS).
    pub sections: BTreeMap<String, Vec<u8>>,
}

impl KernelModule {
    pub fn parse(data: &[u8]) -> Result<Self, ModuleError> {
        let file = object::File::parse(data).map_err(|e| ModuleError::NotElf {
            reason: e.to_string(),
        })?;
        let mut sections = BTreeMap::new();
        for section in file.sections() {
            let Ok(name) = section.name() else { continue };
            let bytes = section.data().unwrap_or(&[]).to_vec();
            sections.insert(name.to_string(), bytes);
        }
        let modinfo = sections
            .get(".modinfo")
            .map(|d| parse_modinfo(d))
            .unwrap_or_default();
        let versions = match sections.get("__versions") {
            Some(d) => parse_versions(d, file.is_little_endian())?,
            None => Vec::new(),
        };
        Ok(KernelModule {
            modinfo,
            versions,
            sections,
        })
    }

    /// The first value of a `.modinfo` key.
    pub fn info(&self, key: &str) -> Option<&str> {
        self.modinfo
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn vermagic(&self) -> Option<&str> {
        self.info("vermagic")
    }

    pub fn srcversion(&self) -> Option<&str> {
        self.info("srcversion")
    }

    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections.get(name).map(|v| v.as_slice())
    }
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
    if data.len() % MODVERSION_RECORD_LEN != 0 {
        return Err(ModuleError::BadSection {
            section: "__versions",
            reason: format!(
                "{} bytes is not a whole number of {MODVERSION_RECORD_LEN}-byte records",
                data.len()
            ),
        });
    }
    Ok(data
        .chunks_exact(MODVERSION_RECORD_LEN)
        .map(|rec| {
            let crc_bytes: [u8; 8] = rec[..8].try_into().unwrap_or([0; 8]);
            let crc = if little_endian {
                u64::from_le_bytes(crc_bytes)
            } else {
                u64::from_be_bytes(crc_bytes)
            } as u32;
            let name = &rec[8..];
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            ImportedVersion {
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                crc,
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
}
