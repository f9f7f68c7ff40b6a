//! Who is master: `designate_new_master` (a Raft leadership transfer),
//! `emergency_transition_to_master` (a one-voter configuration from this host's replica, for a
//! quorum lost for good) and `recover_slaves` (the hosts of the old configuration rejoin).
//!
//! The emergency transition is refused while a majority of the voters is reachable, unless
//! the operator forces it: the XenAPI call has no parameter for that, so the flag is the file
//! `force-emergency-transition` in the host's data dir, consumed by the transition
//! (`PoolControl::take_emergency_force`).

use api_spec::{Value, errors};
use db_schema::Txn;

use super::errors::control_failed;
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::row;
use crate::error::Error;
use crate::pool::control::{Restart, admission, member_of_host};

/// Makes `host` the master: leadership moves to its Raft node; the call returns once it
/// leads. Designating the current master changes nothing.
pub(in crate::handlers) async fn designate_new_master(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let host = args.str("host")?;
    let member = {
        let db = ctx.db();
        row(&db, "host", host)?;
        if super::is_ha_enabled(&db) {
            return Err(errors::ha_is_enabled().into());
        }
        if host == ctx.master.this_host {
            return Ok(void());
        }
        member_of_host(&db, host).ok_or_else(|| {
            errors::internal_error(format!("host {host} has no member entry in the pool"))
        })?
    };
    let pool = &ctx.master.pool;
    if !pool.membership().voters.contains(&member.node_id) {
        return Err(
            errors::operation_not_allowed("the host is not a voter of the pool yet").into(),
        );
    }
    if let Some(task) = &ctx.task {
        // This master cannot end the task once the other leads: the new master will.
        let txn = Txn {
            preconditions: Vec::new(),
            ops: vec![crate::pool::handover::put(&task.r#ref, host)],
        };
        ctx.master.commit(txn).await?;
    }
    pool.transfer_leader(member.node_id)
        .await
        .map_err(|e| control_failed("handing over the mastership", e))?;
    tracing::info!(host = %host, node_id = member.node_id, "mastership handed over");
    Ok(void())
}

/// Makes this host the master of a pool of which it is the only voter, from its own replica,
/// under a new pool epoch; it restarts once the call is answered. Refused while a majority of
/// the voters is reachable, unless forced (see the module header).
pub(in crate::handlers) async fn emergency_transition_to_master(
    ctx: Ctx,
    _args: Args,
) -> Result<Value, Error> {
    let pool = &ctx.master.pool;
    let voters = pool.membership().voters;
    if voters.len() == 1 && voters.contains(&pool.node_id()) {
        return Ok(void());
    }
    let reachable = pool.reachable_voters();
    let majority = voters.len() / 2 + 1;
    if reachable >= majority && !pool.take_emergency_force() {
        let reason = format!(
            "{reachable} of the pool's {} voters are reachable, a majority: the pool has a master",
            voters.len()
        );
        return Err(errors::operation_not_allowed(&reason).into());
    }
    let pool_epoch = crate::db::record::new_uuid();
    tracing::warn!(reachable, voters = voters.len(), pool_epoch = %pool_epoch, "emergency transition to master");
    pool.restart(Restart::SingleVoter { pool_epoch })
        .map_err(|e| control_failed("restarting as the only voter", e))?;
    Ok(void())
}

/// Tells every member of the pool's DB outside the Raft configuration (the hosts of the
/// configuration an emergency transition left) to rejoin this master; answers the hosts that
/// did. A host that cannot be reached is left out of the answer.
pub(in crate::handlers) async fn recover_slaves(ctx: Ctx, _args: Args) -> Result<Value, Error> {
    let (admission, outside) = {
        let db = ctx.db();
        let admission = admission(&db).ok_or_else(|| {
            errors::internal_error("the pool database has no pool secret or epoch")
        })?;
        let membership = ctx.master.pool.membership();
        let outside: Vec<_> = admission
            .members
            .iter()
            .filter(|m| {
                !membership.voters.contains(&m.node_id) && !membership.learners.contains(&m.node_id)
            })
            .cloned()
            .collect();
        (admission, outside)
    };
    let pool = &ctx.master.pool;
    let mut recovered = Vec::new();
    for member in outside {
        if let Err(e) = pool.add_learner(member.node_id).await {
            return Err(control_failed("adding a host back to raft", e).into());
        }
        match pool.recover_member(member.clone(), admission.clone()).await {
            Ok(()) => {
                tracing::info!(host = %member.host, node_id = member.node_id, "host told to rejoin");
                recovered.push(Value::String(member.host));
            }
            Err(e) => {
                tracing::warn!(host = %member.host, error = %e, "host could not be told to rejoin");
                if let Err(e) = pool.remove_node(member.node_id).await {
                    tracing::warn!(host = %member.host, error = %e, "learner not removed again");
                }
            }
        }
    }
    Ok(Value::Array(recovered))
}

#[cfg(test)]
mod tests {
    use api_spec::errors as codes;

    use super::*;
    use crate::pool::control::{PoolControl, PoolMember, put_member};
    use crate::testing::{ControlCall, TEST_NODE_ID, TestPool};

    /// Puts member entries for nodes 2 and 3 (hosts added to the DB) into the pool.
    fn with_members(pool: &TestPool) -> Vec<PoolMember> {
        let members: Vec<PoolMember> = [2, 3]
            .into_iter()
            .map(|node_id| PoolMember {
                node_id,
                host: pool.add_host(&format!("host{node_id}"), 8 << 30),
                address: format!("127.0.0.{node_id}:4443"),
                cert_sha256: "ab".repeat(32),
            })
            .collect();
        let txn = db_schema::Txn {
            preconditions: Vec::new(),
            ops: members.iter().map(put_member).collect(),
        };
        pool.db.apply(&txn).expect("members written");
        members
    }

    /// Designating a voter transfers leadership to its node.
    #[tokio::test]
    async fn designate_new_master_transfers_leadership() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let members = with_members(&pool);
        pool.pool_control.set_membership(&[TEST_NODE_ID, 2, 3], &[]);
        let host = Value::str(members[0].host.as_str());
        pool.call_as(&session, "pool.designate_new_master", vec![host])
            .await
            .expect("designated");
        assert_eq!(
            pool.pool_control.calls(),
            vec![ControlCall::TransferLeader(2)]
        );
    }

    /// A learner cannot be designated, and designating the master changes nothing.
    #[tokio::test]
    async fn designate_new_master_needs_another_voter() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let members = with_members(&pool);
        pool.pool_control.set_membership(&[TEST_NODE_ID], &[2, 3]);
        let host = Value::str(members[0].host.as_str());
        let error = pool
            .call_as(&session, "pool.designate_new_master", vec![host])
            .await
            .expect_err("a learner");
        assert_eq!(error.code, codes::OPERATION_NOT_ALLOWED);
        let me = Value::str(pool.host.as_str());
        pool.call_as(&session, "pool.designate_new_master", vec![me])
            .await
            .expect("no change");
        assert!(pool.pool_control.calls().is_empty());
    }

    /// With a majority of voters reachable, the emergency transition is refused unless forced.
    #[tokio::test]
    async fn emergency_transition_with_a_majority_needs_force() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.pool_control.set_membership(&[TEST_NODE_ID, 2, 3], &[]);
        pool.pool_control.set_reachable_voters(2);
        let error = pool
            .call_as(&session, "pool.emergency_transition_to_master", vec![])
            .await
            .expect_err("refused");
        assert_eq!(error.code, codes::OPERATION_NOT_ALLOWED);
        assert!(pool.pool_control.calls().is_empty());
        pool.pool_control.force_emergency();
        pool.call_as(&session, "pool.emergency_transition_to_master", vec![])
            .await
            .expect("forced");
        let restarted = matches!(
            pool.pool_control.calls()[..],
            [ControlCall::Restart(Restart::SingleVoter { .. })]
        );
        assert!(restarted);
    }

    /// Without a majority, the transition restarts this host as the only voter.
    #[tokio::test]
    async fn emergency_transition_without_a_majority_restarts_as_single_voter() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.pool_control.set_membership(&[TEST_NODE_ID, 2, 3], &[]);
        pool.pool_control.set_reachable_voters(1);
        pool.call_as(&session, "pool.emergency_transition_to_master", vec![])
            .await
            .expect("transition");
        let calls = pool.pool_control.calls();
        let [ControlCall::Restart(Restart::SingleVoter { pool_epoch })] = &calls[..] else {
            panic!("no restart: {calls:?}");
        };
        assert!(uuid::Uuid::parse_str(pool_epoch).is_ok());
    }

    /// Recovery adds each member outside the configuration as a learner and tells it to
    /// rejoin; the answer lists those that were told.
    #[tokio::test]
    async fn recover_slaves_answers_the_hosts_that_rejoin() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let members = with_members(&pool);
        pool.pool_control.make_unreachable(3);
        let reply = pool
            .call_as(&session, "pool.recover_slaves", vec![])
            .await
            .expect("recovered");
        assert_eq!(
            reply,
            Value::Array(vec![Value::str(members[0].host.as_str())])
        );
        let calls = pool.pool_control.calls();
        assert_eq!(calls[0], ControlCall::AddLearner(2));
        assert!(matches!(&calls[1], ControlCall::RecoverMember(m, _) if m.node_id == 2));
        assert_eq!(calls[2], ControlCall::AddLearner(3));
        assert_eq!(calls[4], ControlCall::RemoveNode(3));
        assert_eq!(pool.pool_control.membership().learners.len(), 1);
    }
}
