//! A row of a table and the tombstone a deleted row leaves.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

/// One object: every field of its class by wire name, and the generations that `event.from`
/// compares tokens with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub fields: BTreeMap<String, Value>,
    /// The generation (Raft index) of the Txn that created the row.
    pub created: u64,
    /// The generation of the last Txn that changed or touched it; never below `created`.
    pub modified: u64,
}

impl Row {
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The text of a string-typed field, or "" when absent.
    pub fn str(&self, field: &str) -> &str {
        self.fields.get(field).and_then(Value::as_str).unwrap_or("")
    }
}

/// What a deleted row leaves behind, so that `event.from` can report its deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub created: u64,
    pub deleted: u64,
}
