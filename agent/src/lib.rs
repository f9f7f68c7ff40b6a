//! The host agent (xenopsd-like): everything that happens to a VM on this host goes through
//! here, from the master's actions (through `links::PoolLink`, from this host's master or
//! another's) and from the hypervisor's own events.
//!
//! - `queue.rs`: one queue per VM and the worker pool (`agent.workers`).
//! - `actions.rs`: what each action is made of; `micro_ops.rs`: the steps and the loop that
//!   runs them with cancellation, progress and undo.
//! - `host_actions.rs`: the actions on an SR or on the host's networking, beside the queues.
//! - `guest.rs`: what the agent does when a guest stops by itself, and on start-up.
//! - `hooks.rs`: the hook scripts. `error.rs`: errors, and their XenAPI form.
//! - `backend/`: the drivers, one trait per capability (`hypervisor.rs`: `Hypervisor`,
//!   `storage.rs`: `Storage` per SR type, `network.rs`: `Network`), the factory that chooses
//!   them from the config (`Drivers::from_config`), and the simulator, which is all three.
//! - `transfer.rs`: `BulkTransfer`, how a migration's image moves to another host's agent
//!   (member gives the agent its data plane; `LocalTransfer` serves tests).
//!
//! Terms: the agent keeps the newest Raft term it has seen (starting from the node's term when
//! it starts) and refuses an action stamped with an older one, so a deposed master can no
//! longer act. It checks when the action arrives and again when it leaves its queue.
//!
//! On start the agent reads every domain the hypervisor runs, checks each on its queue (finishing
//! operations a crash cut short, handling guests that stopped meanwhile), then sends
//! `AgentReport::Inventory`, from which the master reconciles the DB (before the host says it
//! is ready: `member/src/run/`).
//!
//! Fencing: a host that has lost contact with every master for long enough (`member/src/links/`
//! keeps the time) calls `Agent::fence`, which hard-stops every domain, so that the master on the other
//! side can halt them in the DB and start them elsewhere without a VM ever running twice.

mod actions;
pub mod backend;
mod error;
mod guest;
pub mod hooks;
mod host_actions;
mod micro_ops;
pub mod queue;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transfer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use host_api::{
    ActionResult, AgentFailure, AgentReport, GuestEvent, HostAction, HypervisorInfo, PowerState,
    VmAction, VmSpec,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use self::backend::file_sr::FileSrConfig;
use self::backend::simulator::{Simulator, SimulatorConfig};
pub use self::backend::{BackendConfig, StorageChoice};
use self::backend::{BackendError, Domain, DomainEvent, Drivers};
pub use self::error::AgentError;

/// A boxed future, so that the drivers can be trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
use self::hooks::Hooks;
use self::queue::Queues;
use self::transfer::BulkTransfer;

/// How the agent runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The most actions running at once across all VMs: the parallelism of VM starts.
    pub workers: usize,
    /// How long one hook script may run before it is killed.
    pub hook_timeout: Duration,
    /// How long a clean shutdown or reboot waits for the guest.
    pub clean_shutdown_timeout: Duration,
    /// How long the receiving end of a migration waits for its sender, and the sender for
    /// its receiver to expect it.
    pub transfer_wait: Duration,
    /// Which drivers to use.
    pub backend: BackendConfig,
    /// Which driver keeps the VDIs of directory SRs (local and `file`).
    pub storage: StorageChoice,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            workers: 8,
            hook_timeout: Duration::from_secs(120),
            // xapi's `domain_shutdown_total_timeout`.
            clean_shutdown_timeout: Duration::from_secs(1200),
            transfer_wait: Duration::from_secs(30),
            backend: BackendConfig::Simulator(SimulatorConfig::default()),
            storage: StorageChoice::Backend,
        }
    }
}

/// How long the agent waits before listing its domains again for the inventory, after a
/// failure.
const INVENTORY_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The agent of this host.
pub struct Agent {
    drivers: Drivers,
    hooks: Hooks,
    queues: Arc<Queues>,
    reports: mpsc::Sender<AgentReport>,
    /// The newest Raft term seen; never decreases.
    newest_term: AtomicU64,
    clean_shutdown_timeout: Duration,
    /// Moves migration images to and from other hosts' agents.
    transfer: Arc<dyn BulkTransfer>,
    transfer_wait: Duration,
    /// Stops the task that listens to the hypervisor's events.
    stop: CancellationToken,
    /// What runs guests here.
    hypervisor: HypervisorInfo,
    /// Runs the storage actions on one SR one at a time.
    sr_locks: host_actions::SrLocks,
}

impl Agent {
    /// Opens the drivers over `data_dir` and starts the agent, which has seen Raft term
    /// `term` and moves migration images through `transfer`. Reports (the inventory once the
    /// domains found are checked, then guest changes) go to `reports`. Must run inside the
    /// runtime.
    pub async fn start(
        config: AgentConfig,
        data_dir: &Path,
        term: u64,
        transfer: Arc<dyn BulkTransfer>,
        reports: mpsc::Sender<AgentReport>,
    ) -> Result<Arc<Agent>, AgentError> {
        let drivers = Drivers::from_config(&config.backend, &config.storage, data_dir)?;
        let hypervisor = drivers.hypervisor_info().await;
        // Subscribed before reading the domains, so no change falls between the two.
        let events = drivers.hypervisor.events();
        let domains = drivers.hypervisor.discover().await?;
        let agent = Arc::new(Agent {
            drivers,
            hooks: Hooks::new(data_dir, config.hook_timeout),
            queues: Queues::new(config.workers),
            reports,
            newest_term: AtomicU64::new(term),
            clean_shutdown_timeout: config.clean_shutdown_timeout,
            transfer,
            transfer_wait: config.transfer_wait,
            stop: CancellationToken::new(),
            hypervisor,
            sr_locks: host_actions::SrLocks::default(),
        });
        let checks = domains
            .iter()
            .map(|domain| agent.submit_check(domain.vm()))
            .collect();
        tokio::spawn(report_inventory(Arc::downgrade(&agent), checks));
        tokio::spawn(listen(Arc::downgrade(&agent), events, agent.stop.clone()));
        tracing::info!(
            workers = config.workers,
            domains = domains.len(),
            term,
            backend = %agent.hypervisor.describe(),
            "host agent started"
        );
        Ok(agent)
    }

    /// What runs guests here, e.g. `qemu (kvm, cpu host)` or `simulator`.
    pub fn backend(&self) -> String {
        self.hypervisor.describe()
    }

    /// The simulator, when it is the driver.
    pub fn simulator(&self) -> Option<Arc<Simulator>> {
        self.drivers.simulator.clone()
    }

    pub fn newest_term(&self) -> u64 {
        self.newest_term.load(Ordering::SeqCst)
    }

    /// Runs `action`, stamped with Raft `term`: see the master's `HostLink::run`. A VM action
    /// runs in a task of its own on its VM's queue; dropping this future does not stop it
    /// (cancel does).
    pub async fn run(
        self: &Arc<Self>,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> Result<ActionResult, AgentFailure> {
        self.run_action(term, action, progress, cancel)
            .await
            .map_err(AgentFailure::from)
    }

    async fn run_action(
        self: &Arc<Self>,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> Result<ActionResult, AgentError> {
        self.observe_term(term)?;
        let action = match action {
            HostAction::Inventory => {
                let domains = self.drivers.hypervisor.discover().await?;
                progress.send_replace(1.0);
                return Ok(ActionResult::Inventory(
                    domains.iter().map(Domain::info).collect(),
                ));
            }
            HostAction::Storage(action) => {
                let result = host_actions::storage(self, &action, &progress, &cancel).await;
                progress.send_replace(1.0);
                return result;
            }
            HostAction::Network(action) => {
                let result = host_actions::network(&self.drivers, &action).await;
                progress.send_replace(1.0);
                return result;
            }
            HostAction::Vm(VmAction::UpdateSpec { vm: spec }) => {
                let result = self.update_spec(&spec).await;
                progress.send_replace(1.0);
                return result;
            }
            // Receiving an image touches no domain: it runs beside the VM's queue, where a
            // migration to this same host has its outgoing half.
            HostAction::Vm(action @ VmAction::MigrateIn { .. }) => {
                return self.perform(term, &action, &progress, &cancel).await;
            }
            HostAction::Vm(action) => action,
        };
        let (answer, answered) = oneshot::channel();
        let agent = Arc::clone(self);
        let vm = action.vm().to_owned();
        self.queues.submit(
            &vm,
            Box::pin(async move {
                let result = agent.perform(term, &action, &progress, &cancel).await;
                let _ = answer.send(result);
            }),
        );
        answered.await.unwrap_or(Err(AgentError::Lost))
    }

    /// Keeps `spec` for the domain of its VM at once, beside whatever its queue runs: see
    /// `VmAction::UpdateSpec`. A VM without a domain is `VM_BAD_POWER_STATE`.
    async fn update_spec(&self, spec: &VmSpec) -> Result<ActionResult, AgentError> {
        let vm = spec.uuid.as_str();
        match self.drivers.hypervisor.update_spec(vm, spec).await {
            Ok(()) => {}
            Err(BackendError::NoDomain { .. }) => {
                return Err(AgentError::Failure(AgentFailure::BadPowerState {
                    vm: vm.to_owned(),
                    expected: PowerState::Running,
                    actual: PowerState::Halted,
                }));
            }
            Err(err) => return Err(err.into()),
        }
        tracing::debug!(vm, "domain spec updated");
        let now = self.drivers.hypervisor.domain(vm).await?;
        Ok(ActionResult::Domain(now.as_ref().map(Domain::info)))
    }

    async fn perform(
        &self,
        term: u64,
        action: &VmAction,
        progress: &watch::Sender<f64>,
        cancel: &CancellationToken,
    ) -> Result<ActionResult, AgentError> {
        // A newer master may have appeared while this waited in the queue.
        self.check_still_current(term)?;
        let vm = action.vm();
        let name = action.name();
        tracing::debug!(vm, action = name, term, "action begins");
        let result = actions::perform(self, vm, action, progress, cancel).await;
        match &result {
            Ok(_) => tracing::debug!(vm, action = name, "action done"),
            Err(AgentError::Failure(AgentFailure::Cancelled)) => {
                tracing::info!(vm, action = name, "action cancelled")
            }
            Err(err) => {
                tracing::error!(
                    vm,
                    action = name,
                    error = err as &dyn std::error::Error,
                    "action failed"
                );
            }
        }
        result
    }

    /// Hard-stops every domain of this host, each on its VM's queue after what runs there, and
    /// reports each stopped guest as powered off; returns how many were stopped. Used when the
    /// host has lost contact with every master (see the module header); no term is checked.
    pub async fn fence(self: &Arc<Self>) -> usize {
        let domains = match self.drivers.hypervisor.discover().await {
            Ok(domains) => domains,
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot list the domains to fence"
                );
                return 0;
            }
        };
        tracing::warn!(domains = domains.len(), "no master: fencing this host");
        let mut stops = Vec::new();
        for domain in &domains {
            let vm = domain.vm().to_owned();
            let (done, finished) = oneshot::channel();
            let agent = Arc::clone(self);
            let job_vm = vm.clone();
            self.queues.submit(
                &vm,
                Box::pin(async move {
                    let _ = done.send(agent.hard_stop(&job_vm).await);
                }),
            );
            stops.push(finished);
        }
        let mut stopped = 0;
        for stop in stops {
            if stop.await.unwrap_or(false) {
                stopped += 1;
            }
        }
        stopped
    }

    /// Hard-stops the domain of `vm` if it still has one and reports it powered off; whether
    /// it was stopped.
    async fn hard_stop(&self, vm: &str) -> bool {
        let action = VmAction::Shutdown {
            vm: vm.to_owned(),
            clean: false,
        };
        let (progress, _) = watch::channel(0.0);
        let cancel = CancellationToken::new();
        match actions::perform(self, vm, &action, &progress, &cancel).await {
            Ok(_) => {
                tracing::warn!(vm, "domain fenced");
                self.report(AgentReport::GuestChanged {
                    vm: vm.to_owned(),
                    event: GuestEvent::PoweredOff,
                    now: None,
                })
                .await;
                true
            }
            Err(AgentError::Failure(AgentFailure::BadPowerState { .. })) => false,
            Err(err) => {
                tracing::error!(
                    vm,
                    error = &err as &dyn std::error::Error,
                    "cannot fence a domain"
                );
                false
            }
        }
    }

    /// Raises the newest term to `term`, or refuses `term` if it is older.
    fn observe_term(&self, term: u64) -> Result<(), AgentError> {
        let newest_seen = self.newest_term.fetch_max(term, Ordering::SeqCst);
        if term > newest_seen {
            tracing::info!(term, previous = newest_seen, "a newer raft term");
        }
        self.refuse_if_stale(term, newest_seen)
    }

    fn check_still_current(&self, term: u64) -> Result<(), AgentError> {
        self.refuse_if_stale(term, self.newest_term())
    }

    fn refuse_if_stale(&self, term: u64, newest_seen: u64) -> Result<(), AgentError> {
        if term < newest_seen {
            tracing::warn!(
                newest_seen,
                got = term,
                "refused an action stamped with a stale term"
            );
            return Err(AgentError::Failure(AgentFailure::StaleTerm {
                newest_seen,
                got: term,
            }));
        }
        Ok(())
    }

    /// Queues a check of the domain of `vm`; the receiver resolves once it is done.
    fn submit_check(self: &Arc<Self>, vm: &str) -> oneshot::Receiver<()> {
        let (done, finished) = oneshot::channel();
        let agent = Arc::clone(self);
        let job_vm = vm.to_owned();
        self.queues.submit(
            vm,
            Box::pin(async move {
                guest::check_state(&agent, &job_vm).await;
                let _ = done.send(());
            }),
        );
        finished
    }

    async fn report(&self, report: AgentReport) {
        if self.reports.send(report).await.is_err() {
            tracing::warn!("no one takes the agent's reports any more");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Once the domains found at start are checked, reports what runs here.
async fn report_inventory(agent: Weak<Agent>, checks: Vec<oneshot::Receiver<()>>) {
    for check in checks {
        // A check that ended without answering (it panicked) was logged by the queue.
        let _ = check.await;
    }
    // The host is not ready before the master has the inventory (`run.rs`): keep trying.
    loop {
        let Some(agent) = agent.upgrade() else {
            return;
        };
        match agent.drivers.hypervisor.discover().await {
            Ok(domains) => {
                let domains = domains.iter().map(Domain::info).collect();
                let hypervisor = agent.hypervisor.clone();
                agent.report(AgentReport::Hypervisor(hypervisor)).await;
                agent.report(AgentReport::Inventory(domains)).await;
                return;
            }
            Err(err) => {
                tracing::error!(
                    error = &err as &dyn std::error::Error,
                    "cannot list the domains for the inventory; trying again"
                );
            }
        }
        drop(agent);
        tokio::time::sleep(INVENTORY_RETRY_INTERVAL).await;
    }
}

/// Turns each hypervisor event into a check of the VM on its queue.
async fn listen(
    agent: Weak<Agent>,
    mut events: broadcast::Receiver<DomainEvent>,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = events.recv() => received,
        };
        let Some(agent) = agent.upgrade() else {
            return;
        };
        match received {
            Ok(event) => {
                tracing::debug!(vm = %event.vm, "hypervisor event");
                drop(agent.submit_check(&event.vm));
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed backend events; checking every domain");
                match agent.drivers.hypervisor.discover().await {
                    Ok(domains) => {
                        for domain in &domains {
                            drop(agent.submit_check(domain.vm()));
                        }
                    }
                    Err(err) => {
                        tracing::error!(
                            error = &err as &dyn std::error::Error,
                            "cannot list the domains"
                        );
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}
