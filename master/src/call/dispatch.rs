//! From a decoded call to its handler, in xapi's order: the method by wire name (`Async.`
//! prefix, removed messages), the parameter count, each parameter's type (defaults filled),
//! the session, then the handler — or, for `Async.` calls, a task that runs it.

use std::sync::Arc;

use api_spec::api::MethodKind;
use api_spec::coerce::coerce;
use api_spec::{ApiError, Method, NULL_REF, Ty, Value, api, errors};

use crate::call::ctx::{Args, Ctx};
use crate::call::session;
use crate::call::tasks::NewTask;
use crate::error::{Error, to_api_error};
use crate::{Call, Master, handlers};

const ASYNC_PREFIX: &str = "Async.";

/// Answers one call.
pub(crate) async fn call(master: &Arc<Master>, call: Call) -> Result<Value, ApiError> {
    let Call {
        method,
        params,
        origin,
    } = call;
    if let Some(answer) = system(&method, &params) {
        return Ok(answer);
    }
    if crate::storage::raw_vdi::is_call(&method) {
        return crate::storage::raw_vdi::call(master, &method, params, origin).await;
    }
    let outcome = checked_call(master, &method, params, origin).await;
    match &outcome {
        Ok(_) => tracing::debug!(method = %method, "call succeeded"),
        Err(e) => tracing::debug!(method = %method, code = %e.code, "call failed"),
    }
    outcome
}

/// The `system.*` calls, which take no session and touch no state.
fn system(method: &str, params: &[Value]) -> Option<Value> {
    if method == "system.listMethods" {
        let names = api()
            .methods()
            .filter(|m| !m.is_removed)
            .map(|m| Value::String(m.wire_name.clone()))
            .collect();
        return Some(Value::Array(names));
    }
    // Old xapi clients probe a connection with `system.isAlive:<uuid>` and expect their first
    // parameter back.
    if method == "system.isAlive" || method.starts_with("system.isAlive:") {
        return Some(
            params
                .first()
                .cloned()
                .unwrap_or_else(crate::call::ctx::void),
        );
    }
    None
}

async fn checked_call(
    master: &Arc<Master>,
    wire: &str,
    params: Vec<Value>,
    origin: crate::Origin,
) -> Result<Value, ApiError> {
    let (is_async, name) = match wire.strip_prefix(ASYNC_PREFIX) {
        Some(name) => (true, name),
        None => (false, wire),
    };
    // xapi answers an `Async.` form that does not exist with a bare `Fault` naming the
    // operation; clients treat an unknown method the same way, so this says so in xapi's
    // usual words.
    let method = api()
        .method(name)
        .filter(|m| m.has_async || !is_async)
        .ok_or_else(|| errors::message_method_unknown(wire))?;
    if method.is_removed {
        return Err(errors::message_removed());
    }
    let (session, values) = check_params(method, params)?;
    master
        .db
        .read_barrier()
        .await
        .map_err(|e| to_api_error(Error::ReadBarrier(e)))?;
    if let Some(session) = &session {
        session::check(master, session)
            .await
            .map_err(to_api_error)?;
    }
    crate::call::no_space::check(master, method)?;
    let ctx = Ctx {
        master: master.clone(),
        session,
        origin,
        task: None,
    };
    let args = Args::new(method, values);
    if !is_async {
        return run(ctx, args).await.map_err(to_api_error);
    }
    let new = NewTask {
        label: wire,
        description: "",
        subtask_of: NULL_REF,
        is_cancellable: true,
    };
    let task = crate::call::tasks::spawn(master, new, method.result.is_none(), move |task| {
        let ctx = Ctx {
            task: Some(task),
            ..ctx
        };
        async move { run(ctx, args).await.map_err(to_api_error) }
    })
    .await
    .map_err(to_api_error)?;
    Ok(Value::String(task))
}

/// Runs the handler of a checked call: the custom one when the table has it, else the
/// generic one for an implicit message (or an explicit one named as a class-level implicit
/// one, e.g. `message.get_all_records`), else `NOT_IMPLEMENTED [wire name]`.
pub(crate) async fn run(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let method = args.method;
    // A task cancelled before its worker started ends cancelled, having changed nothing.
    ctx.check_cancelled()?;
    if let Some(handler) = handlers::handler(&method.wire_name) {
        return handler(ctx, args).await;
    }
    match method.kind {
        MethodKind::Implicit(kind) => crate::call::generic::handle(ctx, kind, args).await,
        MethodKind::Explicit(_) => match api_spec::implicit::class_level(&method.name) {
            Some(kind) if method.class.in_db => crate::call::generic::handle(ctx, kind, args).await,
            _ => Err(errors::not_implemented(&method.wire_name).into()),
        },
    }
}

/// Checks the parameter count and types; returns the session (for methods that take one)
/// and one value per declared parameter, trailing defaults filled.
fn check_params(
    method: &Method,
    mut params: Vec<Value>,
) -> Result<(Option<String>, Vec<Value>), ApiError> {
    let given = i64::try_from(params.len()).unwrap_or(i64::MAX);
    let received = if method.takes_session {
        given - 1
    } else {
        given
    };
    let required = method.required_params();
    let in_range =
        usize::try_from(received).is_ok_and(|n| (required..=method.params.len()).contains(&n));
    if !in_range {
        return Err(errors::message_parameter_count_mismatch(
            &method.wire_name,
            required,
            received,
        ));
    }
    let session = if method.takes_session {
        let session = params.remove(0);
        match coerce(&Ty::Ref("session"), session) {
            Ok(Value::String(s)) => Some(s),
            _ => return Err(errors::field_type_error("session_id")),
        }
    } else {
        None
    };
    let mut given = params.into_iter();
    let mut values = Vec::with_capacity(method.params.len());
    for param in &method.params {
        let value = match (given.next(), param.default) {
            (Some(v), _) => coerce(&param.ty, v)
                .map_err(|m| errors::field_type_error(m.field.unwrap_or(param.name)))?,
            (None, Some(default)) => {
                let value = default.to_value();
                coerce(&param.ty, value.clone()).unwrap_or(value)
            }
            (None, None) => {
                return Err(errors::message_parameter_count_mismatch(
                    &method.wire_name,
                    required,
                    received,
                ));
            }
        };
        values.push(value);
    }
    Ok((session, values))
}

#[cfg(test)]
mod tests {
    use api_spec::errors;

    use super::*;
    use crate::db::ProposeError;
    use crate::testing::TestPool;

    fn strs(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect()
    }

    /// `system.listMethods` lists every sync wire name, without `Async.` forms or removed ones.
    #[tokio::test]
    async fn list_methods_lists_every_sync_wire_name() {
        let pool = TestPool::new();
        let names = pool
            .call("system.listMethods", vec![])
            .await
            .expect("listed");
        let names = strs(&names);
        for expected in [
            "VM.get_all_records",
            "session.login_with_password",
            "event.from",
        ] {
            assert!(names.contains(&expected), "{expected}");
        }
        assert!(names.iter().all(|n| !n.starts_with("Async.")));
        let removed = api()
            .methods()
            .find(|m| m.is_removed)
            .expect("a removed message");
        assert!(!names.contains(&removed.wire_name.as_str()));
        assert_eq!(
            names.len(),
            api().methods().filter(|m| !m.is_removed).count()
        );
    }

    /// `system.isAlive` (also in its old `:<uuid>` form) echoes its first parameter.
    #[tokio::test]
    async fn is_alive_echoes_its_first_parameter() {
        let pool = TestPool::new();
        for method in ["system.isAlive", "system.isAlive:abc"] {
            let reply = pool.call(method, vec![Value::str("abc")]).await;
            assert_eq!(reply, Ok(Value::str("abc")));
        }
    }

    /// Unknown names, and `Async.` forms of messages without one, are unknown methods.
    #[tokio::test]
    async fn unknown_methods_and_missing_async_forms_are_message_method_unknown() {
        let pool = TestPool::new();
        let session = pool.login().await;
        for method in [
            "VM.frobnicate",
            "Async.VM.get_record",
            "Async.event.from",
            "nonsense",
        ] {
            let reply = pool.call_as(&session, method, vec![]).await;
            assert_eq!(reply, Err(errors::message_method_unknown(method)));
        }
    }

    /// A removed message answers `MESSAGE_REMOVED` whatever its parameters.
    #[tokio::test]
    async fn removed_messages_answer_message_removed() {
        let pool = TestPool::new();
        let removed = api()
            .methods()
            .find(|m| m.is_removed)
            .expect("a removed message");
        let reply = pool.call(&removed.wire_name, vec![]).await;
        assert_eq!(reply, Err(errors::message_removed()));
    }

    /// Too few or too many parameters are counted without the session; only params with
    /// defaults may be left out.
    #[tokio::test]
    async fn wrong_parameter_counts_are_reported_without_the_session() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = pool.call_as(&session, "VM.get_record", vec![]).await;
        assert_eq!(
            reply,
            Err(errors::message_parameter_count_mismatch(
                "VM.get_record",
                1,
                0
            ))
        );
        let two = vec![Value::str("a"), Value::str("b")];
        let reply = pool.call_as(&session, "VM.get_record", two).await;
        assert_eq!(
            reply,
            Err(errors::message_parameter_count_mismatch(
                "VM.get_record",
                1,
                2
            ))
        );
        let reply = pool.call("VM.get_all", vec![]).await;
        assert_eq!(
            reply,
            Err(errors::message_parameter_count_mismatch(
                "VM.get_all",
                0,
                -1
            ))
        );
        let reply = pool
            .call("session.login_with_password", vec![Value::str("root")])
            .await;
        assert_eq!(
            reply,
            Err(errors::message_parameter_count_mismatch(
                "session.login_with_password",
                2,
                1
            ))
        );
    }

    /// Parameters of the wrong type are `FIELD_TYPE_ERROR` naming the parameter, or the
    /// record's field.
    #[tokio::test]
    async fn wrongly_typed_parameters_name_the_parameter_or_field() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.refs("VM").remove(0);
        let reply = pool
            .call_as(
                &session,
                "VM.set_user_version",
                vec![Value::str(vm.as_str()), Value::str("abc")],
            )
            .await;
        assert_eq!(reply, Err(errors::field_type_error("value")));
        let record = Value::Struct([("memory_static_max".to_owned(), Value::str("lots"))].into());
        let reply = pool.call_as(&session, "VM.create", vec![record]).await;
        assert_eq!(reply, Err(errors::field_type_error("memory_static_max")));
    }

    /// Strings where ints are due are accepted, as xapi's clients send them.
    #[tokio::test]
    async fn untyped_ints_are_coerced() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.refs("VM").remove(0);
        let reply = pool
            .call_as(
                &session,
                "VM.set_user_version",
                vec![Value::str(vm.as_str()), Value::str("7")],
            )
            .await;
        assert_eq!(reply, Ok(Value::str("")));
        assert_eq!(pool.field("VM", &vm, "user_version"), Some(Value::Int(7)));
    }

    /// An unknown session is `SESSION_INVALID [ref]`, checked after arity and types.
    #[tokio::test]
    async fn unknown_sessions_are_session_invalid() {
        let pool = TestPool::new();
        let reply = pool.call_as("OpaqueRef:bogus", "VM.get_all", vec![]).await;
        assert_eq!(reply, Err(errors::session_invalid("OpaqueRef:bogus")));
        let reply = pool
            .call_as("OpaqueRef:bogus", "VM.get_record", vec![])
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(errors::MESSAGE_PARAMETER_COUNT_MISMATCH.to_owned())
        );
    }

    /// A declared message without a handler answers `NOT_IMPLEMENTED [wire name]`.
    #[tokio::test]
    async fn unhandled_explicit_messages_are_not_implemented() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.refs("VM").remove(0);
        let args = vec![Value::str(vm.as_str()), Value::str("b")];
        let reply = pool.call_as(&session, "VM.send_sysrq", args).await;
        assert_eq!(reply, Err(errors::not_implemented("VM.send_sysrq")));
    }

    /// An `Async.` call answers a task ref at once; the task records the call's result as
    /// XML-RPC value text.
    #[tokio::test]
    async fn async_calls_answer_a_task_that_records_the_result() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let template = template(&pool);
        let args = vec![Value::str(template.as_str()), Value::str("copy")];
        let task = pool.async_call(&session, "VM.clone", args).await;
        assert_eq!(
            pool.field("task", &task, "name_label"),
            Some(Value::str("Async.VM.clone"))
        );
        pool.wait_until("the clone task to finish", |db| {
            db.get("task", &task)
                .is_some_and(|t| t.str("status") != "pending")
        })
        .await;
        assert_eq!(
            pool.field("task", &task, "status"),
            Some(Value::str("success"))
        );
        assert_eq!(
            pool.field("task", &task, "progress"),
            Some(Value::Float(1.0))
        );
        let clone = pool.read().refs_by_name_label("VM", "copy")[0].to_owned();
        let result = api_spec::codec::xmlrpc::encode_value(&Value::str(clone.as_str()));
        assert_eq!(
            pool.field("task", &task, "result"),
            Some(Value::String(result))
        );
    }

    /// A failing `Async.` call ends its task in `failure` with the error in `error_info`.
    #[tokio::test]
    async fn async_failures_are_recorded_in_error_info() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let args = vec![Value::str("OpaqueRef:missing")];
        let task = pool.async_call(&session, "VM.destroy", args).await;
        pool.wait_until("the destroy task to finish", |db| {
            db.get("task", &task)
                .is_some_and(|t| t.str("status") != "pending")
        })
        .await;
        assert_eq!(
            pool.field("task", &task, "status"),
            Some(Value::str("failure"))
        );
        let info = Value::Array(
            ["HANDLE_INVALID", "VM", "OpaqueRef:missing"]
                .into_iter()
                .map(Value::str)
                .collect(),
        );
        assert_eq!(pool.field("task", &task, "error_info"), Some(info));
    }

    /// Losing leadership in the middle of a write is an internal error telling the client
    /// to retry, not a hang or a panic.
    #[tokio::test]
    async fn a_write_on_a_deposed_master_is_an_internal_error() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.refs("VM").remove(0);
        pool.db.fail_next_proposal(ProposeError::NotLeader);
        let args = vec![Value::str(vm.as_str()), Value::str("new name")];
        let reply = pool.call_as(&session, "VM.set_name_label", args).await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(errors::INTERNAL_ERROR.to_owned())
        );
    }

    /// A default template of the test pool.
    fn template(pool: &TestPool) -> String {
        pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned()
    }
}
