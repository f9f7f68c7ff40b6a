//! What the pool master decides.
//!
//! The master turns a decoded call (`Call`) into an answer. Its modules follow its concerns:
//!
//! - `call/`, the call path: `call/dispatch.rs` finds the method in the api-spec table, checks
//!   arity and types, fills defaults, checks the session (`call/session.rs`, password checks
//!   bounded by `call/password_checks.rs`), runs `Async.` calls as tasks (`call/tasks.rs`) and
//!   hands the call to a handler: the generic handler for implicit messages (`call/generic.rs`,
//!   with `where_expr.rs` for `get_all_records_where`), or the custom handler of an explicit one.
//!   `event.from` and friends read the DB's generations (`call/events.rs`); sessions and tasks
//!   age on the monotonic clock (`call/aging.rs`); API writes stop while a host is short of room
//!   for the pool DB (`call/no_space.rs`).
//! - `handlers/`, one module per XenAPI class (`handlers/vm/start.rs` is `VM.start`), and the one
//!   table from wire name to handler in `handlers/mod.rs`.
//! - `db/`: state lives in the pool DB, reached only through `ReplicatedDb` (`db/mod.rs`);
//!   `db/commit.rs` proposes Txns and re-decides the ones that lost a race, `db/record.rs` makes
//!   rows and records.
//! - `vm/`, VMs and their devices: `vm/operations/` decides which operations a VM, VBD or VIF
//!   allows (xapi's tables) and keeps `allowed_operations` / `current_operations` exact on every
//!   Txn; the handlers in `handlers/vm/` run power operations as begin Txn, host action
//!   (`HostLink` in `host_link.rs`, with a `VmSpec` from `vm/vm_spec.rs`), end Txn
//!   (`vm/power_state.rs` writes what the domain now is); `vm/placement.rs` and `vm/memory.rs`
//!   choose hosts and count memory.
//! - `pool/`, hosts and the pool: the DB of a new pool (`pool/bootstrap.rs`), what the pool
//!   handlers need from `member` (`pool/control.rs`), `pool/reconcile/` making the DB agree with
//!   what agents report (`Master::report`), `pool/liveness.rs`, `pool/evacuation.rs` (where a
//!   host's VMs go when it is evacuated) and `pool/alerts.rs`.
//! - `storage/`: the VDI rows that copies of disks make, until storage has a backend, and the
//!   calls the front door makes for the HTTP handlers `import_raw_vdi` / `export_raw_vdi`
//!   (`storage/raw_vdi.rs`).
//!
//! A new concern gets a module beside these: networks their own, HA under `pool/`, RBAC in
//! `call/`.
//!
//! Time comes only through `Clock`. Failures become XenAPI errors in one place, `error.rs`
//! (an agent's, with the DB's names for what it was about, in `vm/agent_failures.rs`).
//!
//! The pool: every host runs a `Master`, and `member` hands calls only to the Raft leader's.
//! On election `member` calls `Master::on_elected` (`pool/reconcile/takeover.rs`: tasks of the
//! old master failed, every live host's inventory reconciled); agents' heartbeats reach
//! `Master::heartbeat` and `Master::check_liveness` runs every second on the leader
//! (`pool/liveness.rs`: `host_metrics.live`, the VMs of a silent host halted). The wall clock a
//! heartbeat carries goes to `Master::compare_clock` (`pool/alerts.rs`:
//! `HOST_CLOCK_SKEW_DETECTED`).
//!
//! It opens no sockets or files and starts no processes: `member` wires it to Raft and HTTPS.
//! `testing.rs` (only in tests and with the `testing` feature) holds in-memory doubles so a
//! handler test is a function call. Start reading at `call/dispatch.rs`.

mod call;
pub mod db;
pub mod error;
mod handlers;
pub mod host_link;
pub mod pool;
mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod vm;

use std::net::IpAddr;
use std::sync::Arc;

use api_spec::{ApiError, Value};

use serde::{Deserialize, Serialize};

pub use crate::call::session::is_last_active_stale;
use crate::call::{aging, dispatch, events, no_space, password_checks, session, tasks};
use crate::db::ReplicatedDb;
use crate::host_link::HostLink;
use crate::pool::control::PoolControl;
pub use crate::pool::reconcile::Takeover;
use crate::pool::{alerts, liveness, reconcile};
pub use crate::storage::raw_vdi::{EXPORT_RAW_VDI, IMPORT_RAW_VDI, RAW_VDI_HOST};
use crate::vm::operations;
use host_api::AgentReport;

/// The sources of time for the master: the wall clock, which dates what the master writes and
/// may jump (an operator or NTP sets it; another host's may differ), and a monotonic clock,
/// which never jumps and ages what must not die with a jump (sessions, tasks, host liveness).
/// `member` gives the system's clocks; tests give settable ones.
pub trait Clock: Send + Sync + 'static {
    /// The wall clock, in seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
    /// The time since an arbitrary start fixed for the life of the process, on a clock that
    /// only moves forward at the pace of real time (Linux's `CLOCK_MONOTONIC`).
    fn monotonic(&self) -> std::time::Duration;
}

/// Where a call came from. It crosses the peer link with a forwarded call: a call a member
/// took on its Unix socket stays trusted as root on the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Over TCP (HTTPS or plain HTTP) from this address.
    Network { peer: Option<IpAddr> },
    /// Over the local Unix socket: a login there is trusted as root, as on xapi.
    LocalSocket,
}

/// A decoded call, before the master has checked anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The wire name, possibly with the `Async.` prefix.
    pub method: String,
    pub params: Vec<api_spec::Value>,
    pub origin: Origin,
}

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
    /// A host whose wall clock differs from the master's by more than this raises
    /// `HOST_CLOCK_SKEW_DETECTED`, in seconds.
    pub clock_skew_limit_secs: i64,
    /// The most argon2 password checks (and hashes) running at once in the process.
    pub password_checks: usize,
    /// How long a wrong password (or unknown user) holds its source before the answer and
    /// before that source's next check, in milliseconds.
    pub password_failure_delay_ms: u64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            session_last_active_interval_secs: 600,
            session_idle_timeout_secs: 24 * 3600,
            task_gc_after_secs: 3900,
            pending_task_gc_after_secs: 24 * 3600,
            clock_skew_limit_secs: 5,
            password_checks: 2,
            password_failure_delay_ms: 2000,
        }
    }
}

/// The master role of this host: answers every XenAPI call.
pub struct Master {
    db: Arc<dyn ReplicatedDb>,
    /// How actions reach the agents of the pool's hosts.
    link: Arc<dyn HostLink>,
    clock: Arc<dyn Clock>,
    config: MasterConfig,
    /// The ref of the host this master runs on.
    this_host: String,
    /// The in-process workers of tasks, by task ref.
    workers: tasks::Workers,
    /// The legacy `event.register` registrations, by session.
    registrations: events::Registrations,
    /// The VM, VBD and VIF operations this process runs, by their `current_operations` key.
    in_flight: operations::InFlight,
    /// Held while a VM is placed and its host reserved, so that two starts never count the
    /// same free memory.
    placement: tokio::sync::Mutex<()>,
    /// When this master last heard from each host.
    liveness: liveness::Liveness,
    /// The hosts short of room for the pool DB: while any is, API writes are refused.
    shortages: no_space::Shortages,
    /// Sessions of `session.slave_local_login_with_password`, valid in this process only.
    local_sessions: session::LocalSessions,
    /// How long each session has been idle, by its `last_active`.
    session_ages: aging::Ages,
    /// How long each task has been pending or finished, by its `finished`.
    task_ages: aging::Ages,
    /// The hosts whose clocks differ from this master's.
    clock_skews: alerts::ClockSkews,
    /// The bounds on argon2 work, shared with this master's `reader`.
    passwords: Arc<password_checks::PasswordChecks>,
    /// Raft membership changes, leadership transfer, joins and restarts, done by member.
    pool: Arc<dyn PoolControl>,
}

impl Master {
    /// `this_host` is the ref of the host this master runs on.
    pub fn new(
        db: Arc<dyn ReplicatedDb>,
        link: Arc<dyn HostLink>,
        clock: Arc<dyn Clock>,
        config: MasterConfig,
        this_host: String,
        pool: Arc<dyn PoolControl>,
    ) -> Arc<Master> {
        let passwords = Arc::new(password_checks::PasswordChecks::new(
            config.password_checks,
            std::time::Duration::from_millis(config.password_failure_delay_ms),
        ));
        Master::assemble(db, link, clock, config, this_host, pool, passwords)
    }

    /// A second master of the same host over `db`, another view of the same pool DB (this
    /// host's replica read without confirming leadership, for the calls every host answers).
    /// It shares this one's link, clock, config, pool control and bounds on password checks
    /// (one bound per process); it has its own state of the calls it answers.
    pub fn reader(&self, db: Arc<dyn ReplicatedDb>) -> Arc<Master> {
        Master::assemble(
            db,
            Arc::clone(&self.link),
            Arc::clone(&self.clock),
            self.config.clone(),
            self.this_host.clone(),
            Arc::clone(&self.pool),
            Arc::clone(&self.passwords),
        )
    }

    fn assemble(
        db: Arc<dyn ReplicatedDb>,
        link: Arc<dyn HostLink>,
        clock: Arc<dyn Clock>,
        config: MasterConfig,
        this_host: String,
        pool: Arc<dyn PoolControl>,
        passwords: Arc<password_checks::PasswordChecks>,
    ) -> Arc<Master> {
        Arc::new(Master {
            db,
            link,
            clock,
            config,
            this_host,
            workers: tasks::Workers::default(),
            registrations: events::Registrations::default(),
            in_flight: operations::InFlight::default(),
            placement: tokio::sync::Mutex::new(()),
            liveness: liveness::Liveness::default(),
            shortages: no_space::Shortages::default(),
            local_sessions: session::LocalSessions::default(),
            session_ages: aging::Ages::default(),
            task_ages: aging::Ages::default(),
            clock_skews: alerts::ClockSkews::default(),
            passwords,
            pool,
        })
    }

    /// Whether `session` is a slave-local session of this `Master`: calls made with it must be
    /// answered by it, not forwarded.
    pub fn has_local_session(&self, session: &str) -> bool {
        self.local_sessions.contains(session)
    }

    /// Answers one call.
    pub async fn call(self: &Arc<Self>, call: Call) -> Result<Value, ApiError> {
        dispatch::call(self, call).await
    }

    /// Takes in what the agent of `host` (a host ref) reports unasked (a guest that powered
    /// off, what runs there after a restart) and reconciles the DB with it. A failure is
    /// logged; the agent's next report reconciles again.
    pub async fn report(self: &Arc<Self>, host: &str, report: AgentReport) {
        self.liveness.heard(host, self.monotonic_secs());
        reconcile::report(self, host, report).await;
    }

    /// Takes a heartbeat of the agent of `host`, which says how the host is (`health`): a
    /// healthy host's `host_metrics.live` becomes true if it was not, and then the host is
    /// asked what it runs; a host whose store failed is not live (its VMs run on) and an alert
    /// says why.
    pub async fn heartbeat(self: &Arc<Self>, host: &str, health: &host_api::HostHealth) {
        liveness::heartbeat(self, host, health).await;
    }

    /// Marks the hosts silent for more than `dead_after_secs` not live and halts their VMs;
    /// returns those hosts. `member` calls it every second on the leader.
    pub async fn check_liveness(&self, dead_after_secs: i64) -> Vec<String> {
        liveness::check(self, dead_after_secs).await
    }

    /// Starts the master role on a host that has just become the Raft leader: fails the tasks
    /// the old master ran, restarts every host's liveness count and reconciles every live
    /// host's inventory.
    pub async fn on_elected(self: &Arc<Self>) -> Takeover {
        reconcile::take_over(self).await
    }

    /// Asks the agent of `host` what it runs and reconciles the DB with the answer, as after
    /// an `Inventory` report (for a master that takes over while the agents keep running).
    pub async fn reconcile(self: &Arc<Self>, host: &str) -> Result<(), ApiError> {
        reconcile::ask(self, host)
            .await
            .map_err(error::to_api_error)
    }

    /// Periodic clean-up: destroys old tasks and idle sessions. `member` calls it every minute.
    /// A failure is logged and left for the next round.
    pub async fn housekeeping(&self) {
        if let Err(e) = session::collect_garbage(self).await {
            tracing::warn!(code = %error::to_api_error(e).code, "session clean-up failed");
        }
        if let Err(e) = tasks::collect_garbage(self).await {
            tracing::warn!(code = %error::to_api_error(e).code, "task clean-up failed");
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// The monotonic clock in whole seconds: what ages host liveness.
    fn monotonic_secs(&self) -> i64 {
        i64::try_from(self.clock.monotonic().as_secs()).unwrap_or(i64::MAX)
    }
}
