//! A kernel's `.config`, read only for the options the module loader depends on.

use std::path::Path;

/// Kept as text: the loader needs a dozen options out of ~10,000 lines, and scanning for
/// them is cheaper than building a map of all of them.
#[derive(Debug, Clone, Default)]
pub struct KernelConfig {
    text: String,
}

impl KernelConfig {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(KernelConfig { text: std::fs::read_to_string(path)? })
    }

    /// `CONFIG_X=value` lines; `# CONFIG_X is not set` and other comments are "not set".
    pub fn parse(text: &str) -> Self {
        KernelConfig { text: text.to_string() }
    }

    /// The option's value, `name` with or without the `CONFIG_` prefix.
    pub fn get(&self, name: &str) -> Option<&str> {
        let key = name.strip_prefix("CONFIG_").unwrap_or(name);
        // A substring search per lookup; a line is `CONFIG_<key>=<value>` at a line start.
        let needle = format!("CONFIG_{key}=");
        let mut from = 0;
        while let Some(pos) = self.text[from..].find(&needle) {
            let at = from + pos;
            if at == 0 || self.text.as_bytes()[at - 1] == b'\n' {
                let rest = &self.text[at + needle.len()..];
                let value = rest.split('\n').next().unwrap_or("");
                return Some(value.trim().trim_matches('"'));
            }
            from = at + needle.len();
        }
        None
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
        let c = KernelConfig::parse(
            "CONFIG_MODVERSIONS=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_MODULE_SIG_HASH=\"sha256\"\nXCONFIG_SMP=y\n",
        );
        assert_eq!(c.get("SMP"), None);
        assert!(!c.enabled("MODULE_SIG"));
        assert!(c.enabled("MODVERSIONS"));
        assert!(!c.enabled("CONFIG_MODULE_SIG_FORCE"));
        assert_eq!(c.get("MODULE_SIG_HASH"), Some("sha256"));
    }
}
