//! `--series NAME|DIR|none`: where a patch series comes from. The shipped series is compiled
//! into the binary (see `build.rs`) and unpacked into the cache, content-addressed, when
//! used; a folder of one's own series is named by `$KRBD_FORGE_PATCHES`.

use super::build::BuildFailure;
use krbd_build::patch::SeriesSource;
use krbd_build::BuildError;
use krbd_fetch::cache::Cache;
use krbd_fetch::FetchError;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_series.rs"));

/// The one variable: a folder whose subfolders are series, looked up by name before the
/// built-in ones.
pub const PATCHES_VAR: &str = "KRBD_FORGE_PATCHES";

/// A series by folder or by name; `none` for an unpatched build. A bare name is looked up
/// as a folder here, then in `$KRBD_FORGE_PATCHES`, then among the built-in series.
pub fn find_series(arg: &str, cache: &Cache) -> Result<Option<SeriesSource>, BuildFailure> {
    if arg == "none" {
        return Ok(None);
    }
    let direct = PathBuf::from(arg);
    if is_series(&direct) {
        return Ok(Some(open(&direct)?));
    }
    if !arg.is_empty() && !arg.contains('/') && arg != "." && arg != ".." {
        if let Some(dir) = patches_var().map_err(BuildFailure::Usage)? {
            let candidate = dir.join(arg);
            if is_series(&candidate) {
                return Ok(Some(open(&candidate)?));
            }
        }
        if let Some((name, files)) = EMBEDDED_SERIES.iter().find(|(name, _)| *name == arg) {
            let dir = unpack(cache, name, files)?;
            return Ok(Some(open(&dir)?));
        }
    }
    // Let the loader say what is wrong with it.
    Ok(Some(open(&direct)?))
}

fn is_series(dir: &Path) -> bool {
    dir.join("series").is_file() || dir.join("variants.toml").is_file()
}

fn open(dir: &Path) -> Result<SeriesSource, BuildError> {
    Ok(SeriesSource::open(dir)?)
}

/// `$KRBD_FORGE_PATCHES`, when set. Set but empty, or not a folder: `Err`, a usage error
/// (an empty value never silently means "the built-in series").
fn patches_var() -> Result<Option<PathBuf>, String> {
    match std::env::var_os(PATCHES_VAR) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(format!(
            "{PATCHES_VAR} is set but empty: unset it to use the built-in series, or point it at a folder of series"
        )),
        Some(v) if !Path::new(&v).is_dir() => {
            Err(format!("{PATCHES_VAR}={}: no such folder (it names a folder of series)", Path::new(&v).display()))
        }
        Some(v) => Ok(Some(PathBuf::from(v))),
    }
}

/// The built-in series `name` as a folder: `<cache>/series/<sha256>/<name>/`, written once
/// (staged and renamed into place) and keyed by every file's path and contents.
fn unpack(cache: &Cache, name: &str, files: &[EmbeddedFile]) -> Result<PathBuf, FetchError> {
    let mut key = format!("{name}\n");
    for (rel, data) in files {
        key.push_str(&format!("{rel}\0{}\n", krbd_formats::digest::sha256_hex(data)));
    }
    let key = krbd_formats::digest::sha256_hex(key.as_bytes());
    let (dir, _) = cache.get_or_create::<FetchError>("series", &key, |staging| {
        for (rel, data) in files {
            let path = staging.join(name).join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(FetchError::io("create series folder", parent))?;
            }
            std::fs::write(&path, data).map_err(FetchError::io("write built-in series", &path))?;
        }
        Ok(())
    })?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_series_is_built_in_with_every_variant() {
        let (_, files) = EMBEDDED_SERIES.iter().find(|(n, _)| *n == "recovery-weight").expect("built in");
        assert!(files.iter().any(|(rel, _)| *rel == "variants.toml"));
        assert!(files.iter().any(|(rel, _)| *rel == "linux-6.1-6.12/series"));
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let Some(SeriesSource::Variants { dir, variants }) = find_series("recovery-weight", &cache).ok().flatten()
        else {
            panic!("recovery-weight is a series with variants")
        };
        assert!(dir.starts_with(cache.root()), "{}", dir.display());
        assert!(variants.iter().any(|v| v.name == "linux-6.1-6.12"));
    }
}
