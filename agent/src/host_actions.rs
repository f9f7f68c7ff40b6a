//! The actions that are not about one VM: an SR scanned, or one of its VDIs made, changed or
//! deleted, by its storage driver; a network's bridge set up or removed by the network driver.
//! They run at once, beside the VMs' queues.

use host_api::{ActionResult, NetworkAction, StorageAction};

use crate::backend::Drivers;
use crate::error::AgentError;

/// Carries out `action` with the storage driver of its SR's type.
pub(crate) async fn storage(
    drivers: &Drivers,
    action: &StorageAction,
) -> Result<ActionResult, AgentError> {
    let sr = action.sr();
    let driver = drivers.storage(&sr.sr_type)?;
    let made = match action {
        StorageAction::Scan { sr } => {
            let vdis = driver.scan(sr).await?;
            tracing::debug!(sr = %sr.uuid, vdis = vdis.len(), "SR scanned");
            return Ok(ActionResult::Vdis(vdis));
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
        } => driver.resize_vdi(sr, location, *virtual_size_bytes).await?,
        StorageAction::SnapshotVdi { sr, location } => driver.snapshot_vdi(sr, location).await?,
        StorageAction::CloneVdi { sr, location } => driver.clone_vdi(sr, location).await?,
    };
    tracing::info!(
        sr = %sr.uuid,
        location = %made.location,
        virtual_size_bytes = made.virtual_size_bytes,
        "VDI made or changed"
    );
    Ok(ActionResult::Vdi(made))
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
