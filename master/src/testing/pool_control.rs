//! `FakePoolControl`: a `PoolControl` that records what it is asked and answers as told.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::db::BoxFuture;
use crate::pool::control::{
    Admission, ControlError, JoinFailure, JoinTarget, PoolControl, PoolMember, RaftMembership,
    Restart,
};

/// The node id of `TestPool`'s host.
pub const TEST_NODE_ID: u64 = 1;

/// One request a `FakePoolControl` received, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlCall {
    AddLearner(u64),
    RemoveNode(u64),
    TransferLeader(u64),
    Join(JoinTarget),
    ResetMember(PoolMember),
    RecoverMember(PoolMember, Admission),
    WaitApplied(PoolMember, u64),
    Restart(Restart),
}

/// A scriptable `PoolControl`: membership changes succeed and are reflected in `membership`,
/// members in `unreachable` fail, `join` answers what `answer_join` gave.
pub struct FakePoolControl {
    state: Mutex<State>,
}

struct State {
    membership: RaftMembership,
    reachable_voters: usize,
    join_answer: Result<Admission, JoinFailure>,
    unreachable: BTreeSet<u64>,
    is_emergency_forced: bool,
    calls: Vec<ControlCall>,
}

impl FakePoolControl {
    /// One voter, `TEST_NODE_ID`, reachable; joins fail to connect until told otherwise.
    pub fn new() -> Arc<FakePoolControl> {
        Arc::new(FakePoolControl {
            state: Mutex::new(State {
                membership: RaftMembership {
                    voters: BTreeSet::from([TEST_NODE_ID]),
                    learners: BTreeSet::new(),
                },
                reachable_voters: 1,
                join_answer: Err(JoinFailure::Connection {
                    reason: "no master in tests".to_owned(),
                }),
                unreachable: BTreeSet::new(),
                is_emergency_forced: false,
                calls: Vec::new(),
            }),
        })
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<ControlCall> {
        self.state().calls.clone()
    }

    pub fn set_membership(&self, voters: &[u64], learners: &[u64]) {
        self.state().membership = RaftMembership {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
        };
    }

    pub fn set_reachable_voters(&self, count: usize) {
        self.state().reachable_voters = count;
    }

    /// What the next joins answer.
    pub fn answer_join(&self, answer: Result<Admission, JoinFailure>) {
        self.state().join_answer = answer;
    }

    /// Messages to `node` fail as if it were down.
    pub fn make_unreachable(&self, node: u64) {
        self.state().unreachable.insert(node);
    }

    /// Forces the next emergency transition, as the operator's flag file does.
    pub fn force_emergency(&self) {
        self.state().is_emergency_forced = true;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no panic while holding the fake's lock")
    }

    /// Records `call`; fails if it is addressed to an unreachable node.
    fn record(&self, call: ControlCall, node: Option<&PoolMember>) -> Result<(), ControlError> {
        let mut state = self.state();
        state.calls.push(call);
        match node {
            Some(member) if state.unreachable.contains(&member.node_id) => {
                Err(ControlError::Unreachable {
                    host: member.host.clone(),
                    reason: "unreachable in this test".to_owned(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl PoolControl for FakePoolControl {
    fn node_id(&self) -> u64 {
        TEST_NODE_ID
    }

    fn membership(&self) -> RaftMembership {
        self.state().membership.clone()
    }

    fn reachable_voters(&self) -> usize {
        self.state().reachable_voters
    }

    fn add_learner(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(ControlCall::AddLearner(node));
            state.membership.learners.insert(node);
            Ok(())
        })
    }

    fn remove_node(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(ControlCall::RemoveNode(node));
            state.membership.learners.remove(&node);
            state.membership.voters.remove(&node);
            Ok(())
        })
    }

    fn transfer_leader(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(ControlCall::TransferLeader(node));
            if state.unreachable.contains(&node) {
                return Err(ControlError::TimedOut {
                    what: format!("transfer to node {node}"),
                });
            }
            Ok(())
        })
    }

    fn join(&self, target: JoinTarget) -> BoxFuture<'_, Result<Admission, JoinFailure>> {
        Box::pin(async move {
            let mut state = self.state();
            state.calls.push(ControlCall::Join(target));
            state.join_answer.clone()
        })
    }

    fn reset_member(&self, member: PoolMember) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let call = ControlCall::ResetMember(member.clone());
            self.record(call, Some(&member))
        })
    }

    fn recover_member(
        &self,
        member: PoolMember,
        admission: Admission,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let call = ControlCall::RecoverMember(member.clone(), admission);
            self.record(call, Some(&member))
        })
    }

    fn wait_applied(
        &self,
        member: PoolMember,
        index: u64,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let call = ControlCall::WaitApplied(member.clone(), index);
            self.record(call, Some(&member))
        })
    }

    fn restart(&self, restart: Restart) -> Result<(), ControlError> {
        self.record(ControlCall::Restart(restart), None)
    }

    fn take_emergency_force(&self) -> bool {
        std::mem::take(&mut self.state().is_emergency_forced)
    }
}
