//! The actions that are not about one VM: an SR scanned by its storage driver, a network's
//! bridge set up or removed by the network driver. They run at once, beside the VMs' queues.

use host_api::{ActionResult, NetworkAction, StorageAction};

use crate::backend::Drivers;
use crate::error::AgentError;

/// Carries out `action` with the storage driver of its SR's type.
pub(crate) async fn storage(
    drivers: &Drivers,
    action: &StorageAction,
) -> Result<ActionResult, AgentError> {
    match action {
        StorageAction::Scan { sr } => {
            let vdis = drivers.storage(&sr.sr_type)?.scan(sr).await?;
            tracing::debug!(sr = %sr.uuid, vdis = vdis.len(), "SR scanned");
            Ok(ActionResult::Vdis(vdis))
        }
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
