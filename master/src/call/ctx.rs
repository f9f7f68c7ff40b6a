//! What a handler is given: the call's context (`Ctx`: master, session, origin, task) and its
//! checked arguments (`Args`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLockReadGuard};

use api_spec::{Method, Value, errors};
use db_schema::Db;
use host_api::{ActionResult, HostAction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::call::tasks::TaskHandle;
use crate::error::Error;
use crate::vm::agent_failures::{self, Context};
use crate::{Master, Origin};

/// The context of one call. Cheap to clone: handlers own it, so their futures can be spawned.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub master: Arc<Master>,
    /// The caller's checked session; `None` for calls that take none (`login_with_password`).
    pub session: Option<String>,
    pub origin: Origin,
    /// The task the call runs as, for `Async.` calls.
    pub task: Option<TaskHandle>,
}

impl Ctx {
    /// The context of work the master does on its own (reconciling what an agent reported),
    /// under no session and no task.
    pub fn internal(master: &Arc<Master>) -> Ctx {
        Ctx {
            master: Arc::clone(master),
            session: None,
            origin: Origin::LocalSocket,
            task: None,
        }
    }

    /// The local replica. Never hold it across an `.await`.
    pub fn db(&self) -> RwLockReadGuard<'_, Db> {
        self.master.db.read()
    }

    pub fn now(&self) -> i64 {
        self.master.now()
    }

    /// The caller's session; handlers of messages that take one always have it.
    pub fn session(&self) -> Result<&str, Error> {
        self.session
            .as_deref()
            .ok_or(Error::Argument { name: "session_id" })
    }

    /// A cancellation point: fails with `TASK_CANCELLED` once the task this call runs as has
    /// been cancelled. Calls that are not tasks are never cancelled.
    pub fn check_cancelled(&self) -> Result<(), Error> {
        match &self.task {
            Some(task) if task.cancel.is_cancelled() => {
                Err(errors::task_cancelled(&task.r#ref).into())
            }
            _ => Ok(()),
        }
    }

    /// The key an operation of this call holds in `current_operations`: the task's ref for a
    /// task, else a fresh ref that names no task (xapi's sync calls run under a context task
    /// that is not in the DB either).
    pub fn operation_key(&self) -> String {
        match &self.task {
            Some(task) => task.r#ref.clone(),
            None => crate::db::record::new_ref(),
        }
    }

    /// What cancels this call's host actions: its task's token, or one nobody cancels.
    pub fn cancel_token(&self) -> CancellationToken {
        match &self.task {
            Some(task) => task.cancel.clone(),
            None => CancellationToken::new(),
        }
    }

    /// Runs `action` on `host`'s agent at this master's term, cancelled with the call; a
    /// failure becomes its XenAPI error (`HOST_OFFLINE`, …) in the one place that maps them.
    /// The action is about the host itself, for no VM.
    pub async fn run_on_host(&self, host: &str, action: HostAction) -> Result<ActionResult, Error> {
        let (progress, _) = watch::channel(0.0);
        self.run_on_host_with(host, action, self.cancel_token(), progress)
            .await
    }

    /// Runs `action` as `run_on_host` does, stopped by `cancel`, its progress (0 to 1) sent
    /// to `progress`. A cancellation names the call's task.
    pub async fn run_on_host_with(
        &self,
        host: &str,
        action: HostAction,
        cancel: CancellationToken,
        progress: watch::Sender<f64>,
    ) -> Result<ActionResult, Error> {
        let term = self.master.db.term();
        let outcome = self
            .master
            .link
            .run(host, term, action, progress, cancel)
            .await;
        let context = Context {
            host,
            vm: "",
            task: self.task.as_ref().map_or("", |task| task.r#ref.as_str()),
        };
        outcome
            .map_err(|failure| agent_failures::to_api_error(&self.db(), &context, failure).into())
    }

    /// Runs `action` as `run_on_host_with` does, its progress being the call's task's.
    pub async fn run_on_host_reporting(
        &self,
        host: &str,
        action: HostAction,
        cancel: CancellationToken,
    ) -> Result<ActionResult, Error> {
        let (progress, mut progressed) = watch::channel(0.0);
        let report = async {
            // Ends when the action drops its progress, once it is done.
            while progressed.changed().await.is_ok() {
                let value = *progressed.borrow_and_update();
                self.set_progress(value).await;
            }
        };
        let (outcome, ()) = tokio::join!(
            self.run_on_host_with(host, action, cancel, progress),
            report
        );
        outcome
    }

    /// Sets `field` of the object `r` of `class` in one commit: `HANDLE_INVALID` when it does not
    /// exist (or no longer does when the commit comes).
    pub async fn set_field(
        &self,
        class: &str,
        r: &str,
        field: &str,
        value: Value,
    ) -> Result<(), Error> {
        self.master
            .decide(|db| {
                let mut draft = crate::vm::operations::Draft::new(db);
                if !draft.view().exists(class, r) {
                    return Err(errors::handle_invalid(class, r).into());
                }
                draft.require_exists(class, r);
                draft.update(class, r, field, value.clone());
                Ok((draft.into_txn(), ()))
            })
            .await?;
        Ok(())
    }

    /// Reports the progress (0 to 1) of the task this call runs as; throttled, so it is cheap
    /// to call often. Does nothing for calls that are not tasks.
    pub async fn set_progress(&self, progress: f64) {
        if let Some(task) = &self.task {
            crate::call::tasks::report_progress(&self.master, task, progress).await;
        }
    }
}

/// The arguments of a call, coerced to their declared types, defaults filled.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub method: &'static Method,
    values: Vec<Value>,
}

impl Args {
    /// `values` are in the method's parameter order, one per parameter.
    pub fn new(method: &'static Method, values: Vec<Value>) -> Args {
        debug_assert_eq!(method.params.len(), values.len());
        Args { method, values }
    }

    pub fn class(&self) -> &'static api_spec::model::Class {
        self.method.class
    }

    pub fn get(&self, name: &'static str) -> Result<&Value, Error> {
        self.method
            .params
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| self.values.get(i))
            .ok_or(Error::Argument { name })
    }

    pub fn str(&self, name: &'static str) -> Result<&str, Error> {
        self.get(name)?.as_str().ok_or(Error::Argument { name })
    }

    pub fn bool(&self, name: &'static str) -> Result<bool, Error> {
        self.get(name)?.as_bool().ok_or(Error::Argument { name })
    }

    pub fn int(&self, name: &'static str) -> Result<i64, Error> {
        self.get(name)?.as_int().ok_or(Error::Argument { name })
    }

    pub fn float(&self, name: &'static str) -> Result<f64, Error> {
        match self.get(name)? {
            Value::Float(f) => Ok(*f),
            _ => Err(Error::Argument { name }),
        }
    }

    /// A `string set` (or a set of refs or enums).
    pub fn strings(&self, name: &'static str) -> Result<Vec<String>, Error> {
        self.get(name)?
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or(Error::Argument { name })
    }

    /// A record or a map.
    pub fn fields(&self, name: &'static str) -> Result<&BTreeMap<String, Value>, Error> {
        self.get(name)?.as_struct().ok_or(Error::Argument { name })
    }
}

/// What a void message answers: xapi sends "".
pub(crate) fn void() -> Value {
    Value::String(String::new())
}
