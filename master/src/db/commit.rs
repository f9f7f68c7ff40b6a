//! Writing the pool DB: proposing a Txn, and deciding again when a racing writer invalidated a
//! decision before it was applied. Every Txn goes through `operations::complete` first, so the
//! `allowed_operations` of what it touches are right when it is applied; once it is applied,
//! the agents of the running VMs whose spec it changed get the new spec (`spec_push`).

use db_schema::{Applied, ApplyError, Db, Txn};

use crate::Master;
use crate::db::ProposeError;
use crate::error::Error;

/// How many times a decision is taken again after losing a race before the call gives up.
const MAX_ATTEMPTS: u32 = 8;

impl Master {
    /// Proposes `txn` and waits until it is committed and applied.
    pub(crate) async fn commit(&self, txn: Txn) -> Result<Applied, Error> {
        let txn = crate::vm::operations::complete(&self.db.read(), txn);
        let pushed = crate::vm::spec_push::written_vms(&txn);
        let applied = self.db.propose(txn).await?;
        crate::vm::spec_push::after_write(self, &pushed).await;
        Ok(applied)
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
                (crate::vm::operations::complete(&db, txn), out)
            };
            if txn == Txn::default() {
                return Ok((out, Applied::default()));
            }
            let pushed = crate::vm::spec_push::written_vms(&txn);
            match self.db.propose(txn).await {
                Ok(applied) => {
                    crate::vm::spec_push::after_write(self, &pushed).await;
                    return Ok((out, applied));
                }
                Err(ProposeError::Apply(ApplyError::PreconditionFailed { .. })) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended {
            attempts: MAX_ATTEMPTS,
        })
    }
}
