//! A VDI's volume, through the storage driver of a host where its SR is attached
//! (`sr_spec::where_attached`): made (created, snapshotted, cloned), resized or destroyed
//! BEFORE the Txn that records it, so that a failed driver call leaves the DB as it was. The
//! driver's answer is what the row records (`location`, `virtual_size`,
//! `physical_utilisation`). A volume made for a row that is then not committed is destroyed
//! again (`undo`).
//!
//! A copy within its SR is a clone (a writable VDI reading the original's data, with no
//! copy). A copy to another SR is a new volume there into which the host of that SR imports,
//! as a qcow2 image, what the host of the original exports to it: the bytes go straight from
//! one agent to the other over the data plane (within one host too), never through the master.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use api_spec::{Value, errors};
use host_api::{
    ActionResult, DiskSpec, HostAction, ImageFormat, SrSpec, StorageAction, TransferToken, VdiInfo,
};
use tokio::sync::watch;

use crate::call::ctx::Ctx;
use crate::db::{ProposeError, record};
use crate::error::Error;
use crate::storage::sr_spec::where_attached;
use crate::storage::vdi_copies::DiskOp;
use crate::vm::operations::{Draft, Overlay};
use crate::vm::vm_spec;

/// A volume on a host's SR: the host to ask about it, its SR as that host's driver reaches
/// it, and its location there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Volume {
    pub host: String,
    pub sr: SrSpec,
    pub location: String,
}

/// A volume a driver made for a new VDI row, with the driver's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Made {
    pub volume: Volume,
    pub info: VdiInfo,
    /// The uuid of the row it is made for (drivers that key a volume by its VDI's uuid, as
    /// the simulator's does, know it before the row exists).
    pub uuid: String,
}

/// The volume of the VDI `vdi` as `view` has it: `HANDLE_INVALID` when the VDI does not
/// exist, `SR_HAS_NO_PBDS` when its SR is attached nowhere.
pub(crate) fn volume_of(view: &Overlay, vdi: &str) -> Result<Volume, Error> {
    if !view.exists("VDI", vdi) {
        return Err(errors::handle_invalid("VDI", vdi).into());
    }
    let (host, sr) = where_attached(view, view.str("VDI", vdi, "SR"))?;
    Ok(Volume {
        host,
        sr,
        location: view.str("VDI", vdi, "location").to_owned(),
    })
}

/// The host whose running guest writes to `vdi`, if one does: its data is branched there,
/// where the guest can be moved onto the new top of the disk's chain (another host of a
/// shared SR would branch it under the guest's feet).
fn writer_host(view: &Overlay, vdi: &str) -> Option<String> {
    view.children("VBD", "VDI", vdi).iter().find_map(|vbd| {
        let vm = view.str("VBD", vbd, "VM");
        let host = view.str("VM", vm, "resident_on");
        let writes = view.bool("VBD", vbd, "currently_attached")
            && view.str("VBD", vbd, "mode") == "RW"
            && view.exists("host", host);
        writes.then(|| host.to_owned())
    })
}

/// Runs `action` on `host`, whose answer must be a VDI.
async fn vdi_action(ctx: &Ctx, host: &str, action: StorageAction) -> Result<VdiInfo, Error> {
    let what = format!("{action:?}");
    match ctx.run_on_host(host, HostAction::Storage(action)).await? {
        ActionResult::Vdi(info) => Ok(info),
        _ => {
            let message = format!("the host agent answered {what} with something else than a VDI");
            Err(errors::internal_error(message).into())
        }
    }
}

/// A size from the API as a driver takes it: `INVALID_VALUE [field; value]` when negative.
pub(crate) fn size_bytes(field: &str, size: i64) -> Result<u64, Error> {
    u64::try_from(size).map_err(|_| errors::invalid_value(field, size).into())
}

/// Makes an empty volume of `virtual_size_bytes` in `sr`.
pub(crate) async fn create(ctx: &Ctx, sr: &str, virtual_size_bytes: u64) -> Result<Made, Error> {
    let (host, spec) = {
        let db = ctx.db();
        where_attached(&Overlay::new(&db), sr)?
    };
    let action = StorageAction::CreateVdi {
        sr: spec.clone(),
        virtual_size_bytes,
    };
    let info = vdi_action(ctx, &host, action).await?;
    Ok(made(host, spec, info))
}

fn made(host: String, sr: SrSpec, info: VdiInfo) -> Made {
    Made {
        volume: Volume {
            host,
            sr,
            location: info.location.clone(),
        },
        uuid: uuid_named_by(&info.location).unwrap_or_else(record::new_uuid),
        info,
    }
}

/// The uuid a volume's file is named after (`<uuid>.qcow2`, as the file driver names each
/// volume it makes): the uuid of its VDI, so that an SR forgotten and introduced again finds
/// its VDIs under their uuids, as xapi's file SRs do.
pub(crate) fn uuid_named_by(location: &str) -> Option<String> {
    let stem = location.rsplit_once('.').map_or(location, |(stem, _)| stem);
    let uuid = uuid::Uuid::parse_str(stem).ok()?;
    Some(uuid.hyphenated().to_string())
}

/// Makes the volume of the snapshot, clone or copy of `vdi` that `op` says.
pub(crate) async fn copy(ctx: &Ctx, vdi: &str, op: DiskOp<'_>) -> Result<Made, Error> {
    let (source, disk, target, is_written) = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        let mut source = volume_of(&view, vdi)?;
        let writer = writer_host(&view, vdi);
        let is_written = writer.is_some();
        if let Some(host) = writer {
            source.host = host;
        }
        let target = match op {
            DiskOp::Copy { sr } if sr != view.str("VDI", vdi, "SR") => Some(sr.to_owned()),
            DiskOp::Copy { .. } | DiskOp::Snapshot | DiskOp::Clone => None,
        };
        (source, vm_spec::disk(&view, vdi), target, is_written)
    };
    if let Some(sr) = target {
        let made = create(ctx, &sr, disk.virtual_size_bytes).await?;
        return match copy_live_or_not(ctx, &source, disk, &made, is_written).await {
            Ok(info) => Ok(Made { info, ..made }),
            Err(error) => {
                forget(ctx, &made.volume).await;
                Err(error)
            }
        };
    }
    let Volume { host, sr, location } = source;
    let action = match op {
        DiskOp::Snapshot => StorageAction::SnapshotVdi {
            sr: sr.clone(),
            location,
        },
        DiskOp::Clone | DiskOp::Copy { .. } => StorageAction::CloneVdi {
            sr: sr.clone(),
            location,
        },
    };
    let info = vdi_action(ctx, &host, action).await?;
    Ok(made(host, sr, info))
}

/// Fills `target` with the data of `disk` (on `source`), as `copy_data` does. A disk a running
/// guest writes to (`is_written`) is copied from a snapshot of it taken for the purpose (live,
/// on the guest's host), which goes again afterwards: the snapshot holds the disk's data, so
/// its spec keeps the disk's uuid.
async fn copy_live_or_not(
    ctx: &Ctx,
    source: &Volume,
    disk: DiskSpec,
    target: &Made,
    is_written: bool,
) -> Result<VdiInfo, Error> {
    if !is_written {
        return copy_data(ctx, &source.host, disk, target).await;
    }
    let action = StorageAction::SnapshotVdi {
        sr: source.sr.clone(),
        location: source.location.clone(),
    };
    let snapshot = vdi_action(ctx, &source.host, action).await?;
    let frozen = DiskSpec {
        location: snapshot.location.clone(),
        ..disk
    };
    let copied = copy_data(ctx, &source.host, frozen, target).await;
    let snapshot = Volume {
        location: snapshot.location,
        ..source.clone()
    };
    forget(ctx, &snapshot).await;
    copied
}

/// Which end of a copy failed first: the other's failure follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Import,
    Export,
}

/// Fills the new volume `target` with the data of `source` (a disk its SR's driver reaches on
/// `source_host`): the host of `target` imports, as qcow2, what `source_host` exports to it
/// under a fresh one-use token. Either end failing stops the other; the error is the first
/// one's. The import's progress is the call's. The driver's answer for `target` once filled.
async fn copy_data(
    ctx: &Ctx,
    source_host: &str,
    source: DiskSpec,
    target: &Made,
) -> Result<VdiInfo, Error> {
    let token = TransferToken(uuid::Uuid::new_v4().simple().to_string());
    let import = StorageAction::Import {
        sr: target.volume.sr.clone(),
        disk: DiskSpec {
            vdi_uuid: target.uuid.clone(),
            sr: target.volume.sr.clone(),
            location: target.volume.location.clone(),
            virtual_size_bytes: target.info.virtual_size_bytes,
        },
        format: ImageFormat::Qcow2,
        token: token.clone(),
    };
    let export = StorageAction::Export {
        sr: source.sr.clone(),
        disk: source,
        format: ImageFormat::Qcow2,
        to_host: target.volume.host.clone(),
        token,
    };
    // Either end failing stops the other, which would otherwise wait for it.
    let stop = ctx.cancel_token().child_token();
    let first_failure = OnceLock::new();
    let end = |end: End, host: &str, action: StorageAction| {
        let (stop, first_failure, host) = (stop.clone(), &first_failure, host.to_owned());
        async move {
            let action = HostAction::Storage(action);
            // The import's progress is the copy's.
            let outcome = match end {
                End::Import => ctx.run_on_host_reporting(&host, action, stop.clone()).await,
                End::Export => {
                    let (progress, _) = watch::channel(0.0);
                    ctx.run_on_host_with(&host, action, stop.clone(), progress)
                        .await
                }
            };
            if outcome.is_err() {
                let _ = first_failure.set(end);
                stop.cancel();
            }
            outcome
        }
    };
    let (imported, exported) = tokio::join!(
        end(End::Import, &target.volume.host, import),
        end(End::Export, source_host, export),
    );
    match (imported, exported) {
        (Err(error), _) if first_failure.get() == Some(&End::Import) => Err(error),
        (_, Err(error)) | (Err(error), Ok(_)) => Err(error),
        (Ok(ActionResult::Vdi(written)), Ok(_)) => Ok(written),
        (Ok(_), Ok(_)) => {
            let message = "the host agent answered an import with something else than a VDI";
            Err(errors::internal_error(message).into())
        }
    }
}

/// Makes a volume for each of `items` with `make`; if one fails, those made are destroyed
/// again.
pub(crate) async fn make_each<I, F, Fut>(
    ctx: &Ctx,
    items: I,
    mut make: F,
) -> Result<Vec<Made>, Error>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<Made, Error>>,
{
    let mut made = Vec::new();
    for item in items {
        match make(item).await {
            Ok(volume) => made.push(volume),
            Err(error) => {
                undo(ctx, &made).await;
                return Err(error);
            }
        }
    }
    Ok(made)
}

/// Makes the volumes of copies of each of `vdis` (once each, however often it is named) as
/// `op` says: the volume made for each disk. If one fails, those made are destroyed again.
pub(crate) async fn copy_all(
    ctx: &Ctx,
    vdis: Vec<String>,
    op: DiskOp<'_>,
) -> Result<BTreeMap<String, Made>, Error> {
    let vdis: BTreeSet<String> = vdis.into_iter().collect();
    let made = make_each(ctx, &vdis, |vdi| copy(ctx, vdi, op)).await?;
    Ok(vdis.into_iter().zip(made).collect())
}

/// Grows the volume of `vdi` to `virtual_size_bytes`, on the host whose running guest writes
/// to it if one does (it grows the disk under the guest); the driver's answer.
pub(crate) async fn resize(
    ctx: &Ctx,
    vdi: &str,
    virtual_size_bytes: u64,
) -> Result<VdiInfo, Error> {
    let volume = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        let mut volume = volume_of(&view, vdi)?;
        if let Some(host) = writer_host(&view, vdi) {
            volume.host = host;
        }
        volume
    };
    let action = StorageAction::ResizeVdi {
        sr: volume.sr,
        location: volume.location,
        virtual_size_bytes,
    };
    vdi_action(ctx, &volume.host, action).await
}

/// Deletes `volume`. One its SR does not hold is gone already, as xapi's file SR takes it.
pub(crate) async fn destroy(ctx: &Ctx, volume: &Volume) -> Result<(), Error> {
    let action = StorageAction::DestroyVdi {
        sr: volume.sr.clone(),
        location: volume.location.clone(),
    };
    match ctx
        .run_on_host(&volume.host, HostAction::Storage(action))
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::Api(error)) if error.code == errors::VDI_MISSING => {
            tracing::info!(sr = %volume.sr.uuid, location = %volume.location, "volume gone already");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Deletes the volumes made for rows that were not committed; a failure is logged (a later
/// `SR.scan` finds what is left).
pub(crate) async fn undo<'a>(ctx: &Ctx, made: impl IntoIterator<Item = &'a Made>) {
    for made in made {
        forget(ctx, &made.volume).await;
    }
}

/// Deletes `volume`, whose row is gone; a failure is logged (a later `SR.scan` finds it).
pub(crate) async fn forget(ctx: &Ctx, volume: &Volume) {
    if let Err(error) = destroy(ctx, volume).await {
        tracing::warn!(
            sr = %volume.sr.uuid,
            location = %volume.location,
            error = %crate::error::to_api_error(error),
            "volume left behind: an SR.scan finds it"
        );
    }
}

/// Runs `commit` (a Txn recording the volumes in `made`); destroys them again when it
/// surely was not applied. When its outcome is unknown (leadership lost as it was proposed)
/// the volumes stay: deleting one a committed row names would lose a disk, while one left
/// without a row is found again by `SR.scan`.
pub(crate) async fn commit_or_undo<'a, T>(
    ctx: &Ctx,
    made: impl IntoIterator<Item = &'a Made>,
    commit: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let outcome = commit.await;
    match &outcome {
        Ok(_) => {}
        Err(Error::Propose(ProposeError::NotLeader | ProposeError::Stopped)) => {
            for made in made {
                tracing::warn!(
                    sr = %made.volume.sr.uuid,
                    location = %made.volume.location,
                    "volume kept: whether its row was committed is unknown"
                );
            }
        }
        Err(_) => undo(ctx, made).await,
    }
    outcome
}

/// The fields of a VDI row that the driver's answer `info` sets.
pub(crate) fn recorded_fields(info: &VdiInfo) -> [(&'static str, Value); 3] {
    [
        ("location", Value::str(&info.location)),
        ("virtual_size", size(info.virtual_size_bytes)),
        (
            "physical_utilisation",
            size(info.physical_utilisation_bytes),
        ),
    ]
}

/// Writes onto the row of `vdi` the fields of the driver's answer `info` that differ.
pub(crate) fn record_answer(draft: &mut Draft, vdi: &str, info: &VdiInfo) {
    for (field, value) in recorded_fields(info) {
        if draft.view().field("VDI", vdi, field) != Some(&value) {
            draft.update("VDI", vdi, field, value);
        }
    }
}

/// A size as the DB keeps it (an int): a driver's byte count past `i64::MAX` is clamped.
pub(crate) fn size(bytes: u64) -> Value {
    Value::Int(i64::try_from(bytes).unwrap_or(i64::MAX))
}
