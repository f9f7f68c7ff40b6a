//! Tasks: the `task` row every `Async.` call gets, the in-process worker that runs it (with its
//! cancellation token), the outcome it commits, throttled progress, and the housekeeping that
//! destroys old tasks. Task rows are DB rows, so every change is an event.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_spec::classes::task::TaskOperation;
use api_spec::{ApiError, NEVER, NULL_REF, Value};
use db_schema::{Db, Op, Precondition, Txn};
use tokio_util::sync::CancellationToken;

use crate::Master;
use crate::call::aging::secs;
use crate::db::record::{self, exists};
use crate::error::Error;
use crate::vm::operations::Draft;

/// The least time between two progress writes of one task.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Housekeeping keeps at most this many finished tasks (xapi's cap).
const MAX_FINISHED_TASKS: usize = 200;

/// What a worker knows of the task it runs as.
#[derive(Clone)]
pub(crate) struct TaskHandle {
    pub r#ref: String,
    /// Cancelled once by `task.cancel`; the worker checks it at its cancellation points and
    /// passes it on to host actions.
    pub cancel: CancellationToken,
    /// When progress was last written.
    last_progress: Arc<Mutex<Option<tokio::time::Instant>>>,
}

/// The tasks with a worker in this process, by ref. Lost when mastership moves: a new master
/// sees their rows pending, and cancelling one then marks it cancelled.
#[derive(Default)]
pub(crate) struct Workers {
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl Workers {
    /// The cancellation token of the worker running `task`, if one runs here.
    pub fn get(&self, task: &str) -> Option<CancellationToken> {
        self.lock().get(task).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running
            .lock()
            .expect("no panic while holding the workers lock")
    }
}

/// A task row about to be created.
pub(crate) struct NewTask<'a> {
    pub label: &'a str,
    pub description: &'a str,
    /// The parent task, or the null ref.
    pub subtask_of: &'a str,
    /// Whether `cancel` is an allowed operation.
    pub is_cancellable: bool,
}

/// Creates a pending task row; returns its ref.
pub(crate) async fn create(master: &Master, new: NewTask<'_>) -> Result<String, Error> {
    let class = record::class("task")?;
    let r = record::new_ref();
    let now = Value::DateTime(api_spec::datetime::format_unix(master.now()));
    let allowed: Vec<Value> = if new.is_cancellable {
        vec![TaskOperation::Cancel.into()]
    } else {
        Vec::new()
    };
    let given = BTreeMap::from([
        ("uuid".to_owned(), Value::String(record::new_uuid())),
        ("name_label".to_owned(), Value::str(new.label)),
        ("name_description".to_owned(), Value::str(new.description)),
        ("allowed_operations".to_owned(), Value::Array(allowed)),
        ("created".to_owned(), now),
        ("finished".to_owned(), Value::DateTime(NEVER.to_owned())),
        ("status".to_owned(), Value::str("pending")),
        (
            "resident_on".to_owned(),
            Value::str(master.this_host.as_str()),
        ),
        ("progress".to_owned(), Value::Float(0.0)),
        ("type".to_owned(), Value::str("<none/>")),
        ("subtask_of".to_owned(), Value::str(new.subtask_of)),
    ]);
    let mut preconditions = Vec::new();
    if new.subtask_of != NULL_REF {
        preconditions.push(exists("task", new.subtask_of));
    }
    let txn = Txn {
        preconditions,
        ops: vec![Op::Create {
            class: "task".to_owned(),
            r#ref: r.clone(),
            fields: record::new_row(class, given),
        }],
    };
    master.commit(txn).await?;
    Ok(r)
}

/// Creates a task and runs `work` as its worker in the background; returns the task's ref at
/// once. The outcome is committed to the row when `work` ends: its result as XML-RPC value
/// text (`""` when `is_void`), or its error.
pub(crate) async fn spawn<F, Fut>(
    master: &Arc<Master>,
    new: NewTask<'_>,
    is_void: bool,
    work: F,
) -> Result<String, Error>
where
    F: FnOnce(TaskHandle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let r = create(master, new).await?;
    let handle = TaskHandle {
        r#ref: r.clone(),
        cancel: CancellationToken::new(),
        last_progress: Arc::default(),
    };
    master
        .workers
        .lock()
        .insert(r.clone(), handle.cancel.clone());
    let master = master.clone();
    tokio::spawn(async move {
        let task = handle.r#ref.clone();
        let outcome = work(handle).await;
        if let Err(e) = finish(&master, &task, outcome, is_void).await {
            let code = crate::error::to_api_error(e).code;
            tracing::warn!(code = %code, "task outcome not recorded");
        }
        master.workers.lock().remove(&task);
    });
    Ok(r)
}

/// Runs the existing task `task` (a client's, from `task.create`) as a worker of this
/// process until `finish_adopted`: `task.cancel` cancels the returned handle's token.
pub(crate) fn adopt(master: &Master, task: &str) -> TaskHandle {
    let handle = TaskHandle {
        r#ref: task.to_owned(),
        cancel: CancellationToken::new(),
        last_progress: Arc::default(),
    };
    master
        .workers
        .lock()
        .insert(task.to_owned(), handle.cancel.clone());
    handle
}

/// Ends a task taken with `adopt` with `outcome` (a call without a result) and lets it go;
/// a failure to record it is only logged, as for a spawned task.
pub(crate) async fn finish_adopted(
    master: &Master,
    task: TaskHandle,
    outcome: Result<Value, ApiError>,
) {
    if let Err(e) = finish(master, &task.r#ref, outcome, true).await {
        let code = crate::error::to_api_error(e).code;
        tracing::warn!(code = %code, "task outcome not recorded");
    }
    master.workers.lock().remove(&task.r#ref);
}

/// Commits a worker's outcome. A task destroyed meanwhile is left alone; one whose
/// destruction was deferred (`destroy` in `current_operations`) is destroyed now.
async fn finish(
    master: &Master,
    task: &str,
    outcome: Result<Value, ApiError>,
    is_void: bool,
) -> Result<(), Error> {
    let now = Value::DateTime(api_spec::datetime::format_unix(master.now()));
    let result_text = match &outcome {
        Ok(value) if !is_void => api_spec::codec::xmlrpc::encode_value(value),
        _ => String::new(),
    };
    master
        .decide(|db| {
            let Some(row) = db.get("task", task) else {
                return Ok((Txn::default(), ()));
            };
            let status = row.str("status").to_owned();
            let precondition = Precondition::FieldEquals {
                class: "task".to_owned(),
                r#ref: task.to_owned(),
                field: "status".to_owned(),
                value: Value::String(status.clone()),
            };
            if status != "pending" && status != "cancelling" {
                return Ok((Txn::default(), ()));
            }
            let is_destroy_deferred = row
                .get("current_operations")
                .and_then(Value::as_struct)
                .is_some_and(|ops| ops.values().any(|op| *op == TaskOperation::Destroy.into()));
            if is_destroy_deferred {
                let txn = Txn {
                    preconditions: vec![precondition],
                    ops: vec![Op::Destroy {
                        class: "task".to_owned(),
                        r#ref: task.to_owned(),
                    }],
                };
                return Ok((txn, ()));
            }
            let mut fields = vec![
                ("progress", Value::Float(1.0)),
                ("finished", now.clone()),
                ("allowed_operations", Value::Array(Vec::new())),
                ("current_operations", Value::Struct(BTreeMap::new())),
            ];
            match &outcome {
                Ok(_) => {
                    fields.push(("result", Value::String(result_text.clone())));
                    fields.push(("status", Value::str("success")));
                }
                Err(e) => {
                    let status = if e.code == api_spec::errors::TASK_CANCELLED {
                        "cancelled"
                    } else {
                        "failure"
                    };
                    let info = e.description().into_iter().map(Value::String).collect();
                    fields.push(("error_info", Value::Array(info)));
                    fields.push(("status", Value::str(status)));
                }
            }
            Ok((set_fields(task, precondition, fields), ()))
        })
        .await?;
    Ok(())
}

/// Whether `task`, of status `status`, is still to finish but no worker of this process runs
/// it: the worker died with the process (or the master) that ran it.
pub(crate) fn is_orphan(master: &Master, task: &str, status: &str) -> bool {
    matches!(status, "pending" | "cancelling") && master.workers.get(task).is_none()
}

/// Ends the orphaned `task` in `draft` as a failure with `error_info`, provided its status is
/// unchanged when the Txn applies.
pub(crate) fn fail_orphan(draft: &mut Draft, task: &str, error_info: &[&str], now: i64) {
    draft.require_unchanged("task", task, "status");
    let info = error_info.iter().copied().map(Value::str).collect();
    let stamp = Value::DateTime(api_spec::datetime::format_unix(now));
    for (field, value) in [
        ("status", Value::str("failure")),
        ("error_info", Value::Array(info)),
        ("progress", Value::Float(1.0)),
        ("finished", stamp),
        ("allowed_operations", Value::Array(Vec::new())),
        ("current_operations", Value::Struct(BTreeMap::new())),
    ] {
        draft.update("task", task, field, value);
    }
}

/// A Txn that sets fields of a task under one precondition.
pub(crate) fn set_fields(
    task: &str,
    precondition: Precondition,
    fields: Vec<(&str, Value)>,
) -> Txn {
    Txn {
        preconditions: vec![precondition],
        ops: fields
            .into_iter()
            .map(|(field, value)| Op::Set {
                class: "task".to_owned(),
                r#ref: task.to_owned(),
                field: field.to_owned(),
                value,
            })
            .collect(),
    }
}

/// Writes a task's progress, at most once per `PROGRESS_INTERVAL` (the final 1.0 always). A
/// failed write is only logged: progress is advisory.
pub(crate) async fn report_progress(master: &Master, task: &TaskHandle, progress: f64) {
    {
        let mut last = task
            .last_progress
            .lock()
            .expect("no panic while holding a progress lock");
        let now = tokio::time::Instant::now();
        if progress < 1.0 && last.is_some_and(|t| now - t < PROGRESS_INTERVAL) {
            return;
        }
        *last = Some(now);
    }
    let txn = set_fields(
        &task.r#ref,
        exists("task", &task.r#ref),
        vec![("progress", Value::Float(progress.clamp(0.0, 1.0)))],
    );
    if let Err(e) = master.commit(txn).await {
        tracing::debug!(code = %crate::error::to_api_error(e).code, "task progress not recorded");
    }
}

/// Destroys finished tasks older than `task_gc_after_secs`, pending ones older than
/// `pending_task_gc_after_secs` that no worker here runs, and the oldest finished ones beyond
/// xapi's cap of 200.
pub(crate) async fn collect_garbage(master: &Master) -> Result<(), Error> {
    let now = master.clock.monotonic();
    let (count, _) = master
        .decide(|db| {
            let running = master.workers.lock();
            let doomed = tasks_to_destroy(db, now, master, |t| running.contains_key(t));
            let txn = Txn {
                preconditions: doomed.iter().map(|r| exists("task", r)).collect(),
                ops: doomed
                    .iter()
                    .map(|r| Op::Destroy {
                        class: "task".to_owned(),
                        r#ref: r.clone(),
                    })
                    .collect(),
            };
            Ok((txn, doomed.len()))
        })
        .await?;
    if count > 0 {
        tracing::debug!(count, "old tasks destroyed");
    }
    Ok(())
}

/// Which tasks housekeeping destroys at `now` (monotonic). A task ages by its `finished`
/// (`aging.rs`): a pending one from when the master first saw it pending, a finished one from
/// when it first saw it finished.
fn tasks_to_destroy(
    db: &Db,
    now: Duration,
    master: &Master,
    has_worker: impl Fn(&str) -> bool,
) -> Vec<String> {
    let tasks: Vec<(&str, &str, &str)> = db
        .rows("task")
        .map(|(r, row)| {
            let finished = row.get("finished").and_then(Value::as_str);
            (r, row.str("status"), finished.unwrap_or_default())
        })
        .collect();
    let values: Vec<(&str, &str)> = tasks.iter().map(|&(r, _, f)| (r, f)).collect();
    let ages = master.task_ages.of(&values, now);
    let pending_gc_after = secs(master.config.pending_task_gc_after_secs);
    let gc_after = secs(master.config.task_gc_after_secs);
    let mut doomed = Vec::new();
    let mut finished = Vec::new();
    for ((r, status, finished_at), age) in tasks.into_iter().zip(ages) {
        match status {
            "pending" | "cancelling" => {
                if age > pending_gc_after && !has_worker(r) {
                    doomed.push(r.to_owned());
                }
            }
            _ if age > gc_after => doomed.push(r.to_owned()),
            _ => {
                let finished_at = api_spec::datetime::parse_unix(finished_at).unwrap_or(0);
                finished.push((finished_at, r));
            }
        }
    }
    if finished.len() > MAX_FINISHED_TASKS {
        finished.sort();
        let excess = finished.len() - MAX_FINISHED_TASKS;
        doomed.extend(finished[..excess].iter().map(|(_, r)| (*r).to_owned()));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use crate::testing::TestPool;

    async fn task(pool: &TestPool, label: &str) -> String {
        let new = NewTask {
            label,
            description: "",
            subtask_of: NULL_REF,
            is_cancellable: true,
        };
        create(&pool.master, new).await.expect("created")
    }

    fn finish_now(pool: &TestPool, task: &str) {
        finish_at(pool, task, pool.clock.now_unix());
    }

    /// Marks `task` a success that finished at `finished_unix`.
    fn finish_at(pool: &TestPool, task: &str, finished_unix: i64) {
        let finished = Value::DateTime(api_spec::datetime::format_unix(finished_unix));
        let txn = set_fields(
            task,
            exists("task", task),
            vec![("status", Value::str("success")), ("finished", finished)],
        );
        pool.db.apply(&txn).expect("finished");
    }

    /// Progress reports closer together than the interval write once; the final 1.0 always
    /// writes.
    #[tokio::test]
    async fn progress_reports_are_throttled() {
        let pool = TestPool::new();
        let r = task(&pool, "work").await;
        let ctx = crate::call::ctx::Ctx {
            master: pool.master.clone(),
            session: None,
            origin: crate::Origin::LocalSocket,
            task: Some(TaskHandle {
                r#ref: r.clone(),
                cancel: CancellationToken::new(),
                last_progress: Arc::default(),
            }),
        };
        let before = pool.read().applied_index();
        for progress in [0.1, 0.2, 0.3] {
            ctx.set_progress(progress).await;
        }
        assert_eq!(pool.read().applied_index(), before + 1);
        assert_eq!(pool.field("task", &r, "progress"), Some(Value::Float(0.1)));
        ctx.set_progress(1.0).await;
        assert_eq!(pool.field("task", &r, "progress"), Some(Value::Float(1.0)));
    }

    /// A task that subtasks another is listed in the parent's `subtasks`.
    #[tokio::test]
    async fn subtasks_are_listed_by_their_parent() {
        let pool = TestPool::new();
        let parent = task(&pool, "parent").await;
        let new = NewTask {
            label: "child",
            description: "",
            subtask_of: &parent,
            is_cancellable: false,
        };
        let child = create(&pool.master, new).await.expect("created");
        assert_eq!(
            pool.field("task", &parent, "subtasks"),
            Some(Value::Array(vec![Value::str(child.as_str())]))
        );
    }

    /// Housekeeping destroys finished tasks `task_gc_after_secs` after it first saw them
    /// finished and pending ones `pending_task_gc_after_secs` after it first saw them, and
    /// keeps younger ones.
    #[tokio::test]
    async fn housekeeping_destroys_old_tasks() {
        let pool = TestPool::new();
        let old_pending = task(&pool, "stuck").await;
        let old_finished = task(&pool, "done long ago").await;
        finish_now(&pool, &old_finished);
        pool.master.housekeeping().await;
        pool.clock.advance(4000);
        let young_finished = task(&pool, "done").await;
        finish_now(&pool, &young_finished);
        pool.master.housekeeping().await;
        assert_eq!(pool.refs("task").len(), 2);
        assert!(pool.read().get("task", &old_finished).is_none());
        pool.clock.advance(24 * 3600);
        let young_pending = task(&pool, "running").await;
        pool.master.housekeeping().await;
        assert_eq!(pool.refs("task"), [young_pending]);
        assert!(pool.read().get("task", &old_pending).is_none());
    }

    /// Finished and pending tasks outlive a jump of the wall clock by two days, also on a
    /// master that first looks at them after the jump.
    #[tokio::test]
    async fn tasks_survive_a_jump_of_the_wall_clock() {
        let pool = TestPool::new();
        let pending = task(&pool, "running").await;
        let finished = task(&pool, "done").await;
        finish_now(&pool, &finished);
        pool.master.housekeeping().await;
        pool.clock.jump(2 * 24 * 3600);
        let finished_late = task(&pool, "done before the jump, seen after").await;
        finish_at(&pool, &finished_late, crate::testing::TEST_START_UNIX);
        pool.clock.advance(60);
        pool.master.housekeeping().await;
        let mut expected = vec![pending, finished, finished_late];
        expected.sort();
        let mut live = pool.refs("task");
        live.sort();
        assert_eq!(live, expected);
    }

    /// Housekeeping keeps at most 200 finished tasks, the most recently finished.
    #[tokio::test]
    async fn housekeeping_keeps_at_most_200_finished_tasks() {
        let pool = TestPool::new();
        let mut finished = Vec::new();
        for i in 0..MAX_FINISHED_TASKS + 3 {
            let r = task(&pool, &format!("t{i}")).await;
            finish_now(&pool, &r);
            finished.push(r);
            pool.clock.advance(1);
        }
        pool.master.housekeeping().await;
        let live = pool.refs("task");
        assert_eq!(live.len(), MAX_FINISHED_TASKS);
        assert!(finished[..3].iter().all(|r| !live.contains(r)));
    }
}
