//! A driver's state file: JSON read whole at open, and replaced whole as the repository writes
//! files (a temp file beside it, fsync, rename over it, fsync the directory), so that after a
//! crash (`kill -9` or power loss) it holds the old state or the new one, never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::BackendError;

/// Reads the state at `path`; `T::default()` when there is no file yet.
pub fn read<T: DeserializeOwned + Default>(path: &Path) -> Result<T, BackendError> {
    match read_existing(path) {
        Err(BackendError::State { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(T::default())
        }
        read => read,
    }
}

/// Reads the state at `path`, which must exist.
pub fn read_existing<T: DeserializeOwned>(path: &Path) -> Result<T, BackendError> {
    let bytes = std::fs::read(path).map_err(|source| BackendError::State {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| BackendError::Corrupt {
        path: path.to_owned(),
        source,
    })
}

/// Replaces the state at `path` with `state`, durably.
pub fn write<T: Serialize>(path: &Path, state: &T) -> Result<(), BackendError> {
    let bytes = serde_json::to_vec(state).expect("a driver's state is plain data");
    replace(path, &bytes).map_err(|source| BackendError::State {
        path: path.to_owned(),
        source,
    })
}

fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = temp_path(path);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The temp file a new state is written to before it replaces the one at `path`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A state written is read back; no file reads as the default, a corrupt one as
    /// `Corrupt`; no temp file is left behind.
    #[test]
    fn a_written_state_is_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("state.json");
        let empty: BTreeMap<String, u32> = read(&path).expect("no file yet");
        assert!(empty.is_empty());
        let state = BTreeMap::from([("a".to_owned(), 1u32)]);
        write(&path, &state).expect("written");
        assert_eq!(read::<BTreeMap<String, u32>>(&path).expect("read"), state);
        assert!(!temp_path(&path).exists());
        std::fs::write(&path, b"{").expect("corrupted");
        assert!(matches!(
            read::<BTreeMap<String, u32>>(&path),
            Err(BackendError::Corrupt { .. })
        ));
    }
}
