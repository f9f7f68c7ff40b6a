//! The pool database as a deterministic state machine.
//!
//! Holds every row of every class that `api-spec` declares `in_db`, keyed by ref, with a uuid index
//! and a name index (`db.rs`, `index.rs`). The only way to change it is a `Txn` (`txn.rs`), applied
//! by `apply.rs` all or nothing, with its preconditions checked at apply time. Applying the Txn
//! committed at Raft index *i* stamps every row it touches with generation *i* (`generation.rs`);
//! deleted rows leave tombstones. One-to-many relations are kept in step by `relations.rs`.
//! `dump.rs` writes and reads the whole DB as MessagePack, the one module that touches files.
//!
//! No network and no clock: the Raft node in `member` decides what is applied and when.

pub mod apply;
pub mod db;
pub mod dump;
pub mod error;
pub mod generation;
pub mod index;
pub mod relations;
pub mod row;
pub mod txn;

pub use apply::Applied;
pub use db::Db;
pub use error::{ApplyError, DumpError};
pub use generation::{Change, ChangeKind};
pub use row::{Row, Tombstone};
pub use txn::{Op, Precondition, Txn};
