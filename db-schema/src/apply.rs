//! Applying a `Txn`: preconditions first, then ops in order, all or nothing.

use crate::db::Db;
use crate::error::ApplyError;
use crate::txn::Txn;

/// What an applied Txn did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The generation every touched row now carries: the Raft index of the Txn.
    pub generation: u64,
    /// Every row created, changed, touched or deleted, as (class, ref), including the many ends
    /// of relations that changed.
    pub touched: Vec<(String, String)>,
}

impl Db {
    /// Applies the Txn committed at Raft `index` in `term`. On error nothing changes except the
    /// applied position, which moves to `index` either way.
    pub fn apply(&mut self, index: u64, term: u64, txn: &Txn) -> Result<Applied, ApplyError> {
        let _ = (index, term, txn);
        todo!()
    }
}
