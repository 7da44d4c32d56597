//! `Module.symvers`: the CRC of every symbol the kernel and its modules export.
//!
//! One line per symbol, tab-separated: `crc`, `symbol`, `module` (`vmlinux` or the module's
//! path without `.ko`), `export type` (`EXPORT_SYMBOL`, `EXPORT_SYMBOL_GPL`, …), and since
//! 5.4 a fifth column, the namespace (often empty). Older kernels write only four columns.

use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

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
    /// Shared between the entries of one module: a symvers has ~27,000 lines but only a
    /// few thousand modules.
    pub module: Arc<str>,
    /// The kernel's name for `module` (`libceph`), or `vmlinux`.
    #[serde(skip)]
    module_name: Arc<str>,
    pub export_type: Arc<str>,
    pub namespace: Option<String>,
}

impl SymversEntry {
    pub fn new(crc: u32, symbol: &str, module: &str, export_type: &str, namespace: Option<&str>) -> Self {
        SymversEntry {
            crc,
            symbol: symbol.to_string(),
            module: module.into(),
            module_name: module_name_of(module).into(),
            export_type: export_type.into(),
            namespace: namespace.map(str::to_string),
        }
    }

    /// The kernel's name for the exporting module (`libceph`), or `vmlinux`.
    pub fn module_name(&self) -> &str {
        &self.module_name
    }

    pub fn is_vmlinux(&self) -> bool {
        &*self.module == "vmlinux"
    }

    pub fn gpl_only(&self) -> bool {
        self.export_type.ends_with("_GPL") || self.export_type.ends_with("_GPL_FUTURE")
    }
}

fn module_name_of(module: &str) -> String {
    let base = module.rsplit('/').next().unwrap_or(module);
    crate::module::normalize_module_name(base)
}

/// A whole `Module.symvers`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Symvers {
    pub entries: Vec<SymversEntry>,
    /// Built on the first lookup: a check needs only a handful, and a whole-kernel symvers
    /// is ~27,000 lines.
    by_symbol: std::sync::OnceLock<HashMap<String, usize, crate::FastHash>>,
    modules: HashSet<Arc<str>, crate::FastHash>,
}

impl Symvers {
    pub fn read(path: &Path) -> Result<Self, SymversError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SymversError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a `Module.symvers`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SymversError> {
        let mut entries = Vec::with_capacity(text.len() / 48);
        // module path -> (path, name), and export types: shared, not copied per line.
        let mut modules: HashMap<&str, (Arc<str>, Arc<str>), crate::FastHash> = HashMap::with_hasher(crate::FastHash);
        let mut types: HashMap<&str, Arc<str>, crate::FastHash> = HashMap::with_hasher(crate::FastHash);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| SymversError::BadLine { path: origin.to_string(), line: i + 1, reason };
            let mut cols = line.split('\t');
            let (Some(crc), Some(symbol), Some(module), Some(export_type)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                return Err(bad(format!("{} tab-separated columns", line.split('\t').count())));
            };
            let namespace = cols.next();
            if cols.next().is_some() {
                return Err(bad(format!("{} tab-separated columns", line.split('\t').count())));
            }
            let hex = crc.strip_prefix("0x").or_else(|| crc.strip_prefix("0X")).unwrap_or(crc);
            let crc = u32::from_str_radix(hex, 16).map_err(|_| bad(format!("CRC {crc:?} is not hexadecimal")))?;
            if symbol.is_empty() {
                return Err(bad("empty symbol name".into()));
            }
            let (module, module_name) =
                modules.entry(module).or_insert_with(|| (module.into(), module_name_of(module).into())).clone();
            let export_type = types.entry(export_type).or_insert_with(|| export_type.into()).clone();
            entries.push(SymversEntry {
                crc,
                symbol: symbol.to_string(),
                module,
                module_name,
                export_type,
                namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_string),
            });
        }
        Ok(Self::from_entries(entries))
    }

    pub fn from_entries(entries: Vec<SymversEntry>) -> Self {
        let mut modules = HashSet::with_hasher(crate::FastHash);
        let mut previous: Option<&Arc<str>> = None;
        for e in &entries {
            // Entries of one module share one allocation: skip the hash when it repeats.
            if previous.is_some_and(|p| Arc::ptr_eq(p, &e.module_name)) {
                continue;
            }
            previous = Some(&e.module_name);
            if !e.is_vmlinux() && !modules.contains(&e.module_name) {
                modules.insert(e.module_name.clone());
            }
        }
        Symvers { entries, by_symbol: std::sync::OnceLock::new(), modules }
    }

    /// Whether some module of this kernel (not vmlinux) is named `name`.
    pub fn has_module(&self, name: &str) -> bool {
        self.modules.contains(name)
    }

    pub fn get(&self, symbol: &str) -> Option<&SymversEntry> {
        let index = self.by_symbol.get_or_init(|| {
            let mut m = HashMap::with_capacity_and_hasher(self.entries.len(), crate::FastHash);
            for (i, e) in self.entries.iter().enumerate() {
                m.entry(e.symbol.clone()).or_insert(i);
            }
            m
        });
        index.get(symbol).map(|&i| &self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names of every module that exports something (not `vmlinux`), sorted.
    pub fn module_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.modules.iter().map(|m| &**m).collect();
        names.sort_unstable();
        names
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
        assert_eq!((old.module_name(), old.namespace.as_deref()), ("libceph", None));
        assert_eq!(s.module_names(), vec!["libceph"]);
        assert!(s.has_module("libceph") && !s.has_module("vmlinux"));
    }

    #[test]
    fn bad_lines_name_their_position() {
        let err = Symvers::parse("0x1\ta\tvmlinux\tEXPORT_SYMBOL\n0xZZ\tb\tvmlinux\tEXPORT_SYMBOL\n", "f").unwrap_err();
        assert!(err.to_string().starts_with("f:2: CRC \"0xZZ\""), "{err}");
        assert!(Symvers::parse("0x1\ta\n", "f").is_err());
    }
}
