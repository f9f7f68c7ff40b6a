//! `pool.sync_database`: returns once every live member has applied everything committed
//! before the call (xapi flushes its database to every host; here every host holds a replica,
//! so the call waits for the live ones to catch up).

use api_spec::{Value, errors};

use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::pool::control::members;

/// Waits until every live member has applied the entries committed before the call.
pub(in crate::handlers) async fn sync_database(ctx: Ctx, _args: Args) -> Result<Value, Error> {
    // Dispatch's read barrier has run: the local replica holds everything committed so far.
    let (index, others) = {
        let db = ctx.db();
        let others: Vec<_> = members(&db)
            .into_iter()
            .filter(|m| m.host != ctx.master.this_host && super::is_live(&db, &m.host))
            .collect();
        (db.applied_index(), others)
    };
    // One after the other: a member that has caught up answers at once.
    for member in others {
        let host = member.host.clone();
        if let Err(e) = ctx.master.pool.wait_applied(member, index).await {
            tracing::warn!(host = %host, error = %e, "member did not catch up");
            return Err(errors::cannot_contact_host(&host).into());
        }
    }
    Ok(void())
}

#[cfg(test)]
mod tests {
    use api_spec::errors as codes;

    use super::*;
    use crate::pool::control::{PoolMember, put_member};
    use crate::testing::{ControlCall, TestPool};

    /// Adds live host `name` with member entry `node_id`.
    fn live_member(pool: &TestPool, name: &str, node_id: u64) -> PoolMember {
        let member = PoolMember {
            node_id,
            host: pool.add_host(name, 8 << 30),
            address: format!("127.0.0.{node_id}:4443"),
            cert_sha256: "ab".repeat(32),
        };
        let txn = db_schema::Txn {
            preconditions: Vec::new(),
            ops: vec![put_member(&member)],
        };
        pool.db.apply(&txn).expect("member written");
        member
    }

    /// Every live member other than the master is waited for, at the index applied before
    /// the call; a dead one is not.
    #[tokio::test]
    async fn sync_database_waits_for_every_live_member() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let live = live_member(&pool, "host2", 2);
        let dead = live_member(&pool, "host3", 3);
        let metrics = pool.text("host", &dead.host, "metrics");
        pool.write("host_metrics", &metrics, &[("live", Value::Bool(false))]);
        let index = pool.read().applied_index();
        pool.call_as(&session, "pool.sync_database", vec![])
            .await
            .expect("synced");
        assert_eq!(
            pool.pool_control.calls(),
            vec![ControlCall::WaitApplied(live, index)]
        );
    }

    /// A live member that cannot be reached is `CANNOT_CONTACT_HOST [host]`.
    #[tokio::test]
    async fn sync_database_with_an_unreachable_member_fails() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let member = live_member(&pool, "host2", 2);
        pool.pool_control.make_unreachable(2);
        let error = pool
            .call_as(&session, "pool.sync_database", vec![])
            .await
            .expect_err("unreachable");
        assert_eq!(error.code, codes::CANNOT_CONTACT_HOST);
        assert_eq!(error.params, vec![member.host]);
    }
}
