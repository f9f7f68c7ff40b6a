//! `pool.eject`: a host leaves the pool. Its node leaves the Raft configuration, its rows and
//! member entry are removed, and it is told to reset itself to a new one-host pool.

use api_spec::classes::vm::VmPowerState;
use api_spec::{Value, errors};
use db_schema::{Db, Op, Precondition, Txn};

use super::errors::control_failed;
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::row;
use crate::error::Error;
use crate::pool::control::{member_of_host, remove_member};
use crate::vm::power_state::power_state_of;

/// What xapi's eject raises for the master itself (its `Cannot_eject_master` exception).
const CANNOT_EJECT_MASTER: &str = "Cannot_eject_master";

/// Ejects `host` from the pool; refused for the master and while a VM is resident there.
pub(in crate::handlers) async fn eject(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let host = args.str("host")?;
    let (txn, member) = {
        let db = ctx.db();
        row(&db, "host", host)?;
        if super::is_ha_enabled(&db) {
            return Err(errors::ha_is_enabled().into());
        }
        if host == super::pool_master(&db) || host == ctx.master.this_host {
            return Err(errors::internal_error(CANNOT_EJECT_MASTER).into());
        }
        let has_resident_vm = db.rows("VM").any(|(_, vm)| {
            vm.str("resident_on") == host
                && vm.get("is_control_domain") != Some(&Value::Bool(true))
                && power_state_of(&vm.fields) != VmPowerState::Halted
        });
        if has_resident_vm {
            return Err(errors::operation_not_allowed("VM resident on host").into());
        }
        let member = member_of_host(&db, host);
        let mut txn = removal(&db, host);
        if let Some(member) = &member {
            txn.ops.push(remove_member(member.node_id));
        }
        (txn, member)
    };
    // The node leaves Raft first, while the peer transport still reaches it (the transport
    // follows the member entries): a voter dropped before its removal is committed could
    // leave the rest without a quorum.
    if let Some(member) = &member {
        ctx.master
            .pool
            .remove_node(member.node_id)
            .await
            .map_err(|e| control_failed("removing the host from raft", e))?;
    }
    ctx.master.commit(txn).await?;
    let Some(member) = member else {
        tracing::info!(host = %host, "host without a member entry removed from the pool");
        return Ok(void());
    };
    tracing::info!(host = %host, node_id = member.node_id, "host ejected from the pool");
    // The host has left the pool whether or not it hears this: one that does not is cut off
    // from the others and is reset by its operator.
    if let Err(e) = ctx.master.pool.reset_member(member).await {
        tracing::warn!(host = %host, error = %e, "the ejected host was not told to reset");
    }
    Ok(void())
}

/// The Txn that removes `host` and what is only its: CPUs, PIFs and their metrics, PBDs, the
/// SRs no other host attaches, the control domains resident there with their metrics, the
/// host's metrics. Halted VMs that only had affinity for it lose the affinity.
fn removal(db: &Db, host: &str) -> Txn {
    let mut txn = Txn {
        preconditions: vec![Precondition::Exists {
            class: "host".to_owned(),
            r#ref: host.to_owned(),
        }],
        ops: Vec::new(),
    };
    let destroy = |class: &str, r: &str| Op::Destroy {
        class: class.to_owned(),
        r#ref: r.to_owned(),
    };
    let owned = |class: &'static str| {
        db.rows(class)
            .filter(move |(_, row)| row.str("host") == host)
            .map(|(r, row)| (r.to_owned(), row))
    };
    for (cpu, _) in owned("host_cpu") {
        txn.ops.push(destroy("host_cpu", &cpu));
    }
    for (pif, row) in owned("PIF") {
        txn.ops.push(destroy("PIF", &pif));
        if db.get("PIF_metrics", row.str("metrics")).is_some() {
            txn.ops.push(destroy("PIF_metrics", row.str("metrics")));
        }
    }
    for (pbd, row) in owned("PBD") {
        txn.ops.push(destroy("PBD", &pbd));
        let sr = row.str("SR");
        let is_only_here = db
            .rows("PBD")
            .filter(|(_, other)| other.str("SR") == sr)
            .all(|(_, other)| other.str("host") == host);
        if is_only_here && db.get("SR", sr).is_some() {
            for (vdi, _) in db.rows("VDI").filter(|(_, vdi)| vdi.str("SR") == sr) {
                txn.ops.push(destroy("VDI", vdi));
            }
            txn.ops.push(destroy("SR", sr));
        }
    }
    for (vm, row) in db.rows("VM") {
        let is_dom0_here = row.str("resident_on") == host
            && row.get("is_control_domain") == Some(&Value::Bool(true));
        if is_dom0_here {
            txn.ops.push(destroy("VM", vm));
            if db.get("VM_metrics", row.str("metrics")).is_some() {
                txn.ops.push(destroy("VM_metrics", row.str("metrics")));
            }
        } else if row.str("affinity") == host {
            txn.ops.push(Op::Set {
                class: "VM".to_owned(),
                r#ref: vm.to_owned(),
                field: "affinity".to_owned(),
                value: Value::str(api_spec::NULL_REF),
            });
        }
    }
    txn.ops.push(destroy("host", host));
    if let Some(metrics) = db
        .get("host", host)
        .map(|row| row.str("metrics"))
        .filter(|m| db.get("host_metrics", m).is_some())
    {
        txn.ops.push(destroy("host_metrics", metrics));
    }
    txn
}

#[cfg(test)]
mod tests {
    use api_spec::errors as codes;

    use super::*;
    use crate::pool::control::{JoinRequest, PoolMember};
    use crate::testing::{ControlCall, TestPool, sample_facts};

    /// Admits a second host (node 2) through `Master::admit`; returns its ref.
    async fn joined_host(pool: &TestPool, session: &str) -> (String, PoolMember) {
        let member = PoolMember {
            node_id: 2,
            host: "OpaqueRef:00000000-0000-4000-8000-000000000002".to_owned(),
            address: "127.0.0.2:4443".to_owned(),
            cert_sha256: "ef".repeat(32),
        };
        let request = JoinRequest {
            session: session.to_owned(),
            force: true,
            member: member.clone(),
            host_uuid: "00000000-0000-4000-8000-000000000002".to_owned(),
            api_version_major: api_spec::api::API_VERSION_MAJOR,
            api_version_minor: api_spec::api::API_VERSION_MINOR,
            facts: sample_facts(),
        };
        pool.master.admit(request).await.expect("admitted");
        (member.host.clone(), member)
    }

    /// An ejected host loses its rows and member entry, leaves Raft and is told to reset;
    /// the master's rows stay.
    #[tokio::test]
    async fn eject_removes_the_host_its_rows_and_its_node() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (host, member) = joined_host(&pool, &session).await;
        let rows_before = |class| pool.read().count(class);
        let (srs, pifs, vms) = (rows_before("SR"), rows_before("PIF"), rows_before("VM"));
        pool.call_as(&session, "pool.eject", vec![Value::str(host.as_str())])
            .await
            .expect("ejected");
        let db = pool.read();
        assert!(db.get("host", &host).is_none());
        assert_eq!(db.count("SR"), srs - 1);
        assert_eq!(db.count("PIF"), pifs - 1);
        assert_eq!(db.count("VM"), vms - 1);
        assert_eq!(db.count("host"), 1);
        assert!(db.rows("host_cpu").all(|(_, cpu)| cpu.str("host") != host));
        assert_eq!(member_of_host(&db, &host), None);
        drop(db);
        let calls = pool.pool_control.calls();
        assert_eq!(
            calls[1..],
            [ControlCall::RemoveNode(2), ControlCall::ResetMember(member)]
        );
    }

    /// An ejected host that cannot be told to reset is still out of the pool.
    #[tokio::test]
    async fn eject_of_an_unreachable_host_still_succeeds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (host, _) = joined_host(&pool, &session).await;
        pool.pool_control.make_unreachable(2);
        let reply = pool
            .call_as(&session, "pool.eject", vec![Value::str(host.as_str())])
            .await;
        assert_eq!(reply, Ok(void()));
        assert!(pool.read().get("host", &host).is_none());
    }

    /// A host with a running VM is not ejected: `OPERATION_NOT_ALLOWED`.
    #[tokio::test]
    async fn eject_with_a_resident_vm_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (host, _) = joined_host(&pool, &session).await;
        let vm = pool.running_vm(&session, "guest").await;
        pool.write("VM", &vm, &[("resident_on", Value::str(host.as_str()))]);
        let error = pool
            .call_as(&session, "pool.eject", vec![Value::str(host.as_str())])
            .await
            .expect_err("refused");
        assert_eq!(error.code, codes::OPERATION_NOT_ALLOWED);
        assert_eq!(error.params, vec!["VM resident on host".to_owned()]);
        assert!(pool.read().get("host", &host).is_some());
    }

    /// The master cannot eject itself.
    #[tokio::test]
    async fn eject_of_the_master_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let error = pool
            .call_as(&session, "pool.eject", vec![Value::str(pool.host.as_str())])
            .await
            .expect_err("refused");
        assert_eq!(error.code, codes::INTERNAL_ERROR);
        assert!(pool.read().get("host", &pool.host).is_some());
    }
}
