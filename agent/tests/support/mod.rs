//! What the agent's integration tests share: an agent over a temp data dir, run as the master
//! runs it, with its report channel.

// Each test file uses its own part of these helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use agent::backend::simulator::{OpRecord, Simulator};
use agent::transfer::LocalTransfer;
use agent::{Agent, AgentConfig};
use host_api::{
    ActionResult, AgentFailure, AgentReport, DomainInfo, HostAction, PowerState, VmAction, VmSpec,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The term the agents start at.
pub const TERM: u64 = 3;
/// How long a test waits for something that should come at once.
const PATIENCE: Duration = Duration::from_secs(30);

/// An agent over its own data dir.
pub struct TestAgent {
    agent: Arc<Agent>,
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
        TestAgent::start_with(dir, config, LocalTransfer::new()).await
    }

    /// An agent with `config` over a new temp dir, moving migration images through
    /// `transfer` (shared with the agents it migrates to and from).
    pub async fn start_sharing(config: AgentConfig, transfer: Arc<LocalTransfer>) -> TestAgent {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        TestAgent::start_with(dir, config, transfer).await
    }

    async fn start_with(
        dir: Arc<tempfile::TempDir>,
        config: AgentConfig,
        transfer: Arc<LocalTransfer>,
    ) -> TestAgent {
        let (sender, mut reports) = mpsc::channel(1024);
        let agent = Agent::start(config, dir.path(), TERM, transfer, sender)
            .await
            .expect("the agent starts");
        match next_report(&mut reports).await {
            AgentReport::Hypervisor(info) => assert_eq!(info.kind, "simulator"),
            other => panic!("the first report is the hypervisor, got {other:?}"),
        }
        let initial_inventory = match next_report(&mut reports).await {
            AgentReport::Inventory(domains) => domains,
            other => panic!("the second report is the inventory, got {other:?}"),
        };
        TestAgent {
            agent,
            reports,
            initial_inventory,
            dir,
        }
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub fn simulator(&self) -> Arc<Simulator> {
        self.agent().simulator().expect("the simulator backend")
    }

    /// Runs `action` at the agent's starting term, as the master would.
    pub async fn run(&self, action: HostAction) -> Result<ActionResult, AgentFailure> {
        self.run_at(TERM, action).await
    }

    /// Runs `action` stamped with `term`.
    pub async fn run_at(
        &self,
        term: u64,
        action: HostAction,
    ) -> Result<ActionResult, AgentFailure> {
        let (progress, _) = watch::channel(0.0);
        self.agent
            .run(term, action, progress, CancellationToken::new())
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
        self.domain_after(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
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
            .filter(|record| record.subject == vm)
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

/// The failure of an action that must fail.
pub fn failure(result: Result<ActionResult, AgentFailure>) -> AgentFailure {
    match result {
        Err(err) => err,
        Ok(result) => panic!("expected a failure, got {result:?}"),
    }
}

/// The failure of an action on a VM in the wrong power state.
pub fn bad_power_state(vm: &str, expected: PowerState, actual: PowerState) -> AgentFailure {
    AgentFailure::BadPowerState {
        vm: vm.to_owned(),
        expected,
        actual,
    }
}
