//! `StorageError`: why the Raft store or the node could not go on, one variant per situation.

use db_schema::{ApplyError, DumpError};

/// Why the Raft store or the node could not go on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("raft store failed")]
    Redb(#[from] redb::Error),
    #[error("raft store io failed")]
    Io(#[from] std::io::Error),
    #[error("dump failed")]
    Dump(#[from] DumpError),
    #[error("raft store record could not be decoded")]
    Decode {
        record: &'static str,
        #[source]
        source: protobuf::ProtobufError,
    },
    #[error("raft store lacks a record")]
    Missing { record: &'static str },
    /// The stored log does not run on from the compaction point one index at a time.
    #[error("raft log has a gap")]
    LogGap { expected: u64, found: u64 },
    #[error("raft store exists already")]
    AlreadyBootstrapped,
    #[error("raft node id must not be zero")]
    NodeIdZero,
    #[error("no dump to start from")]
    NoDump,
    /// The log was compacted past the newest readable dump: the entries in between are gone.
    #[error("newest readable dump is older than the raft log")]
    DumpBehindLog { dump_index: u64, first_index: u64 },
    #[error("newest readable dump is newer than the raft log")]
    DumpAheadOfLog { dump_index: u64, last_index: u64 },
    /// The dump and the log disagree on the term of the dump's index: they are not one history.
    #[error("dump does not match the raft log")]
    DumpLogMismatch {
        index: u64,
        dump_term: u64,
        log_term: u64,
    },
    #[error("bootstrap txn refused")]
    BootstrapRefused(#[source] ApplyError),
    /// A committed entry holds no valid Txn: applying past it would fork the replicas.
    #[error("committed txn could not be decoded")]
    TxnDecode {
        index: u64,
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// A committed configuration entry could not be decoded.
    #[error("committed conf change could not be decoded")]
    ConfChangeDecode {
        index: u64,
        #[source]
        source: protobuf::ProtobufError,
    },
    /// A snapshot from the leader does not hold the position its metadata announces.
    #[error("snapshot does not match its metadata")]
    SnapshotMismatch {
        meta_index: u64,
        meta_term: u64,
        dump_index: u64,
        dump_term: u64,
    },
    #[error("raft refused")]
    Raft(#[from] raft::Error),
    #[error("raft thread panicked")]
    ThreadPanicked,
}

/// redb's specific errors, each folded into `redb::Error`.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StorageError {
            fn from(error: $error) -> Self {
                StorageError::Redb(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
