//! Reading and writing xe's small state files: missing means empty; writes go to a temp file
//! renamed into place, readable by the user only.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::XeError;

/// The file's text, or "" if it does not exist.
pub fn read_optional(path: &Path) -> Result<String, XeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(XeError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the file's content (mode 0600, its directory 0700), so that a reader never sees
/// half of it.
pub fn write_private(path: &Path, text: &str) -> Result<(), XeError> {
    let failed = |source| XeError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}
