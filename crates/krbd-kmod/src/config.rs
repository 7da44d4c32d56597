//! A kernel's `.config`, read only for the options the module loader depends on.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct KernelConfig {
    values: HashMap<String, String>,
}

impl KernelConfig {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// `CONFIG_X=value` lines; `# CONFIG_X is not set` and other comments are "not set".
    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        KernelConfig { values }
    }

    /// The option's value, `name` with or without the `CONFIG_` prefix.
    pub fn get(&self, name: &str) -> Option<&str> {
        let key = if name.starts_with("CONFIG_") { name.to_string() } else { format!("CONFIG_{name}") };
        self.values.get(&key).map(String::as_str)
    }

    /// `=y` (built in). Loader options are never `=m`.
    pub fn enabled(&self, name: &str) -> bool {
        self.get(name) == Some("y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_set_and_unset_options() {
        let c = KernelConfig::parse("CONFIG_MODVERSIONS=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n");
        assert!(c.enabled("MODVERSIONS"));
        assert!(!c.enabled("CONFIG_MODULE_SIG_FORCE"));
        assert_eq!(c.get("MODULE_SIG_HASH"), Some("sha256"));
    }
}
