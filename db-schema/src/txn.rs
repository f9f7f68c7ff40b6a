//! `Txn`: the only way to change the pool DB. A list of preconditions, checked at apply time, and
//! operations, applied all or nothing.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

use crate::db::Db;

/// A transaction: every precondition must hold when it is applied, then every op is applied in
/// order; if anything fails, nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub preconditions: Vec<Precondition>,
    pub ops: Vec<Op>,
}

/// A condition on the DB as it is when the Txn is applied (not when it was proposed), so two
/// racing writers can never both win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Precondition {
    /// The row exists.
    Exists { class: String, r#ref: String },
    /// The row does not exist (and never did: refs are not reused).
    Absent { class: String, r#ref: String },
    /// The row exists and its field holds exactly this value.
    FieldEquals {
        class: String,
        r#ref: String,
        field: String,
        value: Value,
    },
    /// The row exists and its field holds a value whose `digest` is this: `FieldEquals` for a
    /// large value, in 32 characters instead of the whole value.
    FieldDigest {
        class: String,
        r#ref: String,
        field: String,
        digest: String,
    },
    /// The row exists and its map field has no entry for this key.
    MapKeyAbsent {
        class: String,
        r#ref: String,
        field: String,
        key: String,
    },
}

/// One change. Refs, uuids and timestamps are chosen by the proposer, so applying is
/// deterministic on every replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A new row with every field of its class given. The many ends of relations it points to
    /// are updated by the DB.
    Create {
        class: String,
        r#ref: String,
        fields: BTreeMap<String, Value>,
    },
    /// Replace one field.
    Set {
        class: String,
        r#ref: String,
        field: String,
        value: Value,
    },
    /// Add a key to a map field; fails with `MapDuplicateKey` if it is there already.
    MapAdd {
        class: String,
        r#ref: String,
        field: String,
        key: String,
        value: Value,
    },
    /// Set a key of a map field, whether or not it is there.
    MapPut {
        class: String,
        r#ref: String,
        field: String,
        key: String,
        value: Value,
    },
    /// Remove a key from a map field; a missing key is not an error.
    MapRemove {
        class: String,
        r#ref: String,
        field: String,
        key: String,
    },
    /// Add a value to a set field; a value already there is not added twice.
    SetAdd {
        class: String,
        r#ref: String,
        field: String,
        value: Value,
    },
    /// Remove a value from a set field; a missing value is not an error.
    SetRemove {
        class: String,
        r#ref: String,
        field: String,
        value: Value,
    },
    /// Delete the row, leaving a tombstone for `event.from`.
    Destroy { class: String, r#ref: String },
    /// Mark the row modified without changing it (`event.inject`).
    Touch { class: String, r#ref: String },
    /// Set an internal value that is not part of the API (the root password hash, the pool
    /// secret).
    PutInternal { key: String, value: Value },
}

/// Values whose MessagePack encoding is longer than this are required unchanged by digest.
const LARGEST_VALUE_KEPT_WHOLE: usize = 64;

/// The digest of `value`: the first 128 bits of the SHA-256 of its MessagePack encoding (maps
/// are sorted, so equal values encode alike), as 32 lowercase hex characters.
pub fn digest(value: &Value) -> String {
    use sha2::Digest;
    let bytes = rmp_serde::to_vec(value).expect("a value is plain data and always encodes");
    sha2::Sha256::digest(&bytes)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Precondition {
    /// Requires the field to hold `value` at apply time: `FieldEquals` for a small value,
    /// `FieldDigest` for a large one, so that an entry is about the size of its change even
    /// when the decision read a large map.
    pub fn unchanged(class: &str, r: &str, field: &str, value: &Value) -> Precondition {
        let is_small = rmp_serde::to_vec(value).is_ok_and(|b| b.len() <= LARGEST_VALUE_KEPT_WHOLE);
        if is_small {
            return Precondition::FieldEquals {
                class: class.to_owned(),
                r#ref: r.to_owned(),
                field: field.to_owned(),
                value: value.clone(),
            };
        }
        Precondition::FieldDigest {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            field: field.to_owned(),
            digest: digest(value),
        }
    }

    /// Whether the precondition holds on `db` as it is now.
    pub fn holds(&self, db: &Db) -> bool {
        match self {
            Precondition::Exists { class, r#ref } => db.get(class, r#ref).is_some(),
            Precondition::Absent { class, r#ref } => {
                db.get(class, r#ref).is_none() && db.tombstone(class, r#ref).is_none()
            }
            Precondition::FieldEquals {
                class,
                r#ref,
                field,
                value,
            } => db
                .get(class, r#ref)
                .is_some_and(|row| row.get(field) == Some(value)),
            Precondition::FieldDigest {
                class,
                r#ref,
                field,
                digest: expected,
            } => db
                .get(class, r#ref)
                .and_then(|row| row.get(field))
                .is_some_and(|value| digest(value) == *expected),
            Precondition::MapKeyAbsent {
                class,
                r#ref,
                field,
                key,
            } => db
                .get(class, r#ref)
                .and_then(|row| row.get(field))
                .and_then(Value::as_struct)
                .is_some_and(|map| !map.contains_key(key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApplyError;
    use crate::testing::{db_after, destroy, set, vm};

    fn exists(r: &str) -> Precondition {
        Precondition::Exists {
            class: "VM".into(),
            r#ref: r.into(),
        }
    }

    fn absent(r: &str) -> Precondition {
        Precondition::Absent {
            class: "VM".into(),
            r#ref: r.into(),
        }
    }

    fn name_is(r: &str, name: &str) -> Precondition {
        Precondition::FieldEquals {
            class: "VM".into(),
            r#ref: r.into(),
            field: "name_label".into(),
            value: Value::str(name),
        }
    }

    fn key_absent(r: &str, key: &str) -> Precondition {
        Precondition::MapKeyAbsent {
            class: "VM".into(),
            r#ref: r.into(),
            field: "other_config".into(),
            key: key.into(),
        }
    }

    /// A DB with a live VM `a` (other_config has key `k`) and a destroyed VM `gone`.
    fn sample() -> Db {
        db_after([
            vm("a"),
            Op::MapAdd {
                class: "VM".into(),
                r#ref: "a".into(),
                field: "other_config".into(),
                key: "k".into(),
                value: Value::str("v"),
            },
            vm("gone"),
            destroy("VM", "gone"),
        ])
    }

    /// Exists holds for live rows only, not for missing or destroyed ones.
    #[test]
    fn exists_holds_for_live_rows_only() {
        let db = sample();
        assert!(exists("a").holds(&db));
        assert!(!exists("never").holds(&db));
        assert!(!exists("gone").holds(&db));
    }

    /// Absent holds for refs never used; a destroyed row's ref is not absent, as refs are not reused.
    #[test]
    fn absent_fails_for_live_and_tombstoned_refs() {
        let db = sample();
        assert!(absent("never").holds(&db));
        assert!(!absent("a").holds(&db));
        assert!(!absent("gone").holds(&db));
    }

    /// FieldEquals compares with the value the field holds now, and fails on a missing row.
    #[test]
    fn field_equals_compares_with_the_current_value() {
        let db = sample();
        assert!(name_is("a", "a").holds(&db));
        assert!(!name_is("a", "b").holds(&db));
        assert!(!name_is("gone", "gone").holds(&db));
    }

    /// `unchanged` keeps a small value whole and a large one as a digest of 32 characters;
    /// the digest holds while the field keeps that value and fails once it changes or the row
    /// is gone.
    #[test]
    fn a_large_value_is_required_unchanged_by_its_digest() {
        let small = Value::str("Halted");
        assert!(matches!(
            Precondition::unchanged("VM", "a", "power_state", &small),
            Precondition::FieldEquals { .. }
        ));
        let large: BTreeMap<String, Value> = (0..1000)
            .map(|i| (format!("key{i}"), Value::str("x".repeat(100))))
            .collect();
        let large = Value::Struct(large);
        let precondition = Precondition::unchanged("VM", "a", "other_config", &large);
        let Precondition::FieldDigest { digest: hash, .. } = &precondition else {
            panic!("a digest for a large value: {precondition:?}")
        };
        assert_eq!(hash.len(), 32);
        let encoded = rmp_serde::to_vec_named(&precondition).expect("encodes");
        assert!(encoded.len() < 128, "{} bytes", encoded.len());

        let mut db = db_after([vm("a"), set("VM", "a", "other_config", large.clone())]);
        assert!(precondition.holds(&db));
        db.apply(
            10,
            1,
            &Txn {
                preconditions: Vec::new(),
                ops: vec![Op::MapPut {
                    class: "VM".into(),
                    r#ref: "a".into(),
                    field: "other_config".into(),
                    key: "key0".into(),
                    value: Value::str("changed"),
                }],
            },
        )
        .expect("applies");
        assert!(!precondition.holds(&db));
        assert!(!Precondition::unchanged("VM", "never", "other_config", &large).holds(&db));
    }

    /// MapKeyAbsent holds when the map lacks the key, and fails on a present key or a missing row.
    #[test]
    fn map_key_absent_fails_on_a_present_key() {
        let db = sample();
        assert!(key_absent("a", "j").holds(&db));
        assert!(!key_absent("a", "k").holds(&db));
        assert!(!key_absent("never", "j").holds(&db));
    }

    /// A Txn with a failing precondition reports that precondition and applies none of its ops.
    #[test]
    fn txn_with_stale_precondition_changes_nothing() {
        let mut db = sample();
        let before = db.clone();
        let txn = Txn {
            preconditions: vec![exists("a"), name_is("a", "stale")],
            ops: vec![set("VM", "a", "name_label", "new")],
        };
        let error = db.apply(5, 1, &txn).expect_err("stale precondition");
        assert_eq!(
            error,
            ApplyError::PreconditionFailed {
                precondition: Box::new(name_is("a", "stale"))
            }
        );
        assert_eq!(db.get("VM", "a"), before.get("VM", "a"));
        assert_eq!(db.applied_index(), 5);
    }

    /// Preconditions are checked against the DB as it is when the Txn applies: of two racing
    /// writers that saw the same value, only the first wins.
    #[test]
    fn of_two_racing_writers_only_the_first_wins() {
        let mut db = sample();
        let write = |name: &str| Txn {
            preconditions: vec![name_is("a", "a")],
            ops: vec![set("VM", "a", "name_label", name)],
        };
        db.apply(5, 1, &write("first")).expect("first applies");
        db.apply(6, 1, &write("second"))
            .expect_err("second is stale");
        assert_eq!(
            db.get("VM", "a").map(|r| r.str("name_label")),
            Some("first")
        );
    }
}
