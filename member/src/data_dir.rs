//! The data dir's permissions: it holds the pool secret (in every dump), the root password's
//! hash, live session refs (in the Raft log) and the host's TLS key, so no one but oxapi's own
//! user may read it. It is made 0700, a loose one is refused (as etcd checks its data dir),
//! and what an earlier version left readable inside it is tightened to the owner only.
//!
//! The process also runs with umask 077 (`main.rs`), so every file it creates anywhere (redb's
//! store, dumps, sockets, hook output) is the owner's alone whatever umask it was started with.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The permission bits of group and others, none of which a data dir's entries may have.
const GROUP_AND_OTHERS: u32 = 0o077;

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data dir {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the data dir {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    /// Other users may enter or read it: the pool secret would be theirs.
    #[error(
        "the data dir {path} has mode {mode:04o}: other users can read the pool's secrets; \
         make it the owner's only (chmod 700 {path}) and start again"
    )]
    Loose { path: PathBuf, mode: u32 },
    #[error("cannot restrict {path} to its owner")]
    Tighten {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Makes `path` ready to hold a host's data: creates it (and missing parents) with mode 0700,
/// refuses it when group or others have any access, then takes group and others' access away
/// from everything inside it.
pub fn prepare(path: &Path) -> Result<(), DataDirError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| DataDirError::Create {
            path: path.to_owned(),
            source,
        })?;
    let meta = std::fs::metadata(path).map_err(|source| DataDirError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DataDirError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & GROUP_AND_OTHERS != 0 {
        return Err(DataDirError::Loose {
            path: path.to_owned(),
            mode,
        });
    }
    tighten_inside(path)
}

/// Takes group and others' bits away from every entry under `dir` (symbolic links are left
/// alone: their own mode means nothing, and what they point at is not the data dir's).
fn tighten_inside(dir: &Path) -> Result<(), DataDirError> {
    let read_error = |source| DataDirError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|source| DataDirError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & GROUP_AND_OTHERS != 0 {
            let tightened = std::fs::Permissions::from_mode(mode & !GROUP_AND_OTHERS);
            std::fs::set_permissions(&path, tightened).map_err(|source| DataDirError::Tighten {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), mode = format!("{:04o}", mode & 0o7777), "restricted to its owner");
        }
        if meta.is_dir() {
            tighten_inside(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    /// A new data dir (and its missing parent) is made 0700.
    #[test]
    fn a_new_data_dir_is_the_owners_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("parent/data");
        prepare(&dir).expect("prepared");
        assert_eq!(mode_of(&dir), 0o700);
    }

    /// A data dir that others can enter is refused, and the error names it and its mode.
    #[test]
    fn a_loose_data_dir_is_refused_with_its_path_and_mode() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = prepare(&dir).expect_err("refused");
        assert!(
            matches!(err, DataDirError::Loose { mode: 0o755, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&dir.display().to_string()) && text.contains("0755"),
            "{text}"
        );
    }

    /// Files and folders an earlier version left readable lose group and others' bits; the
    /// owner's bits (a hook's execute bit) stay.
    #[test]
    fn entries_left_readable_are_tightened() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        let hooks = dir.join("hooks/vm-pre-start");
        std::fs::create_dir_all(&hooks).expect("dirs");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let dump = dir.join("db.dump");
        std::fs::write(&dump, b"secret").expect("write");
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let hook = hooks.join("check");
        std::fs::write(&hook, b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        prepare(&dir).expect("prepared");
        assert_eq!(mode_of(&dump), 0o600);
        assert_eq!(mode_of(&hook), 0o700);
        assert_eq!(mode_of(&dir.join("hooks")), 0o700);
    }

    /// A data dir path that names a file is refused.
    #[test]
    fn a_file_is_not_a_data_dir() {
        let root = tempfile::tempdir().expect("temp dir");
        let file = root.path().join("data");
        std::fs::write(&file, b"").expect("write");
        assert!(matches!(
            prepare(&file),
            Err(DataDirError::Create { .. } | DataDirError::NotADirectory { .. })
        ));
    }
}
