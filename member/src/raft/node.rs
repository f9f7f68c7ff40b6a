//! The Raft loop: one OS thread owns the `RawNode` (with its `LogStore`) and takes every input
//! (proposals, read barriers, dump outcomes, stop) from one channel.
//!
//! A turn: wait for an input or the next tick; take every other queued input too, up to
//! `max_batch`, so that one fsync covers them all (group commit); tick when due; then handle
//! each Ready in this order:
//! 1. messages a leader may send before persisting (appends to followers) go out;
//! 2. a snapshot from the leader is staged in redb, written as a dump, and replaces the replica;
//! 3. the snapshot's position, the entries and the hard state go into one redb transaction;
//! 4. fsync: that transaction's commit returns once durable;
//! 5. persisted messages (votes, append responses) go out, read states are recorded;
//! 6. committed entries are applied and their waiters answered;
//! 7. advance;
//! 8. the light ready: its commit index is recorded, its messages go out, its committed entries
//!    are applied;
//! 9. advance_apply.
//!
//! Nothing steps, proposes or campaigns between `ready()` and `advance()`: inputs are taken only
//! between Readys. The peers a Ready's messages could not reach are reported to raft-rs after
//! it. The leader's voter policy (`voters.rs`) runs at each tick; the apply is in `apply.rs`.
//!
//! The thread's body, and what it does when the node fails, is `lifecycle.rs`.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use db_schema::{Db, DumpError};
use master::db::ProposeError;
use raft::eraftpb::{ConfChangeV2, Message, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::oneshot;

use crate::error_chain::error_chain;
use crate::raft::lifecycle::Outlets;
use crate::raft::snapshot::{self, DumpPosition, Dumps};
use crate::raft::storage::LogStore;
use crate::raft::transport::Undelivered;
use crate::raft::waiters::{Proposals, ProposeReply, ReadReply, Reads, context};
use crate::raft::{
    DUMPS_DIR, RaftConfig, RaftMembership, RaftStatus, STORE_FILE, StorageError, VoterPolicy, log,
};

/// What the Raft thread is asked to do.
pub(crate) enum Input {
    /// Propose `data`, an encoded `Txn`, and answer once it is applied.
    Propose { data: Vec<u8>, reply: ProposeReply },
    /// Answer once leadership is confirmed and everything committed before is applied.
    ReadBarrier { reply: ReadReply },
    /// A dump started by the loop is written (or failed).
    DumpWritten {
        position: DumpPosition,
        outcome: Result<(), DumpError>,
    },
    /// Stop the loop; with `write_dump`, after a final dump.
    Stop { write_dump: bool },
    /// A message from a peer.
    Step(Message),
    /// A snapshot message to `to` left on its stream (`finished`), or was lost.
    SnapshotSent { to: u64, finished: bool },
    /// Propose a configuration change (as leader, once no other is pending) and answer once
    /// applied; answered at once when it changes nothing.
    ConfChange {
        change: ConfChangeV2,
        reply: ProposeReply,
    },
    /// Start handing leadership to `node`; answered once started.
    TransferLeader {
        node: u64,
        reply: oneshot::Sender<Result<(), ProposeError>>,
    },
}

/// The state the Raft thread owns.
pub(super) struct Node {
    pub(super) raw: RawNode<LogStore>,
    pub(super) config: RaftConfig,
    pub(super) policy: VoterPolicy,
    /// The channels and the replica, which outlive this opening of the store.
    pub(super) out: Outlets,
    /// What the current Ready could not send.
    pub(super) undelivered: Undelivered,
    /// The index of the last entry applied to `out.db`.
    pub(super) applied: u64,
    /// When each peer's last message arrived.
    pub(super) heard: HashMap<u64, Instant>,
    /// Since when this node leads, if it does.
    pub(super) leader_since: Option<Instant>,
    /// Configuration changes asked for, proposed one at a time.
    pub(super) changes: VecDeque<(ConfChangeV2, ProposeReply)>,
    pub(super) proposals: Proposals,
    pub(super) reads: Reads,
    dumps: Dumps,
    /// Set by a Stop input: whether to write a final dump.
    pub(super) stop: Option<bool>,
}

impl Node {
    /// Opens the node of `dir` with `outlets`, as at a start: the replica from the newest
    /// dump, the store, raft-rs, then the log replayed (`start`). On failure the outlets come
    /// back with the error.
    pub(super) fn open(
        dir: &Path,
        config: (RaftConfig, VoterPolicy),
        outlets: Outlets,
    ) -> Result<Node, (StorageError, Box<Outlets>)> {
        let (raw, db, position) = match Node::load(dir, &config.0, &outlets) {
            Ok(loaded) => loaded,
            Err(error) => return Err((error, Box::new(outlets))),
        };
        // A panic of the failed node may have poisoned the lock; the replica is replaced whole.
        *outlets
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = db;
        outlets.db.clear_poison();
        outlets
            .compacted_tx
            .send_replace(raw.store().snapshot_index());
        outlets
            .membership_tx
            .send_replace(RaftMembership::of(raw.store().conf_state()));
        outlets.applied_tx.send_replace(position.index);
        outlets.status_tx.send_replace(status_of(&raw));
        let (config, policy) = config;
        let mut node = Node {
            raw,
            dumps: Dumps::new(dir.join(DUMPS_DIR), config.compact_after_entries, position),
            config,
            policy,
            out: outlets,
            undelivered: Undelivered::default(),
            applied: position.index,
            heard: HashMap::new(),
            leader_since: None,
            changes: VecDeque::new(),
            proposals: Proposals::default(),
            reads: Reads::default(),
            stop: None,
        };
        match node.start() {
            Ok(()) => Ok(node),
            Err(error) => {
                let reason = error_chain(&error);
                Err((error, Box::new(node.into_outlets(&reason))))
            }
        }
    }

    /// The replica of the newest dump, the store opened for it, and raft-rs over the store.
    fn load(
        dir: &Path,
        config: &RaftConfig,
        outlets: &Outlets,
    ) -> Result<(RawNode<LogStore>, Db, DumpPosition), StorageError> {
        let (db, position) = snapshot::load_newest(&dir.join(DUMPS_DIR))?;
        let store = LogStore::open(
            &dir.join(STORE_FILE),
            position.index,
            position.term,
            Arc::clone(&outlets.db),
            Arc::clone(&outlets.log_commits),
        )?;
        // Entries after the dump are committed and come out again for the replica to apply.
        let raft_config = config.raft_rs_config(position.index);
        let raw = RawNode::new(&raft_config, store, &log::logger())?;
        Ok((raw, db, position))
    }

    /// Takes the node apart after a failure for `reason`: waiters failed, the dump in
    /// progress waited for, the store closed; the failure published on the outlets returned.
    pub(super) fn into_outlets(mut self, reason: &str) -> Outlets {
        self.fail_waiters(&ProposeError::NotLeader);
        if let Err(error) = self.dumps.finish() {
            tracing::warn!(error = %error, "a dump thread of the failed node panicked");
        }
        let outlets = self.out;
        outlets.publish_failure(reason);
        outlets
    }

    /// Replays the log after the dump, as far as it is known committed; then a sole voter
    /// campaigns at once (nobody else can win or object: no need to wait out an election
    /// timeout) and, as leader, commits and applies the rest. raft-rs refuses to campaign
    /// while configuration entries wait to be applied, hence replay first.
    fn start(&mut self) -> Result<(), StorageError> {
        self.handle_readies()?;
        // Joint or not: every voter, incoming or outgoing, is this node.
        let conf_state = self.raw.store().conf_state();
        let is_sole_voter = conf_state.voters.contains(&self.config.node_id)
            && (conf_state.voters.iter())
                .chain(&conf_state.voters_outgoing)
                .all(|id| *id == self.config.node_id);
        if is_sole_voter && self.raw.raft.state != StateRole::Leader {
            self.raw.campaign()?;
            self.handle_readies()?;
        }
        Ok(())
    }

    pub(super) fn run(&mut self) -> Result<(), StorageError> {
        let mut next_tick = Instant::now() + self.config.tick_interval;
        while self.stop.is_none() {
            match self
                .out
                .inputs
                .recv_timeout(next_tick.saturating_duration_since(Instant::now()))
            {
                Ok(input) => {
                    self.take(input)?;
                    for _ in 1..self.config.max_batch {
                        let Ok(input) = self.out.inputs.try_recv() else {
                            break;
                        };
                        self.take(input)?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The loop holds a sender itself, so this cannot happen; stop as if asked.
                Err(RecvTimeoutError::Disconnected) => self.stop = Some(false),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick = (next_tick + self.config.tick_interval).max(now);
                self.manage_voters(now);
            }
            self.count_reachable_voters(now);
            self.handle_readies()?;
            if self.dumps.is_due(self.applied) {
                let loopback = self.out.loopback.clone();
                self.dumps
                    .start(Arc::clone(&self.out.db), move |position, outcome| {
                        // The loop may be gone already; then the outcome no longer matters.
                        let _ = loopback.send(Input::DumpWritten { position, outcome });
                    })?;
            }
        }
        self.dumps.finish()?;
        if self.stop == Some(true) {
            self.dumps.write_final(&self.out.db)?;
        }
        Ok(())
    }

    /// Takes one input; proposals and read barriers go to raft-rs between Readys only.
    fn take(&mut self, input: Input) -> Result<(), StorageError> {
        let is_leader = self.raw.raft.state == StateRole::Leader;
        match input {
            Input::Propose { reply, .. } if !is_leader => {
                let _ = reply.send(Err(ProposeError::NotLeader));
            }
            Input::Propose { data, reply } => {
                let id = self.proposals.next_id();
                match self.raw.propose(context(id), data) {
                    Ok(()) => self.proposals.wait(id, self.raw.raft.term, reply),
                    Err(error) => {
                        tracing::debug!(error = %error, "proposal dropped by raft");
                        let _ = reply.send(Err(ProposeError::NotLeader));
                    }
                }
            }
            Input::ReadBarrier { reply } if !is_leader => {
                let _ = reply.send(Err(ProposeError::NotLeader));
            }
            Input::ReadBarrier { reply } => self.reads.queue(reply),
            Input::DumpWritten { position, outcome } => {
                if let Some(index) = self.dumps.written(position, outcome) {
                    self.raw.mut_store().compact(index)?;
                    self.out
                        .compacted_tx
                        .send_replace(self.raw.store().snapshot_index());
                }
            }
            Input::Stop { write_dump } => self.stop = Some(write_dump),
            Input::Step(message) => {
                self.heard.insert(message.from, Instant::now());
                let from = message.from;
                if let Err(error) = self.raw.step(message) {
                    tracing::debug!(from, error = %error, "raft message refused");
                }
            }
            Input::SnapshotSent { to, finished } => {
                let status = if finished {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Input::ConfChange { reply, .. } if !is_leader => {
                let _ = reply.send(Err(ProposeError::NotLeader));
            }
            Input::ConfChange { change, reply } => self.changes.push_back((change, reply)),
            Input::TransferLeader { reply, .. } if !is_leader => {
                let _ = reply.send(Err(ProposeError::NotLeader));
            }
            Input::TransferLeader { node, reply } => {
                self.raw.transfer_leader(node);
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }

    /// Handles Readys until raft-rs has nothing more to do.
    fn handle_readies(&mut self) -> Result<(), StorageError> {
        loop {
            self.issue_reads();
            if !self.raw.has_ready() {
                return Ok(());
            }
            self.handle_ready()?;
            self.report_undelivered();
            self.after_ready();
        }
    }

    /// One Ready, in the order of this module's header.
    fn handle_ready(&mut self) -> Result<(), StorageError> {
        let mut ready = self.raw.ready();
        // 1.
        self.out
            .transport
            .send(ready.take_messages(), &mut self.undelivered);
        // 2.
        let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
        if let Some(snapshot) = &snapshot {
            self.raw
                .mut_store()
                .stage_snapshot(snapshot.get_metadata())?;
            self.restore(snapshot)?;
        }
        // 3, 4.
        if snapshot.is_some() || !ready.entries().is_empty() || ready.hs().is_some() {
            self.raw.mut_store().persist(
                snapshot.as_ref().map(Snapshot::get_metadata),
                ready.entries(),
                ready.hs(),
            )?;
        }
        // 5.
        self.out
            .transport
            .send(ready.take_persisted_messages(), &mut self.undelivered);
        self.reads.confirm(ready.take_read_states(), self.applied);
        // 6.
        self.apply(ready.take_committed_entries())?;
        // 7.
        let mut light = self.raw.advance(ready);
        // 8.
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        self.out
            .transport
            .send(light.take_messages(), &mut self.undelivered);
        self.apply(light.take_committed_entries())?;
        // 9.
        self.raw.advance_apply();
        Ok(())
    }

    /// Replaces the replica with a leader's snapshot.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let db = self.dumps.restore(snapshot)?;
        let index = db.applied_index();
        *self
            .out
            .db
            .write()
            .expect("the raft thread never panics while holding the db lock") = db;
        tracing::info!(index, "replica replaced by the leader's snapshot");
        self.applied = index;
        // The applied index last: whoever waits on it sees the rest published.
        self.out.compacted_tx.send_replace(index);
        self.out
            .membership_tx
            .send_replace(RaftMembership::of(snapshot.get_metadata().get_conf_state()));
        self.out.applied_tx.send_replace(index);
        Ok(())
    }

    /// Asks raft-rs for a read index for the queued barriers, once this leader has committed
    /// an entry of its term (raft-rs drops ReadIndex requests before that).
    fn issue_reads(&mut self) {
        if self.reads.has_queued()
            && self.raw.raft.state == StateRole::Leader
            && self.raw.raft.commit_to_current_term()
        {
            let id = self.reads.issue();
            self.raw.read_index(context(id));
        }
    }

    /// Publishes role changes; a node that is not leader fails every waiter.
    fn after_ready(&mut self) {
        let status = status_of(&self.raw);
        let was_leader = self.out.status_tx.borrow().is_leader;
        if status.is_leader != was_leader {
            tracing::info!(
                term = status.term,
                node_id = self.config.node_id,
                is_leader = status.is_leader,
                "raft leadership changed"
            );
        }
        self.out.status_tx.send_if_modified(|current| {
            let is_changed = *current != status;
            *current = status;
            is_changed
        });
        if !status.is_leader {
            self.fail_waiters(&ProposeError::NotLeader);
            self.leader_since = None;
        } else if self.leader_since.is_none() {
            self.leader_since = Some(Instant::now());
        }
    }

    /// Answers every pending proposal and read barrier with `error`.
    pub(super) fn fail_waiters(&mut self, error: &ProposeError) {
        self.proposals.fail(error);
        self.reads.fail(error);
        for (_, reply) in self.changes.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

fn status_of(raw: &RawNode<LogStore>) -> RaftStatus {
    RaftStatus {
        term: raw.raft.term,
        leader_id: raw.raft.leader_id,
        is_leader: raw.raft.state == StateRole::Leader,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use db_schema::Txn;
    use raft::eraftpb::ConfChangeType;

    use super::*;
    use crate::raft::transport::Transport;

    /// The node of a data dir, opened on this thread with the first Readys handled.
    fn open_node(dir: &Path) -> Node {
        let (loopback, inputs) = mpsc::channel();
        let config = (RaftConfig::default(), VoterPolicy::default());
        let (outlets, _shared) = Outlets::new(&config.0, inputs, loopback, Transport::none());
        match Node::open(dir, config, outlets) {
            Ok(node) => node,
            Err((error, _)) => panic!("open: {error}"),
        }
    }

    /// (voters, learners, outgoing voters) of the configuration in force.
    fn configuration(node: &Node) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let conf_state = node.raw.store().conf_state();
        (
            conf_state.voters.clone(),
            conf_state.learners.clone(),
            conf_state.voters_outgoing.clone(),
        )
    }

    /// Two learners added in one change go through a joint configuration; the empty entry
    /// that leaves it is applied, not skipped, and a restart replays both to the same end.
    #[test]
    fn joint_change_is_left_by_applying_the_empty_conf_change_entry() {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::raft::bootstrap(dir.path(), 1, &Txn::default()).expect("bootstrap");
        let mut node = open_node(dir.path());
        let change = ConfChangeV2 {
            changes: [2, 3]
                .map(|id| raft_proto::new_conf_change_single(id, ConfChangeType::AddLearnerNode))
                .to_vec()
                .into(),
            ..ConfChangeV2::default()
        };
        node.raw
            .propose_conf_change(Vec::new(), change)
            .expect("propose");
        node.handle_readies().expect("apply");
        let left_joint = (vec![1], vec![2, 3], vec![]);
        assert_eq!(configuration(&node), left_joint);
        drop(node);

        let node = open_node(dir.path());
        assert_eq!(configuration(&node), left_joint);
    }
}
