//! The pool's side of the Raft handle: the voter policy, the configuration in force, and the
//! changes the pool operations ask for (learners added, nodes removed, leadership handed over).

use std::sync::atomic::Ordering;
use std::time::Duration;

use master::db::ProposeError;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, ConfState};
use tokio::sync::{oneshot, watch};

use crate::raft::RaftDb;
use crate::raft::node::Input;

/// The leader's policy for the voter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterPolicy {
    /// Caught-up learners are promoted while there are fewer voters than this (3; at most 5).
    pub max_voters: usize,
    /// A voter not heard from for this long is replaced by a caught-up learner (30 s).
    pub replace_voter_after: Duration,
}

impl Default for VoterPolicy {
    fn default() -> Self {
        VoterPolicy {
            max_voters: 3,
            replace_voter_after: Duration::from_secs(30),
        }
    }
}

/// The Raft configuration in force on this node (node ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMembership {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The voters of the configuration being left, during a joint change; else empty.
    pub voters_outgoing: Vec<u64>,
}

impl RaftMembership {
    pub(crate) fn of(conf_state: &ConfState) -> RaftMembership {
        RaftMembership {
            voters: conf_state.voters.clone(),
            learners: conf_state.learners.clone(),
            voters_outgoing: conf_state.voters_outgoing.clone(),
        }
    }
}

impl RaftDb {
    /// Adds `node` as a learner (nothing when it is a member already); returns once applied.
    /// On the leader only.
    pub async fn add_learner(&self, node: u64) -> Result<(), ProposeError> {
        self.change(node, ConfChangeType::AddLearnerNode).await
    }

    /// Removes `node`, voter or learner (nothing when it is not a member); returns once
    /// applied. On the leader only.
    pub async fn remove_node(&self, node: u64) -> Result<(), ProposeError> {
        self.change(node, ConfChangeType::RemoveNode).await
    }

    async fn change(&self, node: u64, change_type: ConfChangeType) -> Result<(), ProposeError> {
        let change = ConfChangeV2 {
            changes: vec![raft_proto::new_conf_change_single(node, change_type)].into(),
            ..ConfChangeV2::default()
        };
        let (reply, outcome) = oneshot::channel();
        self.inputs
            .send(Input::ConfChange { change, reply })
            .map_err(|_| ProposeError::Stopped)?;
        outcome
            .await
            .unwrap_or(Err(ProposeError::Stopped))
            .map(|_| ())
    }

    /// Hands leadership to `node` (a voter, caught up); returns once `node` leads, or
    /// `NotLeader` when it does not within two election timeouts.
    pub async fn transfer_leader(&self, node: u64) -> Result<(), ProposeError> {
        let mut status = self.status.clone();
        let (reply, outcome) = oneshot::channel();
        self.inputs
            .send(Input::TransferLeader { node, reply })
            .map_err(|_| ProposeError::Stopped)?;
        outcome.await.unwrap_or(Err(ProposeError::Stopped))?;
        let led = status.wait_for(|status| status.leader_id == node);
        match tokio::time::timeout(self.election_timeout * 2, led).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ProposeError::Stopped),
            Err(_) => Err(ProposeError::NotLeader),
        }
    }

    /// The configuration in force on this node, updated as it changes.
    pub fn membership(&self) -> watch::Receiver<RaftMembership> {
        self.membership.clone()
    }

    /// The voters, this node included when it is one, heard from within an election timeout.
    pub fn reachable_voters(&self) -> usize {
        self.reachable_voters.load(Ordering::Relaxed)
    }
}
