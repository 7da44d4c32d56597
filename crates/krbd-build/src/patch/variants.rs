//! A series with variants: one folder per kernel source layout, and a `variants.toml`
//! saying which kernel releases each fits. The build picks the first variant whose
//! release globs match the target.

use super::series::{Series, SeriesError};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Variant {
    /// Also the variant's folder name.
    pub name: String,
    /// Shell globs (`*`, `?`) over the kernel release.
    pub releases: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// What was verified for this variant (see docs/support-matrix.md).
    #[serde(default)]
    pub verified: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct VariantsFile {
    variant: Vec<Variant>,
}

/// A series folder: either plain (a `series` file) or with variants (`variants.toml`).
#[derive(Debug, Clone)]
pub enum SeriesSource {
    Plain(PathBuf),
    Variants { dir: PathBuf, variants: Vec<Variant> },
}

impl SeriesSource {
    pub fn open(dir: &Path) -> Result<SeriesSource, SeriesError> {
        let toml_path = dir.join("variants.toml");
        if !toml_path.is_file() {
            return Ok(SeriesSource::Plain(dir.to_path_buf()));
        }
        let text = std::fs::read_to_string(&toml_path)
            .map_err(|source| SeriesError::Unreadable { dir: dir.to_path_buf(), source })?;
        let parsed: VariantsFile = toml::from_str(&text)
            .map_err(|e| SeriesError::BadVariants { file: toml_path.clone(), reason: e.to_string() })?;
        for v in &parsed.variant {
            let ok = !v.name.is_empty() && !v.name.contains('/') && v.name != ".." && dir.join(&v.name).is_dir();
            if !ok {
                return Err(SeriesError::BadVariants {
                    file: toml_path.clone(),
                    reason: format!("variant {:?} has no folder beside variants.toml", v.name),
                });
            }
        }
        Ok(SeriesSource::Variants { dir: dir.to_path_buf(), variants: parsed.variant })
    }

    /// The series to apply for `release`.
    pub fn select(&self, release: &str) -> Result<(Series, Option<Variant>), SeriesError> {
        match self {
            SeriesSource::Plain(dir) => Ok((Series::load(dir)?, None)),
            SeriesSource::Variants { dir, variants } => {
                let v =
                    variants.iter().find(|v| v.releases.iter().any(|g| glob_match(g, release))).ok_or_else(|| {
                        SeriesError::NoVariant {
                            // The name, as in the series' own name: the built-in series
                            // lives in the cache under a hash nobody asked about.
                            series: dir
                                .file_name()
                                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
                            release: release.to_string(),
                            known: variants.iter().map(|v| format!("{} ({})", v.name, v.releases.join(", "))).collect(),
                        }
                    })?;
                let mut series = Series::load(&dir.join(&v.name))?;
                let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                series.name = format!("{base}/{}", v.name);
                Ok((series, Some(v.clone())))
            }
        }
    }

    /// Every variant's series (one for a plain series), for `patch check`.
    pub fn all(&self) -> Result<Vec<(Series, Option<Variant>)>, SeriesError> {
        match self {
            SeriesSource::Plain(dir) => Ok(vec![(Series::load(dir)?, None)]),
            SeriesSource::Variants { dir, variants } => variants
                .iter()
                .map(|v| {
                    let mut s = Series::load(&dir.join(&v.name))?;
                    let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    s.name = format!("{base}/{}", v.name);
                    Ok((s, Some(v.clone())))
                })
                .collect(),
        }
    }
}

/// Shell-style glob: `*` any run of characters, `?` one character, the rest literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob_match("6.1.*", "6.1.0-56-amd64"));
        assert!(!glob_match("6.1.*", "6.12.117+deb12-amd64"));
        assert!(glob_match("6.12.*", "6.12.117+deb12-amd64"));
        assert!(glob_match("3.10.0-327.*", "3.10.0-327.el7.x86_64"));
        assert!(!glob_match("3.10.0-327.*", "3.10.0-3270.el7"));
        assert!(glob_match("*-amd64", "6.1.0-1-amd64"));
        assert!(glob_match("6.?.0*", "6.1.0-1"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn the_project_series_select_by_release() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../patches/recovery-weight");
        let src = SeriesSource::open(&dir).expect("patches/recovery-weight has variants.toml");
        let pick = |r: &str| src.select(r).map(|(_, v)| v.map(|v| v.name));
        assert_eq!(pick("6.1.0-56-amd64").unwrap().as_deref(), Some("linux-6.1-6.12"));
        assert_eq!(pick("6.12.117+deb12-amd64").unwrap().as_deref(), Some("linux-6.1-6.12"));
        assert_eq!(pick("3.10.0-327.el7.x86_64").unwrap().as_deref(), Some("el7-327"));
        assert_eq!(pick("3.10.0-1160.el7.x86_64").unwrap().as_deref(), Some("el7-1127"));
        let err = pick("3.10.0-957.el7.x86_64").unwrap_err();
        assert!(matches!(err, SeriesError::NoVariant { .. }), "{err}");
        assert!(err.to_string().contains("el7-514"), "{err}");
        for (series, _) in src.all().unwrap() {
            assert_eq!(series.patches.len(), 5, "{}", series.name);
        }
    }
}
