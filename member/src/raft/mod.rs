//! The pool DB as a Raft state machine: raft-rs, its log in redb, DB dumps as snapshots.
//!
//! A data dir holds `raft.redb` (the log, hard state and configuration history: its tables in
//! `tables.rs`, the store raft-rs reads in `storage.rs`) and `dumps/` (the DB as MessagePack,
//! written by `db_schema::dump`). `bootstrap` makes a new pool's store, starting from a snapshot
//! at index 1; `open` loads the newest dump, opens the store and starts the Raft thread
//! (`lifecycle.rs`, which opens the node again when its store fails; the node itself is
//! `node.rs`), which replays the log after the dump. The handle, `RaftDb`, is what the master
//! sees as `ReplicatedDb`; the proposals and read barriers it sends wait in `waiters.rs` until
//! the apply answers them. `snapshot.rs` loads the replica from a dump, writes dumps off the
//! Raft thread and compacts the log behind them; `error.rs` holds `StorageError`; `log.rs`
//! bridges raft-rs's slog records to tracing.
//!
//! Across hosts, `transport.rs` sends the node's messages through `peer::Peers`, which hands
//! inbound ones back as `Input::Step`; `voters.rs` is the leader's voter policy (caught-up
//! learners promoted, silent voters replaced) and `offline.rs` the store operations for a
//! stopped node (a joiner's reset, an emergency's single voter). `apply.rs` applies committed
//! entries.

mod apply;
mod error;
mod lifecycle;
mod log;
mod members;
mod node;
mod offline;
mod snapshot;
mod storage;
mod tables;
mod transport;
mod voters;
mod waiters;

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use db_schema::{Applied, Db, Txn, dump};
use master::db::{BoxFuture, ProposeError, ReplicatedDb};
use raft::eraftpb::{ConfState, HardState, SnapshotMetadata};
use tokio::sync::{oneshot, watch};

pub use self::error::StorageError;
use self::lifecycle::Shared;
pub use self::members::{RaftMembership, VoterPolicy};
use self::node::Input;
pub use self::offline::{force_single_voter, prepare_joiner};
pub use self::tables::LogSummary;
use self::transport::Transport;
use crate::peer::Peers;

/// The Raft store's file in a data dir.
pub(crate) const STORE_FILE: &str = "raft.redb";
/// The dumps' directory in a data dir.
pub(crate) const DUMPS_DIR: &str = "dumps";
/// Where `bootstrap` builds the store before renaming it into place.
const STORE_TEMP_FILE: &str = "raft.redb.tmp";
/// A new pool starts from a snapshot at this index and term, never 0: a group bootstrapped at
/// index 0 cannot take joiners later (raft-rs keeps that configuration outside the log).
const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;

/// Policy numbers of the Raft node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node's Raft id, unique in the pool; never 0.
    pub node_id: u64,
    /// How often raft-rs's logical clock ticks (100 ms).
    pub tick_interval: Duration,
    /// Ticks without a leader before a follower stands for election (10); the actual timeout
    /// is drawn from [election_ticks, 2 × election_ticks).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats (1); below `election_ticks`.
    pub heartbeat_ticks: usize,
    /// Applied entries between two dumps (10 000); the log is compacted behind the older of
    /// the two newest dumps.
    pub compact_after_entries: u64,
    /// Inputs taken from the queue before one Ready is handled (1 024): the most proposals
    /// one fsync covers.
    pub max_batch: usize,
    /// How long a node whose store failed waits before it opens the store again (2 s).
    pub store_retry_interval: Duration,
    /// The free bytes the data dir's disk must have before a failed node opens its store
    /// again (1 MiB).
    pub reopen_free_bytes: u64,
    /// The largest encoded Txn a proposal may carry (2 MiB).
    pub max_entry_bytes: usize,
}

/// The largest size of one append message to a peer, in bytes.
const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;

impl RaftConfig {
    /// raft-rs's configuration for a node whose replica has applied up to `applied`.
    fn raft_rs_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: MAX_SIZE_PER_MSG,
            ..raft::Config::default()
        }
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            node_id: 1,
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            compact_after_entries: 10_000,
            max_batch: 1024,
            store_retry_interval: Duration::from_secs(2),
            reopen_free_bytes: 1 << 20,
            max_entry_bytes: 2 << 20,
        }
    }
}

/// This node's view of the group, published after every Ready that changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    /// The leader's node id, 0 when unknown.
    pub leader_id: u64,
    pub is_leader: bool,
}

/// Whether this node's store works. A failed node opens its store again by itself (see
/// `node.rs`); meanwhile it does not lead, takes nothing from its peers and its replica stays
/// as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NodeHealth {
    #[default]
    Healthy,
    /// The store failed (or raft-rs panicked) for `reason`, and has not opened again since.
    Failed { reason: String },
}

/// Whether `dir` holds a Raft store (a finished `bootstrap`, or a node that has run).
pub fn exists(dir: &Path) -> bool {
    dir.join(STORE_FILE).exists()
}

/// Makes a new pool in `dir`: applies `txn` to an empty DB at index 1, term 1, writes it as a
/// dump, then the store: a log that starts after a snapshot at index 1, term 1, with `node_id`
/// the only voter, and hard state term 1, commit 1. The store is built under a temp name and
/// renamed into place, so a crash half-way leaves nothing `exists` sees.
pub fn bootstrap(dir: &Path, node_id: u64, txn: &Txn) -> Result<(), StorageError> {
    if node_id == 0 {
        return Err(StorageError::NodeIdZero);
    }
    if exists(dir) {
        return Err(StorageError::AlreadyBootstrapped);
    }
    let mut db = Db::new();
    db.apply(BOOTSTRAP_INDEX, BOOTSTRAP_TERM, txn)
        .map_err(StorageError::BootstrapRefused)?;
    fs::create_dir_all(dir)?;
    dump::write(&dir.join(DUMPS_DIR), &db)?;

    let mut snapshot = SnapshotMetadata {
        index: BOOTSTRAP_INDEX,
        term: BOOTSTRAP_TERM,
        ..SnapshotMetadata::default()
    };
    snapshot.set_conf_state(ConfState {
        voters: vec![node_id],
        ..ConfState::default()
    });
    let hard_state = HardState {
        term: BOOTSTRAP_TERM,
        commit: BOOTSTRAP_INDEX,
        ..HardState::default()
    };
    let temp = dir.join(STORE_TEMP_FILE);
    if temp.try_exists()? {
        fs::remove_file(&temp)?;
    }
    tables::create(&temp, &snapshot, &hard_state)?;
    fs::rename(&temp, dir.join(STORE_FILE))?;
    File::open(dir)?.sync_all()?;
    tracing::info!(node_id, "raft store bootstrapped");
    Ok(())
}

/// What the Raft store in `dir` holds; the node must not be running.
pub fn inspect(dir: &Path) -> Result<LogSummary, StorageError> {
    tables::summary(&dir.join(STORE_FILE))
}

/// Starts the Raft node of `dir`: loads the newest readable dump, opens the store, and starts
/// the Raft thread, which replays the log after the dump. A one-voter group is leader when
/// this returns. Without peers: messages to other nodes are dropped.
pub async fn open(dir: &Path, config: RaftConfig) -> Result<RaftNode, StorageError> {
    start(dir, config, Transport::none(), VoterPolicy::default()).await
}

/// `open`, in a pool: messages go through `peers`, which also hands this node the messages of
/// the others and follows the membership the replica holds; as leader, the node applies
/// `policy` to the voter set.
pub async fn open_with_peers(
    dir: &Path,
    config: RaftConfig,
    policy: VoterPolicy,
    peers: Peers,
) -> Result<RaftNode, StorageError> {
    let node = start(dir, config, Transport::new(peers.clone()), policy).await?;
    let inputs = node.db.inputs.clone();
    peers.set_raft_sink(Box::new(move |inbound| {
        // A stopped node takes nothing more.
        let _ = inputs.send(Input::from(inbound));
    }));
    peers.follow(Arc::clone(&node.db.db), node.db.applied.clone());
    Ok(node)
}

async fn start(
    dir: &Path,
    config: RaftConfig,
    transport: Transport,
    policy: VoterPolicy,
) -> Result<RaftNode, StorageError> {
    if config.node_id == 0 {
        return Err(StorageError::NodeIdZero);
    }
    let max_entry_bytes = config.max_entry_bytes;
    let (inputs, receiver) = mpsc::channel();
    let loopback = inputs.clone();
    let (opened_tx, opened) = oneshot::channel();
    let dir = dir.to_owned();
    let thread = thread::Builder::new()
        .name("oxapi-raft".into())
        .spawn(move || {
            lifecycle::run(
                &dir,
                (config, policy),
                transport,
                receiver,
                loopback,
                opened_tx,
            )
        })?;
    match opened.await {
        Ok(Ok(Shared {
            db,
            applied,
            status,
            health,
            compacted,
            log_commits,
            membership,
            reachable_voters,
            election_timeout,
        })) => Ok(RaftNode {
            db: Arc::new(RaftDb {
                inputs,
                db,
                applied,
                status,
                health,
                compacted,
                log_commits,
                membership,
                reachable_voters,
                election_timeout,
                max_entry_bytes,
            }),
            thread: Some(thread),
        }),
        Ok(Err(error)) => {
            // The thread has reported and returns at once.
            let _ = thread.join();
            Err(error)
        }
        Err(_) => Err(StorageError::ThreadPanicked),
    }
}

/// A running Raft node: the handle the rest of `member` uses, and the thread.
pub struct RaftNode {
    pub db: Arc<RaftDb>,
    thread: Option<JoinHandle<Result<(), StorageError>>>,
}

impl RaftNode {
    /// Stops the Raft loop and writes a final dump. Waiters still pending get `Stopped`. Also
    /// returns the error that stopped the loop earlier, if one did.
    pub async fn shutdown(mut self) -> Result<(), StorageError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        // A loop that stopped on an error is gone already; joining returns its error.
        let _ = self.db.inputs.send(Input::Stop { write_dump: true });
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| StorageError::ThreadPanicked)?
            .map_err(|_| StorageError::ThreadPanicked)?
    }
}

/// Dropping a node without `shutdown` stops its loop without a final dump, as a crash would:
/// a restart replays the log from the newest dump.
impl Drop for RaftNode {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.db.inputs.send(Input::Stop { write_dump: false });
            let _ = thread.join();
        }
    }
}

/// The replicated pool DB as the master uses it.
pub struct RaftDb {
    inputs: mpsc::Sender<Input>,
    db: Arc<RwLock<Db>>,
    applied: watch::Receiver<u64>,
    status: watch::Receiver<RaftStatus>,
    health: watch::Receiver<NodeHealth>,
    compacted: watch::Receiver<u64>,
    log_commits: Arc<AtomicU64>,
    membership: watch::Receiver<RaftMembership>,
    reachable_voters: Arc<AtomicUsize>,
    election_timeout: Duration,
    /// The largest encoded Txn a proposal may carry.
    max_entry_bytes: usize,
}

impl RaftDb {
    /// This node's role, term and leader, updated as they change.
    pub fn status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    /// Whether the store works, updated as it fails and opens again.
    pub fn health(&self) -> watch::Receiver<NodeHealth> {
        self.health.clone()
    }

    /// The index the log is compacted up to (it keeps the entries after it), updated after
    /// each compaction.
    pub fn compacted(&self) -> watch::Receiver<u64> {
        self.compacted.clone()
    }

    /// redb write transactions (each one fsync) committed since the node started.
    pub fn log_commits(&self) -> u64 {
        self.log_commits.load(Ordering::Relaxed)
    }
}

impl ReplicatedDb for RaftDb {
    fn propose(&self, txn: Txn) -> BoxFuture<'_, Result<Applied, ProposeError>> {
        Box::pin(async move {
            let data =
                rmp_serde::to_vec_named(&txn).expect("a Txn is plain data and always encodes");
            if data.len() > self.max_entry_bytes {
                return Err(ProposeError::TooLarge {
                    bytes: data.len(),
                    limit: self.max_entry_bytes,
                });
            }
            let (reply, outcome) = oneshot::channel();
            self.inputs
                .send(Input::Propose { data, reply })
                .map_err(|_| ProposeError::Stopped)?;
            outcome.await.unwrap_or(Err(ProposeError::Stopped))
        })
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async move {
            let (reply, outcome) = oneshot::channel();
            self.inputs
                .send(Input::ReadBarrier { reply })
                .map_err(|_| ProposeError::Stopped)?;
            outcome.await.unwrap_or(Err(ProposeError::Stopped))
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Db> {
        self.db
            .read()
            .expect("the raft thread never panics while holding the db lock")
    }

    fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    fn term(&self) -> u64 {
        self.status.borrow().term
    }
}

/// A Txn that sets the internal value `key`: the write the Raft tests replicate.
#[cfg(test)]
pub(crate) fn put(key: &str) -> Txn {
    Txn {
        preconditions: Vec::new(),
        ops: vec![db_schema::Op::PutInternal {
            key: key.into(),
            value: api_spec::Value::Int(1),
        }],
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A data dir is bootstrapped once: a second bootstrap is refused.
    #[test]
    fn second_bootstrap_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        bootstrap(dir.path(), 1, &put("first")).expect("bootstrap");
        assert!(matches!(
            bootstrap(dir.path(), 1, &put("second")),
            Err(StorageError::AlreadyBootstrapped)
        ));
        assert_eq!(inspect(dir.path()).expect("inspect").snapshot_index, 1);
    }

    /// A bootstrap that stopped before the store was renamed into place does not count, and a
    /// new one over its leftovers succeeds.
    #[test]
    fn bootstrap_over_a_half_done_one_succeeds() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join(DUMPS_DIR)).expect("dumps dir");
        fs::write(dir.path().join(STORE_TEMP_FILE), b"half a store").expect("leftover");
        assert!(!exists(dir.path()));
        bootstrap(dir.path(), 3, &put("pool")).expect("bootstrap");
        assert!(exists(dir.path()));
        assert!(!dir.path().join(STORE_TEMP_FILE).exists());
        let summary = inspect(dir.path()).expect("inspect");
        assert_eq!((summary.snapshot_index, summary.snapshot_term), (1, 1));
        assert_eq!((summary.term, summary.commit, summary.entries), (1, 1, 0));
    }

    /// A node that fails (here raft-rs panics on a heartbeat that commits past the end of its
    /// log) says so, opens its store again by itself and takes proposals once more, with
    /// nothing committed before lost.
    #[tokio::test]
    async fn a_failed_node_opens_again_by_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        bootstrap(dir.path(), 1, &put("pool")).expect("bootstrap");
        let config = RaftConfig {
            store_retry_interval: Duration::from_millis(100),
            ..RaftConfig::default()
        };
        let node = open(dir.path(), config).await.expect("open");
        node.db.propose(put("before")).await.expect("committed");
        let mut health = node.db.health();
        let mut heartbeat = raft::eraftpb::Message::default();
        heartbeat.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        (
            heartbeat.from,
            heartbeat.to,
            heartbeat.term,
            heartbeat.commit,
        ) = (2, 1, 100, 1_000);
        node.db
            .inputs
            .send(Input::Step(heartbeat))
            .expect("the node takes inputs");
        let within = Duration::from_secs(10);
        let failed = tokio::time::timeout(
            within,
            health.wait_for(|h| matches!(h, NodeHealth::Failed { .. })),
        )
        .await
        .expect("the failure is published")
        .expect("the node is there")
        .clone();
        let NodeHealth::Failed { reason } = failed else {
            unreachable!("waited for a failure")
        };
        assert!(reason.contains("panicked"), "{reason}");
        tokio::time::timeout(within, health.wait_for(|h| *h == NodeHealth::Healthy))
            .await
            .expect("opened again")
            .expect("the node is there");
        let mut status = node.db.status();
        tokio::time::timeout(within, status.wait_for(|s| s.is_leader))
            .await
            .expect("leads again")
            .expect("the node is there");
        node.db.propose(put("after")).await.expect("committed");
        let db = node.db.read();
        assert!(db.internal("before").is_some() && db.internal("after").is_some());
    }

    /// A bootstrap Txn that the DB refuses leaves no store behind.
    #[test]
    fn refused_bootstrap_txn_leaves_no_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut txn = put("pool");
        txn.preconditions.push(db_schema::Precondition::Exists {
            class: "pool".into(),
            r#ref: "OpaqueRef:none".into(),
        });
        assert!(matches!(
            bootstrap(dir.path(), 1, &txn),
            Err(StorageError::BootstrapRefused(_))
        ));
        assert!(!exists(dir.path()));
    }
}
