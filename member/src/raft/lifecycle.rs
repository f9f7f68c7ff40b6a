//! The Raft thread's body: it opens the node and runs it until stopped. A node whose store fails
//! (redb cannot write: a full or read-only disk) or that panics (raft-rs finding its log changed
//! under it) does not take the thread down: the failure is published (`NodeHealth::Failed`, and
//! the status of a node that does not lead), waiters are failed, the store is closed, and every
//! `store_retry_interval` the node is opened again from the newest dump and the store, as at a
//! start, with the same channels (`Outlets`); inputs that come meanwhile are answered as a node
//! that does not lead answers them. Once open again, it catches up from the leader.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use db_schema::Db;
use master::db::ProposeError;
use tokio::sync::{oneshot, watch};

use crate::error_chain::error_chain;
use crate::raft::node::{Input, Node};
use crate::raft::transport::Transport;
use crate::raft::{NodeHealth, RaftConfig, RaftMembership, RaftStatus, StorageError, VoterPolicy};

/// What the Raft thread shares with the handles, once open.
pub(crate) struct Shared {
    pub db: Arc<RwLock<Db>>,
    pub applied: watch::Receiver<u64>,
    pub status: watch::Receiver<RaftStatus>,
    pub health: watch::Receiver<NodeHealth>,
    pub compacted: watch::Receiver<u64>,
    pub log_commits: Arc<AtomicU64>,
    pub membership: watch::Receiver<RaftMembership>,
    pub reachable_voters: Arc<AtomicUsize>,
    pub election_timeout: Duration,
}

/// What outlives one opening of the store: the queue of inputs, the transport, the replica's
/// lock and the senders the handles watch. A node that fails gives them back
/// (`Node::into_outlets`) for the next opening.
pub(super) struct Outlets {
    pub(super) inputs: mpsc::Receiver<Input>,
    pub(super) loopback: mpsc::Sender<Input>,
    pub(super) transport: Transport,
    pub(super) db: Arc<RwLock<Db>>,
    pub(super) log_commits: Arc<AtomicU64>,
    pub(super) applied_tx: watch::Sender<u64>,
    pub(super) status_tx: watch::Sender<RaftStatus>,
    pub(super) health_tx: watch::Sender<NodeHealth>,
    pub(super) compacted_tx: watch::Sender<u64>,
    pub(super) membership_tx: watch::Sender<RaftMembership>,
    pub(super) reachable_voters: Arc<AtomicUsize>,
}

impl Outlets {
    /// New channels (their values are set when a node opens) and the handles' ends of them.
    pub(super) fn new(
        config: &RaftConfig,
        inputs: mpsc::Receiver<Input>,
        loopback: mpsc::Sender<Input>,
        transport: Transport,
    ) -> (Outlets, Shared) {
        let db = Arc::new(RwLock::new(Db::new()));
        let log_commits = Arc::new(AtomicU64::new(0));
        let reachable_voters = Arc::new(AtomicUsize::new(0));
        let (applied_tx, applied) = watch::channel(0);
        let (status_tx, status) = watch::channel(RaftStatus::default());
        let (health_tx, health) = watch::channel(NodeHealth::Healthy);
        let (compacted_tx, compacted) = watch::channel(0);
        let (membership_tx, membership) = watch::channel(RaftMembership::default());
        let election_timeout =
            config.tick_interval * u32::try_from(config.election_ticks).unwrap_or(u32::MAX);
        let shared = Shared {
            db: Arc::clone(&db),
            applied,
            status,
            health,
            compacted,
            log_commits: Arc::clone(&log_commits),
            membership,
            reachable_voters: Arc::clone(&reachable_voters),
            election_timeout,
        };
        let outlets = Outlets {
            inputs,
            loopback,
            transport,
            db,
            log_commits,
            applied_tx,
            status_tx,
            health_tx,
            compacted_tx,
            membership_tx,
            reachable_voters,
        };
        (outlets, shared)
    }

    /// Publishes that the node failed for `reason`: it no longer leads (its last term and
    /// leader stay known, so this host can still reach the master).
    pub(super) fn publish_failure(&self, reason: &str) {
        self.status_tx
            .send_modify(|status| status.is_leader = false);
        self.health_tx.send_replace(NodeHealth::Failed {
            reason: reason.to_owned(),
        });
    }

    /// Waits `interval` while the node is down, answering inputs as a node that does not
    /// lead; `false` when asked to stop meanwhile.
    fn wait_down(&self, interval: Duration) -> bool {
        let until = Instant::now() + interval;
        loop {
            match self
                .inputs
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(Input::Stop { .. }) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(input) => refuse(input),
                Err(RecvTimeoutError::Timeout) => return true,
            }
        }
    }
}

/// Answers an input as a node that does not lead (and takes nothing from peers) answers it.
fn refuse(input: Input) {
    match input {
        Input::Propose { reply, .. } | Input::ConfChange { reply, .. } => {
            let _ = reply.send(Err(ProposeError::NotLeader));
        }
        Input::ReadBarrier { reply } => {
            let _ = reply.send(Err(ProposeError::NotLeader));
        }
        Input::TransferLeader { reply, .. } => {
            let _ = reply.send(Err(ProposeError::NotLeader));
        }
        Input::DumpWritten { .. }
        | Input::Stop { .. }
        | Input::Step(_)
        | Input::SnapshotSent { .. } => {}
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The body of the Raft thread: opens the node, reports through `opened`, runs until stopped;
/// a node that fails is opened again every `store_retry_interval` until it works or is stopped.
/// Returns the error of a clean stop that failed (its final dump).
pub(crate) fn run(
    dir: &Path,
    config: (RaftConfig, VoterPolicy),
    transport: Transport,
    inputs: mpsc::Receiver<Input>,
    loopback: mpsc::Sender<Input>,
    opened: oneshot::Sender<Result<Shared, StorageError>>,
) -> Result<(), StorageError> {
    let (outlets, shared) = Outlets::new(&config.0, inputs, loopback, transport);
    let mut node = match Node::open(dir, config.clone(), outlets) {
        Ok(node) => {
            if opened.send(Ok(shared)).is_err() {
                return Ok(());
            }
            node
        }
        Err((error, _)) => {
            // The caller of `open` receives the error.
            let _ = opened.send(Err(error));
            return Ok(());
        }
    };
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| node.run()));
        let is_stopping = node.stop.is_some();
        let reason = match outcome {
            Ok(Ok(())) => {
                node.fail_waiters(&ProposeError::Stopped);
                return Ok(());
            }
            Ok(Err(error)) if is_stopping => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "raft node stopped"
                );
                node.fail_waiters(&ProposeError::Stopped);
                return Err(error);
            }
            Ok(Err(error)) => error_chain(&error),
            Err(panic) => format!("raft panicked: {}", panic_text(panic.as_ref())),
        };
        tracing::error!(reason = %reason, applied = node.applied, "raft node failed; it will be opened again");
        if is_stopping {
            node.fail_waiters(&ProposeError::Stopped);
            return Err(StorageError::ThreadPanicked);
        }
        let outlets = node.into_outlets(&reason);
        node = match reopen(dir, &config, outlets) {
            Some(node) => node,
            None => return Ok(()),
        };
    }
}

/// Opens a failed node again every `store_retry_interval` until it opens and can write
/// (`None` when stopped first). It waits for `reopen_free_bytes` on the data dir's disk first:
/// a store that failed on a full disk would only fail again at its next write.
fn reopen(dir: &Path, config: &(RaftConfig, VoterPolicy), mut outlets: Outlets) -> Option<Node> {
    loop {
        if !outlets.wait_down(config.0.store_retry_interval) {
            return None;
        }
        match crate::space::free_bytes(dir) {
            Ok(free) if free < config.0.reopen_free_bytes => {
                tracing::debug!(free, "raft node waits for room on its disk");
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "cannot read the data dir's free space"),
        }
        let opened = Node::open(dir, config.clone(), outlets).and_then(|mut node| {
            // Opening reads; this proves the store takes writes again.
            match node.raw.mut_store().persist(None, &[], None) {
                Ok(()) => Ok(node),
                Err(error) => {
                    let reason = error_chain(&error);
                    Err((error, Box::new(node.into_outlets(&reason))))
                }
            }
        });
        match opened {
            Ok(node) => {
                tracing::info!(
                    applied = node.applied,
                    "raft node opened again after a failure"
                );
                node.out.health_tx.send_replace(NodeHealth::Healthy);
                return Some(node);
            }
            Err((error, given_back)) => {
                let reason = error_chain(&error);
                tracing::warn!(reason = %reason, "raft node still cannot open");
                given_back.publish_failure(&reason);
                outlets = *given_back;
            }
        }
    }
}
