//! `FakeAgent`: an in-memory host agent that tests script.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::db::BoxFuture;
use crate::host_link::{HostLink, LinkFailure};
use host_api::{
    ActionResult, AgentFailure, ConsoleInfo, DomainInfo, DomainState, HostAction, NetworkAction,
    PowerState, SrUsage, StorageAction, TransferToken, VdiInfo, VmAction, VmSpec,
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
    MigrateFinish,
    ScanSr,
    PlugSr,
    ImportVdi,
    ExportVdi,
    CreateVdi,
    DestroyVdi,
    ResizeVdi,
    SnapshotVdi,
    CloneVdi,
    AttachNetwork,
    DetachNetwork,
    Inventory,
}

impl ActionKind {
    pub fn of(action: &HostAction) -> ActionKind {
        match action {
            HostAction::Vm(VmAction::Start { .. }) => ActionKind::Start,
            HostAction::Vm(VmAction::Shutdown { .. }) => ActionKind::Shutdown,
            HostAction::Vm(VmAction::Reboot { .. }) => ActionKind::Reboot,
            HostAction::Vm(VmAction::Suspend { .. }) => ActionKind::Suspend,
            HostAction::Vm(VmAction::Resume { .. }) => ActionKind::Resume,
            HostAction::Vm(VmAction::Pause { .. }) => ActionKind::Pause,
            HostAction::Vm(VmAction::Unpause { .. }) => ActionKind::Unpause,
            HostAction::Vm(VmAction::PlugVbd { .. }) => ActionKind::PlugVbd,
            HostAction::Vm(VmAction::UnplugVbd { .. }) => ActionKind::UnplugVbd,
            HostAction::Vm(VmAction::PlugVif { .. }) => ActionKind::PlugVif,
            HostAction::Vm(VmAction::UnplugVif { .. }) => ActionKind::UnplugVif,
            HostAction::Vm(VmAction::InsertCd { .. }) => ActionKind::InsertCd,
            HostAction::Vm(VmAction::EjectCd { .. }) => ActionKind::EjectCd,
            HostAction::Vm(VmAction::SetVcpus { .. }) => ActionKind::SetVcpus,
            HostAction::Vm(VmAction::SetMemoryTarget { .. }) => ActionKind::SetMemoryTarget,
            HostAction::Vm(VmAction::UpdateSpec { .. }) => ActionKind::UpdateSpec,
            HostAction::Vm(VmAction::MigrateOut { .. }) => ActionKind::MigrateOut,
            HostAction::Vm(VmAction::MigrateIn { .. }) => ActionKind::MigrateIn,
            HostAction::Vm(VmAction::MigrateFinish { .. }) => ActionKind::MigrateFinish,
            HostAction::Storage(StorageAction::Scan { .. }) => ActionKind::ScanSr,
            HostAction::Storage(StorageAction::Plug { .. }) => ActionKind::PlugSr,
            HostAction::Storage(StorageAction::Import { .. }) => ActionKind::ImportVdi,
            HostAction::Storage(StorageAction::Export { .. }) => ActionKind::ExportVdi,
            HostAction::Storage(StorageAction::CreateVdi { .. }) => ActionKind::CreateVdi,
            HostAction::Storage(StorageAction::DestroyVdi { .. }) => ActionKind::DestroyVdi,
            HostAction::Storage(StorageAction::ResizeVdi { .. }) => ActionKind::ResizeVdi,
            HostAction::Storage(StorageAction::SnapshotVdi { .. }) => ActionKind::SnapshotVdi,
            HostAction::Storage(StorageAction::CloneVdi { .. }) => ActionKind::CloneVdi,
            HostAction::Network(NetworkAction::Attach { .. }) => ActionKind::AttachNetwork,
            HostAction::Network(NetworkAction::Detach { .. }) => ActionKind::DetachNetwork,
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

/// The size the fake's storage gives every SR it scans.
pub const FAKE_SR_BYTES: u64 = 500 << 30;

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
    failures: Vec<(ActionKind, LinkFailure)>,
    gates: Vec<(ActionKind, Gate)>,
    /// The migrations whose image is on its way, by transfer token.
    transfers: BTreeMap<String, Transfer>,
    /// The VMs whose migration image was kept for `MigrateFinish`.
    kept_images: BTreeSet<String>,
    /// The VDIs each SR holds, by SR uuid, as a scan finds them.
    vdis: BTreeMap<String, Vec<VdiInfo>>,
    /// The number the next VDI's location is made from.
    last_vdi: u64,
    /// The bridges set up on the hosts.
    bridges: BTreeSet<String>,
}

/// A fake memory image.
type Image = Vec<u8>;

/// Both ends of one migration's image, whichever half arrives first: the source hands the
/// image (`fake_image`) to the destination, which answers whether it kept it.
#[derive(Debug)]
struct Transfer {
    image: (
        Option<oneshot::Sender<Image>>,
        Option<oneshot::Receiver<Image>>,
    ),
    verdict: (
        Option<oneshot::Sender<bool>>,
        Option<oneshot::Receiver<bool>>,
    ),
}

impl Default for Transfer {
    fn default() -> Self {
        let (give, take) = oneshot::channel();
        let (tell, hear) = oneshot::channel();
        Transfer {
            image: (Some(give), Some(take)),
            verdict: (Some(tell), Some(hear)),
        }
    }
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

    /// The kinds of the VM actions received so far, in order (storage and network actions
    /// left out).
    pub fn vm_kinds(&self) -> Vec<ActionKind> {
        self.lock()
            .received
            .iter()
            .filter(|r| matches!(r.action, HostAction::Vm(_)))
            .map(|r| ActionKind::of(&r.action))
            .collect()
    }

    /// Makes the next action of `kind` fail with `error`, changing nothing.
    pub fn fail_next(&self, kind: ActionKind, error: impl Into<LinkFailure>) {
        self.lock().failures.push((kind, error.into()));
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

    /// Puts `vdi` in the SR `sr_uuid`, for a scan to find.
    pub fn put_vdi(&self, sr_uuid: &str, vdi: VdiInfo) {
        self.lock()
            .vdis
            .entry(sr_uuid.to_owned())
            .or_default()
            .push(vdi);
    }

    /// The bridges set up now.
    pub fn bridges(&self) -> BTreeSet<String> {
        self.lock().bridges.clone()
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
    fn perform(&self, action: &HostAction) -> Result<ActionResult, LinkFailure> {
        let mut state = self.lock();
        let state = &mut *state;
        let changed = |state: &mut FakeState, uuid: &str, change: &dyn Fn(&mut DomainInfo)| {
            let info = state.domains.get_mut(uuid).ok_or_else(|| {
                LinkFailure::Agent(AgentFailure::Internal {
                    message: format!("no domain for VM {uuid}"),
                })
            })?;
            change(info);
            Ok(ActionResult::Domain(Some(info.clone())))
        };
        match action {
            HostAction::Vm(VmAction::Start { vm, paused })
            | HostAction::Vm(VmAction::Resume { vm, paused, .. }) => Ok(ActionResult::Domain(
                Some(FakeAgent::boot(state, vm, *paused)),
            )),
            HostAction::Vm(VmAction::Reboot { vm, .. }) => Ok(ActionResult::Domain(Some(
                FakeAgent::boot(state, vm, false),
            ))),
            HostAction::Vm(VmAction::Shutdown { vm, .. })
            | HostAction::Vm(VmAction::Suspend { vm, .. }) => {
                state.domains.remove(vm);
                Ok(ActionResult::Domain(None))
            }
            HostAction::Vm(VmAction::Pause { vm }) => {
                changed(state, vm, &|d| d.state = DomainState::Paused)
            }
            HostAction::Vm(VmAction::Unpause { vm }) => {
                changed(state, vm, &|d| d.state = DomainState::Running)
            }
            HostAction::Vm(VmAction::PlugVbd { vm, vbd }) => {
                changed(state, vm, &|d| d.vbds.push(vbd.uuid.clone()))
            }
            HostAction::Vm(VmAction::UnplugVbd { vm, vbd, .. }) => {
                changed(state, vm, &|d| d.vbds.retain(|v| v != vbd))
            }
            HostAction::Vm(VmAction::PlugVif { vm, vif }) => {
                changed(state, vm, &|d| d.vifs.push(vif.uuid.clone()))
            }
            HostAction::Vm(VmAction::UnplugVif { vm, vif, .. }) => {
                changed(state, vm, &|d| d.vifs.retain(|v| v != vif))
            }
            HostAction::Vm(VmAction::InsertCd { vm, .. })
            | HostAction::Vm(VmAction::EjectCd { vm, .. }) => changed(state, vm, &|_| {}),
            HostAction::Vm(VmAction::SetVcpus { vm, count }) => {
                changed(state, vm, &|d| d.vcpus = *count)
            }
            HostAction::Vm(VmAction::SetMemoryTarget { vm, bytes }) => {
                changed(state, vm, &|d| d.memory_actual_bytes = *bytes)
            }
            HostAction::Vm(VmAction::UpdateSpec { vm }) => {
                let Some(info) = state.domains.get(&vm.uuid) else {
                    return Err(not_running(&vm.uuid));
                };
                state.specs.insert(vm.uuid.clone(), vm.clone());
                Ok(ActionResult::Domain(Some(info.clone())))
            }
            HostAction::Vm(VmAction::MigrateFinish { vm, paused }) => {
                if !state.kept_images.remove(&vm.uuid) {
                    return Err(internal(&format!("no image of VM {} was kept", vm.uuid)));
                }
                Ok(ActionResult::Domain(Some(FakeAgent::boot(
                    state, vm, *paused,
                ))))
            }
            HostAction::Vm(VmAction::MigrateOut { .. } | VmAction::MigrateIn { .. }) => {
                unreachable!("migrations are run by `migrate_out` and `migrate_in`")
            }
            HostAction::Storage(action) => FakeAgent::storage(state, action),
            HostAction::Network(NetworkAction::Attach { bridge, .. }) => {
                state.bridges.insert(bridge.clone());
                Ok(ActionResult::Done)
            }
            HostAction::Network(NetworkAction::Detach { bridge }) => {
                state.bridges.remove(bridge);
                Ok(ActionResult::Done)
            }
            HostAction::Inventory => Ok(ActionResult::Inventory(
                state.domains.values().cloned().collect(),
            )),
        }
    }
}

impl FakeAgent {
    /// Every VDI the SR `sr_uuid` holds now.
    pub fn vdis(&self, sr_uuid: &str) -> Vec<VdiInfo> {
        self.lock().vdis.get(sr_uuid).cloned().unwrap_or_default()
    }

    /// Carries out a VDI action on the in-memory SRs: a new VDI's location is `fake-<n>`, and
    /// its physical utilisation half its virtual size.
    fn storage(state: &mut FakeState, action: &StorageAction) -> Result<ActionResult, LinkFailure> {
        let sr = action.sr().uuid.clone();
        let missing = |location: &str| {
            LinkFailure::Agent(AgentFailure::VdiMissing {
                sr: sr.clone(),
                location: location.to_owned(),
            })
        };
        let made = |state: &mut FakeState, virtual_size_bytes: u64, read_only: bool| {
            state.last_vdi += 1;
            let vdi = VdiInfo {
                location: format!("fake-{}", state.last_vdi),
                virtual_size_bytes,
                physical_utilisation_bytes: virtual_size_bytes / 2,
                read_only,
            };
            state.vdis.entry(sr.clone()).or_default().push(vdi.clone());
            Ok(ActionResult::Vdi(vdi))
        };
        let position = |state: &FakeState, location: &str| {
            let vdis = state.vdis.get(&sr).map(Vec::as_slice).unwrap_or_default();
            vdis.iter().position(|vdi| vdi.location == location)
        };
        match action {
            StorageAction::CreateVdi {
                virtual_size_bytes, ..
            } => made(state, *virtual_size_bytes, false),
            StorageAction::SnapshotVdi { location, .. }
            | StorageAction::CloneVdi { location, .. } => {
                let index = position(state, location).ok_or_else(|| missing(location))?;
                let size = state.vdis[&sr][index].virtual_size_bytes;
                let read_only = matches!(action, StorageAction::SnapshotVdi { .. });
                made(state, size, read_only)
            }
            StorageAction::DestroyVdi { location, .. } => {
                let index = position(state, location).ok_or_else(|| missing(location))?;
                state.vdis.entry(sr.clone()).or_default().remove(index);
                Ok(ActionResult::Done)
            }
            StorageAction::ResizeVdi {
                location,
                virtual_size_bytes,
                ..
            } => {
                let index = position(state, location).ok_or_else(|| missing(location))?;
                let vdi = &mut state.vdis.entry(sr.clone()).or_default()[index];
                if *virtual_size_bytes < vdi.virtual_size_bytes {
                    return Err(LinkFailure::Agent(AgentFailure::VdiCannotShrink {
                        sr: sr.clone(),
                        location: location.clone(),
                        virtual_size_bytes: vdi.virtual_size_bytes,
                        requested_bytes: *virtual_size_bytes,
                    }));
                }
                vdi.virtual_size_bytes = *virtual_size_bytes;
                Ok(ActionResult::Vdi(vdi.clone()))
            }
            StorageAction::Scan { .. } => {
                let vdis = state.vdis.get(&sr).cloned().unwrap_or_default();
                let used = vdis.iter().map(|vdi| vdi.physical_utilisation_bytes).sum();
                let usage = SrUsage {
                    physical_size_bytes: FAKE_SR_BYTES,
                    physical_utilisation_bytes: used,
                };
                Ok(ActionResult::Scanned { vdis, usage })
            }
            // The fake moves no bytes: an import leaves the VDI as the DB has it.
            StorageAction::Import { disk, .. } => Ok(ActionResult::Vdi(VdiInfo {
                location: disk.location.clone(),
                virtual_size_bytes: disk.virtual_size_bytes,
                physical_utilisation_bytes: disk.virtual_size_bytes,
                read_only: false,
            })),
            StorageAction::Export { .. } | StorageAction::Plug { .. } => Ok(ActionResult::Done),
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
    ) -> BoxFuture<'_, Result<ActionResult, LinkFailure>> {
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
            let cancelled = || LinkFailure::Agent(AgentFailure::Cancelled);
            if let Some(gate) = gate {
                gate.entered.send_replace(true);
                tokio::select! {
                    () = gate.released() => {}
                    () = cancel.cancelled() => return Err(cancelled()),
                }
            }
            let refused = match &action {
                HostAction::Vm(VmAction::MigrateIn { token, .. }) => Some(token),
                _ => None,
            };
            let early = if cancel.is_cancelled() {
                Some(cancelled())
            } else {
                failure
            };
            if let Some(error) = early {
                if let Some(token) = refused {
                    self.refuse_transfer(token);
                }
                return Err(error);
            }
            match &action {
                HostAction::Vm(VmAction::MigrateOut { vm, token, .. }) => {
                    self.migrate_out(vm, token).await
                }
                HostAction::Vm(VmAction::MigrateIn { vm, token }) => {
                    self.migrate_in(vm, token, &cancel).await
                }
                action => self.perform(action),
            }
        })
    }
}

impl FakeAgent {
    /// The end of the transfer `token` that `take` picks, the transfer made if it is new.
    fn transfer_end<T>(&self, token: &TransferToken, take: impl FnOnce(&mut Transfer) -> T) -> T {
        take(self.lock().transfers.entry(token.0.clone()).or_default())
    }

    /// Tells the source of the transfer `token` that its image was not used.
    fn refuse_transfer(&self, token: &TransferToken) {
        if let Some(verdict) = self.transfer_end(token, |t| t.verdict.0.take()) {
            let _ = verdict.send(false);
        }
    }

    /// The source's half: hands over the image, waits for the destination's answer, and lets
    /// the domain go once the destination kept the image.
    async fn migrate_out(
        &self,
        vm: &str,
        token: &TransferToken,
    ) -> Result<ActionResult, LinkFailure> {
        if !self.lock().domains.contains_key(vm) {
            return Err(not_running(vm));
        }
        let (image, verdict) = self.transfer_end(token, |t| (t.image.0.take(), t.verdict.1.take()));
        let (Some(image), Some(verdict)) = (image, verdict) else {
            return Err(internal("the transfer token was used already"));
        };
        let _ = image.send(fake_image(vm));
        match verdict.await {
            Ok(true) => {
                self.lock().domains.remove(vm);
                Ok(ActionResult::Domain(None))
            }
            Ok(false) | Err(_) => Err(internal("the destination did not take the image")),
        }
    }

    /// The destination's half: waits for the image (or a cancel), keeps it and tells the
    /// source.
    async fn migrate_in(
        &self,
        vm: &str,
        token: &TransferToken,
        cancel: &CancellationToken,
    ) -> Result<ActionResult, LinkFailure> {
        let Some(image) = self.transfer_end(token, |t| t.image.1.take()) else {
            return Err(internal("the transfer token was used already"));
        };
        let image = tokio::select! {
            image = image => image.ok(),
            () = cancel.cancelled() => {
                self.refuse_transfer(token);
                return Err(LinkFailure::Agent(AgentFailure::Cancelled));
            }
        };
        if image != Some(fake_image(vm)) {
            self.refuse_transfer(token);
            return Err(internal(&format!("not an image of VM {vm}")));
        }
        self.lock().kept_images.insert(vm.to_owned());
        if let Some(verdict) = self.transfer_end(token, |t| t.verdict.0.take()) {
            let _ = verdict.send(true);
        }
        Ok(ActionResult::Domain(None))
    }
}

fn internal(message: &str) -> LinkFailure {
    LinkFailure::Agent(AgentFailure::Internal {
        message: message.to_owned(),
    })
}

/// `VM_BAD_POWER_STATE` for a VM without a domain.
fn not_running(vm: &str) -> LinkFailure {
    LinkFailure::Agent(AgentFailure::BadPowerState {
        vm: vm.to_owned(),
        expected: PowerState::Running,
        actual: PowerState::Halted,
    })
}

/// The memory image the fake agent's `MigrateOut` hands over for the VM `uuid`.
pub fn fake_image(uuid: &str) -> Vec<u8> {
    format!("memory of {uuid}").into_bytes()
}

/// Removes and returns the first entry of `kind`.
fn take_first<T>(entries: &mut Vec<(ActionKind, T)>, kind: ActionKind) -> Option<T> {
    let index = entries.iter().position(|(k, _)| *k == kind)?;
    Some(entries.remove(index).1)
}
