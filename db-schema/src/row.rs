//! A row of a table, the tombstone a deleted row leaves, and the check that a field read or
//! written is one its class declares.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

/// One object: every field of its class by wire name, and the generations that `event.from`
/// compares tokens with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The class the row belongs to, so that reads can be checked against its declaration. Not
    /// stored: `Db` sets it when a row is created or read back from a dump.
    #[serde(skip)]
    pub class: &'static str,
    pub fields: BTreeMap<String, Value>,
    /// The generation (Raft index) of the Txn that created the row.
    pub created: u64,
    /// The generation of the last Txn that changed or touched it; never below `created`.
    pub modified: u64,
}

impl Row {
    /// The value of a field of the row's class; see `debug_assert_declared`.
    #[track_caller]
    pub fn get(&self, field: &str) -> Option<&Value> {
        debug_assert_declared(self.class, field);
        self.fields.get(field)
    }

    /// The text of a string-typed field, or "" when absent.
    #[track_caller]
    pub fn str(&self, field: &str) -> &str {
        self.get(field).and_then(Value::as_str).unwrap_or("")
    }
}

/// Whether `class` declares `field`. The DB keeps no field of its own in rows (its internal
/// values live in `Db::internals`), so the declarations in api-spec are the whole list.
pub fn is_declared(class: &str, field: &str) -> bool {
    api_spec::api()
        .class(class)
        .is_some_and(|c| c.field(field).is_some())
}

/// Panics in debug builds, and so in every test, when `class` does not declare `field`: a read
/// of a misspelt field would otherwise find nothing and carry on with a default. Release builds
/// skip the lookup; a write of such a field fails at apply time in every build.
#[track_caller]
pub fn debug_assert_declared(class: &str, field: &str) {
    debug_assert!(
        is_declared(class, field),
        "class {class} does not declare a field {field}"
    );
}

/// What a deleted row leaves behind, so that `event.from` can report its deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub created: u64,
    pub deleted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm_row() -> Row {
        Row {
            class: "VM",
            fields: [("power_state".to_owned(), Value::str("Halted"))].into(),
            created: 1,
            modified: 1,
        }
    }

    /// A declared field reads as stored.
    #[test]
    fn declared_field_reads_as_stored() {
        assert_eq!(vm_row().str("power_state"), "Halted");
        assert!(is_declared("VM", "power_state"));
        assert!(!is_declared("VM", "power_sate"));
        assert!(!is_declared("NoSuchClass", "uuid"));
    }

    /// A read of a field the class does not declare (a typo) fails in a debug build.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "class VM does not declare a field power_sate")]
    fn undeclared_field_read_fails_in_debug_builds() {
        vm_row().str("power_sate");
    }
}
