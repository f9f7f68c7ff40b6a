//! `FakeAgent`: an in-memory host agent that tests script.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api_spec::{ApiError, errors};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::db::BoxFuture;
use crate::host_link::{
    ActionResult, ConsoleInfo, DomainInfo, DomainState, HostAction, HostLink, VmSpec,
};

/// The kinds of host actions, by which tests script the fake agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Start,
    Shutdown,
    Reboot,
    Suspend,
    Resume,
    Pause,
    Unpause,
    PlugVbd,
    UnplugVbd,
    PlugVif,
    UnplugVif,
    InsertCd,
    EjectCd,
    SetVcpus,
    SetMemoryTarget,
    UpdateSpec,
    MigrateOut,
    MigrateIn,
    Inventory,
}

impl ActionKind {
    pub fn of(action: &HostAction) -> ActionKind {
        match action {
            HostAction::Start { .. } => ActionKind::Start,
            HostAction::Shutdown { .. } => ActionKind::Shutdown,
            HostAction::Reboot { .. } => ActionKind::Reboot,
            HostAction::Suspend { .. } => ActionKind::Suspend,
            HostAction::Resume { .. } => ActionKind::Resume,
            HostAction::Pause { .. } => ActionKind::Pause,
            HostAction::Unpause { .. } => ActionKind::Unpause,
            HostAction::PlugVbd { .. } => ActionKind::PlugVbd,
            HostAction::UnplugVbd { .. } => ActionKind::UnplugVbd,
            HostAction::PlugVif { .. } => ActionKind::PlugVif,
            HostAction::UnplugVif { .. } => ActionKind::UnplugVif,
            HostAction::InsertCd { .. } => ActionKind::InsertCd,
            HostAction::EjectCd { .. } => ActionKind::EjectCd,
            HostAction::SetVcpus { .. } => ActionKind::SetVcpus,
            HostAction::SetMemoryTarget { .. } => ActionKind::SetMemoryTarget,
            HostAction::UpdateSpec { .. } => ActionKind::UpdateSpec,
            HostAction::MigrateOut { .. } => ActionKind::MigrateOut,
            HostAction::MigrateIn { .. } => ActionKind::MigrateIn,
            HostAction::Inventory => ActionKind::Inventory,
        }
    }
}

/// An action the fake agent received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub host: String,
    pub term: u64,
    pub action: HostAction,
}

/// Holds one action of the fake agent until it is released or cancelled, so a test can act
/// while the action is under way without sleeping.
#[derive(Debug, Clone)]
pub struct Gate {
    entered: watch::Sender<bool>,
    released: watch::Sender<bool>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            entered: watch::Sender::new(false),
            released: watch::Sender::new(false),
        }
    }

    /// Resolves once the held action has reached the agent (and sent its progress).
    pub async fn entered(&self) {
        let mut entered = self.entered.subscribe();
        entered
            .wait_for(|is_in| *is_in)
            .await
            .expect("the gate keeps its sender");
    }

    /// Lets the held action go on.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    async fn released(&self) {
        let mut released = self.released.subscribe();
        released
            .wait_for(|is_released| *is_released)
            .await
            .expect("the gate keeps its sender");
    }
}

/// The progress the fake agent reports before it finishes (or blocks on a gate).
pub const FAKE_PROGRESS: f64 = 0.5;

/// What the fake agent's hypervisor runs and what the test told it to do.
#[derive(Debug, Default)]
struct FakeState {
    received: Vec<Received>,
    /// The domains it runs, by VM uuid.
    domains: BTreeMap<String, DomainInfo>,
    /// The spec each domain runs with, by VM uuid: the one it was booted with, or the last
    /// `UpdateSpec`.
    specs: BTreeMap<String, VmSpec>,
    last_domid: i64,
    failures: Vec<(ActionKind, ApiError)>,
    gates: Vec<(ActionKind, Gate)>,
}

/// A `HostLink` to an in-memory agent: it records every action it receives (with its term),
/// runs plausible domains (increasing domids, rfb and vt100 consoles, every device plugged),
/// reports progress, and can be told to fail the next action of a kind or to hold it until
/// released or cancelled (then it answers `TASK_CANCELLED`, having changed nothing).
#[derive(Debug, Default)]
pub struct FakeAgent {
    state: Mutex<FakeState>,
}

impl FakeAgent {
    pub fn new() -> Arc<FakeAgent> {
        Arc::new(FakeAgent::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .expect("no panic while holding the fake agent's lock")
    }

    /// Every action received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The kinds of the actions received so far, in order.
    pub fn kinds(&self) -> Vec<ActionKind> {
        self.lock()
            .received
            .iter()
            .map(|r| ActionKind::of(&r.action))
            .collect()
    }

    /// Makes the next action of `kind` fail with `error`, changing nothing.
    pub fn fail_next(&self, kind: ActionKind, error: ApiError) {
        self.lock().failures.push((kind, error));
    }

    /// Holds the next action of `kind` until the returned gate is released.
    pub fn block_next(&self, kind: ActionKind) -> Gate {
        let gate = Gate::new();
        self.lock().gates.push((kind, gate.clone()));
        gate
    }

    /// The domain of the VM `uuid`, if it runs one.
    pub fn domain(&self, uuid: &str) -> Option<DomainInfo> {
        self.lock().domains.get(uuid).cloned()
    }

    /// The spec the domain of the VM `uuid` runs with, if it runs one.
    pub fn spec(&self, uuid: &str) -> Option<VmSpec> {
        let state = self.lock();
        state.domains.get(uuid)?;
        state.specs.get(uuid).cloned()
    }

    /// Every domain it runs.
    pub fn domains(&self) -> Vec<DomainInfo> {
        self.lock().domains.values().cloned().collect()
    }

    /// Runs `info` as if its hypervisor had it (a domain that outlived a restart, say).
    pub fn set_domain(&self, info: DomainInfo) {
        self.lock().domains.insert(info.vm.clone(), info);
    }

    /// Forgets the domain of the VM `uuid`, as if it had gone away.
    pub fn remove_domain(&self, uuid: &str) -> Option<DomainInfo> {
        self.lock().domains.remove(uuid)
    }

    /// A new domain for `spec`.
    fn boot(state: &mut FakeState, spec: &VmSpec, paused: bool) -> DomainInfo {
        state.last_domid += 1;
        let info = DomainInfo {
            vm: spec.uuid.clone(),
            state: if paused {
                DomainState::Paused
            } else {
                DomainState::Running
            },
            domid: state.last_domid,
            memory_actual_bytes: spec.memory_dynamic_max_bytes,
            vcpus: spec.vcpus_at_startup,
            vbds: spec.vbds.iter().map(|v| v.uuid.clone()).collect(),
            vifs: spec.vifs.iter().map(|v| v.uuid.clone()).collect(),
            consoles: ["rfb", "vt100"]
                .into_iter()
                .map(|protocol| ConsoleInfo {
                    protocol: protocol.to_owned(),
                })
                .collect(),
        };
        state.domains.insert(info.vm.clone(), info.clone());
        state.specs.insert(info.vm.clone(), spec.clone());
        info
    }

    /// Carries out `action` on the in-memory hypervisor.
    fn perform(&self, action: &HostAction) -> Result<ActionResult, ApiError> {
        let mut state = self.lock();
        let state = &mut *state;
        let changed = |state: &mut FakeState, uuid: &str, change: &dyn Fn(&mut DomainInfo)| {
            let info = state
                .domains
                .get_mut(uuid)
                .ok_or_else(|| errors::internal_error(format!("no domain for VM {uuid}")))?;
            change(info);
            Ok(ActionResult::Domain(Some(info.clone())))
        };
        match action {
            HostAction::Start { vm, paused } | HostAction::Resume { vm, paused, .. } => Ok(
                ActionResult::Domain(Some(FakeAgent::boot(state, vm, *paused))),
            ),
            HostAction::Reboot { vm, .. } => Ok(ActionResult::Domain(Some(FakeAgent::boot(
                state, vm, false,
            )))),
            HostAction::Shutdown { vm, .. } | HostAction::Suspend { vm, .. } => {
                state.domains.remove(vm);
                Ok(ActionResult::Domain(None))
            }
            HostAction::Pause { vm } => changed(state, vm, &|d| d.state = DomainState::Paused),
            HostAction::Unpause { vm } => changed(state, vm, &|d| d.state = DomainState::Running),
            HostAction::PlugVbd { vm, vbd } => {
                changed(state, vm, &|d| d.vbds.push(vbd.uuid.clone()))
            }
            HostAction::UnplugVbd { vm, vbd, .. } => {
                changed(state, vm, &|d| d.vbds.retain(|v| v != vbd))
            }
            HostAction::PlugVif { vm, vif } => {
                changed(state, vm, &|d| d.vifs.push(vif.uuid.clone()))
            }
            HostAction::UnplugVif { vm, vif, .. } => {
                changed(state, vm, &|d| d.vifs.retain(|v| v != vif))
            }
            HostAction::InsertCd { vm, .. } | HostAction::EjectCd { vm, .. } => {
                changed(state, vm, &|_| {})
            }
            HostAction::SetVcpus { vm, count } => changed(state, vm, &|d| d.vcpus = *count),
            HostAction::SetMemoryTarget { vm, bytes } => {
                changed(state, vm, &|d| d.memory_actual_bytes = *bytes)
            }
            HostAction::UpdateSpec { vm } => {
                let Some(info) = state.domains.get(&vm.uuid) else {
                    let error = errors::vm_bad_power_state(&vm.uuid, "running", "halted");
                    return Err(error);
                };
                state.specs.insert(vm.uuid.clone(), vm.clone());
                Ok(ActionResult::Domain(Some(info.clone())))
            }
            HostAction::MigrateOut { vm } => match state.domains.remove(vm) {
                Some(_) => Ok(ActionResult::Image(fake_image(vm))),
                None => Err(errors::vm_bad_power_state(vm, "running", "halted")),
            },
            HostAction::MigrateIn { vm, image, paused } => {
                if *image != fake_image(&vm.uuid) {
                    let message = format!("not an image of VM {}", vm.uuid);
                    return Err(errors::internal_error(message));
                }
                Ok(ActionResult::Domain(Some(FakeAgent::boot(
                    state, vm, *paused,
                ))))
            }
            HostAction::Inventory => Ok(ActionResult::Inventory(
                state.domains.values().cloned().collect(),
            )),
        }
    }
}

impl HostLink for FakeAgent {
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, ApiError>> {
        let host = host.to_owned();
        Box::pin(async move {
            let kind = ActionKind::of(&action);
            let (failure, gate) = {
                let mut state = self.lock();
                state.received.push(Received {
                    host,
                    term,
                    action: action.clone(),
                });
                let failure = take_first(&mut state.failures, kind);
                let gate = take_first(&mut state.gates, kind);
                (failure, gate)
            };
            progress.send_replace(FAKE_PROGRESS);
            let cancelled = || errors::task_cancelled("");
            if let Some(gate) = gate {
                gate.entered.send_replace(true);
                tokio::select! {
                    () = gate.released() => {}
                    () = cancel.cancelled() => return Err(cancelled()),
                }
            }
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            if let Some(error) = failure {
                return Err(error);
            }
            self.perform(&action)
        })
    }
}

/// The memory image the fake agent's `MigrateOut` answers for the VM `uuid`.
pub fn fake_image(uuid: &str) -> Vec<u8> {
    format!("memory of {uuid}").into_bytes()
}

/// Removes and returns the first entry of `kind`.
fn take_first<T>(entries: &mut Vec<(ActionKind, T)>, kind: ActionKind) -> Option<T> {
    let index = entries.iter().position(|(k, _)| *k == kind)?;
    Some(entries.remove(index).1)
}
