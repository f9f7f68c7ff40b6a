//! A CD drive's media: `VBD.insert` and `VBD.eject`, through the agent when the drive is
//! attached to a domain, else in the DB alone.

use api_spec::classes::vbd::VbdOperation;
use api_spec::{NULL_REF, Value, errors};

use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::handlers::hotplug::{self, Hotplug};
use crate::vm::operations::{self, Draft, Overlay};
use crate::vm::power_state::power_state;
use crate::vm::vm_spec;
use host_api::{HostAction, VmAction};

/// Whether the drive is attached to a domain, so that its media changes through the agent.
fn is_live(view: &Overlay, vbd: &str) -> bool {
    let vm = view.str("VBD", vbd, "VM");
    power_state(view, vm).has_domain() && view.bool("VBD", vbd, "currently_attached")
}

/// Changes the media of a CD drive without a domain, in one Txn: `op` checked, then `vdi` in
/// the drive (`NULL` for none).
async fn change_media_offline(
    ctx: &Ctx,
    vbd: &str,
    op: VbdOperation,
    vdi: &str,
) -> Result<Value, Error> {
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            operations::check(draft.view(), vbd, op)?;
            if is_live(draft.view(), vbd) {
                let reason = "the VM started meanwhile; retry";
                return Err(errors::operation_not_allowed(reason).into());
            }
            for field in operations::VBD_FACT_FIELDS {
                draft.require_unchanged("VBD", vbd, field);
            }
            let vm = draft.view().str("VBD", vbd, "VM").to_owned();
            for field in ["power_state", "current_operations"] {
                draft.require_unchanged("VM", &vm, field);
            }
            set_media(&mut draft, vbd, vdi);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(void())
}

/// Puts `vdi` in the drive (`NULL`: empties it).
fn set_media(draft: &mut Draft, vbd: &str, vdi: &str) {
    draft.update("VBD", vbd, "VDI", Value::str(vdi));
    draft.update("VBD", vbd, "empty", Value::Bool(vdi == NULL_REF));
}

/// `VBD.insert`: puts a disk in an empty CD drive.
pub(in crate::handlers) async fn insert(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vbd, vdi) = (args.str("vbd")?, args.str("vdi")?);
    let is_live = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        if !view.exists("VDI", vdi) {
            return Err(errors::handle_invalid("VDI", vdi).into());
        }
        is_live(&view, vbd)
    };
    if !is_live {
        return change_media_offline(&ctx, vbd, VbdOperation::Insert, vdi).await;
    }
    let how = Hotplug {
        device: vbd.to_owned(),
        op: VbdOperation::Insert.into(),
        action: |view: &Overlay, vm: &str| {
            HostAction::Vm(VmAction::InsertCd {
                vm: vm.to_owned(),
                vbd: view.str("VBD", vbd, "uuid").to_owned(),
                disk: vm_spec::disk(view, vdi),
            })
        },
        written: |draft: &mut Draft| set_media(draft, vbd, vdi),
    };
    hotplug::run(&ctx, how).await
}

/// `VBD.eject`: empties a CD drive.
pub(in crate::handlers) async fn eject(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vbd = args.str("vbd")?;
    if !is_live(&Overlay::new(&ctx.db()), vbd) {
        return change_media_offline(&ctx, vbd, VbdOperation::Eject, NULL_REF).await;
    }
    let how = Hotplug {
        device: vbd.to_owned(),
        op: VbdOperation::Eject.into(),
        action: |view: &Overlay, vm: &str| {
            HostAction::Vm(VmAction::EjectCd {
                vm: vm.to_owned(),
                vbd: view.str("VBD", vbd, "uuid").to_owned(),
            })
        },
        written: |draft: &mut Draft| set_media(draft, vbd, NULL_REF),
    };
    hotplug::run(&ctx, how).await
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{ActionKind, TestPool, s};

    /// A CD drive's media change in the DB when it has no domain, through the agent when it
    /// has; each of xapi's refusals holds.
    #[tokio::test]
    async fn cd_media_are_inserted_and_ejected() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let cd = pool.add_cd(&session, &vm, "3").await;
        let (disk, _) = pool.add_disk(&session, &vm, "0").await;
        let iso = pool.new_disk(&session, "iso").await;
        let eject = |vbd: &str| pool.call_as(&session, "VBD.eject", vec![s(vbd)]);
        let insert = || pool.call_as(&session, "VBD.insert", vec![s(&cd), s(&iso)]);
        assert_eq!(eject(&cd).await, Err(errors::vbd_is_empty(&cd)));
        assert_eq!(
            eject(&disk).await,
            Err(errors::vbd_not_removable_media(&disk))
        );
        assert_eq!(insert().await, Ok(s("")));
        assert_eq!(pool.text("VBD", &cd, "VDI"), iso);
        assert_eq!(pool.field("VBD", &cd, "empty"), Some(Value::Bool(false)));
        assert_eq!(insert().await, Err(errors::vbd_not_empty(&cd)));
        assert_eq!(eject(&cd).await, Ok(s("")));
        assert_eq!(pool.field("VBD", &cd, "empty"), Some(Value::Bool(true)));
        assert!(pool.agent.vm_kinds().is_empty());
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        assert_eq!(insert().await, Ok(s("")));
        assert_eq!(pool.text("VBD", &cd, "VDI"), iso);
        assert_eq!(eject(&cd).await, Ok(s("")));
        assert_eq!(pool.text("VBD", &cd, "VDI"), NULL_REF);
        assert_eq!(
            pool.agent.vm_kinds(),
            [ActionKind::Start, ActionKind::InsertCd, ActionKind::EjectCd]
        );
        assert!(pool.current("VBD", &cd).is_empty());
    }
}
