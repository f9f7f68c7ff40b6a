//! The simulator backend: in-memory domains, with configurable latency per operation and
//! failure injection (fail the n-th operation of a kind), cheap enough for hundreds of VMs.
//!
//! Its domains (`simulator/state.rs`) are kept in `<data dir>/simulator/domains.json`,
//! replaced atomically (temp file and rename, no fsync: it stands for a hypervisor's memory) so
//! that, like a real hypervisor's, they outlive the daemon: after `kill -9` and a restart,
//! `discover` finds them. Writes from concurrent operations are grouped: an operation returns
//! once a write that includes its change has completed.
//!
//! Tests drive it further: `guest` makes a guest power off, reboot, crash or hang (also reached
//! through the test-only control, `front/simulator.rs`), `fail` injects a failure at run time,
//! `hold` stops every operation of a kind until released, and `history` lists the last
//! operations with the order in which they began and ended.

mod image;
mod state;

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use host_api::{DiskSpec, VbdSpec, VifSpec, VmSpec};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, watch};

use self::state::{Effect, SimState};
use crate::backend::{
    Backend, BackendError, BackendEvent, BackendOp, Domain, Op, RunState, ShutdownReason,
};

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
    pub vm: String,
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
    events: broadcast::Sender<BackendEvent>,
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

    /// The last operations, oldest first.
    pub fn history(&self) -> Vec<OpRecord> {
        lock(&self.history).iter().cloned().collect()
    }

    /// Runs one operation: counts it for injected failures, waits at a hold, takes its
    /// latency, then changes the state (unless it fails) and persists the change.
    async fn run<T>(
        &self,
        op: BackendOp,
        vm: &str,
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
            self.change_and_persist(vm, change).await
        };
        let record = OpRecord {
            vm: vm.to_owned(),
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
            let _ = self.events.send(BackendEvent { vm: vm.to_owned() });
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

/// Locks a mutex whose data stays consistent even if a holder panicked (every change is made
/// whole or not at all).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn quiet<T>(result: Result<T, BackendError>) -> Result<(T, Effect), BackendError> {
    result.map(|value| (value, Effect::Quiet))
}

impl Backend for Simulator {
    fn create<'a>(&'a self, spec: &'a VmSpec) -> Op<'a, i64> {
        Box::pin(self.run(BackendOp::Create, &spec.uuid, |m| quiet(m.create(spec))))
    }

    fn build<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Build, vm, |m| quiet(m.build(vm))))
    }

    fn plug_disk<'a>(&'a self, vm: &'a str, vbd: &'a VbdSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::PlugDisk, vm, |m| quiet(m.plug_disk(vm, vbd))))
    }

    fn plug_nic<'a>(&'a self, vm: &'a str, vif: &'a VifSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::PlugNic, vm, |m| quiet(m.plug_nic(vm, vif))))
    }

    fn start_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::StartDeviceModel, vm, |m| {
            quiet(m.start_device_model(vm))
        }))
    }

    fn unpause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Unpause, vm, |m| quiet(m.unpause(vm))))
    }

    fn set_needs_poweroff<'a>(&'a self, vm: &'a str, needs_poweroff: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetNeedsPoweroff, vm, move |m| {
            quiet(m.set_needs_poweroff(vm, needs_poweroff))
        }))
    }

    fn pause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Pause, vm, |m| quiet(m.pause(vm))))
    }

    fn request_shutdown<'a>(&'a self, vm: &'a str, reason: ShutdownReason) -> Op<'a> {
        Box::pin(self.run(BackendOp::RequestShutdown, vm, move |m| {
            m.request_shutdown(vm, reason).map(|effect| ((), effect))
        }))
    }

    fn wait_shutdown<'a>(&'a self, vm: &'a str) -> Op<'a, ShutdownReason> {
        Box::pin(async move {
            let mut changes = self.changed.subscribe();
            loop {
                match self.domain_now(vm) {
                    None => return Err(BackendError::NoDomain { vm: vm.to_owned() }),
                    Some(Domain {
                        state: RunState::Shutdown(reason),
                        ..
                    }) => return Ok(reason),
                    Some(_) => {}
                }
                if changes.changed().await.is_err() {
                    return Err(BackendError::NoDomain { vm: vm.to_owned() });
                }
            }
        })
    }

    fn unplug_nic<'a>(&'a self, vm: &'a str, vif: &'a str, _force: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::UnplugNic, vm, |m| quiet(m.unplug_nic(vm, vif))))
    }

    fn unplug_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, _force: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::UnplugDisk, vm, |m| quiet(m.unplug_disk(vm, vbd))))
    }

    fn stop_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::StopDeviceModel, vm, |m| {
            quiet(m.stop_device_model(vm))
        }))
    }

    fn destroy<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Destroy, vm, |m| quiet(m.destroy(vm))))
    }

    fn save<'a>(&'a self, vm: &'a str, image: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::Save, vm, |m| quiet(m.save(vm, image))))
    }

    fn restore<'a>(&'a self, vm: &'a str, image: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::Restore, vm, |m| quiet(m.restore(vm, image))))
    }

    fn save_image<'a>(
        &'a self,
        vm: &'a str,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let header = self
                .run(BackendOp::SaveImage, vm, |m| quiet(m.save_image(vm)))
                .await?;
            // The domain stays paused and whole: a failed stream is undone by unpausing it.
            image::write(&header, to)
                .await
                .map_err(|err| BackendError::Failed {
                    op: BackendOp::SaveImage,
                    reason: format!("cannot write the image: {err}"),
                })
        })
    }

    fn receive_image<'a>(
        &'a self,
        vm: &'a str,
        from: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let header = image::read(from)
                .await
                .map_err(|reason| BackendError::Failed {
                    op: BackendOp::ReceiveImage,
                    reason,
                })?;
            self.run(BackendOp::ReceiveImage, vm, |m| {
                quiet(m.receive_image(vm, header))
            })
            .await
        })
    }

    fn restore_received<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::RestoreReceived, vm, |m| {
            quiet(m.restore_received(vm))
        }))
    }

    fn insert_cd<'a>(&'a self, vm: &'a str, vbd: &'a str, disk: &'a DiskSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::InsertCd, vm, |m| {
            quiet(m.insert_cd(vm, vbd, disk))
        }))
    }

    fn eject_cd<'a>(&'a self, vm: &'a str, vbd: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::EjectCd, vm, |m| quiet(m.eject_cd(vm, vbd))))
    }

    fn set_vcpus<'a>(&'a self, vm: &'a str, count: u32) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetVcpus, vm, move |m| {
            quiet(m.set_vcpus(vm, count))
        }))
    }

    fn set_memory_target<'a>(&'a self, vm: &'a str, bytes: u64) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetMemoryTarget, vm, move |m| {
            quiet(m.set_memory_target(vm, bytes))
        }))
    }

    fn update_spec<'a>(&'a self, vm: &'a str, spec: &'a VmSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::UpdateSpec, vm, |m| {
            quiet(m.update_spec(vm, spec))
        }))
    }

    fn domain<'a>(&'a self, vm: &'a str) -> Op<'a, Option<Domain>> {
        Box::pin(async move { Ok(self.domain_now(vm)) })
    }

    fn discover(&self) -> Op<'_, Vec<Domain>> {
        Box::pin(async move {
            Ok(lock(&self.live)
                .state
                .domains
                .values()
                .map(|sim| sim.domain.clone())
                .collect())
        })
    }

    fn events(&self) -> broadcast::Receiver<BackendEvent> {
        self.events.subscribe()
    }
}
