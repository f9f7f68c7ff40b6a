//! The voter set, run by the leader at each tick: one configuration change at a time, first
//! leaving a joint configuration, then the changes asked for (`RaftDb::add_learner`,
//! `remove_node`), then the policy: a caught-up learner is promoted while there are fewer
//! voters than `max_voters`, and replaces a voter silent for `replace_voter_after` (one joint
//! change: the learner promoted, the voter demoted to learner). Every node also counts the
//! voters it heard from lately.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use db_schema::Applied;
use master::db::ProposeError;
use raft::StateRole;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};

use crate::raft::node::Node;
use crate::raft::waiters::{ProposeReply, context};

/// A learner this many entries behind the leader's last index, or closer, is caught up.
const CATCH_UP_SLACK: u64 = 64;

impl Node {
    /// Counts the voters, this node included when it is one, heard from within an election
    /// timeout.
    pub(super) fn count_reachable_voters(&mut self, now: Instant) {
        let election_timeout = self.election_timeout();
        let reachable = (self.raw.store().conf_state().voters.iter())
            .filter(|id| {
                **id == self.config.node_id
                    || self
                        .heard
                        .get(id)
                        .is_some_and(|at| now.duration_since(*at) < election_timeout)
            })
            .count();
        self.out
            .reachable_voters
            .store(reachable, Ordering::Relaxed);
    }

    /// As leader, makes the next configuration change due.
    pub(super) fn manage_voters(&mut self, now: Instant) {
        let election_timeout = self.election_timeout();
        let conf = self.raw.store().conf_state().clone();
        if self.raw.raft.state != StateRole::Leader || self.raw.raft.has_pending_conf() {
            return;
        }
        if !conf.voters_outgoing.is_empty() {
            // raft-rs leaves a joint configuration by itself, except when the leader that
            // entered it stepped down first.
            self.propose_change(ConfChangeV2::default(), None);
            return;
        }
        if let Some((change, reply)) = self.changes.pop_front() {
            if changes_nothing(&conf, &change) {
                let applied = Applied {
                    generation: self.applied,
                    touched: Vec::new(),
                };
                let _ = reply.send(Ok(applied));
            } else {
                self.propose_change(change, Some(reply));
            }
            return;
        }
        let last_index = self.raw.raft.raft_log.last_index();
        let progress = self.raw.raft.prs();
        let caught_up: Vec<u64> = (conf.learners.iter().copied())
            .filter(|id| {
                let is_current = progress
                    .get(*id)
                    .is_some_and(|pr| pr.matched + CATCH_UP_SLACK >= last_index);
                let is_alive = self
                    .heard
                    .get(id)
                    .is_some_and(|at| now.duration_since(*at) < election_timeout);
                is_current && is_alive
            })
            .collect();
        let leader_since = self.leader_since.unwrap_or(now);
        let silent: Vec<u64> = (conf.voters.iter().copied())
            .filter(|id| *id != self.config.node_id)
            .filter(|id| {
                let last = self
                    .heard
                    .get(id)
                    .map_or(leader_since, |at| (*at).max(leader_since));
                now.duration_since(last) >= self.policy.replace_voter_after
            })
            .collect();
        if let Some(change) = decide(&conf, &caught_up, &silent, self.policy.max_voters) {
            tracing::info!(changes = ?change.changes, "voter set change proposed");
            self.propose_change(change, None);
        }
    }

    fn election_timeout(&self) -> Duration {
        self.config.tick_interval * u32::try_from(self.config.election_ticks).unwrap_or(u32::MAX)
    }

    /// Proposes `change`; its waiter, if any, is answered when it is applied.
    fn propose_change(&mut self, change: ConfChangeV2, reply: Option<ProposeReply>) {
        let id = self.proposals.next_id();
        match self.raw.propose_conf_change(context(id), change) {
            Ok(()) => {
                if let Some(reply) = reply {
                    self.proposals.wait(id, self.raw.raft.term, reply);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "configuration change refused by raft");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(ProposeError::NotLeader));
                }
            }
        }
    }
}

/// Whether `change`, one single change, leaves `conf` as it is.
fn changes_nothing(conf: &ConfState, change: &ConfChangeV2) -> bool {
    let [single] = change.changes.as_slice() else {
        return false;
    };
    let is_voter = conf.voters.contains(&single.node_id);
    let is_learner = conf.learners.contains(&single.node_id);
    match single.get_change_type() {
        ConfChangeType::AddLearnerNode => is_voter || is_learner,
        ConfChangeType::AddNode => is_voter,
        ConfChangeType::RemoveNode => !is_voter && !is_learner,
    }
}

/// The policy's next change: promote a caught-up learner while voters are fewer than
/// `max_voters`, else swap a silent voter for one.
fn decide(
    conf: &ConfState,
    caught_up: &[u64],
    silent: &[u64],
    max_voters: usize,
) -> Option<ConfChangeV2> {
    let single = |node_id, change_type: ConfChangeType| ConfChangeSingle {
        node_id,
        change_type,
        ..ConfChangeSingle::default()
    };
    let learner = *caught_up.first()?;
    let changes = if conf.voters.len() < max_voters {
        vec![single(learner, ConfChangeType::AddNode)]
    } else {
        let voter = *silent.first()?;
        vec![
            single(learner, ConfChangeType::AddNode),
            single(voter, ConfChangeType::AddLearnerNode),
        ]
    };
    Some(ConfChangeV2 {
        changes: changes.into(),
        ..ConfChangeV2::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..ConfState::default()
        }
    }

    /// (node, change) pairs of a change, for comparing.
    fn pairs(change: &ConfChangeV2) -> Vec<(u64, ConfChangeType)> {
        (change.changes.iter())
            .map(|single| (single.node_id, single.get_change_type()))
            .collect()
    }

    /// A caught-up learner is promoted while voters are fewer than the maximum, and not
    /// beyond it.
    #[test]
    fn caught_up_learner_is_promoted_below_max_voters() {
        let change = decide(&conf(&[1, 2], &[3]), &[3], &[], 3).expect("a change");
        assert_eq!(pairs(&change), vec![(3, ConfChangeType::AddNode)]);
        assert!(decide(&conf(&[1, 2, 3], &[4]), &[4], &[], 3).is_none());
        assert!(decide(&conf(&[1], &[2]), &[], &[], 3).is_none());
    }

    /// At the maximum, a silent voter is swapped for a caught-up learner in one change.
    #[test]
    fn silent_voter_is_swapped_for_a_caught_up_learner() {
        let change = decide(&conf(&[1, 2, 3], &[4]), &[4], &[2], 3).expect("a change");
        assert_eq!(
            pairs(&change),
            vec![
                (4, ConfChangeType::AddNode),
                (2, ConfChangeType::AddLearnerNode)
            ]
        );
        assert!(decide(&conf(&[1, 2, 3], &[4]), &[], &[2], 3).is_none());
    }

    /// Adding a member or removing a stranger changes nothing; promoting a learner does.
    #[test]
    fn no_op_changes_are_recognised() {
        let change = |node, change_type| ConfChangeV2 {
            changes: vec![raft_proto::new_conf_change_single(node, change_type)].into(),
            ..ConfChangeV2::default()
        };
        let conf = conf(&[1], &[2]);
        assert!(changes_nothing(
            &conf,
            &change(1, ConfChangeType::AddLearnerNode)
        ));
        assert!(changes_nothing(
            &conf,
            &change(2, ConfChangeType::AddLearnerNode)
        ));
        assert!(changes_nothing(
            &conf,
            &change(9, ConfChangeType::RemoveNode)
        ));
        assert!(!changes_nothing(&conf, &change(2, ConfChangeType::AddNode)));
        assert!(!changes_nothing(
            &conf,
            &change(3, ConfChangeType::AddLearnerNode)
        ));
        assert!(!changes_nothing(
            &conf,
            &change(2, ConfChangeType::RemoveNode)
        ));
    }
}
