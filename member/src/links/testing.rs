//! In-memory doubles for the links layer's tests: `Net`, a transport between hosts of one
//! process (frames go straight to the other host's inbox), and `TestHost`, one host of a
//! `TestPool`'s DB with a simulator agent, its links layer running and its front-door answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_spec::{ApiError, Value};
use master::testing::TestPool;
use master::{Call, Master, Origin};
use tokio::sync::{mpsc, watch};

use super::{
    Duties, Forwarder, HealthSource, LocalReplica, PoolLink, Roles, Transport, Unreachable,
};
use crate::config::PoolSettings;
use crate::front::Answer;
use crate::raft::{NodeHealth, RaftStatus};
use crate::space::SpaceLimits;
use agent::{Agent, AgentConfig};

/// How long a test waits for something that should happen at once.
pub(super) const PROMPTLY: Duration = Duration::from_secs(10);

/// Where the frames for one node go: (from node, payload).
type Inbox = mpsc::Sender<(u64, Vec<u8>)>;

/// Hosts of one process, by node id.
#[derive(Default)]
pub(super) struct Net {
    inboxes: Mutex<HashMap<u64, Inbox>>,
    hosts: Mutex<HashMap<String, u64>>,
    /// The host protocol version of nodes that speak another than this build's.
    pub protocols: Mutex<HashMap<u64, u32>>,
    /// Notified (with a stored permit) when a frame is refused.
    pub refused: tokio::sync::Notify,
}

/// `Net` as seen from node `me`.
struct NodeTransport {
    net: Arc<Net>,
    me: u64,
}

impl Transport for NodeTransport {
    fn send(&self, node: u64, payload: Vec<u8>) -> Result<(), Unreachable> {
        let inboxes = self.net.inboxes.lock().expect("net lock");
        let sent = match inboxes.get(&node) {
            Some(inbox) => inbox.try_send((self.me, payload)).is_ok(),
            None => false,
        };
        if !sent {
            self.net.refused.notify_one();
            return Err(Unreachable { node });
        }
        Ok(())
    }

    fn node_of_host(&self, host: &str) -> Option<u64> {
        self.net.hosts.lock().expect("net lock").get(host).copied()
    }

    fn address_of(&self, node: u64) -> Option<String> {
        Some(format!("127.0.0.{node}:4443"))
    }

    fn protocol_of(&self, node: u64) -> Option<u32> {
        let protocols = self.net.protocols.lock().expect("net lock");
        Some(
            protocols
                .get(&node)
                .copied()
                .unwrap_or(host_api::PROTOCOL_VERSION),
        )
    }

    fn others(&self) -> Vec<u64> {
        let inboxes = self.net.inboxes.lock().expect("net lock");
        inboxes
            .keys()
            .copied()
            .filter(|node| *node != self.me)
            .collect()
    }
}

impl Net {
    /// Cuts `node` off: frames to it are refused from now on.
    pub fn cut(&self, node: u64) {
        self.inboxes.lock().expect("net lock").remove(&node);
    }
}

/// One host: node `node`, host `host_ref` of the pool's DB.
pub(super) struct TestHost {
    pub host_ref: String,
    pub roles: Arc<Roles>,
    pub agent: Arc<Agent>,
    pub answer: Arc<Forwarder>,
    pub status: watch::Sender<RaftStatus>,
    pub health: watch::Sender<NodeHealth>,
    _duties: Duties,
    _dir: tempfile::TempDir,
}

impl TestHost {
    /// Starts host `host_ref` as node `node` on `net`, sharing `pool`'s DB (as if its replica
    /// were always up to date), with Raft status `status`.
    pub async fn start(
        net: &Arc<Net>,
        pool: &TestPool,
        node: u64,
        host_ref: &str,
        status: RaftStatus,
        settings: PoolSettings,
    ) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let (inbox, inbound) = mpsc::channel(1024);
        net.inboxes.lock().expect("net lock").insert(node, inbox);
        net.hosts
            .lock()
            .expect("net lock")
            .insert(host_ref.to_owned(), node);
        let (reports, reported) = mpsc::channel(1024);
        let agent = Agent::start(
            AgentConfig::default(),
            dir.path(),
            status.term,
            agent::transfer::LocalTransfer::new(),
            reports,
        )
        .await
        .expect("the agent starts");
        let (status_sender, status_receiver) = watch::channel(status);
        let (health_sender, health_receiver) = watch::channel(NodeHealth::Healthy);
        let transport = NodeTransport {
            net: Arc::clone(net),
            me: node,
        };
        let roles = Roles::new(
            host_ref.to_owned(),
            Arc::new(transport),
            status_receiver,
            HealthSource {
                node: health_receiver,
                data_dir: dir.path().to_owned(),
                space: SpaceLimits {
                    reserve_bytes: 0,
                    quota_bytes: 0,
                },
            },
            Arc::clone(&agent),
            settings,
        );
        let link = Arc::new(PoolLink(Arc::clone(&roles)));
        let db: Arc<dyn master::db::ReplicatedDb> = pool.db.clone();
        let master = Master::new(
            Arc::clone(&db),
            link,
            pool.clock.clone(),
            master::MasterConfig::default(),
            host_ref.to_owned(),
            master::testing::FakePoolControl::new(),
        );
        let reader = master.reader(Arc::new(LocalReplica(Arc::clone(&db))));
        let (duties, _) = roles.start(&master, inbound, reported, Duration::from_secs(3600));
        let answer = Forwarder::new(
            Arc::clone(&roles),
            Arc::clone(&master),
            reader,
            db,
            pool.clock.clone(),
            master::MasterConfig::default().session_last_active_interval_secs,
        );
        TestHost {
            host_ref: host_ref.to_owned(),
            roles,
            agent,
            answer,
            status: status_sender,
            health: health_sender,
            _duties: duties,
            _dir: dir,
        }
    }

    /// Calls `method` through this host's front-door answer.
    pub async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        origin: Origin,
    ) -> Result<Value, ApiError> {
        let call = Call {
            method: method.to_owned(),
            params,
            origin,
        };
        tokio::time::timeout(PROMPTLY, self.answer.answer(call))
            .await
            .expect("the call is answered")
    }
}

/// Node 1 leads in term 1.
pub(super) fn led_by(leader: u64, me: u64) -> RaftStatus {
    RaftStatus {
        term: 1,
        leader_id: leader,
        is_leader: leader == me,
    }
}

/// Pool settings fast enough for tests: heartbeats every 50 ms.
pub(super) fn fast_settings() -> PoolSettings {
    PoolSettings {
        heartbeat_interval_ms: 50,
        leader_wait_ms: 200,
        ..PoolSettings::default()
    }
}
