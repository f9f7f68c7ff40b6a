//! Three Raft nodes in one process, each with its own data dir, TLS listener on loopback and
//! `Peers`: joiners catch up by snapshot, learners become voters, and a new leader takes over
//! when the leader dies.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_spec::Value;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use db_schema::{Op, Txn};
use master::db::{ProposeError, ReplicatedDb};
use member::config::PeerSettings;
use member::front::tls;
use member::peer::{self, Member, Membership, Peers};
use member::raft::{self, RaftConfig, RaftDb, RaftNode, VoterPolicy};
use tempfile::TempDir;

/// How long any one wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(15);
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const EPOCH: &str = "epoch-1";

/// One host: its data dir, HTTPS listener (the peer route only), transport and Raft node.
struct Host {
    id: u64,
    dir: TempDir,
    address: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    cert_sha256: String,
    server: Option<Handle<SocketAddr>>,
    peers: Option<Peers>,
    node: Option<RaftNode>,
}

impl Host {
    /// A host with its certificate and a bound port, not serving yet.
    fn new(id: u64) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = tls::load_or_create(dir.path(), "localhost", &[]).expect("certificate");
        let cert_sha256 = peer::cert_sha256(&cert.cert);
        let tls = tls::server_config(cert).expect("tls config");
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = probe.local_addr().expect("address");
        drop(probe);
        Host {
            id,
            dir,
            address,
            tls,
            cert_sha256,
            server: None,
            peers: None,
            node: None,
        }
    }

    fn member(&self) -> Member {
        Member {
            node_id: self.id,
            host: format!("OpaqueRef:host-{}", self.id),
            address: self.address.to_string(),
            cert_sha256: self.cert_sha256.clone(),
        }
    }

    /// Starts the listener, the transport and the Raft node.
    async fn start(&mut self, config: RaftConfig, policy: VoterPolicy) {
        let peers = Peers::start(self.id, self.dir.path(), PeerSettings::default()).expect("peers");
        let listener = std::net::TcpListener::bind(self.address).expect("bind again");
        listener.set_nonblocking(true).expect("nonblocking");
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(
            listener,
            RustlsConfig::from_config(Arc::clone(&self.tls)),
        )
        .expect("server")
        .handle(handle.clone());
        let service = peers.router().into_make_service();
        tokio::spawn(async move { server.serve(service).await });
        let config = RaftConfig {
            node_id: self.id,
            ..config
        };
        let node = raft::open_with_peers(self.dir.path(), config, policy, peers.clone())
            .await
            .expect("open");
        self.server = Some(handle);
        self.peers = Some(peers);
        self.node = Some(node);
    }

    /// Kills the host: the Raft node stops without a final dump, the streams and the listener
    /// close.
    fn kill(&mut self) {
        drop(self.node.take());
        if let Some(peers) = self.peers.take() {
            peers.stop();
        }
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }

    fn db(&self) -> &RaftDb {
        &self.node.as_ref().expect("host is running").db
    }
}

/// Three hosts: host 1 bootstraps a pool whose membership names all three, hosts 2 and 3 are
/// reset as joiners that know the membership from their file. None is started.
fn three_hosts() -> Vec<Host> {
    let hosts: Vec<Host> = (1..=3).map(Host::new).collect();
    let membership = Membership {
        pool_secret: SECRET.into(),
        pool_epoch: EPOCH.into(),
        members: hosts.iter().map(Host::member).collect(),
    };
    let mut ops = vec![
        put_op(peer::book::POOL_SECRET_KEY, Value::str(SECRET)),
        put_op(peer::book::POOL_EPOCH_KEY, Value::str(EPOCH)),
    ];
    for member in &membership.members {
        ops.push(put_op(&Member::key(member.node_id), member.to_value()));
    }
    let txn = Txn {
        preconditions: Vec::new(),
        ops,
    };
    raft::bootstrap(hosts[0].dir.path(), 1, &txn).expect("bootstrap");
    for host in &hosts[1..] {
        raft::prepare_joiner(host.dir.path(), host.id).expect("prepare joiner");
        membership.save(host.dir.path()).expect("save membership");
    }
    hosts
}

fn put_op(key: &str, value: Value) -> Op {
    Op::PutInternal {
        key: key.into(),
        value,
    }
}

fn put(key: &str) -> Txn {
    Txn {
        preconditions: Vec::new(),
        ops: vec![put_op(key, Value::Int(1))],
    }
}

/// Fast ticks, so that elections take a fraction of a second.
fn fast(compact_after_entries: u64) -> RaftConfig {
    RaftConfig {
        tick_interval: Duration::from_millis(30),
        compact_after_entries,
        ..RaftConfig::default()
    }
}

fn policy(max_voters: usize) -> VoterPolicy {
    VoterPolicy {
        max_voters,
        replace_voter_after: Duration::from_secs(600),
    }
}

/// `future`, or a panic naming `what` after `PATIENCE`.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until `host`'s replica holds internal key `key`.
async fn replicated(host: &Host, key: &str) {
    let db = host.db();
    let mut applied = db.applied();
    within(key, applied.wait_for(|_| db.read().internal(key).is_some()))
        .await
        .expect("raft node running");
}

/// Waits until `node` is a voter in `host`'s configuration.
async fn voter(host: &Host, node: u64) {
    let mut membership = host.db().membership();
    within(
        "a promotion",
        membership.wait_for(|m| m.voters.contains(&node)),
    )
    .await
    .expect("raft node running");
}

/// Joiners become learners, catch up by snapshot and are promoted; when the leader dies, one
/// of the others leads and commits a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_are_promoted_and_a_new_leader_commits_after_the_leader_dies() {
    let mut hosts = three_hosts();
    for host in &mut hosts {
        host.start(fast(10_000), policy(3)).await;
    }
    assert!(hosts[0].db().status().borrow().is_leader);
    hosts[0]
        .db()
        .propose(put("before joins"))
        .await
        .expect("propose");

    hosts[0].db().add_learner(2).await.expect("add learner 2");
    replicated(&hosts[1], "before joins").await;
    voter(&hosts[0], 2).await;
    hosts[0].db().add_learner(3).await.expect("add learner 3");
    voter(&hosts[0], 3).await;
    let membership = hosts[0].db().membership().borrow().clone();
    assert_eq!(membership.voters.len(), 3, "{membership:?}");
    assert!(membership.learners.is_empty(), "{membership:?}");
    replicated(&hosts[2], "before joins").await;

    hosts[0].kill();
    let (left, right) = hosts.split_at(2);
    let (second, third) = (&left[1], &right[0]);
    let mut second_status = second.db().status();
    let mut third_status = third.db().status();
    let new_leader = within("a new leader", async {
        tokio::select! {
            _ = second_status.wait_for(|s| s.is_leader) => second,
            _ = third_status.wait_for(|s| s.is_leader) => third,
        }
    })
    .await;
    let outcome = within("a write on the new leader", async {
        loop {
            match new_leader.db().propose(put("after failover")).await {
                Err(ProposeError::NotLeader) => tokio::task::yield_now().await,
                outcome => return outcome,
            }
        }
    })
    .await;
    outcome.expect("write on the new leader");
    replicated(second, "after failover").await;
    replicated(third, "after failover").await;
    assert!(new_leader.db().reachable_voters() >= 2);
}

/// A learner added after the leader compacted its log receives a snapshot and then follows
/// the log; with one voter allowed, it stays a learner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_catches_up_by_snapshot_after_log_compaction() {
    let mut hosts = three_hosts();
    hosts.truncate(2);
    for host in &mut hosts {
        host.start(fast(10), policy(1)).await;
    }
    let leader = hosts[0].db();
    for i in 0..40 {
        leader
            .propose(put(&format!("early {i}")))
            .await
            .expect("propose");
    }
    let mut compacted = leader.compacted();
    within("compaction", compacted.wait_for(|index| *index > 10))
        .await
        .expect("raft node running");

    leader.add_learner(2).await.expect("add learner");
    replicated(&hosts[1], "early 39").await;
    assert!(
        *hosts[1].db().compacted().borrow() > 10,
        "the learner's replica starts from the leader's snapshot"
    );
    leader
        .propose(put("after snapshot"))
        .await
        .expect("propose");
    replicated(&hosts[1], "after snapshot").await;
    assert!(hosts[1].db().read().internal("early 0").is_some());
    let membership = leader.membership().borrow().clone();
    assert_eq!((membership.voters, membership.learners), (vec![1], vec![2]));
    assert!(hosts[1].peers.as_ref().expect("running").is_connected(1));
}

/// Two hosts whose peer stream has opened know which version of the master↔agent frames the
/// other speaks: the dialing host from the answer's header, the dialed one from the request's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_learn_each_others_host_protocol_version() {
    let mut hosts = three_hosts();
    hosts.truncate(2);
    for host in &mut hosts {
        host.start(fast(10_000), policy(3)).await;
    }
    hosts[0].db().add_learner(2).await.expect("add learner 2");
    hosts[0]
        .db()
        .propose(put("streams up"))
        .await
        .expect("propose");
    replicated(&hosts[1], "streams up").await;
    let peers = |host: &Host| host.peers.clone().expect("host is running");
    assert_eq!(
        peers(&hosts[0]).protocol_of(2),
        Some(host_api::PROTOCOL_VERSION)
    );
    assert_eq!(
        peers(&hosts[1]).protocol_of(1),
        Some(host_api::PROTOCOL_VERSION)
    );
}
