//! The custom messages of `PBD`: `plug`, which has the PBD's host check that it reaches the SR
//! where the PBD's `device_config` says (`StorageAction::Plug`) before the PBD is recorded
//! attached, and `unplug`, refused while a disk of the SR is in use on that host. `PBD.create`
//! and `destroy` are the generic ones: a PBD is made detached.

use api_spec::{Value, errors};
use host_api::{HostAction, StorageAction};

use super::record_attached;
use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::storage::sr_spec::spec;
use crate::vm::operations::Overlay;
use crate::vm::power_state::power_state;

/// `PBD.plug(self)`: asks the PBD's host to reach the SR as the PBD says, then records the PBD
/// attached; plugging an attached PBD does nothing. The driver's failure is the call's
/// (`SR_BACKEND_FAILURE_47` for a missing directory, `SR_UNKNOWN_DRIVER` for a type the host
/// has no driver for) and leaves the PBD detached.
pub(super) async fn plug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let pbd = args.str("self")?;
    let (host, sr) = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        if !view.exists("PBD", pbd) {
            return Err(errors::handle_invalid("PBD", pbd).into());
        }
        if view.bool("PBD", pbd, "currently_attached") {
            return Ok(void());
        }
        let sr = view.str("PBD", pbd, "SR");
        let host = view.str("PBD", pbd, "host").to_owned();
        (host, spec(&view, sr, Some(pbd)))
    };
    let action = HostAction::Storage(StorageAction::Plug {
        sr: sr.clone(),
        create: false,
    });
    ctx.run_on_host(&host, action).await?;
    record_attached(&ctx, "PBD", pbd, true).await?;
    tracing::info!(pbd = %pbd, host = %host, sr = %sr.uuid, "PBD plugged");
    Ok(void())
}

/// `PBD.unplug(self)`: records the PBD detached, so that no storage operation goes through
/// its host; `VDI_IN_USE [vdi, unplug]` while a VM whose domain is on that host has a VBD of
/// a VDI of the SR plugged. Unplugging a detached PBD does nothing.
pub(super) async fn unplug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let pbd = args.str("self")?;
    {
        let db = ctx.db();
        let view = Overlay::new(&db);
        if !view.exists("PBD", pbd) {
            return Err(errors::handle_invalid("PBD", pbd).into());
        }
        let (sr, host) = (view.str("PBD", pbd, "SR"), view.str("PBD", pbd, "host"));
        if let Some(vdi) = vdi_in_use(&view, sr, host) {
            return Err(errors::vdi_in_use(vdi, "unplug").into());
        }
        if !view.bool("PBD", pbd, "currently_attached") {
            return Ok(void());
        }
    }
    record_attached(&ctx, "PBD", pbd, false).await?;
    tracing::info!(pbd = %pbd, "PBD unplugged");
    Ok(void())
}

/// A VDI of `sr` that a plugged VBD of a VM with a domain on `host` uses, if there is one.
fn vdi_in_use(view: &Overlay, sr: &str, host: &str) -> Option<String> {
    view.children("VDI", "SR", sr).into_iter().find(|vdi| {
        view.children("VBD", "VDI", vdi).iter().any(|vbd| {
            let vm = view.str("VBD", vbd, "VM");
            view.bool("VBD", vbd, "currently_attached")
                && power_state(view, vm).has_domain()
                && view.str("VM", vm, "resident_on") == host
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ActionKind, TestPool, s};

    /// Unplug is `VDI_IN_USE` while a running VM on the PBD's host has a disk of the SR
    /// plugged; once it is not, the PBD is detached, and plug asks the host (without making
    /// anything) before recording it attached again.
    #[tokio::test]
    async fn a_pbd_unplugs_once_no_running_disk_needs_it() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "vm").await;
        let (vbd, vdi) = pool.add_disk(&session, &vm, "1").await;
        pool.write("VBD", &vbd, &[("currently_attached", Value::Bool(true))]);
        let sr = pool.text("VDI", &vdi, "SR");
        let pbd = pool.ref_list("SR", &sr, "PBDs").remove(0);
        assert_eq!(
            pool.call_as(&session, "PBD.unplug", vec![s(&pbd)]).await,
            Err(errors::vdi_in_use(&vdi, "unplug"))
        );
        pool.write("VBD", &vbd, &[("currently_attached", Value::Bool(false))]);
        pool.call_as(&session, "PBD.unplug", vec![s(&pbd)])
            .await
            .expect("an unplug");
        assert_eq!(
            pool.field("PBD", &pbd, "currently_attached"),
            Some(Value::Bool(false))
        );
        assert!(!pool.agent.kinds().contains(&ActionKind::PlugSr));
        pool.call_as(&session, "PBD.plug", vec![s(&pbd)])
            .await
            .expect("a plug");
        assert_eq!(
            pool.field("PBD", &pbd, "currently_attached"),
            Some(Value::Bool(true))
        );
        let plugs: Vec<bool> = pool
            .agent
            .received()
            .into_iter()
            .filter_map(|r| match r.action {
                HostAction::Storage(StorageAction::Plug { create, .. }) => Some(create),
                _ => None,
            })
            .collect();
        assert_eq!(plugs, [false]);
    }
}
