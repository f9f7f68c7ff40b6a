//! Secondary indexes: uuid → ref and name_label → refs, per table.
//!
//! They are never serialised: loading a dump rebuilds them from the rows, so they cannot drift
//! from what the rows say.

use std::collections::{BTreeMap, BTreeSet};

use crate::row::Row;

/// The indexes of one table. Only the table's own row methods change them, in step with the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Indexes {
    /// One entry per live row with a non-empty uuid; apply keeps uuids unique per table.
    by_uuid: BTreeMap<String, String>,
    /// One entry per distinct `name_label` of the live rows; never an empty set.
    by_name_label: BTreeMap<String, BTreeSet<String>>,
}

/// The uuid a row is indexed by: rows without one (or with "") are not in the uuid index. (The
/// indexes serve every class, declaring these fields or not, so they read `fields` directly.)
pub(crate) fn uuid_of(row: &Row) -> Option<&str> {
    row.fields
        .get("uuid")
        .and_then(|v| v.as_str())
        .filter(|u| !u.is_empty())
}

fn name_label_of(row: &Row) -> Option<&str> {
    row.fields.get("name_label").and_then(|v| v.as_str())
}

impl Indexes {
    /// The indexes of these rows, as if each had been inserted.
    pub(crate) fn build<'a>(rows: impl IntoIterator<Item = (&'a String, &'a Row)>) -> Indexes {
        let mut indexes = Indexes::default();
        for (r, row) in rows {
            indexes.insert(r, row);
        }
        indexes
    }

    pub(crate) fn insert(&mut self, r: &str, row: &Row) {
        if let Some(uuid) = uuid_of(row) {
            self.by_uuid.insert(uuid.to_owned(), r.to_owned());
        }
        if let Some(label) = name_label_of(row) {
            self.by_name_label
                .entry(label.to_owned())
                .or_default()
                .insert(r.to_owned());
        }
    }

    pub(crate) fn remove(&mut self, r: &str, row: &Row) {
        if let Some(uuid) = uuid_of(row)
            && self.by_uuid.get(uuid).is_some_and(|held| held == r)
        {
            self.by_uuid.remove(uuid);
        }
        if let Some(label) = name_label_of(row)
            && let Some(refs) = self.by_name_label.get_mut(label)
        {
            refs.remove(r);
            if refs.is_empty() {
                self.by_name_label.remove(label);
            }
        }
    }

    pub(crate) fn by_uuid(&self, uuid: &str) -> Option<&str> {
        self.by_uuid.get(uuid).map(String::as_str)
    }

    /// The refs named `label`, sorted.
    pub(crate) fn by_name_label(&self, label: &str) -> Vec<&str> {
        self.by_name_label
            .get(label)
            .map(|refs| refs.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::dump;
    use crate::testing::{db_after, destroy, set, vm};

    /// Setting a uuid moves the row in the uuid index; the old uuid finds nothing.
    #[test]
    fn set_of_uuid_moves_the_uuid_index() {
        let db = db_after([vm("a"), set("VM", "a", "uuid", "uuid-new")]);
        assert_eq!(db.ref_by_uuid("VM", "uuid-new"), Some("a"));
        assert_eq!(db.ref_by_uuid("VM", "uuid-a"), None);
    }

    /// Setting a name_label moves the row between names; several rows may share a name.
    #[test]
    fn set_of_name_label_moves_the_name_index() {
        let db = db_after([vm("a"), vm("b"), vm("c"), set("VM", "a", "name_label", "b")]);
        assert_eq!(db.refs_by_name_label("VM", "b"), vec!["a", "b"]);
        assert!(db.refs_by_name_label("VM", "a").is_empty());
        assert_eq!(db.refs_by_name_label("VM", "c"), vec!["c"]);
    }

    /// A destroyed row leaves both indexes, and its uuid may be used again.
    #[test]
    fn destroy_removes_the_row_from_both_indexes() {
        let db = db_after([
            vm("a"),
            destroy("VM", "a"),
            crate::testing::create("VM", "b", &[("uuid", "uuid-a".into())]),
        ]);
        assert_eq!(db.ref_by_uuid("VM", "uuid-a"), Some("b"));
        assert!(db.refs_by_name_label("VM", "a").is_empty());
    }

    /// Indexes are not stored in dumps but rebuilt when one is loaded.
    #[test]
    fn indexes_are_rebuilt_after_load() {
        let db = db_after([vm("a"), vm("b"), set("VM", "b", "name_label", "a")]);
        let bytes = dump::to_bytes(&db).expect("encodes");
        let loaded = dump::from_bytes(&bytes).expect("decodes");
        assert_eq!(loaded.ref_by_uuid("VM", "uuid-b"), Some("b"));
        assert_eq!(loaded.refs_by_name_label("VM", "a"), vec!["a", "b"]);
        assert_eq!(loaded, db);
    }
}
