//! The apply: committed entries (Txns, empty entries, configuration changes) into the replica,
//! and the waiters of the proposals among them answered.

use std::sync::Arc;

use db_schema::{Applied, Txn};
use master::db::ProposeError;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};

use crate::raft::node::Node;
use crate::raft::{RaftMembership, StorageError};

impl Node {
    /// Applies committed entries in order, under one write lock. Waiters are answered after
    /// the lock is released and the applied index published, so that a caller who gets its
    /// outcome reads a replica that holds it.
    pub(super) fn apply(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let Some(last) = entries.last().map(|entry| entry.index) else {
            return Ok(());
        };
        let mut answers = Vec::new();
        let db = Arc::clone(&self.out.db);
        let mut db = db
            .write()
            .expect("the raft thread never panics while holding the db lock");
        for entry in &entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {
                    db.advance(entry.index, entry.term);
                }
                EntryType::EntryNormal => {
                    let txn: Txn = rmp_serde::from_slice(&entry.data).map_err(|source| {
                        StorageError::TxnDecode {
                            index: entry.index,
                            source,
                        }
                    })?;
                    let outcome = db
                        .apply(entry.index, entry.term, &txn)
                        .map_err(ProposeError::Apply);
                    if let Some(reply) = self.proposals.take(entry) {
                        answers.push((reply, outcome));
                    }
                }
                // An empty V2 one is the automatic leave-joint entry: applied like any other.
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change(entry)?;
                    db.advance(entry.index, entry.term);
                    if let Some(reply) = self.proposals.take(entry) {
                        let applied = Applied {
                            generation: entry.index,
                            touched: Vec::new(),
                        };
                        answers.push((reply, Ok(applied)));
                    }
                }
            }
        }
        drop(db);
        self.applied = last;
        self.out.applied_tx.send_replace(last);
        for (reply, outcome) in answers {
            let _ = reply.send(outcome);
        }
        self.reads.answer_applied(last);
        Ok(())
    }

    /// Puts a configuration entry in force and persists the configuration it makes.
    fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let decode_failed = |source| StorageError::ConfChangeDecode {
            index: entry.index,
            source,
        };
        let conf_state = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change = ConfChange::parse_from_bytes(&entry.data).map_err(decode_failed)?;
            self.raw.apply_conf_change(&change)?
        } else {
            let change = ConfChangeV2::parse_from_bytes(&entry.data).map_err(decode_failed)?;
            self.raw.apply_conf_change(&change)?
        };
        tracing::info!(
            index = entry.index,
            voters = ?conf_state.voters,
            learners = ?conf_state.learners,
            voters_outgoing = ?conf_state.voters_outgoing,
            "raft configuration changed"
        );
        self.out
            .membership_tx
            .send_replace(RaftMembership::of(&conf_state));
        self.raw.mut_store().set_conf_state(entry.index, conf_state)
    }
}
