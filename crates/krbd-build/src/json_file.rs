//! JSON files in cache entries and out folders, read and written with path-naming errors.

use crate::error::BuildError;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub(crate) fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, BuildError> {
    let text = std::fs::read(path).map_err(BuildError::io("read", path))?;
    serde_json::from_slice(&text).map_err(|e| BuildError::io("parse", path)(std::io::Error::other(e)))
}

/// Writes `value` pretty-printed, as people read these files too.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), BuildError> {
    let json =
        serde_json::to_vec_pretty(value).map_err(|e| BuildError::io("encode", path)(std::io::Error::other(e)))?;
    std::fs::write(path, json).map_err(BuildError::io("write", path))
}
