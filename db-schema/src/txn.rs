//! `Txn`: the only way to change the pool DB. A list of preconditions, checked at apply time, and
//! operations, applied all or nothing.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

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
