//! The links between the hosts of a pool: every host runs a `Master` and an agent, and this
//! layer decides, from the Raft status, which master speaks for the pool (the master role) and
//! carries what masters and agents say to each other over the peer streams (`LinkFrame`s in the
//! transport's payloads).
//!
//! - `frame.rs`: `LinkFrame`, the messages between hosts.
//! - `forward.rs`: the front door's `Answer` on every host: the leader's `Master` answers;
//!   other hosts forward calls to it (or answer `HOST_IS_SLAVE`) and answer `event.from` and
//!   the other event reads from their own replica.
//! - `link.rs`: `PoolLink`, the master's `HostLink`: actions for this host go to its agent,
//!   the others to their host's node; and the agent side that runs actions sent here.
//! - `duties.rs`: the long-running tasks: agent reports and heartbeats to the leader, fencing
//!   when no leader answers, and the master role (takeover on election, liveness, housekeeping)
//!   while this host leads.
//! - `peers.rs`: the peer transport (`peer::Peers`) as this layer's `Transport`.
//!
//! Ids of requests (`Call`, `Action`) come from one counter per host; answers go back to the
//! node that asked, so ids need only be unique per sender.

mod duties;
mod forward;
pub mod frame;
mod link;
mod peers;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use host_api::{ActionResult, HostHealth};
use master::Master;
use master::host_link::LinkFailure;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::duties::{Duties, FirstInventory};
use self::forward::{Forwarded, NotForwarded};
pub use self::forward::{Forwarder, LocalReplica};
pub use self::frame::LinkFrame;
pub use self::link::PoolLink;
use crate::config::PoolSettings;
use crate::raft::{NodeHealth, RaftStatus};
use crate::space::SpaceLimits;
use agent::Agent;

/// How this layer reaches the other hosts: the peer transport, or an in-memory one in tests.
pub trait Transport: Send + Sync + 'static {
    /// Queues `payload` on the stream to `node`.
    fn send(&self, node: u64, payload: Vec<u8>) -> Result<(), Unreachable>;
    /// The node id of the host `host` (a host ref), if it is a member.
    fn node_of_host(&self, host: &str) -> Option<u64>;
    /// The `ip:port` of the HTTPS listener of `node`, if it is a member.
    fn address_of(&self, node: u64) -> Option<String>;
    /// The node ids of the other members.
    fn others(&self) -> Vec<u64>;
    /// The version of the master↔agent frames `node` speaks, once known.
    fn protocol_of(&self, node: u64) -> Option<u32>;
}

/// A frame could not be queued for a node (not a member, or not connected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node} unreachable")]
pub struct Unreachable {
    pub node: u64,
}

/// Where this host's heartbeats read its health: its Raft node's (while the store has failed,
/// the status is frozen, the host answers no calls and heartbeats go to every member, so that
/// whichever leads hears them), and the room its data dir has for the pool DB.
pub struct HealthSource {
    pub node: watch::Receiver<NodeHealth>,
    pub data_dir: PathBuf,
    pub space: SpaceLimits,
}

impl HealthSource {
    fn store_failure(&self) -> Option<String> {
        match &*self.node.borrow() {
            NodeHealth::Healthy => None,
            NodeHealth::Failed { reason } => Some(reason.clone()),
        }
    }

    /// The health a heartbeat sent now says.
    fn now(&self) -> HostHealth {
        HostHealth {
            store_failure: self.store_failure(),
            low_space: crate::space::shortage(&self.data_dir, self.space),
        }
    }
}

/// An action this host's master sent to another host, waiting for its result.
struct OutgoingAction {
    progress: watch::Sender<f64>,
    result: oneshot::Sender<Result<ActionResult, LinkFailure>>,
}

/// The links layer of this host. Built before the `Master` (whose `HostLink` it is), started
/// with it (`duties::start`).
pub struct Roles {
    /// The ref of this host.
    host_ref: String,
    transport: Arc<dyn Transport>,
    status: watch::Receiver<RaftStatus>,
    /// What this host's heartbeats say about it.
    health: HealthSource,
    agent: Arc<Agent>,
    settings: PoolSettings,
    next_id: AtomicU64,
    /// Calls forwarded to the leader, by id.
    calls: Mutex<HashMap<u64, oneshot::Sender<Forwarded>>>,
    /// Actions sent to other hosts' agents, by id.
    actions: Mutex<HashMap<u64, OutgoingAction>>,
    /// Actions other hosts' masters asked this agent to run, by (node, id): their cancels.
    serving: Mutex<HashMap<(u64, u64), CancellationToken>>,
    /// When a frame last came from each node.
    heard: Mutex<HashMap<u64, Instant>>,
    /// When this host last had contact with a leader (its own leadership, or an ack of the
    /// leader to a heartbeat); the agent fences itself after `settings.fence_after`.
    contact: Mutex<Instant>,
    /// Set when a contact comes after a silence of `fence_after` or more (a host paused by
    /// SIGSTOP, say, whose first contact on waking would otherwise hide the silence): the
    /// agent must fence even though contact is fresh again, since a master may have halted
    /// its VMs meanwhile.
    fence_due: AtomicBool,
}

impl Roles {
    pub fn new(
        host_ref: String,
        transport: Arc<dyn Transport>,
        status: watch::Receiver<RaftStatus>,
        health: HealthSource,
        agent: Arc<Agent>,
        settings: PoolSettings,
    ) -> Arc<Roles> {
        Arc::new(Roles {
            host_ref,
            transport,
            status,
            health,
            agent,
            settings,
            next_id: AtomicU64::new(1),
            calls: Mutex::default(),
            actions: Mutex::default(),
            serving: Mutex::default(),
            heard: Mutex::default(),
            contact: Mutex::new(Instant::now()),
            fence_due: AtomicBool::new(false),
        })
    }

    /// The Raft status as it is now.
    fn status(&self) -> RaftStatus {
        *self.status.borrow()
    }

    pub fn is_leader(&self) -> bool {
        self.status().is_leader
    }

    /// Why this host's Raft store failed, while it has.
    fn store_failure(&self) -> Option<String> {
        self.health.store_failure()
    }

    /// The Raft status once a leader is known, waiting up to `timeout`; `None` if none is.
    async fn wait_for_leader(&self, timeout: Duration) -> Option<RaftStatus> {
        let mut status = self.status.clone();
        let known = tokio::time::timeout(timeout, status.wait_for(|s| s.leader_id != 0)).await;
        match known {
            Ok(Ok(status)) => Some(*status),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Waits until the leader is no longer `unreachable`, for at most a heartbeat interval
    /// and never past `deadline`: the link to a leader that stays may come back meanwhile.
    async fn wait_for_another_leader(&self, unreachable: u64, deadline: Instant) {
        let mut status = self.status.clone();
        let limit = deadline.min(Instant::now() + self.settings.heartbeat_interval());
        let _ =
            tokio::time::timeout_at(limit, status.wait_for(|s| s.leader_id != unreachable)).await;
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, node: u64, frame: &LinkFrame) -> Result<(), Unreachable> {
        let outcome = self.transport.send(node, frame.encode());
        if let Err(err) = &outcome {
            tracing::debug!(node, frame = frame.kind(), error = %err, "link frame not sent");
        }
        outcome
    }

    /// Whether a frame came from `node` within `window` (counting from `since` when nothing
    /// came after it).
    fn heard_within(&self, node: u64, since: Instant, window: Duration) -> bool {
        let heard = lock(&self.heard).get(&node).copied();
        let last = heard.map_or(since, |heard| heard.max(since));
        last.elapsed() <= window
    }

    fn note_contact(&self) {
        let mut contact = lock(&self.contact);
        if contact.elapsed() >= self.settings.fence_after() {
            self.fence_due.store(true, Ordering::SeqCst);
        }
        *contact = Instant::now();
    }

    /// Whether a silence long enough to fence ended since the last call.
    fn take_fence_due(&self) -> bool {
        self.fence_due.swap(false, Ordering::SeqCst)
    }

    fn since_contact(&self) -> Duration {
        lock(&self.contact).elapsed()
    }

    /// Takes every frame from the other hosts' links layers until the transport closes.
    /// Frames are handled in arrival order; calls, actions and heartbeats each in a task of
    /// their own, reports in order by one task (`duties`).
    pub(crate) async fn take_frames(
        self: Arc<Self>,
        master: Arc<Master>,
        mut inbound: mpsc::Receiver<(u64, Vec<u8>)>,
        reports: mpsc::Sender<(String, host_api::AgentReport)>,
    ) {
        while let Some((from, payload)) = inbound.recv().await {
            lock(&self.heard).insert(from, Instant::now());
            let frame = match LinkFrame::decode(&payload) {
                Ok(frame) => frame,
                Err(err) => {
                    tracing::warn!(
                        node = from,
                        error = &err as &dyn std::error::Error,
                        "link frame dropped"
                    );
                    continue;
                }
            };
            self.take_frame(&master, from, frame, &reports).await;
        }
        tracing::info!("the peer link closed");
    }

    async fn take_frame(
        self: &Arc<Self>,
        master: &Arc<Master>,
        from: u64,
        frame: LinkFrame,
        reports: &mpsc::Sender<(String, host_api::AgentReport)>,
    ) {
        match frame {
            LinkFrame::Call { id, call } => {
                tokio::spawn(Arc::clone(self).answer_forwarded(Arc::clone(master), from, id, call));
            }
            LinkFrame::CallResult { id, result } => {
                if let Some(waiter) = lock(&self.calls).remove(&id) {
                    let _ = waiter.send(Ok(result));
                }
            }
            LinkFrame::CallRefused { id } => {
                if let Some(waiter) = lock(&self.calls).remove(&id) {
                    let _ = waiter.send(Err(NotForwarded::NotRun));
                }
            }
            LinkFrame::Action {
                id,
                host,
                term,
                action,
            } => {
                tokio::spawn(Arc::clone(self).run_for(from, id, host, term, action));
            }
            LinkFrame::Progress { id, value } => {
                if let Some(action) = lock(&self.actions).get(&id) {
                    action.progress.send_replace(value);
                }
            }
            LinkFrame::ActionResult { id, result } => {
                if let Some(action) = lock(&self.actions).remove(&id) {
                    let _ = action.result.send(result.map_err(LinkFailure::Agent));
                }
            }
            LinkFrame::ActionRefused { id } => {
                if let Some(action) = lock(&self.actions).remove(&id) {
                    let _ = action.result.send(Err(LinkFailure::HostOffline));
                }
            }
            LinkFrame::Cancel { id } => {
                if let Some(cancel) = lock(&self.serving).get(&(from, id)) {
                    cancel.cancel();
                }
            }
            LinkFrame::Report { host, report } => {
                if self.is_leader() {
                    let _ = reports.send((host, report)).await;
                } else {
                    tracing::debug!(
                        node = from,
                        "agent report to a host that does not lead: dropped"
                    );
                }
            }
            LinkFrame::Heartbeat {
                host,
                now_unix,
                health,
            } => {
                let status = self.status();
                if !status.is_leader {
                    return;
                }
                let _ = self.send(from, &LinkFrame::HeartbeatAck { term: status.term });
                let master = Arc::clone(master);
                tokio::spawn(async move {
                    master.heartbeat(&host, &health).await;
                    master.compare_clock(&host, now_unix).await;
                });
            }
            LinkFrame::HeartbeatAck { term } => {
                // A host whose store failed no longer follows who leads: any member leading
                // in its last term or later is a master in contact with it.
                let status = self.status();
                let is_from_leader = status.leader_id == from || self.store_failure().is_some();
                if is_from_leader && term >= status.term {
                    self.note_contact();
                }
            }
        }
    }

    /// Answers a call another host forwarded, on the master of this host if it leads. The
    /// sender saw this host lead: a host just elected may not have published it yet, so it
    /// waits a heartbeat interval for that before refusing (`CallRefused`: the sender may send
    /// the call again, to the leader it learns of next).
    async fn answer_forwarded(
        self: Arc<Self>,
        master: Arc<Master>,
        from: u64,
        id: u64,
        call: master::Call,
    ) {
        let mut status = self.status.clone();
        let leads = tokio::time::timeout(
            self.settings.heartbeat_interval(),
            status.wait_for(|s| s.is_leader),
        )
        .await
        .is_ok_and(|led| led.is_ok());
        if !leads {
            tracing::info!(method = %call.method, from, "a call forwarded to this host, which does not lead, was refused");
            let _ = self.send(from, &LinkFrame::CallRefused { id });
            return;
        }
        let method = call.method.clone();
        let result = match tokio::spawn(async move { master.call(call).await }).await {
            Ok(result) => result,
            Err(err) => {
                tracing::error!(method = %method, error = %err, "forwarded call failed unexpectedly");
                Err(crate::front::server::internal_error(
                    "the call failed unexpectedly; see the master's log",
                ))
            }
        };
        let _ = self.send(from, &LinkFrame::CallResult { id, result });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("no panic while holding a links lock")
}
