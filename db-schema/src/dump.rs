//! Dumps: the whole DB as MessagePack behind a header (magic, format version, Raft index and term,
//! length, CRC32), written to a temp file, fsynced, renamed, directory fsynced.
//!
//! Header, all integers little-endian:
//!
//! | bytes | field                                   |
//! |-------|-----------------------------------------|
//! | 0..8  | magic `OXAPIDB\0`                       |
//! | 8..12 | format version (u32)                    |
//! | 12..20| applied index (u64)                     |
//! | 20..28| applied term (u64)                      |
//! | 28..36| body length in bytes (u64)              |
//! | 36..40| CRC32 of the body (u32)                 |
//!
//! The body is `rmp_serde::to_vec_named` of the `Db`, so fields are named and a reader can tell
//! an added field from a moved one. A directory holds `db-<index, 20 digits>.dump` files; `write`
//! keeps the newest two, so a dump damaged on disk still leaves the one before it. `load_newest`
//! renames the damaged dumps it skips to `<name>.corrupt`: kept for a post-mortem, and no longer
//! a dump that `write` could keep as the fallback of a newer one.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::error::DumpError;

/// The first bytes of every dump.
pub const MAGIC: &[u8; 8] = b"OXAPIDB\0";

/// The version of the body's layout. Bump it whenever the serialised form of `Db`, `Row`,
/// `Tombstone` or `Value` changes; the format hash test in `dump/tests.rs` fails until then.
pub const FORMAT_VERSION: u32 = 1;

/// The length of the header in bytes.
pub const HEADER_LEN: usize = 40;

/// A temp file's suffix: such a file is a dump whose write did not finish.
const TEMP_SUFFIX: &str = ".tmp";

/// The suffix `load_newest` gives a dump that did not read back valid.
const DAMAGED_SUFFIX: &str = ".corrupt";

/// The whole DB as a dump.
pub fn to_bytes(db: &Db) -> Result<Vec<u8>, DumpError> {
    let body = rmp_serde::to_vec_named(db)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&db.applied_index().to_le_bytes());
    bytes.extend_from_slice(&db.applied_term().to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// `N` bytes of `bytes` from `at`; the caller has checked the length.
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("the header length was checked before its fields are read")
}

/// The DB a dump holds, with its indexes rebuilt, after checking every header field.
pub fn from_bytes(bytes: &[u8]) -> Result<Db, DumpError> {
    if bytes.len() < MAGIC.len() {
        return Err(DumpError::Truncated);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(DumpError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(DumpError::Truncated);
    }
    let version = u32::from_le_bytes(field(bytes, 8));
    if version != FORMAT_VERSION {
        return Err(DumpError::UnsupportedVersion { found: version });
    }
    let index = u64::from_le_bytes(field(bytes, 12));
    let term = u64::from_le_bytes(field(bytes, 20));
    let body_len = u64::from_le_bytes(field(bytes, 28));
    let crc = u32::from_le_bytes(field(bytes, 36));
    let body = &bytes[HEADER_LEN..];
    let found = body.len() as u64;
    if found < body_len {
        return Err(DumpError::Truncated);
    }
    if found > body_len {
        return Err(DumpError::TrailingBytes {
            expected: body_len,
            found,
        });
    }
    if crc32fast::hash(body) != crc {
        return Err(DumpError::ChecksumMismatch);
    }
    let db: Db = rmp_serde::from_slice(body)?;
    if db.applied_index() != index || db.applied_term() != term {
        return Err(DumpError::PositionMismatch {
            header_index: index,
            header_term: term,
            body_index: db.applied_index(),
            body_term: db.applied_term(),
        });
    }
    Ok(db)
}

/// The file name of the dump at `index`.
fn file_name(index: u64) -> String {
    format!("db-{index:020}.dump")
}

/// The index a dump's file name carries, if it is a dump's name.
fn index_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("db-")?.strip_suffix(".dump")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The files of a dump directory that this module knows.
struct Listing {
    /// Sorted by index, oldest first.
    dumps: Vec<(u64, PathBuf)>,
    /// Temp files of writes that did not finish.
    temps: Vec<PathBuf>,
}

fn scan(dir: &Path) -> Result<Listing, DumpError> {
    let mut dumps = Vec::new();
    let mut temps = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(index) = index_of(name) {
            dumps.push((index, entry.path()));
        } else if name.strip_suffix(TEMP_SUFFIX).and_then(index_of).is_some() {
            temps.push(entry.path());
        }
    }
    dumps.sort();
    Ok(Listing { dumps, temps })
}

/// Writes `db` as `db-<index>.dump` in `dir`: `to_bytes`, then `write_bytes`.
pub fn write(dir: &Path, db: &Db) -> Result<PathBuf, DumpError> {
    write_bytes(dir, db.applied_index(), &to_bytes(db)?)
}

/// Writes `bytes`, made by `to_bytes` from the DB at `index`, as `db-<index>.dump` in `dir`
/// (created if missing), durably: temp file, fsync, rename, fsync of the directory. Then deletes
/// every other dump but the newest one older than it, which stays as the fallback; dumps newer
/// than the one written go too: a caller writes its replica's newest state, so they are not part
/// of its history. Returns the new dump's path.
pub fn write_bytes(dir: &Path, index: u64, bytes: &[u8]) -> Result<PathBuf, DumpError> {
    debug_assert_eq!(
        bytes
            .get(12..20)
            .and_then(|header| header.try_into().ok())
            .map(u64::from_le_bytes),
        Some(index),
        "a dump's name carries the index its header records"
    );
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(file_name(index));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", file_name(index)));
    // A dump holds the pool secret and the root password's hash: its owner's only.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    // A stale temp file from a crash keeps its old mode through `open`.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, &path)?;
    File::open(dir)?.sync_all()?;

    let dumps = scan(dir)?.dumps;
    let fallback = dumps
        .iter()
        .filter(|(i, _)| *i < index)
        .map(|(i, _)| *i)
        .max();
    for (i, old) in dumps {
        if i != index && Some(i) != fallback {
            fs::remove_file(old)?;
        }
    }
    Ok(path)
}

/// The DB read back from a dump, and the newer dumps that could not be.
#[derive(Debug)]
pub struct Loaded {
    pub db: Db,
    pub path: PathBuf,
    /// Dumps newer than `path` that did not read back valid, newest first, with why, each
    /// already renamed to `<name>.corrupt` (the path given); the caller logs them.
    pub skipped: Vec<(PathBuf, DumpError)>,
}

/// The newest dump in `dir` that reads back valid. `None` when `dir` holds no dump (or does not
/// exist); an error when it holds dumps and none of them is valid, and then every dump stays as
/// it is. Temp files of unfinished writes are removed; the dumps newer than the one loaded are
/// renamed to `<name>.corrupt`.
pub fn load_newest(dir: &Path) -> Result<Option<Loaded>, DumpError> {
    if !dir.try_exists()? {
        return Ok(None);
    }
    let Listing { dumps, temps } = scan(dir)?;
    for temp in temps {
        fs::remove_file(temp)?;
    }
    if dumps.is_empty() {
        return Ok(None);
    }
    let mut skipped: Vec<(PathBuf, DumpError)> = Vec::new();
    for (_, path) in dumps.into_iter().rev() {
        match fs::read(&path)
            .map_err(DumpError::from)
            .and_then(|bytes| from_bytes(&bytes))
        {
            Ok(db) => {
                for (damaged, _) in &mut skipped {
                    *damaged = set_aside(damaged)?;
                }
                return Ok(Some(Loaded { db, path, skipped }));
            }
            Err(error) => skipped.push((path, error)),
        }
    }
    Err(DumpError::NoValidDump { skipped })
}

/// Renames a damaged dump to `<name>.corrupt` and returns the new path.
fn set_aside(path: &Path) -> Result<PathBuf, DumpError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(DAMAGED_SUFFIX);
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests;
