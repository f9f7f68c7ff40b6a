//! The pool DB as the master sees it. `ReplicatedDb` (here) is how the master reaches it:
//! `member` implements it with Raft, `testing.rs` with an in-memory double. `commit.rs` turns a
//! handler's decision into a Txn that is applied (deciding again after a lost race);
//! `record.rs` holds rows and records (fresh refs and uuids, the record a client sees).

mod commit;
pub(crate) mod record;

use std::future::Future;
use std::pin::Pin;
use std::sync::RwLockReadGuard;

use db_schema::{Applied, ApplyError, Db, Txn};
use tokio::sync::watch;

/// A boxed future, so that `ReplicatedDb` can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProposeError {
    /// It was committed and applied, and the apply refused it; nothing changed.
    #[error("txn refused at apply")]
    Apply(#[from] ApplyError),
    /// This host is not the Raft leader (or stopped being it before the outcome was known).
    #[error("not the raft leader")]
    NotLeader,
    /// The Raft node has stopped.
    #[error("raft node stopped")]
    Stopped,
    /// The encoded Txn is larger than an entry may be; nothing was proposed.
    #[error("txn of {bytes} bytes is over the entry limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
}

/// The replicated pool database, as the master sees it.
pub trait ReplicatedDb: Send + Sync + 'static {
    /// Proposes `txn`; resolves once it is committed by the quorum, fsynced and applied to the
    /// local replica, with the outcome of the apply.
    fn propose(&self, txn: Txn) -> BoxFuture<'_, Result<Applied, ProposeError>>;

    /// Resolves once this host has confirmed it is still the leader and its replica has applied
    /// everything committed before the call (ReadIndex); reads after it are linearizable.
    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>>;

    /// The local replica. Never hold the guard across an `.await`.
    fn read(&self) -> RwLockReadGuard<'_, Db>;

    /// The applied index of the local replica, updated after every apply.
    fn applied(&self) -> watch::Receiver<u64>;

    /// The Raft term this host knows; the master stamps the actions it sends to agents with it.
    fn term(&self) -> u64;
}
