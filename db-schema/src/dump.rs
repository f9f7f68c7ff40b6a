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
//! keeps the newest two, so a dump damaged on disk still leaves the one before it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::error::DumpError;

/// The first bytes of every dump.
pub const MAGIC: &[u8; 8] = b"OXAPIDB\0";

/// The version of the body's layout. Bump it whenever the serialised form of `Db`, `Row`,
/// `Tombstone` or `Value` changes; the format hash test below fails until then.
pub const FORMAT_VERSION: u32 = 1;

/// The length of the header in bytes.
pub const HEADER_LEN: usize = 40;

/// A temp file's suffix: such a file is a dump whose write did not finish.
const TEMP_SUFFIX: &str = ".tmp";

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

/// Writes `db` as `db-<index>.dump` in `dir` (created if missing), durably: temp file, fsync,
/// rename, fsync of the directory. Then deletes every other dump but the newest one older than
/// it, which stays as the fallback. A dump newer than the one written can only be one that
/// `load_newest` skipped as unreadable, so it goes too. Returns the new dump's path.
pub fn write(dir: &Path, db: &Db) -> Result<PathBuf, DumpError> {
    fs::create_dir_all(dir)?;
    let bytes = to_bytes(db)?;
    let index = db.applied_index();
    let path = dir.join(file_name(index));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", file_name(index)));
    let mut file = File::create(&temp)?;
    file.write_all(&bytes)?;
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
    /// Dumps newer than `path` that did not read back valid, newest first, with why; the caller
    /// logs them.
    pub skipped: Vec<(PathBuf, DumpError)>,
}

/// The newest dump in `dir` that reads back valid. `None` when `dir` holds no dump (or does not
/// exist); an error when it holds dumps and none of them is valid. Temp files of unfinished
/// writes are removed.
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
    let mut skipped = Vec::new();
    for (_, path) in dumps.into_iter().rev() {
        match fs::read(&path)
            .map_err(DumpError::from)
            .and_then(|bytes| from_bytes(&bytes))
        {
            Ok(db) => return Ok(Some(Loaded { db, path, skipped })),
            Err(error) => skipped.push((path, error)),
        }
    }
    Err(DumpError::NoValidDump { skipped })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use api_spec::Value;

    use super::*;
    use crate::db::Table;
    use crate::row::{Row, Tombstone};
    use crate::testing::{db_after, set, vm};

    /// The CRC32 of the body of `fixed_db()`, as `FORMAT_VERSION` serialises it.
    const FIXED_BODY_CRC: u32 = 0xb32c_492d;

    /// A small DB built field by field, independent of the API's classes, so that only a change
    /// of the serialised form changes its bytes.
    fn fixed_db() -> Db {
        let mut table = Table::default();
        let fields: BTreeMap<String, Value> = [
            ("uuid", Value::str("0f0e0d0c-0b0a-0908-0706-050403020100")),
            ("name_label", Value::str("fixed")),
            ("VCPUs_max", Value::Int(2)),
            ("HVM_shadow_multiplier", Value::Float(1.5)),
            ("is_a_template", Value::Bool(false)),
            ("last_booted", Value::DateTime("20240102T03:04:05Z".into())),
            ("tags", Value::Array(vec![Value::str("t")])),
            (
                "other_config",
                Value::Struct([("k".to_owned(), Value::str("v"))].into()),
            ),
            ("snapshot_info", Value::Nil),
            ("domid", Value::Int32(-1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        table.insert_row(
            "OpaqueRef:a",
            Row {
                fields,
                created: 3,
                modified: 5,
            },
        );
        table.tombstones.insert(
            "OpaqueRef:b".into(),
            Tombstone {
                created: 2,
                deleted: 4,
            },
        );
        Db {
            tables: [("VM".to_owned(), table)].into(),
            internals: [("root_password".to_owned(), Value::str("$argon2id$x"))].into(),
            applied_index: 6,
            applied_term: 2,
        }
    }

    /// A dump reads back as an equal DB, indexes included.
    #[test]
    fn dump_round_trips_to_an_equal_db() {
        let db = db_after([vm("a"), vm("b"), set("VM", "a", "name_label", "b")]);
        let loaded = from_bytes(&to_bytes(&db).expect("encodes")).expect("decodes");
        assert_eq!(loaded, db);
        assert_eq!((loaded.applied_index(), loaded.applied_term()), (3, 1));
    }

    /// The serialised form of a fixed DB has not changed since FORMAT_VERSION was set.
    #[test]
    fn dump_format_matches_its_version() {
        let bytes = to_bytes(&fixed_db()).expect("encodes");
        let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
        assert_eq!(
            crc, FIXED_BODY_CRC,
            "the dump format changed (body CRC {crc:#010x}): if on purpose, bump FORMAT_VERSION \
             (and teach from_bytes to read the old version, or say why not) and record the new CRC"
        );
    }

    /// Each kind of damage to a dump is recognised as such.
    #[test]
    fn damaged_dumps_are_refused_with_the_matching_error() {
        let good = to_bytes(&db_after([vm("a")])).expect("encodes");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(
            from_bytes(&flipped),
            Err(DumpError::ChecksumMismatch)
        ));
        assert!(matches!(
            from_bytes(&good[..good.len() - 1]),
            Err(DumpError::Truncated)
        ));
        assert!(matches!(from_bytes(&good[..20]), Err(DumpError::Truncated)));
        assert!(matches!(from_bytes(&good[..3]), Err(DumpError::Truncated)));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            from_bytes(&longer),
            Err(DumpError::TrailingBytes { .. })
        ));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(matches!(from_bytes(&magic), Err(DumpError::BadMagic)));
        let mut future = good.clone();
        future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let found = FORMAT_VERSION + 1;
        assert!(
            matches!(from_bytes(&future), Err(DumpError::UnsupportedVersion { found: f }) if f == found)
        );
        let mut moved = good;
        moved[12..20].copy_from_slice(&99u64.to_le_bytes());
        assert!(matches!(
            from_bytes(&moved),
            Err(DumpError::PositionMismatch {
                header_index: 99,
                ..
            })
        ));
    }

    /// DBs at indexes 1, 2, 3 written in turn into `dir`; returns the paths.
    fn write_three(dir: &Path) -> Vec<PathBuf> {
        let mut db = Db::new();
        (1..=3)
            .map(|index| {
                db.apply(index, 1, &crate::testing::txn([vm(&format!("vm{index}"))]))
                    .expect("applies");
                write(dir, &db).expect("writes")
            })
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writing keeps the new dump and the one before it, named by index, and nothing older.
    #[test]
    fn write_keeps_the_newest_two_dumps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dumps = dir.path().join("dumps");
        let paths = write_three(&dumps);
        assert_eq!(paths[2], dumps.join("db-00000000000000000003.dump"));
        assert_eq!(
            names(&dumps),
            vec![
                "db-00000000000000000002.dump",
                "db-00000000000000000003.dump"
            ]
        );
        let loaded = load_newest(&dumps).expect("loads").expect("a dump");
        assert_eq!(
            (loaded.db.applied_index(), loaded.path),
            (3, paths[2].clone())
        );
        assert!(loaded.skipped.is_empty());
    }

    /// A damaged newest dump (flipped byte, truncated, bad magic, future version) is skipped and
    /// reported, and the older one is loaded.
    #[test]
    fn damaged_newest_dump_falls_back_to_the_older_one() {
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 4] = [
            ("flipped byte", |b| b[HEADER_LEN + 3] ^= 0x01),
            ("truncated", |b| b.truncate(b.len() / 2)),
            ("bad magic", |b| b[..8].copy_from_slice(b"NOTADUMP")),
            ("future version", |b| {
                b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes())
            }),
        ];
        for (what, damage) in damages {
            let dir = tempfile::tempdir().expect("tempdir");
            let paths = write_three(dir.path());
            let mut bytes = fs::read(&paths[2]).expect("readable");
            damage(&mut bytes);
            fs::write(&paths[2], bytes).expect("writable");
            let loaded = load_newest(dir.path()).expect("loads").expect("a dump");
            assert_eq!(loaded.db.applied_index(), 2, "{what}");
            assert_eq!(loaded.skipped.len(), 1, "{what}");
            assert_eq!(loaded.skipped[0].0, paths[2], "{what}");
        }
    }

    /// Temp files of unfinished writes are ignored and removed; other files are left alone.
    #[test]
    fn temp_files_are_ignored_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &db_after([vm("a")])).expect("writes");
        fs::write(dir.path().join("db-00000000000000000009.dump.tmp"), b"half").expect("writable");
        fs::write(dir.path().join("notes.txt"), b"mine").expect("writable");
        let loaded = load_newest(dir.path()).expect("loads").expect("a dump");
        assert_eq!(loaded.db.applied_index(), 1);
        assert!(loaded.skipped.is_empty());
        assert_eq!(
            names(dir.path()),
            vec!["db-00000000000000000001.dump", "notes.txt"]
        );
    }

    /// A missing or empty directory holds no dump.
    #[test]
    fn missing_or_empty_directory_holds_no_dump() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_newest(dir.path()).expect("loads").is_none());
        assert!(
            load_newest(&dir.path().join("absent"))
                .expect("loads")
                .is_none()
        );
    }

    /// When every dump is damaged, loading fails rather than starting from an empty DB.
    #[test]
    fn all_dumps_damaged_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        for path in write_three(dir.path()).iter().skip(1) {
            fs::write(path, b"OXAPIDB\0garbage").expect("writable");
        }
        match load_newest(dir.path()) {
            Err(DumpError::NoValidDump { skipped }) => assert_eq!(skipped.len(), 2),
            other => panic!("expected NoValidDump, got {other:?}"),
        }
    }
}
