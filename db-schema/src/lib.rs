//! The pool database as a deterministic state machine.
//!
//! Holds every row of every class that `api-spec` declares `in_db`, keyed by ref, with a uuid index
//! and a name index (`db.rs`, `index.rs`), plus a few internal values (the root password hash).
//! The only way to change it is a `Txn` (`txn.rs`), applied by `apply.rs` all or nothing: its
//! preconditions are checked at apply time, its ops run in order (`fields.rs` writes single
//! fields), and an undo log (`undo.rs`) puts back what a failing op's predecessors changed.
//! Applying the Txn committed at Raft index *i* stamps every row it touches with generation *i*;
//! deleted rows leave tombstones, and `generation.rs` turns both into what `event.from` reports.
//! One-to-many relations are kept in step by `relations.rs`. `dump.rs` writes and reads the whole
//! DB as MessagePack, the one module that touches files.
//!
//! No network and no clock: the Raft node in `member` decides what is applied and when. Start
//! reading at `Db::apply` in `apply.rs`.

pub mod apply;
pub mod db;
pub mod dump;
pub mod error;
mod fields;
pub mod generation;
mod index;
mod relations;
pub mod row;
pub mod txn;
mod undo;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use apply::Applied;
pub use db::Db;
pub use dump::Loaded;
pub use error::{ApplyError, DumpError};
pub use generation::{Change, ChangeKind};
pub use row::{Row, Tombstone};
pub use txn::{Op, Precondition, Txn};
