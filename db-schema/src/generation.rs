//! What `event.from` reads: the rows of a class changed since a generation.

use crate::db::Db;
use crate::row::Row;

/// How an object changed in a window of generations, collapsed to one change per object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Mod,
    Del,
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
        let _ = (class, since);
        todo!()
    }
}
