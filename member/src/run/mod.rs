//! Start-up and shutdown of one host: a new pool or a restart, then the peer transport, the
//! Raft node, the host agent, the master and the roles layer, and the listeners, until SIGTERM
//! or SIGINT, or until a pool operation asks for a restart (join, eject, emergency transition).
//!
//! `serve` reads as the life of a host: `start.rs` prepares the data dir, certificate and
//! identity, then starts the parts one named step at a time (the order is `start::start_parts`);
//! each part that must be stopped is recorded in a `Started` (`stop.rs`) as soon as it runs,
//! and `Started::stop` is the one shutdown path: it stops them last started first, both when a
//! later step fails and at SIGTERM, SIGINT or a restart. `split_alerts.rs` raises the pool
//! split alerts the peer transport detects.
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

mod split_alerts;
mod start;
mod stop;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use master::Clock;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

use self::start::Host;
use crate::config::Config;
use crate::data_dir::DataDirError;
use crate::facts::FactsError;
use crate::front::listen::ListenError;
use crate::front::tls::TlsError;
use crate::identity::IdentityError;
use crate::links::FirstInventory;
use crate::peer::PeerError;
use crate::pool::restart::PoolError;
use crate::pool::{self, RestartPlan};
use crate::raft::StorageError;
use agent::AgentError;

/// The root password of a new pool; read only on the pool's first start.
pub const ROOT_PASSWORD_ENV: &str = "OXAPI_ROOT_PASSWORD";

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
    #[error("the peer transport's link frames were taken before the links layer started")]
    LinkInboundTaken,
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
    let mut signals = Signals::listen()?;
    let host = start::prepare(&config)?;
    let (started, mut running) = start::start(&config, &host).await?;
    running.ready(&config, &host).await;
    let restart = signals.wait_for_stop(&mut running.restarts).await;
    started.stop(config.shutdown_grace()).await?;
    tracing::info!("stopped");
    match restart {
        Some(plan) => Err(RunError::Restart(
            pool::carry_out(&config, &host.identity, &host.cert_sha256, plan).await,
        )),
        None => Ok(()),
    }
}

/// SIGTERM and SIGINT, listened for from the start so that neither kills the host half-way.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn listen() -> Result<Signals, RunError> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
        })
    }

    /// Waits for SIGTERM, SIGINT or a pool operation's restart; the restart's plan, if that
    /// came first.
    async fn wait_for_stop(
        &mut self,
        restarts: &mut mpsc::Receiver<RestartPlan>,
    ) -> Option<RestartPlan> {
        tokio::select! {
            _ = self.terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                None
            }
            _ = self.interrupt.recv() => {
                tracing::info!("SIGINT: shutting down");
                None
            }
            Some(plan) = restarts.recv() => {
                tracing::info!(plan = plan.kind(), "a pool operation restarts this host");
                Some(plan)
            }
        }
    }
}

/// What `serve` holds once every part runs, besides what it stops (`Started`).
struct Running {
    /// Whether a master has taken this host's first inventory.
    first_inventory: FirstInventory,
    /// Lets the calls `UntilReady` holds through.
    open: watch::Sender<bool>,
    /// The restarts pool operations ask for.
    restarts: mpsc::Receiver<RestartPlan>,
    /// The HTTPS address bound.
    https: SocketAddr,
    /// The plain HTTP address bound, if any.
    http: Option<SocketAddr>,
    /// What runs guests here (`Agent::backend`).
    backend: String,
}

impl Running {
    /// Waits for the first inventory (at most `pool.first_inventory_wait_secs`), then answers
    /// the calls held meanwhile and says so: the ready line.
    async fn ready(&self, config: &Config, host: &Host) {
        if !self
            .first_inventory
            .clone()
            .wait(config.pool.first_inventory_wait())
            .await
        {
            tracing::warn!("no master has taken this host's inventory yet; ready anyway");
        }
        self.open.send_replace(true);

        let ready_ip = if config.listen.ip().is_unspecified() {
            host.management_ip
        } else {
            config.listen.ip()
        };
        let ready = SocketAddr::new(ready_ip, self.https.port());
        let unix_socket = config.unix_socket_path();
        tracing::info!(https = %self.https, http = ?self.http, unix_socket = %unix_socket.display(), "ready");
        announce(&format!("guests run on: {}", self.backend));
        announce(&format!("oxapi ready: https://{ready}"));
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

    /// The indexes of the dumps in `data_dir`, lowest first.
    fn dump_indexes(data_dir: &std::path::Path) -> Vec<u64> {
        let mut indexes: Vec<u64> = std::fs::read_dir(data_dir.join("dumps"))
            .expect("the dumps dir")
            .filter_map(|entry| {
                let name = entry.expect("a dir entry").file_name();
                let name = name.to_str()?;
                name.strip_prefix("db-")?
                    .strip_suffix(".dump")?
                    .parse()
                    .ok()
            })
            .collect();
        indexes.sort_unstable();
        indexes
    }

    /// A listener that cannot open (its address taken) fails the start with `Listen`, and the
    /// parts started before it are stopped: the Raft node stops cleanly, writing its final
    /// dump past the bootstrap's (a node merely dropped writes none).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_that_cannot_open_stops_what_started_before_it() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a temp dir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let config = Config {
            data_dir: dir.path().join("data"),
            listen: taken.local_addr().expect("the bound address"),
            ..Config::default()
        };

        let failed = serve(config.clone()).await;

        assert!(
            matches!(failed, Err(RunError::Listen(_))),
            "{failed:?} is not a listen error"
        );
        let indexes = dump_indexes(&config.data_dir);
        assert!(
            indexes.len() >= 2,
            "no final dump after the bootstrap's: {indexes:?}"
        );
    }
}
