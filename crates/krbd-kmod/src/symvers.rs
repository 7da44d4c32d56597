//! `Module.symvers`: the CRC of every symbol the kernel and its modules export.
//!
//! One line per symbol, tab-separated: `crc`, `symbol`, `module` (`vmlinux` or the module's
//! path without `.ko`), `export type` (`EXPORT_SYMBOL`, `EXPORT_SYMBOL_GPL`, …), and since
//! 5.4 a fifth column, the namespace (often empty). Older kernels write only four columns.

use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SymversError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}; expected `crc<TAB>symbol<TAB>module<TAB>export type[<TAB>namespace]`")]
    BadLine { path: String, line: usize, reason: String },
}

/// One exported symbol as `Module.symvers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymversEntry {
    pub crc: u32,
    pub symbol: String,
    /// `vmlinux`, or the exporting module's path without `.ko` (`net/ceph/libceph`).
    pub module: String,
    pub export_type: String,
    pub namespace: Option<String>,
}

impl SymversEntry {
    /// The kernel's name for the exporting module (`libceph`), or `vmlinux`.
    pub fn module_name(&self) -> String {
        let base = self.module.rsplit('/').next().unwrap_or(&self.module);
        crate::module::normalize_module_name(base)
    }

    pub fn is_vmlinux(&self) -> bool {
        self.module == "vmlinux"
    }

    pub fn gpl_only(&self) -> bool {
        self.export_type.ends_with("_GPL") || self.export_type.ends_with("_GPL_FUTURE")
    }
}

/// A whole `Module.symvers`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Symvers {
    pub entries: Vec<SymversEntry>,
    by_symbol: HashMap<String, usize>,
}

impl Symvers {
    pub fn read(path: &Path) -> Result<Self, SymversError> {
        let text = std::fs::read_to_string(path).map_err(|source| SymversError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a `Module.symvers`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SymversError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| SymversError::BadLine {
                path: origin.to_string(),
                line: i + 1,
                reason,
            };
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 4 && cols.len() != 5 {
                return Err(bad(format!("{} tab-separated columns", cols.len())));
            }
            let hex = cols[0].strip_prefix("0x").or_else(|| cols[0].strip_prefix("0X")).unwrap_or(cols[0]);
            let crc = u32::from_str_radix(hex, 16).map_err(|_| bad(format!("CRC {:?} is not hexadecimal", cols[0])))?;
            if cols[1].is_empty() {
                return Err(bad("empty symbol name".into()));
            }
            entries.push(SymversEntry {
                crc,
                symbol: cols[1].to_string(),
                module: cols[2].to_string(),
                export_type: cols[3].to_string(),
                namespace: cols.get(4).filter(|ns| !ns.is_empty()).map(|ns| ns.to_string()),
            });
        }
        Ok(Self::from_entries(entries))
    }

    pub fn from_entries(entries: Vec<SymversEntry>) -> Self {
        let by_symbol = entries.iter().enumerate().map(|(i, e)| (e.symbol.clone(), i)).collect();
        Symvers { entries, by_symbol }
    }

    pub fn get(&self, symbol: &str) -> Option<&SymversEntry> {
        self.by_symbol.get(symbol).map(|&i| &self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names of every module that exports something (not `vmlinux`).
    pub fn module_names(&self) -> std::collections::BTreeSet<String> {
        self.entries.iter().filter(|e| !e.is_vmlinux()).map(|e| e.module_name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_and_five_columns() {
        let text = "0x2f9b2b9a\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n\
                    0xd6551b9c\tcpu_cache_has_invalidate_memregion\tvmlinux\tEXPORT_SYMBOL_GPL\tDEVMEM\n\
                    0x12345678\tceph_osdc_start_request\tnet/ceph/libceph\tEXPORT_SYMBOL\n";
        let s = Symvers::parse(text, "t").unwrap();
        assert_eq!(s.len(), 3);
        let ml = s.get("module_layout").unwrap();
        assert_eq!((ml.crc, ml.namespace.as_deref(), ml.is_vmlinux()), (0x2f9b2b9a, None, true));
        let ns = s.get("cpu_cache_has_invalidate_memregion").unwrap();
        assert_eq!(ns.namespace.as_deref(), Some("DEVMEM"));
        assert!(ns.gpl_only());
        let old = s.get("ceph_osdc_start_request").unwrap();
        assert_eq!((old.module_name().as_str(), old.namespace.as_deref()), ("libceph", None));
        assert_eq!(s.module_names().into_iter().collect::<Vec<_>>(), vec!["libceph".to_string()]);
    }

    #[test]
    fn bad_lines_name_their_position() {
        let err = Symvers::parse("0x1\ta\tvmlinux\tEXPORT_SYMBOL\n0xZZ\tb\tvmlinux\tEXPORT_SYMBOL\n", "f").unwrap_err();
        assert!(err.to_string().starts_with("f:2: CRC \"0xZZ\""), "{err}");
        assert!(Symvers::parse("0x1\ta\n", "f").is_err());
    }
}
