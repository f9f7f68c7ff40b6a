//! The steps of start-up, in order (`start_parts`), each a function of what came before.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agent::Agent;
use api_spec::{ApiError, Value};
use host_api::AgentReport;
use master::db::{BoxFuture, ReplicatedDb};
use master::host_link::HostLink;
use master::pool::bootstrap::RootPassword;
use master::{Call, Master};
use tokio::sync::{mpsc, watch};

use super::split_alerts;
use super::stop::Started;
use super::{ROOT_PASSWORD_ENV, RunError, Running, SystemClock, announce};
use crate::config::{BackendKind, Config};
use crate::data_dir;
use crate::data_plane::{AgentTransfer, DataPlane};
use crate::facts;
use crate::front::Answer;
use crate::front::listen::{Addresses, Listeners};
use crate::front::server::Front;
use crate::front::tls;
use crate::front::{raw_vdi, simulator};
use crate::identity::{Identity, generate_root_password};
use crate::links::{
    Duties, FirstInventory, Forwarder, HealthSource, LocalReplica, PoolLink, Roles,
};
use crate::peer::{self, Peers};
use crate::pool::restart::https_address;
use crate::pool::{self, Control, RestartPlan, ThisHost};
use crate::raft::{self, RaftConfig, RaftDb, RaftNode};

/// Reports the agent may send before a master has taken the first of them.
const REPORT_QUEUE: usize = 1024;

/// This host as read or made before anything runs: its identity and certificate.
pub(super) struct Host {
    pub(super) identity: Identity,
    /// Lowercase hex SHA-256 of this host's certificate.
    pub(super) cert_sha256: String,
    /// The address of the default-route interface, named by the ready line when the host
    /// listens on every address.
    pub(super) management_ip: IpAddr,
    /// The listeners' TLS, with this host's certificate.
    tls: Arc<rustls::ServerConfig>,
}

/// Makes the data dir ready, loads or makes the TLS certificate, then loads this host's
/// identity, or makes a new pool on a first start. Starts nothing: nothing to stop on failure.
pub(super) fn prepare(config: &Config) -> Result<Host, RunError> {
    let data_dir = &config.data_dir;
    data_dir::prepare(data_dir)?;
    let management_ip = facts::management_address(config.listen.ip());
    let host_cert = tls::load_or_create(
        data_dir,
        &facts::hostname()?,
        &[config.listen.ip(), management_ip],
    )?;
    let cert_sha256 = peer::cert_sha256(&host_cert.cert);
    let identity = if raft::exists(data_dir) {
        if std::env::var_os(ROOT_PASSWORD_ENV).is_some() {
            tracing::debug!("the pool exists; {ROOT_PASSWORD_ENV} is ignored");
        }
        Identity::load(data_dir)?
    } else {
        create_pool(config, &cert_sha256)?
    };
    tracing::info!(host = %identity.host_uuid, node_id = identity.raft_node_id, "starting");
    let tls = tls::server_config(host_cert)?;
    Ok(Host {
        identity,
        cert_sha256,
        management_ip,
        tls,
    })
}

/// Starts every part; on a failure, stops what had been started (`Started::stop`) and
/// returns the failure.
pub(super) async fn start(config: &Config, host: &Host) -> Result<(Started, Running), RunError> {
    let mut started = Started::default();
    match start_parts(config, host, &mut started).await {
        Ok(running) => Ok((started, running)),
        Err(err) => {
            if let Err(stop) = started.stop(config.shutdown_grace()).await {
                tracing::error!(
                    error = &stop as &dyn std::error::Error,
                    "raft shutdown failed"
                );
            }
            Err(err)
        }
    }
}

/// The order of start-up. A part that must be stopped goes into `started` as soon as it runs.
async fn start_parts(
    config: &Config,
    host: &Host,
    started: &mut Started,
) -> Result<Running, RunError> {
    let peers = started.peers.insert(start_peers(config, host)?).clone();
    let node = started.node.insert(open_raft(config, host, &peers).await?);
    let db = Arc::clone(&node.db);
    let data_plane = data_plane(config, &peers);
    let (agent, reported) = start_agent(config, &db, &data_plane, &peers).await?;
    let roles = roles(config, host, &peers, &db, Arc::clone(&agent));
    let (master, control, restarts) = master(config, host, &db, &roles);
    let (duties, first_inventory) = start_links(config, &peers, &roles, &master, reported)?;
    started.duties = Some(duties);
    started.splits = Some(split_alerts::start(&peers, &master, &db));
    let (answer, open) = until_ready(config, roles, &master, &db);
    let pool_routes = pool::routes(master, db, control);
    let front = front(
        config,
        host,
        answer,
        &peers,
        pool_routes,
        &data_plane,
        &agent,
    );
    let listeners = Listeners::start(front, Arc::clone(&host.tls), &addresses(config))?;
    let listeners = started.listeners.insert(listeners);
    Ok(Running {
        first_inventory,
        open,
        restarts,
        https: listeners.https,
        http: listeners.http,
        backend: agent.backend(),
    })
}

/// The transport to the other pool members, with the membership the data dir holds.
fn start_peers(config: &Config, host: &Host) -> Result<Peers, RunError> {
    Ok(Peers::start(
        host.identity.raft_node_id,
        &config.data_dir,
        config.peer.clone(),
    )?)
}

/// The Raft node over `peers`, started from the data dir's dump and log.
async fn open_raft(config: &Config, host: &Host, peers: &Peers) -> Result<RaftNode, RunError> {
    Ok(raft::open_with_peers(
        &config.data_dir,
        raft_config(config, host.identity.raft_node_id),
        config.raft.voter_policy(),
        peers.clone(),
    )
    .await?)
}

/// Bulk bytes between hosts (migration images), checked with the pool secret `peers` hold.
fn data_plane(config: &Config, peers: &Peers) -> DataPlane {
    let peers = peers.clone();
    let address = https_address(config);
    DataPlane::new(
        config.data_plane.clone(),
        Arc::new(move || peers.membership().map(|membership| membership.pool_secret)),
        Some(address.ip()).filter(|ip| !ip.is_unspecified()),
    )
}

/// This host's agent, at the node's term, sending and receiving migration images on the data
/// plane, and the reports it sends unasked.
async fn start_agent(
    config: &Config,
    db: &Arc<RaftDb>,
    data_plane: &DataPlane,
    peers: &Peers,
) -> Result<(Arc<Agent>, mpsc::Receiver<AgentReport>), RunError> {
    if config.backend == BackendKind::Auto && config.backend() == BackendKind::Simulator {
        tracing::warn!(
            qemu_binary = %config.qemu.binary.display(),
            "QEMU is not installed here: guests run on the simulator"
        );
    }
    let (reports, reported) = mpsc::channel(REPORT_QUEUE);
    let transfer = AgentTransfer::new(data_plane.clone(), peers.clone());
    let agent = Agent::start(
        config.agent_config(),
        &config.data_dir,
        db.term(),
        transfer,
        reports,
    )
    .await
    .map_err(RunError::Agent)?;
    Ok((agent, reported))
}

/// The links layer over `peers`: the master's `HostLink`, heartbeats and fencing.
fn roles(
    config: &Config,
    host: &Host,
    peers: &Peers,
    db: &Arc<RaftDb>,
    agent: Arc<Agent>,
) -> Arc<Roles> {
    Roles::new(
        host.identity.host_ref.clone(),
        Arc::new(peers.clone()),
        db.status(),
        HealthSource {
            node: db.health(),
            data_dir: config.data_dir.clone(),
            space: config.raft.space_limits(),
        },
        agent,
        config.pool.clone(),
    )
}

/// The master, reaching hosts through `roles`, and the pool operations' `Control` with the
/// restarts they ask for.
fn master(
    config: &Config,
    host: &Host,
    db: &Arc<RaftDb>,
    roles: &Arc<Roles>,
) -> (Arc<Master>, Arc<Control>, mpsc::Receiver<RestartPlan>) {
    let this_host = ThisHost {
        identity: host.identity.clone(),
        data_dir: config.data_dir.clone(),
        listen_ip: config.listen.ip(),
        address: https_address(config),
        cert_sha256: host.cert_sha256.clone(),
        presented_cpu: config.presented_cpu().cloned(),
    };
    let (control, restarts) =
        Control::new(Arc::clone(db), this_host, config.limits.max_reply_bytes);
    let link: Arc<dyn HostLink> = Arc::new(PoolLink(Arc::clone(roles)));
    let master = Master::new(
        db.clone(),
        link,
        Arc::new(SystemClock),
        config.master.master_config(),
        host.identity.host_ref.clone(),
        control.clone(),
    );
    (master, control, restarts)
}

/// The tasks of the links layer: frames from the other hosts, this agent's reports, the
/// heartbeats and the master role.
fn start_links(
    config: &Config,
    peers: &Peers,
    roles: &Arc<Roles>,
    master: &Arc<Master>,
    reported: mpsc::Receiver<AgentReport>,
) -> Result<(Duties, FirstInventory), RunError> {
    let inbound = peers
        .take_link_inbound()
        .ok_or(RunError::LinkInboundTaken)?;
    Ok(roles.start(
        master,
        inbound,
        reported,
        config.master.housekeeping_interval(),
    ))
}

/// The XenAPI's answers (forwarded to the leader, event reads from this host's replica), held
/// until this host is ready; and what lets them through.
fn until_ready(
    config: &Config,
    roles: Arc<Roles>,
    master: &Arc<Master>,
    db: &Arc<RaftDb>,
) -> (UntilReady, watch::Sender<bool>) {
    let db: Arc<dyn ReplicatedDb> = db.clone();
    // The same pool read from this host's replica: the event reads every host answers.
    let reader = master.reader(Arc::new(LocalReplica(Arc::clone(&db))));
    let forwarder = Forwarder::new(
        roles,
        Arc::clone(master),
        reader,
        db,
        Arc::new(SystemClock),
        config.master.session_last_active_interval_secs,
    );
    let (open, opened) = watch::channel(false);
    let answer = UntilReady {
        answer: Arc::new(forwarder),
        ready: opened,
    };
    (answer, open)
}

/// The front door: `answer` for the XenAPI, the peer streams, the pool operations'
/// `pool_routes`, the data plane, the VDI import and export, and the simulator's control
/// when the agent runs one.
fn front(
    config: &Config,
    host: &Host,
    answer: UntilReady,
    peers: &Peers,
    pool_routes: axum::Router,
    data_plane: &DataPlane,
    agent: &Agent,
) -> Front {
    let front = Front::new(Arc::new(answer), config.limits.codec_limits())
        .with_connection_limits(config.limits.connection_limits())
        .with_pool_routes(peers.router())
        .with_pool_routes(pool_routes)
        .with_pool_stream_routes(data_plane.router());
    // The SR's host may convert a whole image before it sends the first byte of an export.
    let wait =
        config.data_plane.stall_timeout() + Duration::from_secs(config.agent.qemu_img_timeout_secs);
    let raw_vdi = raw_vdi::routes(
        front.clone(),
        data_plane.clone(),
        peers.clone(),
        host.identity.host_ref.clone(),
        wait,
    );
    let front = front.with_pool_stream_routes(raw_vdi);
    match agent.simulator() {
        Some(simulator) => front.with_local_routes(simulator::routes(simulator)),
        None => front,
    }
}

/// Where the front door listens.
fn addresses(config: &Config) -> Addresses {
    Addresses {
        https: config.listen,
        http: config.http_listen,
        unix_socket: config.unix_socket_path(),
    }
}

/// The XenAPI's answers, each held until this host says it is ready (see the module header
/// of `run`).
struct UntilReady {
    answer: Arc<dyn Answer>,
    ready: watch::Receiver<bool>,
}

impl Answer for UntilReady {
    fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>> {
        let answer = Arc::clone(&self.answer);
        let mut ready = self.ready.clone();
        Box::pin(async move {
            // An error means the start was given up: nothing is left to wait for.
            let _ = ready.wait_for(|ready| *ready).await;
            answer.answer(call).await
        })
    }
}

/// Makes a new one-host pool in an empty data dir: identity first, then the bootstrap, which
/// records this host's certificate fingerprint `cert_sha256`.
fn create_pool(config: &Config, cert_sha256: &str) -> Result<Identity, RunError> {
    let data_dir = &config.data_dir;
    // An identity without a Raft store is what a crash during a first start leaves: keep it.
    let identity = match Identity::load_if_present(data_dir)? {
        Some(identity) => identity,
        None => {
            let identity = Identity::generate();
            identity.save(data_dir)?;
            identity
        }
    };
    let password = match std::env::var(ROOT_PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => password,
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            let password = generate_root_password()?;
            announce(&format!("root password: {password}"));
            password
        }
        Err(std::env::VarError::NotUnicode(_)) => return Err(RunError::PasswordNotUtf8),
    };
    pool::bootstrap_pool(
        config,
        &identity,
        cert_sha256,
        RootPassword::Plain(&password),
    )?;
    Ok(identity)
}

fn raft_config(config: &Config, node_id: u64) -> RaftConfig {
    RaftConfig {
        node_id,
        tick_interval: config.raft.tick_interval(),
        election_ticks: config.raft.election_ticks,
        heartbeat_ticks: config.raft.heartbeat_ticks,
        compact_after_entries: config.raft.compact_after_entries,
        max_batch: config.raft.max_batch,
        store_retry_interval: Duration::from_secs(config.raft.store_retry_secs),
        reopen_free_bytes: config.raft.min_free_bytes.max(1 << 20),
        max_entry_bytes: config.raft.max_entry_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every call with its method name.
    struct Echo;

    impl Answer for Echo {
        fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>> {
            Box::pin(async move { Ok(Value::String(call.method)) })
        }
    }

    /// A call made before the host is ready is held, and answered once it is.
    #[tokio::test]
    async fn a_call_before_the_ready_line_waits_for_it() {
        let (open, opened) = watch::channel(false);
        let answer = UntilReady {
            answer: Arc::new(Echo),
            ready: opened,
        };
        let call = Call {
            method: "pool.get_all".to_owned(),
            params: Vec::new(),
            origin: master::Origin::LocalSocket,
        };
        let held = tokio::spawn(answer.answer(call));
        tokio::task::yield_now().await;
        assert!(!held.is_finished(), "answered before the host is ready");
        open.send_replace(true);
        let answered = held.await.expect("no panic");
        assert_eq!(answered, Ok(Value::String("pool.get_all".to_owned())));
    }
}
