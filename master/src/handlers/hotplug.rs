//! Device operations carried out by the agent of the VM's host (plug, unplug, CD insert and
//! eject on a running VM), shared by `vbd.rs` and `vif.rs`: the begin Txn checks and records
//! the operation on the device (its VM's state included: `vm/operations/devices.rs`), the agent
//! changes the domain, and the end Txn makes the VM show the domain as the agent left it
//! (which devices are attached) with what the operation itself writes.

use std::collections::BTreeMap;

use api_spec::{ApiError, Value, errors};

use super::vm::Operation;
use crate::call::ctx::{Args, Ctx, void};
use crate::call::generic;
use crate::error::Error;
use crate::vm::operations::{Draft, ObjectOperation, Overlay};
use crate::vm::power_state::{power_state, set_running};
use host_api::{ActionResult, HostAction};

/// What one device operation sends and writes.
pub(super) struct Hotplug<A, W> {
    pub device: String,
    /// A VBD or VIF operation: the device's class is the operation's.
    pub op: ObjectOperation,
    /// The action, from the DB and the uuid of the device's VM.
    pub action: A,
    /// What the operation writes once the agent has done it.
    pub written: W,
}

/// Runs `how`; answers void, or the agent's error with objects named by ref.
pub(super) async fn run<A, W>(ctx: &Ctx, how: Hotplug<A, W>) -> Result<Value, Error>
where
    A: Fn(&Overlay, &str) -> HostAction,
    W: Fn(&mut Draft),
{
    let Hotplug {
        device,
        op,
        action,
        written,
    } = how;
    let class = op.class();
    let operation = Operation::new(ctx, &device, op);
    let (vm, host, action) = operation
        .begin(|draft| {
            let view = draft.view();
            let vm = view.str(class, &device, "VM").to_owned();
            let host = view.str("VM", &vm, "resident_on").to_owned();
            let action = action(view, view.str("VM", &vm, "uuid"));
            Ok((vm, host, action))
        })
        .await?;
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    operation
        .end(|draft| {
            let Ok(ActionResult::Domain(Some(info))) = &outcome else {
                return Ok(());
            };
            for field in ["power_state", "domid", "resident_on"] {
                draft.require_unchanged("VM", &vm, field);
            }
            let view = draft.view();
            // A hard shutdown may have ended the domain since the agent answered: then the
            // VM shows no domain, and this must not bring one back.
            let is_same_domain =
                power_state(view, &vm).has_domain() && view.int("VM", &vm, "domid") == info.domid;
            if is_same_domain {
                set_running(draft, &vm, &host, info, false, now);
            }
            written(draft);
            Ok(())
        })
        .await?;
    match outcome {
        Ok(ActionResult::Domain(Some(_))) => {
            tracing::debug!(device = %device, vm = %vm, operation = op.wire(), "device operation done");
            Ok(void())
        }
        Ok(_) => Err(unexpected(&vm, op.wire()).into()),
        Err(e) => Err(e.into()),
    }
}

/// The error of an agent that answered without the domain a device operation needs.
fn unexpected(vm: &str, op: &str) -> ApiError {
    errors::internal_error(format!(
        "the host agent answered {op} on VM {vm} without its domain; this is a bug"
    ))
}

/// `VBD.create` / `VIF.create`: the generic create with the runtime fields `runtime`, checked
/// (and completed) by `check_new` in the same Txn; the device is detached until plugged.
pub(super) async fn create<C>(
    ctx: &Ctx,
    args: &Args,
    runtime: BTreeMap<String, Value>,
    check_new: C,
) -> Result<Value, Error>
where
    C: Fn(&mut Draft, &mut BTreeMap<String, Value>) -> Result<(), Error>,
{
    let class = args.class();
    let given = args.fields("args")?.clone();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let (r, mut txn) = generic::create_txn(db, class, given.clone(), runtime.clone())?;
            let mut draft = Draft::new(db);
            for precondition in std::mem::take(&mut txn.preconditions) {
                draft.precondition(precondition);
            }
            let fields = generic::created_fields(&mut txn).ok_or_else(|| {
                errors::internal_error(format!("{}.create made no row", class.name))
            })?;
            check_new(&mut draft, fields)?;
            for op in txn.ops {
                draft.push(op);
            }
            Ok((draft.into_txn(), r))
        })
        .await?;
    tracing::debug!(class = class.name, r#ref = %r, "device created");
    Ok(Value::String(r))
}
