//! The actions that are not about one VM: an SR scanned, or one of its VDIs made, changed,
//! deleted, imported from or exported to the data plane, by its storage driver; a network's
//! bridge set up or removed by the network driver. They run at once, beside the VMs' queues.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use host_api::{
    ActionResult, AgentFailure, DiskSpec, ImageFormat, NetworkAction, SrSpec, StorageAction,
    TransferToken, VdiInfo,
};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::backend::{BackendError, BackendOp, Drivers, Storage};
use crate::error::AgentError;
use crate::transfer::{IncomingBytes, PIPE_BYTES};

/// One lock per SR: the storage actions that list or change what an SR holds run one at a
/// time on it, as xapi's storage manager runs each SR's operations under the SR's lock (a
/// `file` SR's snapshot renames the VDI's file: two at once on one disk would lose it).
/// Imports and exports move their bytes outside it, and plugging only looks.
#[derive(Default)]
pub(crate) struct SrLocks {
    by_sr: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SrLocks {
    /// Waits for the turn of the SR `sr` (a uuid); it lasts as long as the guard.
    async fn turn(&self, sr: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut by_sr = self.by_sr.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(by_sr.entry(sr.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

/// Carries out `action` with the storage driver of its SR's type; an import or an export
/// moves its bytes through the agent's transfer, reports its progress and stops when
/// `cancel` is.
pub(crate) async fn storage(
    agent: &Agent,
    action: &StorageAction,
    progress: &watch::Sender<f64>,
    cancel: &CancellationToken,
) -> Result<ActionResult, AgentError> {
    let sr = action.sr();
    let driver = agent.drivers.storage(&sr.sr_type)?;
    let _turn = match action {
        StorageAction::Import { .. }
        | StorageAction::Export { .. }
        | StorageAction::Plug { .. } => None,
        StorageAction::Scan { .. }
        | StorageAction::CreateVdi { .. }
        | StorageAction::DestroyVdi { .. }
        | StorageAction::ResizeVdi { .. }
        | StorageAction::SnapshotVdi { .. }
        | StorageAction::CloneVdi { .. } => Some(agent.sr_locks.turn(&sr.uuid).await),
    };
    let made = match action {
        StorageAction::Scan { sr } => {
            let vdis = driver.scan(sr).await?;
            let usage = driver.usage(sr).await?;
            tracing::debug!(sr = %sr.uuid, vdis = vdis.len(), ?usage, "SR scanned");
            return Ok(ActionResult::Scanned { vdis, usage });
        }
        StorageAction::Plug { sr, create } => {
            driver.plug_sr(sr, *create).await?;
            tracing::info!(sr = %sr.uuid, create, "SR plugged");
            return Ok(ActionResult::Done);
        }
        StorageAction::Import {
            sr,
            disk,
            format,
            token,
        } => {
            let imported = import(agent, driver, sr, disk, *format, token, progress);
            return until_cancelled(cancel, imported).await;
        }
        StorageAction::Export {
            sr,
            disk,
            format,
            to_host,
            token,
        } => {
            let exported = export(agent, driver, sr, disk, *format, to_host, token);
            return until_cancelled(cancel, exported).await;
        }
        StorageAction::DestroyVdi { sr, location } => {
            driver.destroy_vdi(sr, location).await?;
            tracing::info!(sr = %sr.uuid, location, "VDI destroyed");
            return Ok(ActionResult::Done);
        }
        StorageAction::CreateVdi {
            sr,
            virtual_size_bytes,
        } => driver.create_vdi(sr, *virtual_size_bytes).await?,
        StorageAction::ResizeVdi {
            sr,
            location,
            virtual_size_bytes,
        } => grow(agent, driver, sr, location, *virtual_size_bytes).await?,
        StorageAction::SnapshotVdi { sr, location } => {
            branch(agent, driver, sr, location, BackendOp::SnapshotVdi).await?
        }
        StorageAction::CloneVdi { sr, location } => {
            branch(agent, driver, sr, location, BackendOp::CloneVdi).await?
        }
    };
    tracing::info!(
        sr = %sr.uuid,
        location = %made.location,
        virtual_size_bytes = made.virtual_size_bytes,
        "VDI made or changed"
    );
    Ok(ActionResult::Vdi(made))
}

/// A snapshot (`op` `SnapshotVdi`) or clone (`CloneVdi`) of the VDI at `location`: by its
/// driver alone; or, when the driver finds it in use and a running domain here writes to it,
/// live: the driver freezes its data under a new, empty top, the hypervisor moves the guest
/// onto that top, and the driver branches the frozen data. The guest is not paused.
async fn branch(
    agent: &Agent,
    driver: &dyn Storage,
    sr: &SrSpec,
    location: &str,
    op: BackendOp,
) -> Result<VdiInfo, AgentError> {
    let read_only = op == BackendOp::SnapshotVdi;
    let alone = if read_only {
        driver.snapshot_vdi(sr, location).await
    } else {
        driver.clone_vdi(sr, location).await
    };
    let in_use = match alone {
        Err(err @ BackendError::VdiInUse { .. }) => err,
        done => return Ok(done?),
    };
    let Some((vm, vbd)) = writer_of(agent, sr, location).await? else {
        return Err(in_use.into());
    };
    let frozen = driver.freeze(sr, location, op).await?;
    let hypervisor = &agent.drivers.hypervisor;
    if let Err(err) = hypervisor.switch_disk(&vm, &vbd, &frozen.overlay).await {
        if let Err(thaw) = driver.thaw(sr, location, &frozen).await {
            tracing::error!(sr = %sr.uuid, location, error = %thaw, "a frozen VDI could not be thawed");
        }
        return Err(err.into());
    }
    let made = driver.branch_frozen(sr, &frozen, read_only, op).await?;
    tracing::info!(sr = %sr.uuid, location, vm, vbd, "disk of a running guest branched");
    Ok(made)
}

/// Resizes the VDI at `location` to `bytes`: by its driver alone (which refuses a shrink, and
/// a growth of a disk in use); or, when a running domain here writes to it, live: the
/// hypervisor grows the image under the guest, and the driver then reports the VDI.
async fn grow(
    agent: &Agent,
    driver: &dyn Storage,
    sr: &SrSpec,
    location: &str,
    bytes: u64,
) -> Result<VdiInfo, AgentError> {
    let in_use = match driver.resize_vdi(sr, location, bytes).await {
        Err(err @ BackendError::VdiInUse { .. }) => err,
        done => return Ok(done?),
    };
    let Some((vm, vbd)) = writer_of(agent, sr, location).await? else {
        return Err(in_use.into());
    };
    agent.drivers.hypervisor.grow_disk(&vm, &vbd, bytes).await?;
    Ok(driver.resize_vdi(sr, location, bytes).await?)
}

/// The domain (by VM uuid) and VBD that write to the VDI at `location` in `sr`, if a live
/// domain here does.
async fn writer_of(
    agent: &Agent,
    sr: &SrSpec,
    location: &str,
) -> Result<Option<(String, String)>, AgentError> {
    let domains = agent.drivers.hypervisor.discover().await?;
    let writer = domains.iter().find_map(|domain| {
        let vbd = domain.vbds.iter().find(|vbd| {
            !vbd.read_only
                && vbd
                    .disk
                    .as_ref()
                    .is_some_and(|disk| disk.sr.uuid == sr.uuid && disk.location == location)
        })?;
        Some((domain.vm().to_owned(), vbd.uuid.clone()))
    });
    Ok(writer)
}

/// Runs `transfer` (an import or an export) until `cancel` is cancelled. What a stopped
/// transfer leaves is a temp file that its drop removes: an import replaces the VDI by one
/// rename at its end.
async fn until_cancelled(
    cancel: &CancellationToken,
    transfer: impl Future<Output = Result<ActionResult, AgentError>>,
) -> Result<ActionResult, AgentError> {
    tokio::select! {
        moved = transfer => moved,
        () = cancel.cancelled() => Err(AgentFailure::Cancelled.into()),
    }
}

/// Writes the image that the transfer `token` brings, laid out as `format`, into `disk`.
async fn import(
    agent: &Agent,
    driver: &dyn Storage,
    sr: &SrSpec,
    disk: &DiskSpec,
    format: ImageFormat,
    token: &TransferToken,
    progress: &watch::Sender<f64>,
) -> Result<ActionResult, AgentError> {
    let incoming = agent.transfer.receive(token, agent.transfer_wait)?;
    let mut image = FinishAtEnd {
        incoming: Some(incoming),
        bytes: 0,
        disk,
        progress,
    };
    let vdi = driver.import(sr, disk, format, &mut image).await?;
    Ok(ActionResult::Vdi(vdi))
}

/// Streams `disk`, laid out as `format`, to `to_host` as the transfer `token`, once that
/// host expects it (a copy's import may still be on its way): an export is not made twice.
async fn export(
    agent: &Agent,
    driver: &dyn Storage,
    sr: &SrSpec,
    disk: &DiskSpec,
    format: ImageFormat,
    to_host: &str,
    token: &TransferToken,
) -> Result<ActionResult, AgentError> {
    agent
        .transfer
        .wait_for_receiver(to_host, token, agent.transfer_wait)
        .await?;
    let (mut writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let exported = async move {
        // Dropping the writer ends the stream, exported or not: the receiver learns from the
        // action's result whether the stream is whole.
        driver.export(sr, disk, format, &mut writer).await
    };
    let send = agent.transfer.send(to_host, token, Box::pin(reader));
    let (exported, sent) = tokio::join!(exported, send);
    exported?;
    let bytes = sent?;
    tracing::info!(sr = %sr.uuid, vdi = %disk.vdi_uuid, to_host, bytes, "vdi exported");
    Ok(ActionResult::Done)
}

/// The image of an import as its driver reads it: tells the sender every byte was taken as
/// soon as the driver has read the end (its checks and conversion come after, and their
/// outcome is the action's result), and reports progress as the bytes against the VDI's
/// size. Dropped before the end, it fails the sender.
struct FinishAtEnd<'a> {
    incoming: Option<Box<dyn IncomingBytes>>,
    bytes: u64,
    disk: &'a DiskSpec,
    progress: &'a watch::Sender<f64>,
}

impl AsyncRead for FinishAtEnd<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(incoming) = this.incoming.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let before = buf.filled().len();
        let polled = Pin::new(incoming).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if let Poll::Ready(Ok(())) = polled {
            if read == 0 && buf.remaining() > 0 {
                let incoming = this.incoming.take().expect("checked above");
                if let Err(err) = incoming.finish() {
                    return Poll::Ready(Err(io::Error::other(err)));
                }
            } else {
                this.bytes += read as u64;
                let size = this.disk.virtual_size_bytes.max(1) as f64;
                // The last part of the progress is the driver's work after the end.
                this.progress
                    .send_replace((this.bytes as f64 / size).min(1.0) * 0.9);
            }
        }
        polled
    }
}

/// Carries out `action` with the network driver.
pub(crate) async fn network(
    drivers: &Drivers,
    action: &NetworkAction,
) -> Result<ActionResult, AgentError> {
    match action {
        NetworkAction::Attach { bridge, mtu } => {
            drivers.network.ensure_network(bridge, *mtu).await?;
            tracing::info!(bridge, mtu, "network attached");
        }
        NetworkAction::Detach { bridge } => {
            drivers.network.tear_down_network(bridge).await?;
            tracing::info!(bridge, "network detached");
        }
    }
    Ok(ActionResult::Done)
}
