//! Long operations: the `Async.` form of a call, followed through its task with `event.from`,
//! a progress bar on a terminal (nothing when stderr is not one), and the task's result or
//! error as if the call had been made directly.

use std::io::IsTerminal;

use api_spec::codec::{Limits, xmlrpc};
use api_spec::{ApiError, Value, api};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Session, as_string};
use crate::error::XeError;

/// How long one `event.from` may block, in seconds; the wait simply goes on after it.
const EVENT_TIMEOUT_SECONDS: f64 = 30.0;

/// Calls `method`, through its task when it has an `Async.` form, and returns its result.
pub async fn call_and_wait(
    session: &Session,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, XeError> {
    if !api().method(method).is_some_and(|m| m.has_async) {
        return session.call(method, params).await;
    }
    let task = session.call_str(&format!("Async.{method}"), params).await?;
    let bar = progress_bar(method);
    let outcome = follow(session, &task, &bar).await;
    bar.finish_and_clear();
    // A finished task is no longer needed; xe removes its own as xapi's does.
    let _ = session
        .call("task.destroy", vec![Value::str(task.as_str())])
        .await;
    outcome_of(method, &outcome?)
}

/// A terminal's progress bar labelled `label`, positions 0 to 100; a hidden one when stderr is
/// not a terminal.
pub fn progress_bar(label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}%")
            .expect("invariant: the progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    bar
}

/// Waits until the task is no longer pending; returns its last record.
async fn follow(session: &Session, task: &str, bar: &ProgressBar) -> Result<Value, XeError> {
    let subscription = Value::Array(vec![Value::String(format!("task/{task}"))]);
    let mut token = String::new();
    loop {
        let reply = session
            .call(
                "event.from",
                vec![
                    subscription.clone(),
                    Value::String(token.clone()),
                    Value::Float(EVENT_TIMEOUT_SECONDS),
                ],
            )
            .await?;
        let reply = reply.as_struct().ok_or_else(|| XeError::UnexpectedReply {
            what: format!("{reply:?}"),
            expected: "an event.from batch",
        })?;
        if let Some(next) = reply.get("token").and_then(Value::as_str) {
            token = next.to_owned();
        }
        let events = reply.get("events").and_then(Value::as_array).unwrap_or(&[]);
        for event in events.iter().filter_map(Value::as_struct) {
            if event.get("ref").and_then(Value::as_str) != Some(task) {
                continue;
            }
            let Some(snapshot) = event.get("snapshot") else {
                return Err(XeError::UnexpectedReply {
                    what: format!("the deletion of task {task}"),
                    expected: "its completion",
                });
            };
            let field = |name| snapshot.as_struct().and_then(|s| s.get(name));
            if let Some(Value::Float(progress)) = field("progress") {
                bar.set_position((progress.clamp(0.0, 1.0) * 100.0) as u64);
            }
            let status = field("status").and_then(Value::as_str).unwrap_or("");
            if !matches!(status, "pending" | "cancelling") {
                return Ok(snapshot.clone());
            }
        }
    }
}

/// The result of a finished task, or its error as the direct call would have raised it.
fn outcome_of(method: &str, task: &Value) -> Result<Value, XeError> {
    let field = |name| task.as_struct().and_then(|s| s.get(name));
    match field("status").and_then(Value::as_str) {
        Some("success") => {
            let text = field("result").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() {
                return Ok(Value::Nil);
            }
            xmlrpc::decode_value(text, &Limits::for_replies()).map_err(|source| XeError::Decode {
                server: "the task".to_owned(),
                method: method.to_owned(),
                source,
            })
        }
        _ => {
            let info: Vec<String> = field("error_info")
                .and_then(Value::as_array)
                .unwrap_or(&[])
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let (code, params) = info
                .split_first()
                .map(|(c, p)| (c.clone(), p.to_vec()))
                .unwrap_or_else(|| ("INTERNAL_ERROR".to_owned(), vec!["task failed".into()]));
            Err(XeError::api(method, ApiError { code, params }))
        }
    }
}

/// The uuid of the object of `class` that a call returned a ref to.
pub async fn uuid_of(session: &Session, class: &str, r: Value) -> Result<String, XeError> {
    let r = as_string(r, "an object reference")?;
    session
        .call_str(&format!("{class}.get_uuid"), vec![Value::String(r)])
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn task(pairs: &[(&str, Value)]) -> Value {
        Value::Struct(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    /// A successful task gives its result decoded from XML-RPC; void gives nil.
    #[test]
    fn successful_task_gives_its_decoded_result() {
        let done = task(&[
            ("status", Value::str("success")),
            ("result", Value::str("<value>OpaqueRef:x</value>")),
        ]);
        assert_eq!(
            outcome_of("VM.clone", &done).expect("success"),
            Value::str("OpaqueRef:x")
        );
        let void = task(&[
            ("status", Value::str("success")),
            ("result", Value::str("")),
        ]);
        assert_eq!(outcome_of("VM.start", &void).expect("success"), Value::Nil);
    }

    /// A failed task raises its error_info as the call's XenAPI error.
    #[test]
    fn failed_task_raises_its_error_info() {
        let failed = task(&[
            ("status", Value::str("failure")),
            (
                "error_info",
                Value::Array(vec![Value::str("VM_BAD_POWER_STATE"), Value::str("r")]),
            ),
        ]);
        let err = outcome_of("VM.start", &failed).expect_err("failure");
        assert_eq!(err.api_code(), Some("VM_BAD_POWER_STATE"));
    }
}
