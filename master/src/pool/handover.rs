//! The task of an `Async.pool.designate_new_master`: the master that runs it hands the
//! leadership over before it can end the task, so it records the task and the designated host
//! in the DB first, and the new master ends the task as a success when it takes over (a task
//! left by any other master change fails as an orphan).

use std::collections::BTreeMap;

use api_spec::Value;
use db_schema::{Db, Op};

use crate::vm::operations::Draft;

/// The internal DB key of the handover: `{task, host}`, `Nil` once done.
const HANDOVER: &str = "handover_task";

/// The op that records `task` handing the mastership to `host`.
pub(crate) fn put(task: &str, host: &str) -> Op {
    Op::PutInternal {
        key: HANDOVER.to_owned(),
        value: Value::Struct(BTreeMap::from([
            ("task".to_owned(), Value::str(task)),
            ("host".to_owned(), Value::str(host)),
        ])),
    }
}

/// Adds to `draft` what a new master on `this_host` does with a recorded handover: the task,
/// still pending, succeeds if it designated this host; the record goes either way. Returns
/// the task ended, if any.
pub(crate) fn complete(db: &Db, draft: &mut Draft, this_host: &str, now: i64) -> Option<String> {
    let Some(Value::Struct(handover)) = db.internal(HANDOVER) else {
        return None;
    };
    draft.push(Op::PutInternal {
        key: HANDOVER.to_owned(),
        value: Value::Nil,
    });
    let task = handover.get("task").and_then(Value::as_str)?;
    let host = handover.get("host").and_then(Value::as_str)?;
    let is_pending = db
        .get("task", task)
        .is_some_and(|row| row.get("status") == Some(&Value::str("pending")));
    if host != this_host || !is_pending {
        return None;
    }
    draft.require_unchanged("task", task, "status");
    let stamp = Value::DateTime(api_spec::datetime::format_unix(now));
    for (field, value) in [
        ("status", Value::str("success")),
        ("result", Value::str("")),
        ("progress", Value::Float(1.0)),
        ("finished", stamp),
        ("allowed_operations", Value::Array(Vec::new())),
        ("current_operations", Value::Struct(BTreeMap::new())),
    ] {
        draft.update("task", task, field, value);
    }
    Some(task.to_owned())
}
