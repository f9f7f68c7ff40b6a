//! What a host does when it becomes the master: `pool.master` names it, the tasks the old
//! master ran are failed (their workers died with its mastership), every host gets a fresh
//! liveness grace period, and every live host's agent is asked what it runs so the DB agrees
//! with it.

use std::sync::Arc;

use api_spec::Value;

use crate::Master;
use crate::call::tasks;
use crate::error::{Error, to_api_error};
use crate::vm::operations::Draft;

/// What a takeover found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// Pending tasks with no worker here, now failed.
    pub failed_tasks: Vec<String>,
    /// Live hosts whose inventory was reconciled.
    pub reconciled: Vec<String>,
    /// Live hosts whose agent could not answer; liveness deals with them.
    pub unreachable: Vec<String>,
}

/// Takes over as master; see the module header. A failed step is logged and the rest still
/// runs.
pub(crate) async fn take_over(master: &Arc<Master>) -> Takeover {
    // A new leader's replica may not have applied all its predecessor committed yet.
    if let Err(e) = master.db.read_barrier().await {
        tracing::warn!(error = %e, "read barrier before the takeover failed");
    }
    let now = master.now();
    let (hosts, live_hosts) = {
        let db = master.db.read();
        let hosts: Vec<String> = db.rows("host").map(|(r, _)| r.to_owned()).collect();
        let live = hosts
            .iter()
            .filter(|host| {
                let metrics = db.get("host", host).map(|row| row.str("metrics"));
                metrics
                    .and_then(|m| db.get("host_metrics", m))
                    .and_then(|row| row.get("live"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .cloned()
            .collect::<Vec<_>>();
        (hosts, live)
    };
    master.liveness.restart(&hosts, master.monotonic_secs());
    if let Err(e) = name_this_host_master(master).await {
        let code = to_api_error(e).code;
        tracing::warn!(code = %code, "pool.master not updated");
    }
    let mut takeover = Takeover::default();
    match fail_orphan_tasks(master, now).await {
        Ok(failed) => takeover.failed_tasks = failed,
        Err(e) => {
            let code = to_api_error(e).code;
            tracing::warn!(code = %code, "tasks of the old master not failed");
        }
    }
    let asks: Vec<_> = live_hosts
        .into_iter()
        .map(|host| {
            let master = Arc::clone(master);
            tokio::spawn(async move {
                let outcome = super::ask(&master, &host).await;
                (host, outcome)
            })
        })
        .collect();
    for ask in asks {
        match ask.await {
            Ok((host, Ok(()))) => takeover.reconciled.push(host),
            Ok((host, Err(e))) => {
                let code = to_api_error(e).code;
                tracing::warn!(host = %host, code = %code, "host inventory not reconciled");
                takeover.unreachable.push(host);
            }
            Err(err) => tracing::error!(error = %err, "a host inventory failed unexpectedly"),
        }
    }
    takeover.reconciled.sort();
    takeover.unreachable.sort();
    tracing::info!(
        failed_tasks = takeover.failed_tasks.len(),
        reconciled = takeover.reconciled.len(),
        unreachable = takeover.unreachable.len(),
        "took over as master"
    );
    takeover
}

/// Makes `pool.master` this host (a no-op when it already is).
async fn name_this_host_master(master: &Master) -> Result<(), Error> {
    master
        .decide(|db| {
            let mut draft = Draft::new(db);
            for (pool, _) in db.rows("pool") {
                let this_host = Value::str(master.this_host.as_str());
                draft.update("pool", pool, "master", this_host);
            }
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(())
}

/// Fails every pending or cancelling task that no worker of this process runs, as xapi
/// cancels the tasks a restarted toolstack finds: status `failure`, `TASK_CANCELLED [task]`;
/// but the task that handed the mastership to this host succeeds (`handover`).
async fn fail_orphan_tasks(master: &Master, now: i64) -> Result<Vec<String>, Error> {
    let (failed, _) = master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let handed = crate::pool::handover::complete(db, &mut draft, &master.this_host, now);
            let mut failed = Vec::new();
            for (task, row) in db.rows("task") {
                if handed.as_deref() == Some(task)
                    || !tasks::is_orphan(master, task, row.str("status"))
                {
                    continue;
                }
                tasks::fail_orphan(
                    &mut draft,
                    task,
                    &[api_spec::errors::TASK_CANCELLED, task],
                    now,
                );
                failed.push(task.to_owned());
            }
            Ok((draft.into_txn(), failed))
        })
        .await?;
    for task in &failed {
        tracing::info!(task = %task, "task of the old master failed");
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use super::*;
    use crate::call::tasks::{NewTask, create};
    use crate::testing::TestPool;
    use host_api::HostAction;

    /// A new master names itself in `pool.master`, fails the pending tasks no worker of it
    /// runs with `TASK_CANCELLED`, reconciles every live host (a VM whose domain is gone is
    /// halted) and asks no dead host.
    #[tokio::test]
    async fn a_new_master_fails_orphan_tasks_and_reconciles_live_hosts() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let task = create(
            &pool.master,
            NewTask {
                label: "VM.clean_shutdown",
                description: "",
                subtask_of: NULL_REF,
                is_cancellable: true,
            },
        )
        .await
        .expect("created");
        let dead = pool.add_host("dead", 64 << 30);
        let metrics = pool.text("host", &dead, "metrics");
        pool.write("host_metrics", &metrics, &[("live", Value::Bool(false))]);
        pool.agent.remove_domain(&pool.text("VM", &vm, "uuid"));
        let pool_ref = pool.refs("pool").remove(0);
        pool.write("pool", &pool_ref, &[("master", Value::str(dead.as_str()))]);

        let takeover = pool.master.on_elected().await;

        assert_eq!(pool.text("pool", &pool_ref, "master"), pool.host);
        assert_eq!(takeover.failed_tasks, std::slice::from_ref(&task));
        assert_eq!(takeover.reconciled, std::slice::from_ref(&pool.host));
        assert!(takeover.unreachable.is_empty());
        assert_eq!(pool.text("task", &task, "status"), "failure");
        assert_eq!(
            pool.field("task", &task, "error_info"),
            Some(Value::Array(vec![
                Value::str("TASK_CANCELLED"),
                Value::str(task.as_str())
            ]))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        let asked: Vec<String> = pool
            .agent
            .received()
            .into_iter()
            .filter(|r| r.action == HostAction::Inventory)
            .map(|r| r.host)
            .collect();
        assert_eq!(asked, std::slice::from_ref(&pool.host));
    }

    /// The task that designated this host master succeeds when this host takes over, the
    /// handover record goes, and another pending task still fails.
    #[tokio::test]
    async fn the_task_that_designated_this_host_succeeds() {
        let pool = TestPool::new();
        let new = |label| NewTask {
            label,
            description: "",
            subtask_of: NULL_REF,
            is_cancellable: true,
        };
        let designate = create(&pool.master, new("Async.pool.designate_new_master"))
            .await
            .expect("created");
        let other = create(&pool.master, new("Async.VM.start"))
            .await
            .expect("created");
        let txn = db_schema::Txn {
            preconditions: Vec::new(),
            ops: vec![crate::pool::handover::put(&designate, &pool.host)],
        };
        pool.master.commit(txn).await.expect("handover recorded");

        let takeover = pool.master.on_elected().await;

        assert_eq!(pool.text("task", &designate, "status"), "success");
        assert_eq!(takeover.failed_tasks, std::slice::from_ref(&other));
        assert_eq!(pool.text("task", &other, "status"), "failure");
        let again = pool.master.on_elected().await;
        assert!(again.failed_tasks.is_empty());
        assert_eq!(pool.text("task", &designate, "status"), "success");
    }
}
