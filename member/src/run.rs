//! Start-up and shutdown of one host: a new pool or a restart, then the Raft node, the host
//! agent, the master, housekeeping and the listeners, until SIGTERM or SIGINT.
//!
//! The agent starts after the Raft node (it begins at the node's term) and before the master is
//! used; what it reports unasked (its inventory once it has checked the domains it found, guest
//! changes) goes to `Master::report`, one report at a time, in order. The first inventory (and
//! any guest change reported before it) is reconciled before the listeners open, so that no
//! client sees the DB as it was before a restart.
//!
//! Order on a first start: identity.json is written before the pool is bootstrapped, so the
//! bootstrapped DB and the identity always agree; the root password is printed before the
//! bootstrap, so a password that is stored has always been shown.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use master::bootstrap::FirstHost;
use master::db::ReplicatedDb;
use master::host_link::AgentReport;
use master::{Clock, Master};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::agent::{Agent, AgentError, LocalLink};
use crate::config::Config;
use crate::facts::{self, FactsError};
use crate::front::listen::{Addresses, ListenError, Listeners};
use crate::front::server::Front;
use crate::front::simulator;
use crate::front::tls::{self, TlsError};
use crate::identity::{Identity, IdentityError, generate_root_password};
use crate::raft::{self, RaftConfig, StorageError};

/// The root password of a new pool; read only on the pool's first start.
pub const ROOT_PASSWORD_ENV: &str = "OXAPI_ROOT_PASSWORD";
/// Reports the agent may send before the master has taken the first of them.
const REPORT_QUEUE: usize = 1024;

/// The system clock, in whole seconds since the Unix epoch.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Why the host could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
}

/// Runs this host until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> Result<(), RunError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| RunError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let identity = if raft::exists(data_dir) {
        if std::env::var_os(ROOT_PASSWORD_ENV).is_some() {
            tracing::debug!("the pool exists; {ROOT_PASSWORD_ENV} is ignored");
        }
        Identity::load(data_dir)?
    } else {
        create_pool(&config)?
    };
    tracing::info!(host = %identity.host_uuid, node_id = identity.raft_node_id, "starting");

    let management_ip = facts::management_address(config.listen.ip());
    let host_cert = tls::load_or_create(
        data_dir,
        &facts::hostname()?,
        &[config.listen.ip(), management_ip],
    )?;
    let tls = tls::server_config(host_cert)?;

    let node = raft::open(data_dir, raft_config(&config, identity.raft_node_id)).await?;
    let db: Arc<dyn ReplicatedDb> = node.db.clone();
    let (reports, mut reported) = mpsc::channel(REPORT_QUEUE);
    let agent = match Agent::start(config.agent_config(), data_dir, db.term(), reports).await {
        Ok(agent) => agent,
        Err(err) => {
            stop_raft(node).await;
            return Err(RunError::Agent(err));
        }
    };
    let simulator = agent.simulator();
    let link = Arc::new(LocalLink {
        host_ref: identity.host_ref.clone(),
        agent,
    });
    let master = Master::new(
        db,
        link,
        Arc::new(SystemClock),
        config.master.master_config(),
        identity.host_ref.clone(),
    );
    let housekeeping = tokio::spawn(housekeeping(
        Arc::clone(&master),
        config.master.housekeeping_interval(),
    ));
    reconcile_first_inventory(&master, &identity.host_ref, &mut reported).await;
    let forwarding = tokio::spawn(forward_reports(
        Arc::clone(&master),
        identity.host_ref.clone(),
        reported,
    ));
    let mut front = Front::new(Arc::new(master), config.limits.codec_limits());
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
            housekeeping.abort();
            forwarding.abort();
            stop_raft(node).await;
            return Err(err.into());
        }
    };

    let ready_ip = if config.listen.ip().is_unspecified() {
        management_ip
    } else {
        config.listen.ip()
    };
    let ready = SocketAddr::new(ready_ip, listeners.https.port());
    tracing::info!(https = %listeners.https, http = ?listeners.http, unix_socket = %addresses.unix_socket.display(), "ready");
    announce(&format!("oxapi ready: https://{ready}"));

    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
    }
    listeners.shutdown(config.shutdown_grace()).await;
    housekeeping.abort();
    forwarding.abort();
    node.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Makes a new one-host pool in an empty data dir: identity first, then the bootstrap.
fn create_pool(config: &Config) -> Result<Identity, RunError> {
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
    let host_facts = facts::read(data_dir, config.listen.ip())?;
    let password = match std::env::var(ROOT_PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => password,
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            let password = generate_root_password()?;
            announce(&format!("root password: {password}"));
            password
        }
        Err(std::env::VarError::NotUnicode(_)) => return Err(RunError::PasswordNotUtf8),
    };
    let first = FirstHost {
        host_ref: identity.host_ref.clone(),
        host_uuid: identity.host_uuid.clone(),
    };
    let txn = master::bootstrap::new_pool(&host_facts, &first, SystemClock.now_unix(), &password);
    raft::bootstrap(data_dir, identity.raft_node_id, &txn)?;
    tracing::info!(host = %identity.host_uuid, hostname = %host_facts.hostname, address = %host_facts.address, "created a new pool");
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
    }
}

/// Calls `Master::housekeeping` every `interval`, the first time one interval after start. A
/// round that panics is logged and the next one still runs.
async fn housekeeping(master: Arc<Master>, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let master = Arc::clone(&master);
        if let Err(err) = tokio::spawn(async move { master.housekeeping().await }).await {
            tracing::error!(error = %err, "housekeeping failed");
        }
    }
}

/// Hands the agent's reports to `Master::report`, in order, up to and including its first
/// inventory.
async fn reconcile_first_inventory(
    master: &Arc<Master>,
    host_ref: &str,
    reported: &mut mpsc::Receiver<AgentReport>,
) {
    while let Some(report) = reported.recv().await {
        let is_inventory = matches!(report, AgentReport::Inventory(_));
        master.report(host_ref, report).await;
        if is_inventory {
            return;
        }
    }
}

/// Hands each report of the agent to `Master::report`, in order. A report whose handling
/// panics is logged and the next one still goes through.
async fn forward_reports(
    master: Arc<Master>,
    host_ref: String,
    mut reported: mpsc::Receiver<AgentReport>,
) {
    while let Some(report) = reported.recv().await {
        let master = Arc::clone(&master);
        let host_ref = host_ref.clone();
        if let Err(err) = tokio::spawn(async move { master.report(&host_ref, report).await }).await
        {
            tracing::error!(error = %err, "taking in an agent report failed");
        }
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
