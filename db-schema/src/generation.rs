//! What `event.from` reads: the rows of a class changed since a generation.

use crate::db::Db;
use crate::row::Row;

/// How an object changed in a window of generations, collapsed to one change per object.
///
/// Ordered as `event.from` batches them: dels, mods, adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Del,
    Mod,
    Add,
}

/// One object's change since a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    pub class: &'static str,
    pub r#ref: &'a str,
    pub kind: ChangeKind,
    /// The row now; `None` for `Del`.
    pub row: Option<&'a Row>,
    /// The generation of the change (the row's `modified`, or the tombstone's `deleted`).
    pub generation: u64,
}

impl Db {
    /// The changes to rows of `class` after generation `since`: created after it → `Add`;
    /// else modified after it → `Mod`; deleted after it and created at or before it → `Del`;
    /// created and deleted inside the window → nothing. Sorted dels, mods, adds, then by
    /// generation.
    pub fn changes_since(&self, class: &str, since: u64) -> Vec<Change<'_>> {
        let Some(class) = api_spec::api().class(class).map(|c| c.name) else {
            return Vec::new();
        };
        let live = self.rows(class).filter_map(|(r, row)| {
            let kind = if row.created > since {
                ChangeKind::Add
            } else if row.modified > since {
                ChangeKind::Mod
            } else {
                return None;
            };
            Some(Change {
                class,
                r#ref: r,
                kind,
                row: Some(row),
                generation: row.modified,
            })
        });
        let deleted = self
            .tombstones(class)
            .filter(|(_, t)| t.deleted > since && t.created <= since)
            .map(|(r, t)| Change {
                class,
                r#ref: r,
                kind: ChangeKind::Del,
                row: None,
                generation: t.deleted,
            });
        let mut changes: Vec<Change<'_>> = deleted.chain(live).collect();
        // Stable: equal keys stay in ref order, as the tables hold them.
        changes.sort_by_key(|c| (c.kind, c.generation));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{db_after, destroy, set, vm};

    /// The changes as (ref, kind, generation).
    fn summary<'a>(changes: &[Change<'a>]) -> Vec<(&'a str, ChangeKind, u64)> {
        changes
            .iter()
            .map(|c| (c.r#ref, c.kind, c.generation))
            .collect()
    }

    /// A row created after the token is an add carrying its snapshot.
    #[test]
    fn row_created_after_the_token_is_an_add() {
        let db = db_after([vm("a"), vm("b")]);
        let changes = db.changes_since("VM", 1);
        assert_eq!(summary(&changes), vec![("b", ChangeKind::Add, 2)]);
        assert_eq!(changes[0].row, db.get("VM", "b"));
        assert_eq!(changes[0].class, "VM");
    }

    /// A row created before the token and changed after it is a mod.
    #[test]
    fn row_changed_after_the_token_is_a_mod() {
        let db = db_after([vm("a"), set("VM", "a", "name_label", "x")]);
        assert_eq!(
            summary(&db.changes_since("VM", 1)),
            vec![("a", ChangeKind::Mod, 2)]
        );
    }

    /// A row created and changed after the token is one add with its latest generation.
    #[test]
    fn repeated_changes_collapse_into_one_add() {
        let db = db_after([vm("a"), set("VM", "a", "name_label", "x")]);
        assert_eq!(
            summary(&db.changes_since("VM", 0)),
            vec![("a", ChangeKind::Add, 2)]
        );
    }

    /// A row created before the token and destroyed after it is a del without a snapshot.
    #[test]
    fn row_destroyed_after_the_token_is_a_del() {
        let db = db_after([vm("a"), destroy("VM", "a")]);
        let changes = db.changes_since("VM", 1);
        assert_eq!(summary(&changes), vec![("a", ChangeKind::Del, 2)]);
        assert_eq!(changes[0].row, None);
    }

    /// A row created and destroyed inside the window yields nothing.
    #[test]
    fn row_created_and_destroyed_inside_the_window_yields_nothing() {
        let db = db_after([vm("a"), vm("b"), destroy("VM", "b")]);
        assert_eq!(summary(&db.changes_since("VM", 1)), vec![]);
        assert_eq!(
            summary(&db.changes_since("VM", 0)),
            vec![("a", ChangeKind::Add, 1)]
        );
    }

    /// Nothing is reported for a token at or past the newest generation, or for an unknown class.
    #[test]
    fn an_up_to_date_token_or_unknown_class_yields_nothing() {
        let db = db_after([vm("a"), destroy("VM", "a"), vm("b")]);
        assert!(db.changes_since("VM", 3).is_empty());
        assert!(db.changes_since("spaceship", 0).is_empty());
    }

    /// Changes come as dels, then mods, then adds, each kind by generation.
    #[test]
    fn changes_are_ordered_dels_mods_adds_then_by_generation() {
        let db = db_after([
            vm("m2"),
            vm("d2"),
            vm("m1"),
            vm("d1"),
            set("VM", "m1", "name_label", "x"),
            destroy("VM", "d1"),
            set("VM", "m2", "name_label", "x"),
            destroy("VM", "d2"),
            vm("a2"),
            vm("a1"),
        ]);
        let expected = vec![
            ("d1", ChangeKind::Del, 6),
            ("d2", ChangeKind::Del, 8),
            ("m1", ChangeKind::Mod, 5),
            ("m2", ChangeKind::Mod, 7),
            ("a2", ChangeKind::Add, 9),
            ("a1", ChangeKind::Add, 10),
        ];
        assert_eq!(summary(&db.changes_since("VM", 4)), expected);
    }
}
