//! `Db`: the tables, their indexes, internal values and the applied position.

use std::collections::BTreeMap;

use api_spec::Value;
use serde::{Deserialize, Serialize};

use crate::index::Indexes;
use crate::row::{Row, Tombstone};

/// The whole pool database. Every replica holds one; only `apply` (and `advance`) change it.
///
/// Everything is kept in ordered maps, so two replicas that applied the same entries are equal
/// value for value and serialise to the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredDb")]
pub struct Db {
    /// One table per `in_db` class of the API, by class name; loading adds the tables of classes
    /// that the dump predates.
    pub(crate) tables: BTreeMap<String, Table>,
    /// Values that are not part of the API, by key.
    pub(crate) internals: BTreeMap<String, Value>,
    /// The generation of the newest change is at most this.
    pub(crate) applied_index: u64,
    pub(crate) applied_term: u64,
}

/// The rows of one class and the tombstones of those destroyed.
///
/// Tombstones are kept for ever, so that `event.from` can report a deletion to a watcher with
/// any older token; a later change may prune them behind a floor generation that every watcher
/// has passed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredTable")]
pub(crate) struct Table {
    pub(crate) rows: BTreeMap<String, Row>,
    /// A ref is never live and tombstoned at once.
    pub(crate) tombstones: BTreeMap<String, Tombstone>,
    /// Always what `Indexes::build(&rows)` gives.
    #[serde(skip)]
    pub(crate) index: Indexes,
}

/// A table as it is serialised: the indexes are rebuilt when it is read.
#[derive(Deserialize)]
struct StoredTable {
    rows: BTreeMap<String, Row>,
    tombstones: BTreeMap<String, Tombstone>,
}

impl From<StoredTable> for Table {
    fn from(stored: StoredTable) -> Table {
        Table {
            index: Indexes::build(&stored.rows),
            rows: stored.rows,
            tombstones: stored.tombstones,
        }
    }
}

/// A DB as it is serialised: tables of classes added since are created empty when it is read.
#[derive(Deserialize)]
struct StoredDb {
    tables: BTreeMap<String, Table>,
    internals: BTreeMap<String, Value>,
    applied_index: u64,
    applied_term: u64,
}

impl From<StoredDb> for Db {
    fn from(stored: StoredDb) -> Db {
        let mut tables = stored.tables;
        for (name, table) in &mut tables {
            let class = api_spec::api().class(name).map_or("", |c| c.name);
            for row in table.rows.values_mut() {
                row.class = class;
            }
        }
        for class in db_classes() {
            tables.entry(class.to_owned()).or_default();
        }
        Db {
            tables,
            internals: stored.internals,
            applied_index: stored.applied_index,
            applied_term: stored.applied_term,
        }
    }
}

/// The names of the classes that have a table.
fn db_classes() -> impl Iterator<Item = &'static str> {
    api_spec::api()
        .classes
        .iter()
        .filter(|c| c.in_db)
        .map(|c| c.name)
}

impl Table {
    /// Inserts a live row, indexing it. The ref must be neither live nor tombstoned.
    pub(crate) fn insert_row(&mut self, r: &str, row: Row) {
        self.index.insert(r, &row);
        self.rows.insert(r.to_owned(), row);
    }

    /// Removes a live row and its index entries.
    pub(crate) fn remove_row(&mut self, r: &str) -> Option<Row> {
        let row = self.rows.remove(r)?;
        self.index.remove(r, &row);
        Some(row)
    }

    /// Replaces one field of a live row, keeping the indexes in step; returns the old value.
    pub(crate) fn set_field(&mut self, r: &str, field: &str, value: Value) -> Option<Value> {
        let row = self.rows.get_mut(r)?;
        let is_indexed = field == "uuid" || field == "name_label";
        if is_indexed {
            self.index.remove(r, row);
        }
        let old = row.fields.insert(field.to_owned(), value);
        if is_indexed {
            self.index.insert(r, row);
        }
        old
    }
}

impl Db {
    /// An empty DB with one empty table per `in_db` class of the API.
    pub fn new() -> Db {
        Db {
            tables: db_classes()
                .map(|c| (c.to_owned(), Table::default()))
                .collect(),
            internals: BTreeMap::new(),
            applied_index: 0,
            applied_term: 0,
        }
    }

    /// The Raft index of the last entry applied; the generation of the newest change.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The Raft term of the last entry applied.
    pub fn applied_term(&self) -> u64 {
        self.applied_term
    }

    /// Records that the entry at `index` (which changed nothing: an empty or configuration
    /// entry) has been applied.
    pub fn advance(&mut self, index: u64, term: u64) {
        debug_assert!(
            index > self.applied_index,
            "entries are applied in log order"
        );
        self.applied_index = index;
        self.applied_term = term;
    }

    pub(crate) fn table(&self, class: &str) -> Option<&Table> {
        self.tables.get(class)
    }

    /// The live row `r` of `class`.
    pub fn get(&self, class: &str, r#ref: &str) -> Option<&Row> {
        self.table(class)?.rows.get(r#ref)
    }

    /// What the destroyed row `r` of `class` left behind.
    pub fn tombstone(&self, class: &str, r#ref: &str) -> Option<&Tombstone> {
        self.table(class)?.tombstones.get(r#ref)
    }

    /// Every live row of a class, by ref.
    pub fn rows(&self, class: &str) -> impl Iterator<Item = (&str, &Row)> {
        self.table(class)
            .into_iter()
            .flat_map(|t| t.rows.iter().map(|(r, row)| (r.as_str(), row)))
    }

    /// Every tombstone of a class, by ref.
    pub fn tombstones(&self, class: &str) -> impl Iterator<Item = (&str, &Tombstone)> {
        self.table(class)
            .into_iter()
            .flat_map(|t| t.tombstones.iter().map(|(r, t)| (r.as_str(), t)))
    }

    /// The number of live rows of a class.
    pub fn count(&self, class: &str) -> usize {
        self.table(class).map_or(0, |t| t.rows.len())
    }

    /// The live row of `class` whose uuid is `uuid`.
    pub fn ref_by_uuid(&self, class: &str, uuid: &str) -> Option<&str> {
        self.table(class)?.index.by_uuid(uuid)
    }

    /// The refs of the rows whose `name_label` is exactly `label`, sorted.
    pub fn refs_by_name_label(&self, class: &str, label: &str) -> Vec<&str> {
        self.table(class)
            .map(|t| t.index.by_name_label(label))
            .unwrap_or_default()
    }

    /// An internal value (not part of the API), set by `Op::PutInternal`.
    pub fn internal(&self, key: &str) -> Option<&Value> {
        self.internals.get(key)
    }

    /// Every internal value, for tests and dumps.
    pub fn internals(&self) -> &BTreeMap<String, Value> {
        &self.internals
    }
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{db_after, vm};

    /// A new DB has one empty table per in_db class of the API and nothing applied.
    #[test]
    fn new_db_has_an_empty_table_per_in_db_class() {
        let db = Db::new();
        let expected: Vec<&str> = db_classes().collect();
        assert!(expected.contains(&"VM"), "{expected:?}");
        assert_eq!(db.tables.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut sorted = expected.clone();
            sorted.sort_unstable();
            sorted
        });
        assert!(db.tables.values().all(|t| t.rows.is_empty()));
        assert_eq!((db.applied_index(), db.applied_term()), (0, 0));
    }

    /// `advance` moves the applied position and changes nothing else.
    #[test]
    fn advance_moves_the_position_only() {
        let mut db = db_after([vm("a")]);
        let before = db.clone();
        db.advance(9, 3);
        assert_eq!((db.applied_index(), db.applied_term()), (9, 3));
        assert_eq!((db.tables, db.internals), (before.tables, before.internals));
    }

    /// Reads of a class without a table find nothing rather than failing.
    #[test]
    fn reads_of_an_unknown_class_find_nothing() {
        let db = db_after([vm("a")]);
        assert_eq!(db.get("spaceship", "a"), None);
        assert_eq!(db.rows("spaceship").count(), 0);
        assert_eq!(db.count("spaceship"), 0);
        assert_eq!(db.ref_by_uuid("spaceship", "uuid-a"), None);
        assert!(db.refs_by_name_label("spaceship", "a").is_empty());
    }

    /// A stored DB that lacks the table of a class added since gets it, empty, when read.
    #[test]
    fn reading_adds_the_tables_of_classes_added_since() {
        let mut db = db_after([vm("a")]);
        db.tables.remove("VBD");
        let bytes = rmp_serde::to_vec_named(&db).expect("encodes");
        let read: Db = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(read.count("VBD"), 0);
        assert!(read.tables.contains_key("VBD"));
        assert_eq!(read.get("VM", "a"), db.get("VM", "a"));
    }
}
