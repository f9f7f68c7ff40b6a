//! `pool.join` and `pool.join_force`, run on the joining host: xapi's local checks, then the
//! master is asked for admission (`PoolControl::join`, answered by `Master::admit` there), and
//! once admitted this host restarts as a member of that pool, after the call is answered.

use api_spec::classes::vm::VmPowerState;
use api_spec::{Value, errors};
use db_schema::Db;

use super::errors::control_failed;
use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::pool::control::{JoinFailure, JoinTarget, Restart};
use crate::vm::power_state::power_state_of;

/// Joins the pool whose master is at `master_address`, checking that the hosts are alike.
pub(in crate::handlers) async fn join(ctx: Ctx, args: Args) -> Result<Value, Error> {
    join_pool(ctx, args, false).await
}

/// Joins as `join` does, without the homogeneity check.
pub(in crate::handlers) async fn join_force(ctx: Ctx, args: Args) -> Result<Value, Error> {
    join_pool(ctx, args, true).await
}

async fn join_pool(ctx: Ctx, args: Args, force: bool) -> Result<Value, Error> {
    check_can_join(&ctx.db())?;
    let target = JoinTarget {
        master_address: args.str("master_address")?.to_owned(),
        username: args.str("master_username")?.to_owned(),
        password: args.str("master_password")?.to_owned(),
        force,
    };
    let address = target.master_address.clone();
    let admission = match ctx.master.pool.join(target).await {
        Ok(admission) => admission,
        Err(JoinFailure::Connection { reason }) => {
            tracing::warn!(master = %address, reason = %reason, "cannot reach the pool to join");
            return Err(errors::joining_host_connection_failed().into());
        }
        Err(JoinFailure::Refused(refusal)) => {
            tracing::info!(master = %address, code = %refusal.code, "the pool refused the join");
            return Err(refusal.into());
        }
    };
    tracing::info!(master = %address, members = admission.members.len(), "admitted to a pool; restarting as its member");
    ctx.master
        .pool
        .restart(Restart::Join(admission))
        .map_err(|e| control_failed("restarting into the pool", e))?;
    Ok(void())
}

/// What xapi checks on the joining host before it contacts the master, in its order: HA off,
/// no other hosts, no running (or paused, or suspended) VMs, no VM with an operation in
/// progress, no shared SR.
fn check_can_join(db: &Db) -> Result<(), Error> {
    if super::is_ha_enabled(db) {
        return Err(errors::ha_is_enabled().into());
    }
    if db.count("host") > 1 {
        return Err(errors::joining_host_cannot_be_master_of_other_hosts().into());
    }
    let guests = || {
        db.rows("VM")
            .map(|(_, vm)| vm)
            .filter(|vm| vm.get("is_control_domain") != Some(&Value::Bool(true)))
    };
    if guests().any(|vm| power_state_of(&vm.fields) != VmPowerState::Halted) {
        return Err(errors::joining_host_cannot_have_running_vms().into());
    }
    let is_busy = |vm: &db_schema::Row| {
        vm.get("current_operations")
            .and_then(Value::as_struct)
            .is_some_and(|ops| !ops.is_empty())
    };
    if guests().any(is_busy) {
        return Err(errors::joining_host_cannot_have_vms_with_current_operations().into());
    }
    if db
        .rows("SR")
        .any(|(_, sr)| sr.get("shared") == Some(&Value::Bool(true)))
    {
        return Err(errors::joining_host_cannot_contain_shared_srs().into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use api_spec::errors as codes;

    use super::*;
    use crate::pool::control::{Admission, PoolMember};
    use crate::testing::{ControlCall, TestPool};

    fn join_args(master: &str) -> Vec<Value> {
        vec![Value::str(master), Value::str("root"), Value::str("secret")]
    }

    fn admission() -> Admission {
        Admission {
            pool_secret: "ab".repeat(32),
            pool_epoch: "epoch".to_owned(),
            members: vec![PoolMember {
                node_id: 9,
                host: "OpaqueRef:master".to_owned(),
                address: "127.0.0.9:4443".to_owned(),
                cert_sha256: "cd".repeat(32),
            }],
        }
    }

    /// An admitted join answers, then asks for a restart into the pool it was admitted to.
    #[tokio::test]
    async fn admitted_join_restarts_into_the_pool() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.pool_control.answer_join(Ok(admission()));
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(reply, Ok(void()));
        let calls = pool.pool_control.calls();
        assert_eq!(
            calls[0],
            ControlCall::Join(JoinTarget {
                master_address: "127.0.0.9".to_owned(),
                username: "root".to_owned(),
                password: "secret".to_owned(),
                force: false,
            })
        );
        assert_eq!(calls[1], ControlCall::Restart(Restart::Join(admission())));
    }

    /// `join_force` asks the master to skip the homogeneity check.
    #[tokio::test]
    async fn join_force_asks_for_a_forced_admission() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.pool_control.answer_join(Ok(admission()));
        pool.call_as(&session, "pool.join_force", join_args("127.0.0.9"))
            .await
            .expect("joins");
        let forced = matches!(&pool.pool_control.calls()[0], ControlCall::Join(t) if t.force);
        assert!(forced);
    }

    /// A master that cannot be reached is `JOINING_HOST_CONNECTION_FAILED`; nothing restarts.
    #[tokio::test]
    async fn unreachable_master_is_joining_host_connection_failed() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(codes::JOINING_HOST_CONNECTION_FAILED.to_owned())
        );
        assert_eq!(pool.pool_control.calls().len(), 1);
    }

    /// The master's refusal (a failed login) reaches the caller as it is.
    #[tokio::test]
    async fn refusal_of_the_master_reaches_the_caller() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let refusal = codes::session_authentication_failed("root", "Authentication failure");
        pool.pool_control
            .answer_join(Err(JoinFailure::Refused(refusal.clone())));
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(reply, Err(refusal));
    }

    /// A host with a running VM cannot join, and does not contact the master.
    #[tokio::test]
    async fn host_with_a_running_vm_cannot_join() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.running_vm(&session, "busy").await;
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(codes::JOINING_HOST_CANNOT_HAVE_RUNNING_VMS.to_owned())
        );
        assert!(pool.pool_control.calls().is_empty());
    }

    /// A host that already has other hosts (a pool master) cannot join another pool.
    #[tokio::test]
    async fn host_with_other_hosts_cannot_join() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.add_host("host2", 8 << 30);
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(codes::JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS.to_owned())
        );
    }

    /// A host with a shared SR cannot join.
    #[tokio::test]
    async fn host_with_a_shared_sr_cannot_join() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let sr = pool.refs("SR").remove(0);
        pool.write("SR", &sr, &[("shared", Value::Bool(true))]);
        let reply = pool
            .call_as(&session, "pool.join", join_args("127.0.0.9"))
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(codes::JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS.to_owned())
        );
    }
}
