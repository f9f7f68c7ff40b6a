//! The custom messages of `task`: client tasks, cancellation, destruction and the setters of
//! its runtime fields.

use std::collections::BTreeMap;

use api_spec::classes::task::TaskOperation;
use api_spec::{NULL_REF, Value, errors};
use db_schema::{Db, Op, Precondition, Txn};

use crate::call::ctx::{Args, Ctx, void};
use crate::call::tasks::{NewTask, set_fields};
use crate::db::record::{self, exists, row};
use crate::error::Error;

fn is_finished(status: &str) -> bool {
    matches!(status, "success" | "failure" | "cancelled")
}

fn status_is(task: &str, status: &str) -> Precondition {
    Precondition::FieldEquals {
        class: "task".to_owned(),
        r#ref: task.to_owned(),
        field: "status".to_owned(),
        value: Value::str(status),
    }
}

/// Creates a task for the client to drive (an HTTP import, say); a subtask of the caller's
/// own task when it runs as one.
pub(super) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let subtask_of = ctx.task.as_ref().map_or(NULL_REF, |t| t.r#ref.as_str());
    let new = NewTask {
        label: args.str("label")?,
        description: args.str("description")?,
        subtask_of,
        is_cancellable: true,
    };
    Ok(Value::String(
        crate::call::tasks::create(&ctx.master, new).await?,
    ))
}

/// Destroys a task. A finished task, or a pending one that no worker here runs, goes at once;
/// the destruction of one a worker runs is deferred to its end (`destroy` in
/// `current_operations`), as on xapi.
pub(super) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let task = args.str("self")?;
    let has_worker = ctx.master.workers.get(task).is_some();
    ctx.master
        .decide(|db| {
            let status = row(db, "task", task)?.str("status").to_owned();
            let txn = if is_finished(&status) || !has_worker {
                Txn {
                    preconditions: vec![exists("task", task)],
                    ops: vec![Op::Destroy {
                        class: "task".to_owned(),
                        r#ref: task.to_owned(),
                    }],
                }
            } else {
                current_operation(task, &status, TaskOperation::Destroy)
            };
            Ok((txn, ()))
        })
        .await?;
    Ok(void())
}

/// The Txn that records `operation` in a task's `current_operations`, if its status is still
/// `status`.
fn current_operation(task: &str, status: &str, operation: TaskOperation) -> Txn {
    Txn {
        preconditions: vec![status_is(task, status)],
        ops: vec![Op::MapPut {
            class: "task".to_owned(),
            r#ref: task.to_owned(),
            field: "current_operations".to_owned(),
            key: record::new_ref(),
            value: operation.into(),
        }],
    }
}

/// Cancels a pending task: one a worker here runs turns `cancelling` and its worker is
/// signalled (it ends `cancelled` at its next cancellation point); one without a worker (a
/// client task, or one whose master died) is marked `cancelled` at once. A finished task, or
/// one whose work cannot be cancelled, is `OPERATION_NOT_ALLOWED`.
pub(super) async fn cancel(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let task = args.str("task")?;
    let worker = ctx.master.workers.get(task);
    let now = Value::DateTime(api_spec::datetime::format_unix(ctx.now()));
    ctx.master
        .decide(|db| Ok((cancel_txn(db, task, worker.is_some(), &now)?, ())))
        .await?;
    if let Some(worker) = worker {
        worker.cancel();
        tracing::debug!("task cancellation signalled");
    }
    Ok(void())
}

fn cancel_txn(db: &Db, task: &str, has_worker: bool, now: &Value) -> Result<Txn, Error> {
    let row = row(db, "task", task)?;
    let status = row.str("status");
    if status == "cancelling" {
        return Ok(Txn::default());
    }
    if is_finished(status) {
        let reason = format!("task {task} has finished ({status}) and cannot be cancelled");
        return Err(errors::operation_not_allowed(&reason).into());
    }
    let is_cancellable = row
        .get("allowed_operations")
        .and_then(Value::as_array)
        .is_some_and(|ops| ops.contains(&TaskOperation::Cancel.into()));
    if !is_cancellable {
        let reason = format!("task {task} is in a phase that cannot be cancelled");
        return Err(errors::operation_not_allowed(&reason).into());
    }
    if has_worker {
        let mut txn = current_operation(task, status, TaskOperation::Cancel);
        txn.ops.push(Op::Set {
            class: "task".to_owned(),
            r#ref: task.to_owned(),
            field: "status".to_owned(),
            value: Value::str("cancelling"),
        });
        return Ok(txn);
    }
    Ok(set_fields(
        task,
        status_is(task, status),
        vec![
            ("status", Value::str("cancelled")),
            ("progress", Value::Float(1.0)),
            ("finished", now.clone()),
            ("allowed_operations", Value::Array(Vec::new())),
            ("current_operations", Value::Struct(BTreeMap::new())),
        ],
    ))
}

/// Sets one runtime field of a task, for clients driving their own tasks.
async fn set(ctx: &Ctx, args: &Args, field: &str) -> Result<Value, Error> {
    let task = args.str("self")?;
    let value = args.get("value")?.clone();
    ctx.master
        .commit(set_fields(task, exists("task", task), vec![(field, value)]))
        .await?;
    Ok(void())
}

pub(super) async fn set_status(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set(&ctx, &args, "status").await
}

pub(super) async fn set_progress(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set(&ctx, &args, "progress").await
}

pub(super) async fn set_result(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set(&ctx, &args, "result").await
}

pub(super) async fn set_error_info(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set(&ctx, &args, "error_info").await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::tasks::spawn;
    use crate::testing::{TestPool, s};

    async fn client_task(pool: &TestPool, session: &str) -> String {
        let task = pool
            .call_as(session, "task.create", vec![s("import"), s("an upload")])
            .await
            .expect("created");
        task.as_str().expect("a ref").to_owned()
    }

    /// A worker that waits until its task is cancelled, then stops at that cancellation point.
    async fn cancellable_worker(pool: &TestPool) -> String {
        let new = NewTask {
            label: "long operation",
            description: "",
            subtask_of: NULL_REF,
            is_cancellable: true,
        };
        spawn(&pool.master, new, true, |task| async move {
            task.cancel.cancelled().await;
            Err(errors::task_cancelled(&task.r#ref))
        })
        .await
        .expect("spawned")
    }

    /// `task.create` makes a pending, cancellable task on this host.
    #[tokio::test]
    async fn create_makes_a_pending_client_task() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let task = client_task(&pool, &session).await;
        let field = |name| pool.field("task", &task, name);
        assert_eq!(field("name_label"), Some(s("import")));
        assert_eq!(field("name_description"), Some(s("an upload")));
        assert_eq!(field("status"), Some(s("pending")));
        assert_eq!(field("progress"), Some(Value::Float(0.0)));
        assert_eq!(field("resident_on"), Some(s(&pool.host)));
        assert_eq!(
            field("allowed_operations"),
            Some(Value::Array(vec![s("cancel")]))
        );
    }

    /// Cancelling a client task marks it cancelled at once; cancelling it again, once
    /// finished, is `OPERATION_NOT_ALLOWED`.
    #[tokio::test]
    async fn cancel_marks_a_client_task_cancelled_then_refuses() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let task = client_task(&pool, &session).await;
        let reply = pool.call_as(&session, "task.cancel", vec![s(&task)]).await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(pool.field("task", &task, "status"), Some(s("cancelled")));
        let reply = pool.call_as(&session, "task.cancel", vec![s(&task)]).await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err("OPERATION_NOT_ALLOWED".to_owned())
        );
        let reply = pool
            .call_as(&session, "task.cancel", vec![s("OpaqueRef:gone")])
            .await;
        assert_eq!(reply, Err(errors::handle_invalid("task", "OpaqueRef:gone")));
    }

    /// Cancelling a task with a worker here turns it `cancelling`, signals the worker, and
    /// the task ends `cancelled` with `TASK_CANCELLED` in `error_info`.
    #[tokio::test]
    async fn cancel_of_a_running_worker_ends_cancelled() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let task = cancellable_worker(&pool).await;
        assert_eq!(pool.field("task", &task, "status"), Some(s("pending")));
        let reply = pool.call_as(&session, "task.cancel", vec![s(&task)]).await;
        assert_eq!(reply, Ok(s("")));
        pool.wait_until("the task to end cancelled", |db| {
            db.get("task", &task)
                .is_some_and(|t| t.str("status") == "cancelled")
        })
        .await;
        let info = pool.field("task", &task, "error_info").expect("error_info");
        assert_eq!(info, Value::Array(vec![s("TASK_CANCELLED"), s(&task)]));
    }

    /// A task whose work cannot be cancelled refuses `task.cancel`.
    #[tokio::test]
    async fn cancel_of_an_uncancellable_task_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let new = NewTask {
            label: "commit point",
            description: "",
            subtask_of: NULL_REF,
            is_cancellable: false,
        };
        let released = gate.clone();
        let task = spawn(&pool.master, new, true, |_| async move {
            released.notified().await;
            Ok(void())
        })
        .await
        .expect("spawned");
        let reply = pool.call_as(&session, "task.cancel", vec![s(&task)]).await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err("OPERATION_NOT_ALLOWED".to_owned())
        );
        gate.notify_one();
        pool.wait_until("the task to succeed", |db| {
            db.get("task", &task)
                .is_some_and(|t| t.str("status") == "success")
        })
        .await;
    }

    /// Destroying a finished task removes it; destroying one a worker runs waits for the
    /// worker to end.
    #[tokio::test]
    async fn destroy_removes_finished_tasks_and_defers_running_ones() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let finished = client_task(&pool, &session).await;
        pool.call_as(&session, "task.cancel", vec![s(&finished)])
            .await
            .expect("cancelled");
        let reply = pool
            .call_as(&session, "task.destroy", vec![s(&finished)])
            .await;
        assert_eq!(reply, Ok(s("")));
        assert!(pool.read().get("task", &finished).is_none());
        let running = cancellable_worker(&pool).await;
        pool.call_as(&session, "task.destroy", vec![s(&running)])
            .await
            .expect("deferred");
        assert!(pool.read().get("task", &running).is_some());
        pool.call_as(&session, "task.cancel", vec![s(&running)])
            .await
            .expect("cancelled");
        pool.wait_until("the running task to be destroyed at its end", |db| {
            db.get("task", &running).is_none()
        })
        .await;
    }

    /// A client drives its task with the setters.
    #[tokio::test]
    async fn setters_drive_a_client_task() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let task = client_task(&pool, &session).await;
        for (method, value) in [
            ("task.set_progress", Value::Float(0.5)),
            ("task.set_result", s("<value>OpaqueRef:x</value>")),
            ("task.set_error_info", Value::Array(vec![s("E")])),
            ("task.set_status", s("success")),
        ] {
            let reply = pool.call_as(&session, method, vec![s(&task), value]).await;
            assert_eq!(reply, Ok(s("")), "{method}");
        }
        assert_eq!(
            pool.field("task", &task, "progress"),
            Some(Value::Float(0.5))
        );
        assert_eq!(pool.field("task", &task, "status"), Some(s("success")));
    }
}
