//! `Db`: the tables, their indexes, internal values and the applied position.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

use crate::row::{Row, Tombstone};

/// The whole pool database. Every replica holds one; only `apply` changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Db {
    _todo: (),
}

impl Db {
    /// An empty DB with one empty table per `in_db` class of the API.
    pub fn new() -> Db {
        todo!()
    }

    /// The Raft index of the last entry applied; the generation of the newest change.
    pub fn applied_index(&self) -> u64 {
        todo!()
    }

    /// The Raft term of the last entry applied.
    pub fn applied_term(&self) -> u64 {
        todo!()
    }

    /// Records that the entry at `index` (which changed nothing: an empty or configuration
    /// entry) has been applied.
    pub fn advance(&mut self, index: u64, term: u64) {
        let _ = (index, term);
        todo!()
    }

    pub fn get(&self, class: &str, r#ref: &str) -> Option<&Row> {
        let _ = (class, r#ref);
        todo!()
    }

    /// Every live row of a class, by ref.
    pub fn rows(&self, class: &str) -> impl Iterator<Item = (&str, &Row)> {
        let _ = class;
        std::iter::empty::<(&str, &Row)>()
    }

    /// Every tombstone of a class, by ref.
    pub fn tombstones(&self, class: &str) -> impl Iterator<Item = (&str, &Tombstone)> {
        let _ = class;
        std::iter::empty::<(&str, &Tombstone)>()
    }

    /// The number of live rows of a class.
    pub fn count(&self, class: &str) -> usize {
        let _ = class;
        todo!()
    }

    pub fn ref_by_uuid(&self, class: &str, uuid: &str) -> Option<&str> {
        let _ = (class, uuid);
        todo!()
    }

    /// The refs of the rows whose `name_label` is exactly `label`, sorted.
    pub fn refs_by_name_label(&self, class: &str, label: &str) -> Vec<&str> {
        let _ = (class, label);
        todo!()
    }

    /// An internal value (not part of the API), set by `Op::PutInternal`.
    pub fn internal(&self, key: &str) -> Option<&Value> {
        let _ = key;
        todo!()
    }

    /// Every internal value, for tests and dumps.
    pub fn internals(&self) -> &BTreeMap<String, Value> {
        todo!()
    }
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}
