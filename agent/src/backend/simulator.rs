//! The simulator: one driver that is the hypervisor (`simulator/hypervisor.rs`), the storage
//! of every SR type (`simulator/storage.rs`) and the network (`simulator/network.rs`), with
//! in-memory domains, VDIs and bridges, configurable latency per operation and failure
//! injection (fail the n-th operation of a kind), cheap enough for hundreds of VMs.
//!
//! Its domains (`simulator/state.rs`), attached VDIs and ports are kept in
//! `<data dir>/simulator/domains.json`, replaced atomically (temp file and rename, no fsync: it
//! stands for a hypervisor's memory) so that, like a real hypervisor's, they outlive the
//! daemon: after `kill -9` and a restart, `discover` finds them. Writes from concurrent
//! operations are grouped: an operation returns once a write that includes its change has
//! completed.
//!
//! Tests drive it further: `guest` makes a guest power off, reboot, crash or hang (also reached
//! through the test-only control, `front/simulator.rs`), `fail` injects a failure at run time,
//! `hold` stops every operation of a kind until released, and `history` lists the last
//! operations with the order in which they began and ended.

mod hypervisor;
mod image;
mod network;
mod state;
mod storage;

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use self::state::{Effect, SimState};
use crate::backend::{BackendError, BackendOp, Domain, DomainEvent, ShutdownReason, lock};

/// The state file, relative to the data dir.
pub const STATE_FILE: &str = "simulator/domains.json";
/// The most operations `history` remembers; older ones are dropped.
const HISTORY_LIMIT: usize = 65_536;
/// Events not yet read by the agent before the oldest are dropped (the agent then checks every
/// domain).
const EVENT_CAPACITY: usize = 1024;

/// How the simulator behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulatorConfig {
    /// How long each kind of operation takes; absent kinds take no time.
    pub latency: BTreeMap<BackendOp, Duration>,
    /// Failures to inject, counted from start.
    pub failures: Vec<Failure>,
}

/// Fail the `nth` operation of kind `operation` from now on (1: the next one), once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub operation: BackendOp,
    pub nth: NonZeroU64,
}

/// What a test makes a guest do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestAction {
    PowerOff,
    Reboot,
    Crash,
    /// Stop answering shutdown requests, until the domain is destroyed.
    Hang,
}

/// One operation as the simulator saw it. `began` and `ended` come from one counter, so two
/// operations overlapped exactly when each began before the other ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// What it acted on: the VM for a hypervisor operation, the VDI (by uuid) for an attach,
    /// activate, deactivate or detach, the SR for the rest of storage's, the VIF for a port,
    /// the bridge for a network.
    pub subject: String,
    pub op: BackendOp,
    pub began: u64,
    pub ended: u64,
    pub is_ok: bool,
}

/// The simulated hypervisor.
pub struct Simulator {
    path: PathBuf,
    latency: BTreeMap<BackendOp, Duration>,
    live: Mutex<Live>,
    /// The generation last written to the state file; held while writing, so that concurrent
    /// operations share writes.
    written: tokio::sync::Mutex<u64>,
    /// Injected failures not yet due: the operation and how many more of its kind until one
    /// fails.
    failures: Mutex<Vec<(BackendOp, u64)>>,
    holds: Mutex<BTreeMap<BackendOp, Arc<watch::Sender<Gate>>>>,
    history: Mutex<VecDeque<OpRecord>>,
    clock: AtomicU64,
    /// Bumped after every change; `wait_shutdown` watches it.
    changed: watch::Sender<u64>,
    events: broadcast::Sender<DomainEvent>,
}

struct Live {
    state: SimState,
    /// Bumped by every change of `state`; never below the written generation.
    generation: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    arrived: usize,
    is_open: bool,
}

/// Operations of one kind wait here until `release` (or the drop of the `Hold`).
pub struct Hold {
    gate: Arc<watch::Sender<Gate>>,
}

impl Hold {
    /// Resolves once `count` operations are waiting (or have waited) here.
    pub async fn arrivals(&self, count: usize) {
        let mut gate = self.gate.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = gate.wait_for(|gate| gate.arrived >= count).await;
    }

    /// Lets every waiting and future operation of the kind through.
    pub fn release(&self) {
        self.gate.send_modify(|gate| gate.is_open = true);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

impl Simulator {
    /// Opens the simulator over `data_dir`, with the domains of the state file if there is one.
    pub fn open(data_dir: &Path, config: SimulatorConfig) -> Result<Arc<Simulator>, BackendError> {
        let path = data_dir.join(STATE_FILE);
        let state_error = |source| BackendError::State {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(state_error)?;
        }
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| BackendError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => SimState::default(),
            Err(err) => return Err(state_error(err)),
        };
        tracing::info!(path = %path.display(), domains = state.domains.len(), "simulator opened");
        let failures = config
            .failures
            .iter()
            .map(|failure| (failure.operation, failure.nth.get()))
            .collect();
        Ok(Arc::new(Simulator {
            path,
            latency: config.latency,
            live: Mutex::new(Live {
                state,
                generation: 0,
            }),
            written: tokio::sync::Mutex::new(0),
            failures: Mutex::new(failures),
            holds: Mutex::new(BTreeMap::new()),
            history: Mutex::new(VecDeque::new()),
            clock: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            events: broadcast::Sender::new(EVENT_CAPACITY),
        }))
    }

    /// Makes the guest of `vm` power off, reboot, crash or hang, as if it did it by itself.
    pub async fn guest(&self, vm: &str, action: GuestAction) -> Result<(), BackendError> {
        let (generation, effect) = self.change(|state| match action {
            GuestAction::PowerOff => state.guest_stops(vm, ShutdownReason::PowerOff),
            GuestAction::Reboot => state.guest_stops(vm, ShutdownReason::Reboot),
            GuestAction::Crash => state.guest_stops(vm, ShutdownReason::Crash),
            GuestAction::Hang => state.guest_hangs(vm),
        })?;
        tracing::info!(vm, action = ?action, "simulated guest action");
        self.persist(generation).await?;
        self.announce(vm, effect);
        Ok(())
    }

    /// Fails an operation: see `Failure`.
    pub fn fail(&self, failure: Failure) {
        tracing::info!(operation = %failure.operation, nth = failure.nth, "failure injected");
        lock(&self.failures).push((failure.operation, failure.nth.get()));
    }

    /// Stops every operation of kind `op` until the returned `Hold` is released or dropped.
    pub fn hold(&self, op: BackendOp) -> Hold {
        let gate = Arc::new(watch::Sender::new(Gate::default()));
        lock(&self.holds).insert(op, Arc::clone(&gate));
        Hold { gate }
    }

    /// The VDIs attached now, by uuid.
    pub fn attached_vdis(&self) -> Vec<String> {
        lock(&self.live)
            .state
            .storage
            .attached
            .keys()
            .cloned()
            .collect()
    }

    /// The VIFs whose ports exist now, by uuid.
    pub fn vif_ports(&self) -> Vec<String> {
        lock(&self.live)
            .state
            .network
            .ports
            .keys()
            .cloned()
            .collect()
    }

    /// `read` of the state the simulator holds now.
    fn with_state<T>(&self, read: impl FnOnce(&SimState) -> T) -> T {
        read(&lock(&self.live).state)
    }

    /// The bridges set up now, with their MTU.
    pub fn bridges(&self) -> BTreeMap<String, u32> {
        lock(&self.live).state.network.bridges.clone()
    }

    /// The last operations, oldest first.
    pub fn history(&self) -> Vec<OpRecord> {
        lock(&self.history).iter().cloned().collect()
    }

    /// Runs one operation on `subject` (see `OpRecord`): counts it for injected failures,
    /// waits at a hold, takes its latency, then changes the state (unless it fails) and
    /// persists the change.
    async fn run<T>(
        &self,
        op: BackendOp,
        subject: &str,
        change: impl FnOnce(&mut SimState) -> Result<(T, Effect), BackendError>,
    ) -> Result<T, BackendError> {
        let began = self.clock.fetch_add(1, Ordering::SeqCst);
        let is_due = self.count_for_failure(op);
        self.pass_hold(op).await;
        if let Some(latency) = self.latency.get(&op).filter(|d| !d.is_zero()) {
            tokio::time::sleep(*latency).await;
        }
        let result = if is_due {
            Err(BackendError::Failed {
                op,
                reason: "injected failure".to_owned(),
            })
        } else {
            self.change_and_persist(subject, change).await
        };
        let record = OpRecord {
            subject: subject.to_owned(),
            op,
            began,
            ended: self.clock.fetch_add(1, Ordering::SeqCst),
            is_ok: result.is_ok(),
        };
        let mut history = lock(&self.history);
        if history.len() == HISTORY_LIMIT {
            history.pop_front();
        }
        history.push_back(record);
        result
    }

    async fn change_and_persist<T>(
        &self,
        vm: &str,
        change: impl FnOnce(&mut SimState) -> Result<(T, Effect), BackendError>,
    ) -> Result<T, BackendError> {
        let (generation, (value, effect)) = self.change(|state| change(state))?;
        self.persist(generation).await?;
        self.announce(vm, effect);
        Ok(value)
    }

    /// Applies `change` to the state; on success bumps the generation and returns it.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut SimState) -> Result<T, BackendError>,
    ) -> Result<(u64, T), BackendError> {
        let mut live = lock(&self.live);
        let value = change(&mut live.state)?;
        live.generation += 1;
        Ok((live.generation, value))
    }

    fn announce(&self, vm: &str, effect: Effect) {
        self.changed.send_modify(|n| *n += 1);
        if effect == Effect::GuestStopped {
            // No receiver just means the agent is not listening yet; it reads every domain
            // when it starts.
            let _ = self.events.send(DomainEvent { vm: vm.to_owned() });
        }
    }

    /// Writes the state to the state file unless a write since `generation` already did.
    async fn persist(&self, generation: u64) -> Result<(), BackendError> {
        let mut written = self.written.lock().await;
        if *written >= generation {
            return Ok(());
        }
        let (bytes, snapshot) = {
            let live = lock(&self.live);
            let bytes =
                serde_json::to_vec(&live.state).expect("the simulator's state is plain data");
            (bytes, live.generation)
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || replace_file(&path, &bytes))
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
            .map_err(|source| BackendError::State {
                path: self.path.clone(),
                source,
            })?;
        *written = snapshot;
        Ok(())
    }

    fn count_for_failure(&self, op: BackendOp) -> bool {
        let mut failures = lock(&self.failures);
        let mut is_due = false;
        for (kind, remaining) in failures.iter_mut().filter(|(kind, _)| *kind == op) {
            *remaining -= 1;
            if *remaining == 0 {
                tracing::info!(operation = %kind, "injected failure is due");
                is_due = true;
            }
        }
        failures.retain(|(_, remaining)| *remaining > 0);
        is_due
    }

    async fn pass_hold(&self, op: BackendOp) {
        let Some(gate) = lock(&self.holds).get(&op).cloned() else {
            return;
        };
        let mut open = gate.subscribe();
        gate.send_if_modified(|gate| {
            if gate.is_open {
                return false;
            }
            gate.arrived += 1;
            true
        });
        // `gate` keeps the sender alive while this waits.
        let _ = open.wait_for(|gate| gate.is_open).await;
    }

    fn domain_now(&self, vm: &str) -> Option<Domain> {
        lock(&self.live)
            .state
            .domains
            .get(vm)
            .map(|sim| sim.domain.clone())
    }
}

/// Replaces `path` with `bytes` through a temp file and a rename, so a reader never sees half a
/// file.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

fn quiet<T>(result: Result<T, BackendError>) -> Result<(T, Effect), BackendError> {
    result.map(|value| (value, Effect::Quiet))
}
