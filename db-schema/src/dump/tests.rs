//! Tests of dumps: the format, damage, and which files a directory keeps.

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
            class: "VM",
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
        assert_eq!(
            loaded.skipped[0].0,
            dir.path().join("db-00000000000000000003.dump.corrupt"),
            "{what}"
        );
    }
}

/// A damaged dump that `load_newest` skipped is set aside, so the next write keeps the dump
/// the replica was loaded from as its fallback, not the damaged one.
#[test]
fn skipped_dump_is_set_aside_and_never_kept_as_the_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = Db::new();
    for index in 1..=2 {
        db.apply(index, 1, &crate::testing::txn([vm(&format!("vm{index}"))]))
            .expect("applies");
        write(dir.path(), &db).expect("writes");
    }
    fs::write(dir.path().join(file_name(2)), b"OXAPIDB\0garbage").expect("writable");
    let mut loaded = load_newest(dir.path()).expect("loads").expect("a dump");
    assert_eq!(loaded.db.applied_index(), 1);
    loaded
        .db
        .apply(2, 2, &crate::testing::txn([vm("replayed")]))
        .expect("applies");
    loaded
        .db
        .apply(3, 2, &crate::testing::txn([vm("new")]))
        .expect("applies");
    write(dir.path(), &loaded.db).expect("writes");
    assert_eq!(
        names(dir.path()),
        vec![
            "db-00000000000000000001.dump",
            "db-00000000000000000002.dump.corrupt",
            "db-00000000000000000003.dump"
        ]
    );
}

/// Bytes from `to_bytes` written by `write_bytes` land as they are, and make the same dumps,
/// kept by the same rule, as `write` of the DB.
#[test]
fn write_bytes_makes_the_dumps_write_makes() {
    let by_write = tempfile::tempdir().expect("tempdir");
    let by_bytes = tempfile::tempdir().expect("tempdir");
    let mut db = Db::new();
    for index in 1..=3 {
        db.apply(index, 1, &crate::testing::txn([vm(&format!("vm{index}"))]))
            .expect("applies");
        let bytes = to_bytes(&db).expect("encodes");
        let path = write_bytes(by_bytes.path(), index, &bytes).expect("writes");
        assert_eq!(path, by_bytes.path().join(file_name(index)));
        assert_eq!(fs::read(&path).expect("readable"), bytes);
        write(by_write.path(), &db).expect("writes");
    }
    assert_eq!(names(by_bytes.path()), names(by_write.path()));
    assert_eq!(names(by_bytes.path()).len(), 2);
    let loaded = load_newest(by_bytes.path())
        .expect("loads")
        .expect("a dump");
    assert_eq!(loaded.db, db);
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
