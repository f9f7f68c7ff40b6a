//! What the agent's integration tests share: an agent over a temp data dir, reached through
//! `LocalLink` as the master reaches it, with its report channel.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use api_spec::{ApiError, errors};
use master::db::BoxFuture;
use master::host_link::{ActionResult, AgentReport, DomainInfo, HostAction, HostLink, VmSpec};
use member::agent::backend::simulator::{OpRecord, Simulator};
use member::agent::{Agent, AgentConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The ref of the test host.
pub const HOST: &str = "OpaqueRef:00000000-0000-4000-8000-0000000000aa";
/// The term the agents start at.
pub const TERM: u64 = 3;
/// How long a test waits for something that should come at once.
const PATIENCE: Duration = Duration::from_secs(30);

/// An agent over its own data dir.
pub struct TestAgent {
    pub link: LocalLink,
    pub reports: mpsc::Receiver<AgentReport>,
    /// What the agent reported when it started.
    pub initial_inventory: Vec<DomainInfo>,
    pub dir: Arc<tempfile::TempDir>,
}

impl TestAgent {
    /// An agent with `config` over a new temp dir.
    pub async fn start(config: AgentConfig) -> TestAgent {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        TestAgent::start_in(dir, config).await
    }

    /// An agent with `config` over `dir` (which another agent may have used before).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, config: AgentConfig) -> TestAgent {
        let (sender, mut reports) = mpsc::channel(1024);
        let agent = Agent::start(config, dir.path(), TERM, sender)
            .await
            .expect("the agent starts");
        let initial_inventory = match next_report(&mut reports).await {
            AgentReport::Inventory(domains) => domains,
            other => panic!("the first report is the inventory, got {other:?}"),
        };
        TestAgent {
            link: LocalLink {
                host_ref: HOST.to_owned(),
                agent,
            },
            reports,
            initial_inventory,
            dir,
        }
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.link.agent
    }

    pub fn simulator(&self) -> Arc<Simulator> {
        self.agent().simulator().expect("the simulator backend")
    }

    /// Runs `action` at the agent's starting term, as the master would.
    pub async fn run(&self, action: HostAction) -> Result<ActionResult, ApiError> {
        let (progress, _) = watch::channel(0.0);
        self.link
            .run(HOST, TERM, action, progress, CancellationToken::new())
            .await
    }

    /// Runs `action`, which must leave a domain, and returns it.
    pub async fn domain_after(&self, action: HostAction) -> DomainInfo {
        match self.run(action).await {
            Ok(ActionResult::Domain(Some(domain))) => domain,
            other => panic!("expected a domain, got {other:?}"),
        }
    }

    /// Starts `spec`, unpaused.
    pub async fn start_vm(&self, spec: &VmSpec) -> DomainInfo {
        self.domain_after(HostAction::Start {
            vm: spec.clone(),
            paused: false,
        })
        .await
    }

    /// Every domain, from an `Inventory` action.
    pub async fn inventory(&self) -> Vec<DomainInfo> {
        match self.run(HostAction::Inventory).await {
            Ok(ActionResult::Inventory(domains)) => domains,
            other => panic!("expected an inventory, got {other:?}"),
        }
    }

    /// The domain of `vm` now, if any.
    pub async fn domain(&self, vm: &str) -> Option<DomainInfo> {
        self.inventory()
            .await
            .into_iter()
            .find(|domain| domain.vm == vm)
    }

    /// The backend operations on `vm` so far, oldest first.
    pub fn ops_on(&self, vm: &str) -> Vec<OpRecord> {
        self.simulator()
            .history()
            .into_iter()
            .filter(|record| record.vm == vm)
            .collect()
    }

    /// The next report, within the test's patience.
    pub async fn next_report(&mut self) -> AgentReport {
        next_report(&mut self.reports).await
    }
}

async fn next_report(reports: &mut mpsc::Receiver<AgentReport>) -> AgentReport {
    tokio::time::timeout(PATIENCE, reports.recv())
        .await
        .expect("a report within the test's patience")
        .expect("the agent keeps its report channel")
}

/// The names of the operations in `records`, for comparing sequences.
pub fn names(records: &[OpRecord]) -> Vec<&'static str> {
    records.iter().map(|record| record.op.name()).collect()
}

/// The most operations of `records` that were in progress at one time.
pub fn most_at_once(records: &[OpRecord]) -> usize {
    let mut edges: Vec<(u64, i64)> = records
        .iter()
        .flat_map(|record| [(record.began, 1), (record.ended, -1)])
        .collect();
    edges.sort_unstable();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Polls `condition` every millisecond until it holds, within the test's patience.
pub async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition never held"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The XenAPI error of a failed action.
pub fn api_error(result: Result<ActionResult, ApiError>) -> ApiError {
    match result {
        Err(err) => err,
        Ok(result) => panic!("expected a failure, got {result:?}"),
    }
}

/// The `HostLink` of a one-host pool, as the master reaches its own host's agent (what
/// `roles::PoolLink` does for this host); another host is `HOST_OFFLINE`.
pub struct LocalLink {
    /// The ref of this host.
    pub host_ref: String,
    pub agent: Arc<Agent>,
}

impl HostLink for LocalLink {
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, ApiError>> {
        if host != self.host_ref {
            let offline = errors::host_offline(host);
            return Box::pin(std::future::ready(Err(offline)));
        }
        Box::pin(async move {
            self.agent
                .run(term, action, progress, cancel)
                .await
                .map_err(ApiError::from)
        })
    }
}
