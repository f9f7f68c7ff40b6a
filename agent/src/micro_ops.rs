//! Micro-ops, as xenopsd's atomics: the steps every action is made of, the step that undoes
//! each, and the loop that runs a list of them. Each step is one call to one driver: a disk
//! is attached and activated by its SR's storage driver before the hypervisor plugs it, a NIC's
//! bridge and port are ensured by the network driver before the hypervisor plugs it, and what
//! the storage and network drivers hand over (`AttachedDisk`, `NicPort`) is kept for the rest
//! of the run (`Handover`).
//!
//! Between two micro-ops the loop checks for cancellation and reports progress (k of n steps
//! done). On a failure or a cancellation it runs the reverses of the steps done, newest first
//! (best effort: a reverse that fails is logged), so a start that fails or is cancelled leaves
//! no domain behind, and a shutdown that fails before the guest is down leaves it running.
//! Two steps are points of no return: the guest has shut down (`ShutdownGuest`) and the domain
//! is destroyed (`Destroy`). What came before them is no longer undone, and cancellation is no
//! longer honoured after them: the operation finishes, as the only consistent outcome left.
//! A cancellation that arrives while the agent waits for a guest to shut down stops the wait.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use host_api::{AgentFailure, DiskSpec, TransferToken, VbdSpec, VifSpec, VmSpec};
use tokio::io::{AsyncWrite, DuplexStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::backend::{AttachedDisk, BackendError, NicPort, ShutdownReason};
use crate::error::AgentError;
use crate::hooks::{HookPoint, HookReason};
use crate::transfer::PIPE_BYTES;

/// One step of an action on one VM's domain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MicroOp {
    Hook(HookPoint, HookReason),
    Create(Box<VmSpec>),
    Build,
    /// Make the disk reachable on this host through its SR's storage driver.
    AttachDisk {
        disk: DiskSpec,
        read_only: bool,
    },
    ActivateDisk(DiskSpec),
    /// Plug the VBD, whose disk (if any) an earlier step of the run attached.
    PlugDisk(VbdSpec),
    /// Make sure the bridge of a NIC's network exists; it outlives the NIC, so nothing
    /// undoes this.
    EnsureNetwork {
        bridge: String,
        mtu: u32,
    },
    /// Make the port the NIC plugs into.
    EnsureVif(VifSpec),
    /// Plug the NIC, on the port an earlier step of the run made.
    PlugNic(VifSpec),
    StartDeviceModel,
    Unpause,
    SetNeedsPoweroff(bool),
    Pause,
    /// Ask the guest to power off or reboot, and wait until it has (within the agent's
    /// clean-shutdown timeout).
    ShutdownGuest(ShutdownReason),
    UnplugNic {
        vif: VifSpec,
        force: bool,
    },
    UnplugDisk {
        vbd: VbdSpec,
        force: bool,
    },
    TearDownVif(VifSpec),
    DeactivateDisk(DiskSpec),
    DetachDisk {
        disk: DiskSpec,
        read_only: bool,
    },
    StopDeviceModel,
    Destroy,
    /// Save the domain to the suspend VDI, which an earlier step of the run attached.
    Save(DiskSpec),
    /// Restore the domain from the suspend VDI, which an earlier step of the run attached.
    Restore(DiskSpec),
    /// Stream the paused domain's memory image to the agent of `to_host`, which expects the
    /// transfer `token`; done once that agent has checked and kept every byte.
    SaveImage {
        to_host: String,
        token: TransferToken,
    },
    /// Receive the transfer `token`, check and keep the image it brings, then tell the sender
    /// it was kept.
    ReceiveImage(TransferToken),
    /// Fill the created domain from the image `ReceiveImage` kept.
    RestoreReceived,
    InsertCd {
        vbd: String,
        disk: DiskSpec,
    },
    EjectCd {
        vbd: String,
    },
    SetVcpus(u32),
    SetMemoryTarget(u64),
}

impl MicroOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            MicroOp::Hook(..) => "hook",
            MicroOp::Create(_) => "create",
            MicroOp::Build => "build",
            MicroOp::AttachDisk { .. } => "attach",
            MicroOp::ActivateDisk(_) => "activate",
            MicroOp::PlugDisk(_) => "plug_disk",
            MicroOp::EnsureNetwork { .. } => "ensure_network",
            MicroOp::EnsureVif(_) => "ensure_vif",
            MicroOp::PlugNic(_) => "plug_nic",
            MicroOp::StartDeviceModel => "start_device_model",
            MicroOp::Unpause => "unpause",
            MicroOp::SetNeedsPoweroff(_) => "set_needs_poweroff",
            MicroOp::Pause => "pause",
            MicroOp::ShutdownGuest(_) => "shutdown_guest",
            MicroOp::UnplugNic { .. } => "unplug_nic",
            MicroOp::UnplugDisk { .. } => "unplug_disk",
            MicroOp::TearDownVif(_) => "tear_down_vif",
            MicroOp::DeactivateDisk(_) => "deactivate",
            MicroOp::DetachDisk { .. } => "detach",
            MicroOp::StopDeviceModel => "stop_device_model",
            MicroOp::Destroy => "destroy",
            MicroOp::Save(_) => "save",
            MicroOp::Restore(_) => "restore",
            MicroOp::SaveImage { .. } => "save_image",
            MicroOp::ReceiveImage(_) => "receive_image",
            MicroOp::RestoreReceived => "restore_received",
            MicroOp::InsertCd { .. } => "insert_cd",
            MicroOp::EjectCd { .. } => "eject_cd",
            MicroOp::SetVcpus(_) => "set_vcpus",
            MicroOp::SetMemoryTarget(_) => "set_memory_target",
        }
    }

    /// The step that undoes this one, if it needs undoing. Steps that fill a domain need none:
    /// destroying it undoes them.
    fn reverse(&self) -> Option<MicroOp> {
        Some(match self {
            MicroOp::Create(_) => MicroOp::Destroy,
            MicroOp::AttachDisk { disk, read_only } => MicroOp::DetachDisk {
                disk: disk.clone(),
                read_only: *read_only,
            },
            MicroOp::ActivateDisk(disk) => MicroOp::DeactivateDisk(disk.clone()),
            MicroOp::EnsureVif(vif) => MicroOp::TearDownVif(vif.clone()),
            MicroOp::PlugDisk(vbd) => MicroOp::UnplugDisk {
                vbd: vbd.clone(),
                force: true,
            },
            MicroOp::PlugNic(vif) => MicroOp::UnplugNic {
                vif: vif.clone(),
                force: true,
            },
            MicroOp::StartDeviceModel => MicroOp::StopDeviceModel,
            MicroOp::Unpause => MicroOp::Pause,
            MicroOp::SetNeedsPoweroff(needs) => MicroOp::SetNeedsPoweroff(!needs),
            // Saving leaves the domain paused; undoing it lets the guest run on.
            MicroOp::Pause | MicroOp::Save(_) => MicroOp::Unpause,
            MicroOp::UnplugNic { vif, .. } => MicroOp::PlugNic(vif.clone()),
            MicroOp::UnplugDisk { vbd, .. } => MicroOp::PlugDisk(vbd.clone()),
            MicroOp::TearDownVif(vif) => MicroOp::EnsureVif(vif.clone()),
            MicroOp::DeactivateDisk(disk) => MicroOp::ActivateDisk(disk.clone()),
            MicroOp::DetachDisk { disk, read_only } => MicroOp::AttachDisk {
                disk: disk.clone(),
                read_only: *read_only,
            },
            MicroOp::StopDeviceModel => MicroOp::StartDeviceModel,
            MicroOp::Hook(..)
            | MicroOp::Build
            | MicroOp::EnsureNetwork { .. }
            | MicroOp::ShutdownGuest(_)
            | MicroOp::Destroy
            | MicroOp::Restore(_)
            | MicroOp::SaveImage { .. }
            | MicroOp::ReceiveImage(_)
            | MicroOp::RestoreReceived
            | MicroOp::InsertCd { .. }
            | MicroOp::EjectCd { .. }
            | MicroOp::SetVcpus(_)
            | MicroOp::SetMemoryTarget(_) => return None,
        })
    }

    fn is_point_of_no_return(&self) -> bool {
        matches!(self, MicroOp::ShutdownGuest(_) | MicroOp::Destroy)
    }
}

/// Runs `plan` on the domain of `vm`: see the module comment.
pub(crate) async fn execute(
    agent: &Agent,
    vm: &str,
    plan: Vec<MicroOp>,
    progress: &watch::Sender<f64>,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    let total = plan.len();
    let mut undo: Vec<MicroOp> = Vec::new();
    let mut handover = Handover::default();
    let mut is_past_return = false;
    for (done, op) in plan.into_iter().enumerate() {
        if !is_past_return && cancel.is_cancelled() {
            tracing::info!(vm, next = op.name(), "cancelled; undoing what was done");
            rollback(agent, vm, undo, &mut handover).await;
            return Err(AgentFailure::Cancelled.into());
        }
        tracing::debug!(vm, step = op.name(), "micro-op");
        if let Err(err) = perform(agent, vm, &op, &mut handover, cancel).await {
            tracing::debug!(vm, step = op.name(), error = %err, "micro-op failed; undoing what was done");
            rollback(agent, vm, undo, &mut handover).await;
            return Err(err);
        }
        if op.is_point_of_no_return() {
            undo.clear();
            is_past_return = true;
        } else if !is_past_return && let Some(reverse) = op.reverse() {
            // Past the point of no return nothing is undone (it would set up again what the
            // teardown released): what fails there stays for the next teardown, which the
            // needs-poweroff mark asks of a restarted agent.
            undo.push(reverse);
        }
        progress.send_replace(fraction(done + 1, total));
    }
    Ok(())
}

async fn rollback(agent: &Agent, vm: &str, undo: Vec<MicroOp>, handover: &mut Handover) {
    let never = CancellationToken::new();
    for op in undo.into_iter().rev() {
        if let Err(err) = perform(agent, vm, &op, handover, &never).await {
            tracing::warn!(vm, step = op.name(), error = %err, "cannot undo a step");
        }
    }
}

fn fraction(done: usize, total: usize) -> f64 {
    // Step counts are small: the conversions are exact.
    done as f64 / total.max(1) as f64
}

/// What the storage and network drivers handed over during one run, for the hypervisor's
/// later steps: the attached disks by VDI uuid, the NICs' ports by VIF uuid.
#[derive(Default)]
struct Handover {
    disks: BTreeMap<String, AttachedDisk>,
    ports: BTreeMap<String, NicPort>,
}

impl Handover {
    /// The attached `disk`: as this run's attach handed it over, else as its driver keeps it
    /// (a teardown that undoes its unplug plugs again what an earlier run attached).
    async fn disk(&self, agent: &Agent, disk: &DiskSpec) -> Result<AttachedDisk, AgentError> {
        if let Some(attached) = self.disks.get(&disk.vdi_uuid) {
            return Ok(attached.clone());
        }
        let storage = agent.drivers.storage(&disk.sr.sr_type)?;
        let attached = storage.attached(disk).await?;
        Ok(attached.ok_or_else(|| BackendError::DeviceDetached {
            device: disk.vdi_uuid.clone(),
        })?)
    }

    /// The port of `vif`: as this run's ensure handed it over, else as the network driver
    /// keeps it.
    async fn port(&self, agent: &Agent, vif: &VifSpec) -> Result<NicPort, AgentError> {
        if let Some(port) = self.ports.get(&vif.uuid) {
            return Ok(port.clone());
        }
        let port = agent.drivers.network.port(vif).await?;
        Ok(port.ok_or_else(|| BackendError::DeviceDetached {
            device: vif.uuid.clone(),
        })?)
    }
}

async fn perform(
    agent: &Agent,
    vm: &str,
    op: &MicroOp,
    handover: &mut Handover,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    let backend = agent.drivers.hypervisor.as_ref();
    let network = agent.drivers.network.as_ref();
    let storage = |disk: &DiskSpec| agent.drivers.storage(&disk.sr.sr_type);
    match op {
        MicroOp::Hook(point, reason) => run_hook(agent, vm, *point, *reason).await,
        MicroOp::Create(spec) => {
            let domid = backend.create(spec).await?;
            tracing::debug!(vm, domid, "domain created");
            Ok(())
        }
        MicroOp::Build => Ok(backend.build(vm).await?),
        MicroOp::AttachDisk { disk, read_only } => {
            let attached = storage(disk)?.attach(disk, *read_only).await?;
            handover.disks.insert(disk.vdi_uuid.clone(), attached);
            Ok(())
        }
        MicroOp::ActivateDisk(disk) => Ok(storage(disk)?.activate(disk).await?),
        MicroOp::PlugDisk(vbd) => {
            let attached = match &vbd.disk {
                Some(disk) => Some(handover.disk(agent, disk).await?),
                None => None,
            };
            Ok(backend.plug_disk(vm, vbd, attached.as_ref()).await?)
        }
        MicroOp::EnsureNetwork { bridge, mtu } => Ok(network.ensure_network(bridge, *mtu).await?),
        MicroOp::EnsureVif(vif) => {
            let port = network.ensure_vif(vm, vif).await?;
            handover.ports.insert(vif.uuid.clone(), port);
            Ok(())
        }
        MicroOp::PlugNic(vif) => {
            let port = handover.port(agent, vif).await?;
            Ok(backend.plug_nic(vm, vif, &port).await?)
        }
        MicroOp::StartDeviceModel => Ok(backend.start_device_model(vm).await?),
        MicroOp::Unpause => Ok(backend.unpause(vm).await?),
        MicroOp::SetNeedsPoweroff(needs) => Ok(backend.set_needs_poweroff(vm, *needs).await?),
        MicroOp::Pause => Ok(backend.pause(vm).await?),
        MicroOp::ShutdownGuest(reason) => {
            shutdown_guest(agent, vm, *reason, agent.clean_shutdown_timeout, cancel).await
        }
        MicroOp::UnplugNic { vif, force } => Ok(backend.unplug_nic(vm, &vif.uuid, *force).await?),
        MicroOp::UnplugDisk { vbd, force } => {
            Ok(backend.unplug_disk(vm, &vbd.uuid, *force).await?)
        }
        MicroOp::TearDownVif(vif) => Ok(network.tear_down_vif(vif).await?),
        MicroOp::DeactivateDisk(disk) => Ok(storage(disk)?.deactivate(disk).await?),
        MicroOp::DetachDisk { disk, .. } => {
            storage(disk)?.detach(disk).await?;
            handover.disks.remove(&disk.vdi_uuid);
            Ok(())
        }
        MicroOp::StopDeviceModel => Ok(backend.stop_device_model(vm).await?),
        MicroOp::Destroy => Ok(backend.destroy(vm).await?),
        MicroOp::Save(image) => {
            let attached = handover.disk(agent, image).await?;
            Ok(backend.save(vm, image, &attached).await?)
        }
        MicroOp::Restore(image) => {
            let attached = handover.disk(agent, image).await?;
            Ok(backend.restore(vm, image, &attached).await?)
        }
        MicroOp::SaveImage { to_host, token } => {
            send_image(agent, vm, to_host, token, cancel).await
        }
        MicroOp::ReceiveImage(token) => {
            let mut incoming = agent.transfer.receive(token, agent.transfer_wait)?;
            tokio::select! {
                received = backend.receive_image(vm, &mut incoming) => received?,
                () = cancel.cancelled() => return Err(AgentFailure::Cancelled.into()),
            }
            // Dropped unfinished (a failed receive), `incoming` fails the sender instead.
            let bytes = incoming.finish()?;
            tracing::info!(vm, bytes, "migration image received");
            Ok(())
        }
        MicroOp::RestoreReceived => Ok(backend.restore_received(vm).await?),
        MicroOp::InsertCd { vbd, disk } => {
            let attached = handover.disk(agent, disk).await?;
            Ok(backend.insert_cd(vm, vbd, disk, &attached).await?)
        }
        MicroOp::EjectCd { vbd } => Ok(backend.eject_cd(vm, vbd).await?),
        MicroOp::SetVcpus(count) => Ok(backend.set_vcpus(vm, *count).await?),
        MicroOp::SetMemoryTarget(bytes) => Ok(backend.set_memory_target(vm, *bytes).await?),
    }
}

/// Streams the image of the domain of `vm` to `to_host` through a small pipe, so that neither
/// the hypervisor nor the transfer ever holds it whole, once the receiver expects the token
/// (its `MigrateIn` may still be on its way): waiting for it the agent's transfer wait at
/// most, or until cancelled (the receiver failed).
async fn send_image(
    agent: &Agent,
    vm: &str,
    to_host: &str,
    token: &TransferToken,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    tokio::select! {
        waited = agent.transfer.wait_for_receiver(to_host, token, agent.transfer_wait) => waited?,
        () = cancel.cancelled() => return Err(AgentFailure::Cancelled.into()),
    }
    let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let save = async {
        let mut writer = PipeWriter {
            pipe: writer,
            is_broken: false,
        };
        let saved = agent.drivers.hypervisor.save_image(vm, &mut writer).await;
        // Dropping the writer ends the stream, saved or not.
        (saved, writer.is_broken)
    };
    let send = agent.transfer.send(to_host, token, Box::pin(reader));
    match tokio::join!(save, send) {
        // The save failed only because the transfer stopped reading: the transfer says why.
        ((Err(_), true), Err(err)) | ((Ok(()), _), Err(err)) => Err(err.into()),
        ((Err(err), _), _) => Err(err.into()),
        ((Ok(()), _), Ok(bytes)) => {
            tracing::info!(vm, to_host, bytes, "migration image sent");
            Ok(())
        }
    }
}

/// The hypervisor's end of the pipe to a transfer, which remembers whether a write failed
/// (the transfer stopped reading).
struct PipeWriter {
    pipe: DuplexStream,
    is_broken: bool,
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.pipe).poll_write(cx, buf);
        if let Poll::Ready(Err(_)) = written {
            self.is_broken = true;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

/// A failing hook fails the operation only where that hook is fatal; elsewhere it is logged.
async fn run_hook(
    agent: &Agent,
    vm: &str,
    point: HookPoint,
    reason: HookReason,
) -> Result<(), AgentError> {
    match agent.hooks.run(point, reason, vm).await {
        Ok(()) => Ok(()),
        Err(err) if point.is_fatal() => {
            tracing::warn!(
                vm,
                hook = point.folder(),
                error = &err as &dyn std::error::Error,
                "hook failed; stopping the operation"
            );
            Err(err.into())
        }
        Err(err) => {
            tracing::warn!(
                vm,
                hook = point.folder(),
                error = &err as &dyn std::error::Error,
                "hook failed; carrying on"
            );
            Ok(())
        }
    }
}

async fn shutdown_guest(
    agent: &Agent,
    vm: &str,
    reason: ShutdownReason,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    let hypervisor = agent.drivers.hypervisor.as_ref();
    hypervisor.request_shutdown(vm, reason).await?;
    tokio::select! {
        waited = tokio::time::timeout(timeout, hypervisor.wait_shutdown(vm)) => match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(AgentFailure::ShutdownTimeout {
                vm: vm.to_owned(),
                timeout_secs: timeout.as_secs_f64(),
            }
            .into()),
        },
        () = cancel.cancelled() => Err(AgentFailure::Cancelled.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::vm_spec;

    /// Every step that changes a domain's devices or state, or what storage or network set
    /// up for it, has a reverse, and reversing twice gives the step back.
    #[test]
    fn reversible_steps_reverse_back_to_themselves() {
        let spec = vm_spec("a", 1, 1);
        let disk = spec.vbds[0].disk.clone().expect("a disk");
        let steps = [
            MicroOp::AttachDisk {
                disk: disk.clone(),
                read_only: false,
            },
            MicroOp::ActivateDisk(disk),
            MicroOp::PlugDisk(spec.vbds[0].clone()),
            MicroOp::EnsureVif(spec.vifs[0].clone()),
            MicroOp::PlugNic(spec.vifs[0].clone()),
            MicroOp::StartDeviceModel,
            MicroOp::Pause,
            MicroOp::SetNeedsPoweroff(true),
        ];
        for step in steps {
            let reverse = step.reverse().expect("a reverse");
            let back = reverse.reverse().expect("a reverse of the reverse");
            assert_eq!(back, step, "{}", step.name());
        }
    }

    /// A created domain is undone by destroying it; steps that only fill it need no reverse.
    #[test]
    fn create_is_undone_by_destroy_and_build_needs_nothing() {
        let spec = vm_spec("a", 0, 0);
        assert_eq!(
            MicroOp::Create(Box::new(spec)).reverse(),
            Some(MicroOp::Destroy)
        );
        assert_eq!(MicroOp::Build.reverse(), None);
        assert!(MicroOp::Destroy.is_point_of_no_return());
        assert!(MicroOp::ShutdownGuest(ShutdownReason::PowerOff).is_point_of_no_return());
    }
}
