//! Start-up and shutdown of one host: a new pool or a restart, then the peer transport, the
//! Raft node, the host agent, the master and the roles layer, and the listeners, until SIGTERM
//! or SIGINT, or until a pool operation asks for a restart (join, eject, emergency transition).
//!
//! The agent starts after the Raft node (it begins at the node's term) and before the master is
//! used; what it reports unasked (its inventory once it has checked the domains it found, guest
//! changes) goes through the roles layer to the leader's `Master::report`, one report at a
//! time, in order. The first inventory is taken by a master (reconciled, when this host leads)
//! before any call is answered, so that no client sees the DB as it was before a restart; a
//! host that reaches no master says it is ready anyway after `pool.first_inventory_wait_secs`.
//! The listeners open before that wait, calls held until it ends (`UntilReady`): the master
//! reaches this host through its peer route to take that inventory (a joiner, a restarted
//! member), so a listener opened after the wait would make every such start wait in full,
//! cut off and fenced meanwhile.
//!
//! Order on a first start: the TLS certificate and identity.json are written before the pool
//! is bootstrapped, so the bootstrapped DB (which records the certificate's fingerprint) and the
//! identity always agree; the root password is printed before the bootstrap, so a password that
//! is stored has always been shown.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api_spec::{ApiError, Value};
use master::bootstrap::RootPassword;
use master::db::{BoxFuture, ReplicatedDb};
use master::host_link::HostLink;
use master::{Call, Clock, Master};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::data_dir::{self, DataDirError};
use crate::data_plane::{AgentTransfer, DataPlane};
use crate::facts::{self, FactsError};
use crate::front::Answer;
use crate::front::listen::{Addresses, ListenError, Listeners};
use crate::front::server::Front;
use crate::front::simulator;
use crate::front::tls::{self, TlsError};
use crate::identity::{Identity, IdentityError, generate_root_password};
use crate::links::{Forwarder, HealthSource, LocalReplica, PoolLink, Roles};
use crate::peer::{self, PeerError, Peers};
use crate::pool::restart::{PoolError, https_address};
use crate::pool::{self, Control, ThisHost};
use crate::raft::{self, RaftConfig, RaftStatus, StorageError};
use agent::{Agent, AgentError};

/// The root password of a new pool; read only on the pool's first start.
pub const ROOT_PASSWORD_ENV: &str = "OXAPI_ROOT_PASSWORD";
/// Reports the agent may send before a master has taken the first of them.
const REPORT_QUEUE: usize = 1024;

/// The system's clocks: the wall clock in whole seconds since the Unix epoch, and the monotonic
/// clock (`Instant`) since its first reading in this process.
pub struct SystemClock;

/// The first monotonic reading of this process: `SystemClock::monotonic` counts from it.
static MONOTONIC_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
    }

    fn monotonic(&self) -> Duration {
        MONOTONIC_START
            .get_or_init(std::time::Instant::now)
            .elapsed()
    }
}

/// Why the host could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the data dir cannot be used")]
    DataDir(#[from] DataDirError),
    #[error("cannot read this machine")]
    Facts(#[from] FactsError),
    #[error("cannot read or write this host's identity")]
    Identity(#[from] IdentityError),
    #[error("{ROOT_PASSWORD_ENV} is not valid UTF-8")]
    PasswordNotUtf8,
    #[error("cannot set up TLS")]
    Tls(#[from] TlsError),
    #[error("raft storage failed")]
    Raft(#[from] StorageError),
    #[error("cannot start the host agent")]
    Agent(#[source] AgentError),
    #[error("cannot open a listener")]
    Listen(#[from] ListenError),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the peer transport")]
    Peer(#[from] PeerError),
    #[error("cannot make a new pool")]
    Pool(#[from] PoolError),
    #[error("cannot restart after a pool operation")]
    Restart(#[source] PoolError),
}

/// Runs this host until SIGTERM or SIGINT, then shuts down gracefully; or until a pool
/// operation asks for a restart, which replaces this process (and returns only on failure).
pub async fn serve(config: Config) -> Result<(), RunError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

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
        create_pool(&config, &cert_sha256)?
    };
    tracing::info!(host = %identity.host_uuid, node_id = identity.raft_node_id, "starting");
    let tls = tls::server_config(host_cert)?;

    let peers = Peers::start(identity.raft_node_id, data_dir, config.peer.clone())?;
    let node = match raft::open_with_peers(
        data_dir,
        raft_config(&config, identity.raft_node_id),
        config.raft.voter_policy(),
        peers.clone(),
    )
    .await
    {
        Ok(node) => node,
        Err(err) => {
            peers.stop();
            return Err(err.into());
        }
    };
    let db: Arc<dyn ReplicatedDb> = node.db.clone();
    // Bulk bytes between hosts: the agent sends and receives migration images on it.
    let data_plane = {
        let peers = peers.clone();
        let address = https_address(&config);
        DataPlane::new(
            config.data_plane.clone(),
            Arc::new(move || peers.membership().map(|membership| membership.pool_secret)),
            Some(address.ip()).filter(|ip| !ip.is_unspecified()),
        )
    };
    let (reports, reported) = mpsc::channel(REPORT_QUEUE);
    let transfer = AgentTransfer::new(data_plane.clone(), peers.clone());
    let agent = match Agent::start(
        config.agent_config(),
        data_dir,
        db.term(),
        transfer,
        reports,
    )
    .await
    {
        Ok(agent) => agent,
        Err(err) => {
            peers.stop();
            stop_raft(node).await;
            return Err(RunError::Agent(err));
        }
    };
    let simulator = agent.simulator();
    let roles = Roles::new(
        identity.host_ref.clone(),
        Arc::new(peers.clone()),
        node.db.status(),
        HealthSource {
            node: node.db.health(),
            data_dir: data_dir.clone(),
            space: config.raft.space_limits(),
        },
        agent,
        config.pool.clone(),
    );
    let link: Arc<dyn HostLink> = Arc::new(PoolLink(Arc::clone(&roles)));
    let this_host = ThisHost {
        identity: identity.clone(),
        data_dir: data_dir.clone(),
        listen_ip: config.listen.ip(),
        address: https_address(&config),
        cert_sha256: cert_sha256.clone(),
        presented_cpu: config.presented_cpu().cloned(),
    };
    let (control, mut restarts) =
        Control::new(node.db.clone(), this_host, config.limits.max_reply_bytes);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let master = Master::new(
        db.clone(),
        link,
        Arc::clone(&clock),
        config.master.master_config(),
        identity.host_ref.clone(),
        control.clone(),
    );
    // The same pool read from this host's replica: the event reads every host answers.
    let reader = master.reader(Arc::new(LocalReplica(db.clone())));
    let inbound = peers
        .take_link_inbound()
        .expect("the link inbound is taken once, here");
    let (duties, first_inventory) = roles.start(
        &master,
        inbound,
        reported,
        config.master.housekeeping_interval(),
    );
    let (earlier_splits, splits) = peers.splits();
    let splits = tokio::spawn(raise_split_alerts(
        Arc::clone(&master),
        earlier_splits,
        splits,
        node.db.status(),
    ));
    let forwarder = Forwarder::new(
        roles,
        Arc::clone(&master),
        reader,
        db,
        clock,
        config.master.session_last_active_interval_secs,
    );
    let (open, opened) = watch::channel(false);
    let answer = UntilReady {
        answer: Arc::new(forwarder),
        ready: opened,
    };
    let mut front = Front::new(Arc::new(answer), config.limits.codec_limits())
        .with_connection_limits(config.limits.connection_limits())
        .with_pool_routes(peers.router())
        .with_pool_routes(pool::routes(master, node.db.clone(), control))
        .with_pool_stream_routes(data_plane.router());
    if let Some(simulator) = simulator {
        front = front.with_local_routes(simulator::routes(simulator));
    }
    let addresses = Addresses {
        https: config.listen,
        http: config.http_listen,
        unix_socket: config.unix_socket_path(),
    };
    let listeners = match Listeners::start(front, tls, &addresses) {
        Ok(listeners) => listeners,
        Err(err) => {
            drop(duties);
            peers.stop();
            stop_raft(node).await;
            return Err(err.into());
        }
    };
    if !first_inventory
        .wait(config.pool.first_inventory_wait())
        .await
    {
        tracing::warn!("no master has taken this host's inventory yet; ready anyway");
    }
    open.send_replace(true);

    let ready_ip = if config.listen.ip().is_unspecified() {
        management_ip
    } else {
        config.listen.ip()
    };
    let ready = SocketAddr::new(ready_ip, listeners.https.port());
    tracing::info!(https = %listeners.https, http = ?listeners.http, unix_socket = %addresses.unix_socket.display(), "ready");
    announce(&format!("oxapi ready: https://{ready}"));

    let restart = tokio::select! {
        _ = terminate.recv() => {
            tracing::info!("SIGTERM: shutting down");
            None
        }
        _ = interrupt.recv() => {
            tracing::info!("SIGINT: shutting down");
            None
        }
        Some(plan) = restarts.recv() => {
            tracing::info!(plan = plan.kind(), "a pool operation restarts this host");
            Some(plan)
        }
    };
    listeners.shutdown(config.shutdown_grace()).await;
    splits.abort();
    drop(duties);
    peers.stop();
    node.shutdown().await?;
    tracing::info!("stopped");
    match restart {
        Some(plan) => Err(RunError::Restart(
            pool::carry_out(&config, &identity, &cert_sha256, plan).await,
        )),
        None => Ok(()),
    }
}

/// The XenAPI's answers, each held until this host says it is ready (see the module header).
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

/// How soon a master tries again to raise a split alert whose commit failed (e.g. while it
/// takes over).
const SPLIT_ALERT_RETRY: Duration = Duration::from_secs(1);

/// Turns each split the peer transport detects (a member on another `pool_epoch`) into a
/// `POOL_SPLIT_DETECTED` message when this host is the master, starting with `pending`, those
/// detected before. A split seen while a follower is kept and raised if this host becomes master: the transport reports each split once, and
/// the hosts of an old configuration may see it before they have elected a master.
async fn raise_split_alerts(
    master: Arc<Master>,
    mut pending: Vec<peer::SplitDetected>,
    mut splits: tokio::sync::broadcast::Receiver<peer::SplitDetected>,
    mut status: tokio::sync::watch::Receiver<RaftStatus>,
) {
    let mut retry = !pending.is_empty();
    loop {
        tokio::select! {
            split = splits.recv() => match split {
                Ok(split) => {
                    if !status.borrow().is_leader {
                        tracing::warn!(node = split.node, their_epoch = %split.their_epoch, "pool split detected by a follower: raised if it becomes master");
                    }
                    pending.push(split);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "pool split alerts missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(SPLIT_ALERT_RETRY), if retry => {}
        }
        if pending.is_empty() || !status.borrow_and_update().is_leader {
            continue;
        }
        for split in std::mem::take(&mut pending) {
            if let Err(e) = master.split_detected(split.node, &split.their_epoch).await {
                let code = master::error::to_api_error(e).code;
                tracing::warn!(node = split.node, code = %code, "pool split alert not raised yet");
                pending.push(split);
            }
        }
        retry = !pending.is_empty();
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

async fn stop_raft(node: raft::RaftNode) {
    if let Err(err) = node.shutdown().await {
        tracing::error!(
            error = &err as &dyn std::error::Error,
            "raft shutdown failed"
        );
    }
}

/// One line on stdout, flushed at once: tests and operators wait for these lines. A closed
/// stdout is logged, not fatal.
fn announce(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        tracing::warn!(error = %err, "cannot write to stdout");
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
