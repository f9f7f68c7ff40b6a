//! The undo log of the Txn being applied: every row slot and internal value as it was before the
//! Txn first touched it, so that a failing op can put the DB back. It costs in proportion to what
//! the Txn touches, never to the size of the DB.

use std::collections::{BTreeMap, BTreeSet};

use api_spec::Value;

use crate::db::{Db, Table};
use crate::row::{Row, Tombstone};

/// A row slot (live row, tombstone or neither) before the Txn touched it.
#[derive(Debug)]
struct SavedRow {
    class: String,
    r#ref: String,
    row: Option<Row>,
    tombstone: Option<Tombstone>,
}

/// The undo log of one Txn; dropped once the Txn is applied, or spent putting the DB back.
#[derive(Debug, Default)]
pub(crate) struct Undo {
    /// In first-touch order; one entry per slot.
    rows: Vec<SavedRow>,
    /// The refs in `rows`, by class.
    saved: BTreeMap<String, BTreeSet<String>>,
    /// One entry per key, with its value before the Txn (`None`: it had none).
    internals: BTreeMap<String, Option<Value>>,
}

impl Undo {
    /// Saves the slot `r` of `table` unless it was saved already in this Txn.
    pub(crate) fn save_row(&mut self, class: &str, r: &str, table: &Table) {
        let saved = self.saved.entry(class.to_owned()).or_default();
        if saved.contains(r) {
            return;
        }
        saved.insert(r.to_owned());
        self.rows.push(SavedRow {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            row: table.rows.get(r).cloned(),
            tombstone: table.tombstones.get(r).cloned(),
        });
    }

    /// Saves internal value `key` unless it was saved already in this Txn.
    pub(crate) fn save_internal(&mut self, key: &str, db: &Db) {
        if !self.internals.contains_key(key) {
            self.internals
                .insert(key.to_owned(), db.internals.get(key).cloned());
        }
    }

    /// Every row slot the Txn touched, as (class, ref), in first-touch order.
    pub(crate) fn touched(self) -> Vec<(String, String)> {
        self.rows.into_iter().map(|s| (s.class, s.r#ref)).collect()
    }

    /// Puts every saved slot and internal value back as it was.
    pub(crate) fn roll_back(self, db: &mut Db) {
        // Every touched row leaves the indexes before any saved row returns, so that a uuid
        // moved between two touched rows never meets itself in the uuid index.
        for saved in &self.rows {
            let table = table_of(db, &saved.class);
            table.remove_row(&saved.r#ref);
            table.tombstones.remove(&saved.r#ref);
        }
        for saved in self.rows {
            let table = table_of(db, &saved.class);
            if let Some(row) = saved.row {
                table.insert_row(&saved.r#ref, row);
            }
            if let Some(tombstone) = saved.tombstone {
                table.tombstones.insert(saved.r#ref, tombstone);
            }
        }
        for (key, value) in self.internals {
            match value {
                Some(value) => db.internals.insert(key, value),
                None => db.internals.remove(&key),
            };
        }
    }
}

fn table_of<'a>(db: &'a mut Db, class: &str) -> &'a mut Table {
    db.tables
        .get_mut(class)
        .expect("a slot is saved only from an existing table")
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use crate::db::Db;
    use crate::error::ApplyError;
    use crate::testing::{create, db_after, destroy, refs, set, txn, vbd, vm};
    use crate::txn::Op;

    /// `db` as it was, moved to the applied position of `after`.
    fn at_position_of(mut db: Db, after: &Db) -> Db {
        db.applied_index = after.applied_index();
        db.applied_term = after.applied_term();
        db
    }

    /// A Txn whose third op fails leaves no trace, in rows, indexes or relation sets; only the
    /// applied index moves.
    #[test]
    fn txn_whose_third_op_fails_leaves_no_trace() {
        let mut db = db_after([vm("a"), vm("b"), vbd("d", "a")]);
        let before = db.clone();
        let ops = [
            vm("c"),
            vbd("e", "a"),
            create("VBD", "d", &[]),
            set("VM", "b", "name_label", "renamed"),
        ];
        let error = db.apply(4, 1, &txn(ops)).expect_err("the third op fails");
        assert!(matches!(error, ApplyError::RowExists { .. }), "{error:?}");
        assert_eq!(db, at_position_of(before, &db));
        assert_eq!(db.applied_index(), 4);
        assert_eq!(db.ref_by_uuid("VM", "uuid-c"), None);
        assert!(db.refs_by_name_label("VM", "c").is_empty());
        assert_eq!(refs(&db, "VM", "a", "VBDs"), vec!["d"]);
        assert_eq!(db.get("VM", "a").map(|r| r.modified), Some(3));
    }

    /// A failed Txn brings back the rows it destroyed and the uuids it moved between rows.
    #[test]
    fn failed_txn_restores_destroyed_rows_and_moved_uuids() {
        let mut db = db_after([vm("a"), vm("b"), vbd("d", "a")]);
        let before = db.clone();
        let ops = [
            destroy("VBD", "d"),
            set("VM", "a", "uuid", "uuid-free"),
            set("VM", "b", "uuid", "uuid-a"),
            destroy("VM", "a"),
            set("VM", "ghost", "name_label", "x"),
        ];
        db.apply(4, 1, &txn(ops)).expect_err("the last op fails");
        assert_eq!(db, at_position_of(before, &db));
        assert_eq!(db.ref_by_uuid("VM", "uuid-a"), Some("a"));
        assert_eq!(db.tombstones("VM").count(), 0);
    }

    /// A failed Txn puts internal values back, including ones it created.
    #[test]
    fn failed_txn_restores_internal_values() {
        let put = |key: &str, value: &str| Op::PutInternal {
            key: key.to_owned(),
            value: Value::str(value),
        };
        let mut db = db_after([put("secret", "old")]);
        let before = db.clone();
        let ops = [
            put("secret", "new"),
            put("other", "x"),
            destroy("VM", "ghost"),
        ];
        db.apply(2, 1, &txn(ops)).expect_err("the last op fails");
        assert_eq!(db, at_position_of(before, &db));
        assert_eq!(db.internal("secret"), Some(&Value::str("old")));
        assert_eq!(db.internal("other"), None);
    }
}
