//! What the pool master decides.
//!
//! The master turns a decoded call (`Call`) into an answer: `dispatch.rs` finds the method in the
//! api-spec table, checks arity and types, fills defaults, checks the session, runs `Async.`
//! calls as tasks, and hands the call to a handler: the generic handler for implicit messages
//! (`generic.rs`), or the custom handler of an explicit one (`handlers/*.rs`). State lives in the
//! pool DB, reached only through `ReplicatedDb` (`db.rs`); time only through `Clock`.
//!
//! It opens no sockets or files and starts no processes: `member` wires it to Raft and HTTPS.
//! `testing.rs` holds in-memory doubles so a handler test is a function call.

pub mod bootstrap;
pub mod db;

use std::net::IpAddr;

/// The source of time for the master: seconds since the Unix epoch. `member` gives the system
/// clock; tests give a settable one.
pub trait Clock: Send + Sync + 'static {
    fn now_unix(&self) -> i64;
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Over TCP (HTTPS or plain HTTP) from this address.
    Network { peer: Option<IpAddr> },
    /// Over the local Unix socket: a login there is trusted as root, as on xapi.
    LocalSocket,
}

/// A decoded call, before the master has checked anything.
#[derive(Debug, Clone)]
pub struct Call {
    /// The wire name, possibly with the `Async.` prefix.
    pub method: String,
    pub params: Vec<api_spec::Value>,
    pub origin: Origin,
}

use std::sync::Arc;

use api_spec::{ApiError, Value};

use crate::db::ReplicatedDb;

/// Policy numbers of the master. `member` fills them from its `Config`.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterConfig {
    /// How stale a session's `last_active` may get before a call writes it again, in seconds.
    pub session_last_active_interval_secs: i64,
    /// Sessions idle longer than this are destroyed by housekeeping, in seconds.
    pub session_idle_timeout_secs: i64,
    /// Finished tasks older than this are destroyed by housekeeping, in seconds (xapi: 3900).
    pub task_gc_after_secs: i64,
    /// Pending tasks older than this are destroyed by housekeeping, in seconds (xapi: 24 h).
    pub pending_task_gc_after_secs: i64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            session_last_active_interval_secs: 600,
            session_idle_timeout_secs: 24 * 3600,
            task_gc_after_secs: 3900,
            pending_task_gc_after_secs: 24 * 3600,
        }
    }
}

/// The master role of this host: answers every XenAPI call.
pub struct Master {
    _todo: (Arc<dyn ReplicatedDb>, Arc<dyn Clock>, MasterConfig, String),
}

impl Master {
    /// `this_host` is the ref of the host this master runs on.
    pub fn new(
        db: Arc<dyn ReplicatedDb>,
        clock: Arc<dyn Clock>,
        config: MasterConfig,
        this_host: String,
    ) -> Arc<Master> {
        Arc::new(Master {
            _todo: (db, clock, config, this_host),
        })
    }

    /// Answers one call.
    pub async fn call(self: &Arc<Self>, call: Call) -> Result<Value, ApiError> {
        let _ = call;
        todo!()
    }

    /// Periodic clean-up: destroys old tasks and idle sessions. `member` calls it every minute.
    pub async fn housekeeping(&self) {
        todo!()
    }
}
