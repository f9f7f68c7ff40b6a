//! Writing the pool DB: proposing a Txn, and deciding again when a racing writer invalidated a
//! decision before it was applied. Every Txn goes through `operations::complete` first, so the
//! `allowed_operations` of what it touches are right when it is applied.

use db_schema::{Applied, ApplyError, Db, Txn};

use crate::Master;
use crate::db::ProposeError;
use crate::error::Error;

/// How many times a decision is taken again after losing a race before the call gives up.
const MAX_ATTEMPTS: u32 = 8;

impl Master {
    /// Proposes `txn` and waits until it is committed and applied.
    pub(crate) async fn commit(&self, txn: Txn) -> Result<Applied, Error> {
        let txn = crate::operations::complete(&self.db.read(), txn);
        Ok(self.db.propose(txn).await?)
    }

    /// Takes a decision on the replica as it is now and commits it. The Txn's preconditions
    /// state what the decision relied on; when one no longer holds at apply time (another
    /// writer won the race), the decision is taken again on the newer state, so the loser gets
    /// the error that state calls for (`HANDLE_INVALID`, `VM_BAD_POWER_STATE`, …). A decision
    /// to change nothing (an empty Txn) is not proposed.
    pub(crate) async fn decide<T>(
        &self,
        mut decide: impl FnMut(&Db) -> Result<(Txn, T), Error>,
    ) -> Result<(T, Applied), Error> {
        for _ in 0..MAX_ATTEMPTS {
            let (txn, out) = {
                let db = self.db.read();
                let (txn, out) = decide(&db)?;
                (crate::operations::complete(&db, txn), out)
            };
            if txn == Txn::default() {
                return Ok((out, Applied::default()));
            }
            match self.db.propose(txn).await {
                Ok(applied) => return Ok((out, applied)),
                Err(ProposeError::Apply(ApplyError::PreconditionFailed { .. })) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }
}
