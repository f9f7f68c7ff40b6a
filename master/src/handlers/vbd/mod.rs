//! The custom messages of `VBD`: `create` and `destroy` with xapi's checks (a VBD is created
//! detached, on a running VM too, and must be unplugged before it is destroyed), hotplug
//! (`plug`, `unplug`, `unplug_force` on a running VM, through `hotplug.rs`), and the CD drive's
//! `insert` and `eject` (`media.rs`).

mod media;

pub(super) use media::{eject, insert};

use std::collections::BTreeMap;

use api_spec::classes::vbd::VbdOperation;
use api_spec::classes::vm::VmOperation;
use api_spec::{Value, errors};
use db_schema::Op;

use super::hotplug::{self, Hotplug};
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record;
use crate::error::Error;
use crate::vm::device_slots::{VbdSlot, free_vbd_disks, vbd_slot};
use crate::vm::operations::{self, Draft, Overlay};
use crate::vm::vm_spec;
use host_api::{HostAction, VmAction};

/// The VDI types a VBD may be created for (xapi's list).
const ATTACHABLE_VDI_TYPES: &[&str] = &[
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "metadata",
];

/// The VM operations during which no VBD is created: a migration copies the VM's disks.
const MIGRATIONS: &[VmOperation] = &[VmOperation::MigrateSend, VmOperation::PoolMigrate];

fn text<'a>(fields: &'a BTreeMap<String, Value>, name: &str) -> &'a str {
    fields.get(name).and_then(Value::as_str).unwrap_or("")
}

fn flag(fields: &BTreeMap<String, Value>, name: &str) -> bool {
    fields.get(name).and_then(Value::as_bool) == Some(true)
}

/// Checks the fields of a new VBD as xapi's `VBD.create` does, in its order, and gives an
/// `autodetect` device its number; the Txn then requires what the checks read.
fn check_new(draft: &mut Draft, fields: &mut BTreeMap<String, Value>) -> Result<(), Error> {
    let view = draft.view();
    let vm = text(fields, "VM").to_owned();
    if !view.exists("VM", &vm) {
        return Err(errors::handle_invalid("VM", &vm).into());
    }
    let (vdi, is_empty) = (text(fields, "VDI").to_owned(), flag(fields, "empty"));
    let (kind, mode) = (text(fields, "type"), text(fields, "mode"));
    if !is_empty {
        if !view.exists("VDI", &vdi) {
            return Err(errors::handle_invalid("VDI", &vdi).into());
        }
        let vdi_type = view.str("VDI", &vdi, "type");
        if !ATTACHABLE_VDI_TYPES.contains(&vdi_type) {
            return Err(errors::vdi_incompatible_type(&vdi, vdi_type).into());
        }
    }
    if kind == "CD" && mode != "RO" {
        return Err(errors::vbd_cds_must_be_readonly().into());
    }
    if kind != "CD" && is_empty {
        return Err(errors::vbd_not_removable_media("in constructor").into());
    }
    if mode == "RW" && !is_empty && view.bool("VDI", &vdi, "read_only") {
        return Err(errors::vdi_readonly(&vdi).into());
    }
    let migrating = operations::current_operations(view, "VM", &vm, VmOperation::from_wire)
        .into_iter()
        .find(|(_, op)| MIGRATIONS.contains(op));
    if let Some((key, op)) = migrating {
        return Err(errors::other_operation_in_progress("VM", &vm, op, &key).into());
    }
    let is_floppy = kind == "Floppy";
    let device = text(fields, "userdevice").to_owned();
    let device = if device == "autodetect" {
        autodetect(view, &vm, is_floppy).ok_or_else(|| errors::invalid_device(&device))?
    } else {
        device
    };
    let slot = vbd_slot(&device, is_floppy).ok_or_else(|| errors::invalid_device(&device))?;
    let is_taken = view.children("VBD", "VM", &vm).iter().any(|other| {
        let other_is_floppy = view.str("VBD", other, "type") == "Floppy";
        vbd_slot(view.str("VBD", other, "userdevice"), other_is_floppy) == Some(slot)
    });
    if is_taken {
        return Err(errors::device_already_exists(&device).into());
    }
    fields.insert("userdevice".to_owned(), Value::String(device));
    draft.require_exists("VM", &vm);
    for field in ["VBDs", "current_operations"] {
        draft.require_unchanged("VM", &vm, field);
    }
    if !is_empty {
        draft.require_exists("VDI", &vdi);
        draft.require_unchanged("VDI", &vdi, "read_only");
    }
    Ok(())
}

/// The first free device of `vm` for a VBD (a floppy drive, when `is_floppy`).
fn autodetect(view: &Overlay, vm: &str, is_floppy: bool) -> Option<String> {
    if !is_floppy {
        return free_vbd_disks(view, vm).first().map(u64::to_string);
    }
    let used: Vec<Option<VbdSlot>> = view
        .children("VBD", "VM", vm)
        .iter()
        .map(|vbd| vbd_slot(view.str("VBD", vbd, "userdevice"), true))
        .collect();
    ["fda", "fdb"]
        .into_iter()
        .find(|name| !used.contains(&vbd_slot(name, true)))
        .map(str::to_owned)
}

/// Adds a new VBD with `given` fields (defaults for the others) to `draft`, checked as
/// `VBD.create` checks it; returns its ref. For handlers that create disks for a VM.
pub(crate) fn add_vbd(draft: &mut Draft, given: BTreeMap<String, Value>) -> Result<String, Error> {
    let mut fields = record::new_row(record::class("VBD")?, given);
    fields.insert("uuid".to_owned(), Value::String(record::new_uuid()));
    check_new(draft, &mut fields)?;
    let r = record::new_ref();
    draft.push(Op::Create {
        class: "VBD".to_owned(),
        r#ref: r.clone(),
        fields,
    });
    Ok(r)
}

/// `VBD.create`: a detached VBD, on a VM in any power state; it is attached by `plug` (or the
/// VM's next start).
pub(super) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let runtime = BTreeMap::from([
        ("currently_attached".to_owned(), Value::Bool(false)),
        ("device".to_owned(), Value::str("")),
    ]);
    hotplug::create(&ctx, &args, runtime, check_new).await
}

/// `VBD.destroy`: refused while the VBD is attached (`OPERATION_NOT_ALLOWED`, in xapi's
/// words) or an operation runs on it. Its disk stays.
pub(super) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vbd = args.str("self")?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let view = draft.view();
            if !view.exists("VBD", vbd) {
                return Err(errors::handle_invalid("VBD", vbd).into());
            }
            if view.bool("VBD", vbd, "currently_attached") {
                let vm = view.str("VBD", vbd, "VM");
                let reason = format!(
                    "VBD '{}' still attached to '{}'",
                    view.str("VBD", vbd, "uuid"),
                    view.str("VM", vm, "uuid")
                );
                return Err(errors::operation_not_allowed(&reason).into());
            }
            let current = view.string_map("VBD", vbd, "current_operations");
            if let Some((key, op)) = current.into_iter().next() {
                return Err(errors::other_operation_in_progress("VBD", vbd, &op, &key).into());
            }
            for field in ["currently_attached", "current_operations"] {
                draft.require_unchanged("VBD", vbd, field);
            }
            draft.destroy("VBD", vbd);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(void())
}

/// `VBD.plug`: attaches the VBD to its VM's running domain.
pub(super) async fn plug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vbd = args.str("self")?.to_owned();
    let how = Hotplug {
        device: vbd.clone(),
        op: VbdOperation::Plug.into(),
        action: |view: &Overlay, vm: &str| {
            HostAction::Vm(VmAction::PlugVbd {
                vm: vm.to_owned(),
                vbd: vm_spec::vbd(view, &vbd),
            })
        },
        written: |_: &mut Draft| {},
    };
    hotplug::run(&ctx, how).await
}

/// `VBD.unplug`, or `VBD.unplug_force` when `force`.
async fn unplug_vbd(ctx: &Ctx, vbd: &str, force: bool) -> Result<Value, Error> {
    let how = Hotplug {
        device: vbd.to_owned(),
        op: if force {
            VbdOperation::UnplugForce.into()
        } else {
            VbdOperation::Unplug.into()
        },
        action: |view: &Overlay, vm: &str| {
            HostAction::Vm(VmAction::UnplugVbd {
                vm: vm.to_owned(),
                vbd: view.str("VBD", vbd, "uuid").to_owned(),
                force,
            })
        },
        written: |_: &mut Draft| {},
    };
    hotplug::run(ctx, how).await
}

/// `VBD.unplug`: detaches the VBD from its VM's running domain, asking the guest first.
pub(super) async fn unplug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    unplug_vbd(&ctx, args.str("self")?, false).await
}

/// `VBD.unplug_force`: detaches the VBD without asking the guest.
pub(super) async fn unplug_force(ctx: Ctx, args: Args) -> Result<Value, Error> {
    unplug_vbd(&ctx, args.str("self")?, true).await
}

#[cfg(test)]
mod tests {
    use api_spec::{ApiError, NULL_REF};

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    fn record(pairs: &[(&str, Value)]) -> Value {
        let empty = Value::Struct(BTreeMap::new());
        let mut fields: BTreeMap<String, Value> = [
            ("VDI", s(NULL_REF)),
            ("bootable", Value::Bool(false)),
            ("mode", s("RW")),
            ("type", s("Disk")),
            ("empty", Value::Bool(false)),
            ("other_config", empty.clone()),
            ("qos_algorithm_type", s("")),
            ("qos_algorithm_params", empty),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in pairs {
            fields.insert((*k).to_owned(), v.clone());
        }
        Value::Struct(fields)
    }

    fn attached(pool: &TestPool, vbd: &str) -> Option<Value> {
        pool.field("VBD", vbd, "currently_attached")
    }

    /// `VBD.create` refuses what xapi refuses, in its words, and numbers an `autodetect`
    /// device with the first free slot.
    #[tokio::test]
    async fn create_checks_what_xapi_checks() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let (_, vdi) = pool.add_disk(&session, &vm, "0").await;
        let other = pool.new_disk(&session, "other").await;
        let create = |pairs: Vec<(&str, Value)>| {
            let mut all = vec![("VM", s(&vm))];
            all.extend(pairs);
            pool.call_as(&session, "VBD.create", vec![record(&all)])
        };
        let cases: Vec<(Vec<(&str, Value)>, ApiError)> = vec![
            (
                vec![
                    ("userdevice", s("3")),
                    ("type", s("CD")),
                    ("empty", Value::Bool(true)),
                ],
                errors::vbd_cds_must_be_readonly(),
            ),
            (
                vec![("userdevice", s("3")), ("empty", Value::Bool(true))],
                errors::vbd_not_removable_media("in constructor"),
            ),
            (
                vec![("userdevice", s("disk")), ("VDI", s(&other))],
                errors::invalid_device("disk"),
            ),
            (
                vec![("userdevice", s("xvda")), ("VDI", s(&other))],
                errors::device_already_exists("xvda"),
            ),
        ];
        for (pairs, error) in cases {
            assert_eq!(create(pairs).await, Err(error));
        }
        pool.write("VDI", &other, &[("read_only", Value::Bool(true))]);
        let reply = create(vec![("userdevice", s("1")), ("VDI", s(&other))]).await;
        assert_eq!(reply, Err(errors::vdi_readonly(&other)));
        pool.write("VDI", &other, &[("type", s("ha_statefile"))]);
        let reply = create(vec![("userdevice", s("1")), ("VDI", s(&other))]).await;
        assert_eq!(
            reply,
            Err(errors::vdi_incompatible_type(&other, "ha_statefile"))
        );
        let reply = create(vec![
            ("userdevice", s("autodetect")),
            ("VDI", s(&vdi)),
            ("mode", s("RO")),
        ])
        .await;
        let vbd = reply.expect("created");
        assert_eq!(
            pool.text("VBD", vbd.as_str().expect("a ref"), "userdevice"),
            "1"
        );
    }

    /// On a running VM a new VBD starts detached; `plug` attaches it through the agent,
    /// `unplug` and `unplug_force` detach it, each refused when already done; an attached VBD
    /// cannot be destroyed.
    #[tokio::test]
    async fn vbds_of_a_running_vm_are_hotplugged() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (vbd, _) = pool.add_disk(&session, &vm, "1").await;
        assert_eq!(attached(&pool, &vbd), Some(Value::Bool(false)));
        assert_eq!(
            pool.allowed("VBD", &vbd),
            ["attach", "pause", "plug", "unpause"]
        );
        let call = |method: &'static str| pool.call_as(&session, method, vec![s(&vbd)]);
        assert_eq!(call("VBD.plug").await, Ok(s("")));
        assert_eq!(attached(&pool, &vbd), Some(Value::Bool(true)));
        assert_eq!(
            pool.allowed("VBD", &vbd),
            ["attach", "pause", "unpause", "unplug", "unplug_force"]
        );
        assert_eq!(
            call("VBD.plug").await,
            Err(errors::device_already_attached(&vbd))
        );
        let reason = format!(
            "VBD '{}' still attached to '{}'",
            pool.text("VBD", &vbd, "uuid"),
            pool.text("VM", &vm, "uuid")
        );
        assert_eq!(
            call("VBD.destroy").await,
            Err(errors::operation_not_allowed(&reason))
        );
        assert_eq!(call("VBD.unplug").await, Ok(s("")));
        assert_eq!(attached(&pool, &vbd), Some(Value::Bool(false)));
        assert_eq!(
            call("VBD.unplug").await,
            Err(errors::device_already_detached(&vbd))
        );
        assert_eq!(call("VBD.plug").await, Ok(s("")));
        assert_eq!(call("VBD.unplug_force").await, Ok(s("")));
        let forced = pool.agent.received().pop().expect("an action").action;
        assert!(matches!(
            forced,
            HostAction::Vm(VmAction::UnplugVbd { force: true, .. })
        ));
        assert_eq!(
            pool.agent.vm_kinds()[1..],
            [
                ActionKind::PlugVbd,
                ActionKind::UnplugVbd,
                ActionKind::PlugVbd,
                ActionKind::UnplugVbd
            ]
        );
        assert!(pool.current("VBD", &vbd).is_empty());
        assert_eq!(call("VBD.destroy").await, Ok(s("")));
        assert!(pool.read().get("VBD", &vbd).is_none());
    }

    /// A halted VM's VBDs are not plugged (`VM_BAD_POWER_STATE`, xapi's words); a VBD that is
    /// not unpluggable stays (`VBD_NOT_UNPLUGGABLE`).
    #[tokio::test]
    async fn plug_needs_a_running_vm_and_unplug_an_unpluggable_vbd() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let (vbd, _) = pool.add_disk(&session, &vm, "0").await;
        let reply = pool.call_as(&session, "VBD.plug", vec![s(&vbd)]).await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Running],
                VmPowerState::Halted
            ))
        );
        pool.write("VBD", &vbd, &[("unpluggable", Value::Bool(false))]);
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        assert_eq!(attached(&pool, &vbd), Some(Value::Bool(true)));
        let reply = pool.call_as(&session, "VBD.unplug", vec![s(&vbd)]).await;
        assert_eq!(reply, Err(errors::vbd_not_unpluggable(&vbd)));
    }

    /// An agent's error names the VBD by uuid; the client gets its ref, and the VBD stays
    /// detached with no operation left.
    #[tokio::test]
    async fn agent_errors_name_the_vbd_by_ref() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (vbd, _) = pool.add_disk(&session, &vm, "1").await;
        let uuid = pool.text("VBD", &vbd, "uuid");
        let error = host_api::AgentFailure::DeviceAlreadyAttached { device: uuid };
        pool.agent.fail_next(ActionKind::PlugVbd, error);
        let reply = pool.call_as(&session, "VBD.plug", vec![s(&vbd)]).await;
        assert_eq!(reply, Err(errors::device_already_attached(&vbd)));
        assert_eq!(attached(&pool, &vbd), Some(Value::Bool(false)));
        assert!(pool.current("VBD", &vbd).is_empty());
    }

    /// A plug answered after the VM lost its domain (reset meanwhile) does not bring the
    /// domain back in the DB.
    #[tokio::test]
    async fn a_late_plug_does_not_revive_a_stopped_vm() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (vbd, _) = pool.add_disk(&session, &vm, "1").await;
        let gate = pool.agent.block_next(ActionKind::PlugVbd);
        let task = pool.async_call(&session, "VBD.plug", vec![s(&vbd)]).await;
        gate.entered().await;
        pool.write(
            "VM",
            &vm,
            &[
                ("power_state", s("Halted")),
                ("domid", Value::Int(-1)),
                ("resident_on", s(NULL_REF)),
            ],
        );
        gate.release();
        assert_eq!(pool.finished(&task).await, "success");
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert!(pool.current("VBD", &vbd).is_empty());
    }
}
