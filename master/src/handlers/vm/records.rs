//! A VM's records: the generic messages `VM` extends (`create`, `destroy`,
//! `set_is_a_template`) and the device slots it has free. Each write is one Txn;
//! `allowed_operations` of what it writes is recomputed on the way to the DB
//! (`operations::complete`).

use std::collections::BTreeMap;

use api_spec::classes::vm::VmOperation;
use api_spec::{Value, errors};
use db_schema::{Db, Op, Precondition, Txn};

use crate::call::ctx::{Args, Ctx, void};
use crate::call::generic;
use crate::db::record::{self, exists, row};
use crate::error::Error;
use crate::storage::volumes::{self, Volume};
use crate::vm::device_slots::{free_vbd_disks, free_vif_devices};
use crate::vm::operations::{self, Draft, Overlay, field_equals};
use crate::vm::power_state::{NO_DOMID, drop_suspend_image};

/// Checks that `op` may start on `vm` now (xapi's operation rules); returns the preconditions
/// that keep what the check read: the VM's power state and operations in progress.
fn require_operation(db: &Db, vm: &str, op: VmOperation) -> Result<Vec<Precondition>, Error> {
    operations::check(&Overlay::new(db), vm, op)?;
    let row = row(db, "VM", vm)?;
    Ok(["power_state", "current_operations"]
        .into_iter()
        .filter_map(|field| {
            let value = row.get(field)?.clone();
            Some(field_equals("VM", vm, field, value))
        })
        .collect())
}

/// The op that creates the VM_metrics row of a new VM; returns its ref.
pub(super) fn create_metrics(now: i64) -> Result<(String, Op), Error> {
    let class = record::class("VM_metrics")?;
    let r = record::new_ref();
    let now = Value::DateTime(api_spec::datetime::format_unix(now));
    let fields = BTreeMap::from([
        ("uuid".to_owned(), Value::String(record::new_uuid())),
        ("last_updated".to_owned(), now),
    ]);
    let op = Op::Create {
        class: class.name.to_owned(),
        r#ref: r.clone(),
        fields: record::new_row(class, fields),
    };
    Ok((r, op))
}

/// `VM.create`: the generic constructor, plus the VM's metrics row, as xapi does;
/// `power_state` comes from the record.
pub(in crate::handlers) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let class = args.class();
    let given = args.fields("args")?.clone();
    let now = ctx.now();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let (metrics, metrics_op) = create_metrics(now)?;
            let runtime = BTreeMap::from([
                ("metrics".to_owned(), Value::String(metrics)),
                ("domid".to_owned(), Value::Int(NO_DOMID)),
            ]);
            let (r, mut txn) = generic::create_txn(db, class, given.clone(), runtime)?;
            txn.ops.insert(0, metrics_op);
            Ok((txn, r))
        })
        .await?;
    Ok(Value::String(r))
}

/// `VM.destroy`: a Halted or Suspended VM that is not a default template, with its VBDs,
/// VIFs, consoles, metrics rows and suspend image. Its disks (VDIs) stay, as xapi keeps them;
/// its children (snapshots whose parent it is) get its parent, and its snapshots stay.
pub(in crate::handlers) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("self")?;
    let (image, _) = ctx.master.decide(|db| destroy_txn(db, vm)).await?;
    if let Some(image) = image {
        volumes::forget(&ctx, &image).await;
    }
    tracing::debug!(vm = %vm, "VM destroyed");
    Ok(void())
}

/// The destruction of `vm`, and the volume of its suspend image, to delete once committed.
fn destroy_txn(db: &Db, vm: &str) -> Result<(Txn, Option<Volume>), Error> {
    let row = row(db, "VM", vm)?;
    if row.get("is_default_template").and_then(Value::as_bool) == Some(true) {
        return Err(errors::vm_cannot_delete_default_template(vm).into());
    }
    let mut draft = Draft::new(db);
    operations::check(draft.view(), vm, VmOperation::Destroy)?;
    for field in [
        "power_state",
        "current_operations",
        "VBDs",
        "VIFs",
        "consoles",
        "children",
        "suspend_VDI",
        "parent",
    ] {
        draft.require_unchanged("VM", vm, field);
    }
    for class in ["VBD", "VIF", "console"] {
        for child in draft.view().children(class, "VM", vm) {
            draft.destroy(class, &child);
        }
    }
    for (class, field) in [
        ("VM_metrics", "metrics"),
        ("VM_guest_metrics", "guest_metrics"),
    ] {
        let child = row.str(field).to_owned();
        draft.destroy(class, &child);
    }
    let image = drop_suspend_image(&mut draft, vm);
    let parent = Value::str(row.str("parent"));
    for child in draft.view().children("VM", "parent", vm) {
        draft.require_exists("VM", &child);
        draft.set("VM", &child, "parent", parent.clone());
    }
    draft.destroy("VM", vm);
    Ok((draft.into_txn(), image))
}

/// `VM.get_allowed_VBD_devices`: the disk numbers a new VBD of the VM may take.
pub(in crate::handlers) async fn get_allowed_vbd_devices(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let db = ctx.db();
    row(&db, "VM", vm)?;
    let free = free_vbd_disks(&Overlay::new(&db), vm);
    Ok(Value::Array(
        free.iter().map(|n| Value::String(n.to_string())).collect(),
    ))
}

/// `VM.get_allowed_VIF_devices`: the devices a new VIF of the VM may take.
pub(in crate::handlers) async fn get_allowed_vif_devices(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let db = ctx.db();
    row(&db, "VM", vm)?;
    let free = free_vif_devices(&Overlay::new(&db), vm);
    Ok(Value::Array(free.into_iter().map(Value::String).collect()))
}

/// `VM.set_is_a_template`: making a template needs a Halted VM; turning a template into a VM
/// records its install time in its metrics, as xapi does.
pub(in crate::handlers) async fn set_is_a_template(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.bool("value")?);
    let now = Value::DateTime(api_spec::datetime::format_unix(ctx.now()));
    ctx.master
        .decide(|db| {
            let row = row(db, "VM", vm)?;
            let mut txn = Txn {
                preconditions: vec![exists("VM", vm)],
                ops: vec![Op::Set {
                    class: "VM".to_owned(),
                    r#ref: vm.to_owned(),
                    field: "is_a_template".to_owned(),
                    value: Value::Bool(value),
                }],
            };
            let is_template = row.get("is_a_template").and_then(Value::as_bool) == Some(true);
            if value && !is_template {
                let checked = require_operation(db, vm, VmOperation::MakeIntoTemplate)?;
                txn.preconditions.extend(checked);
            }
            let metrics = row.str("metrics");
            if !value && db.get("VM_metrics", metrics).is_some() {
                txn.preconditions.push(exists("VM_metrics", metrics));
                txn.ops.push(Op::Set {
                    class: "VM_metrics".to_owned(),
                    r#ref: metrics.to_owned(),
                    field: "install_time".to_owned(),
                    value: now.clone(),
                });
            }
            Ok((txn, ()))
        })
        .await?;
    Ok(void())
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    fn template(pool: &TestPool) -> String {
        pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned()
    }

    fn control_domain(pool: &TestPool) -> String {
        pool.field("host", &pool.host, "control_domain")
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("dom0")
    }

    /// `set_is_a_template false` turns a cloned template into a halted VM and records its
    /// install time.
    #[tokio::test]
    async fn a_cloned_template_becomes_a_halted_vm() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let clone = pool
            .call_as(&session, "VM.clone", vec![s(&template(&pool)), s("vm")])
            .await
            .expect("cloned");
        let clone = clone.as_str().expect("a ref").to_owned();
        pool.clock.advance(60);
        let reply = pool
            .call_as(
                &session,
                "VM.set_is_a_template",
                vec![s(&clone), Value::Bool(false)],
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(
            pool.field("VM", &clone, "is_a_template"),
            Some(Value::Bool(false))
        );
        assert_eq!(pool.field("VM", &clone, "power_state"), Some(s("Halted")));
        assert_eq!(
            pool.allowed("VM", &clone),
            crate::testing::HALTED_OPERATIONS
        );
        let metrics = pool.field("VM", &clone, "metrics").expect("metrics");
        let install_time = api_spec::datetime::format_unix(crate::testing::TEST_START_UNIX + 60);
        assert_eq!(
            pool.field(
                "VM_metrics",
                metrics.as_str().expect("a ref"),
                "install_time"
            ),
            Some(Value::DateTime(install_time))
        );
    }

    /// A running VM cannot be cloned, destroyed or made a template: `VM_BAD_POWER_STATE`
    /// with the lowercase states the operation accepts.
    #[tokio::test]
    async fn running_vms_cannot_be_cloned_destroyed_or_templated() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let dom0 = control_domain(&pool);
        let bad = |expected: &[VmPowerState]| {
            Err(xenapi::vm_bad_power_state(
                &dom0,
                expected,
                VmPowerState::Running,
            ))
        };
        let reply = pool
            .call_as(&session, "VM.clone", vec![s(&dom0), s("x")])
            .await;
        assert_eq!(reply, bad(&[VmPowerState::Halted]));
        let reply = pool.call_as(&session, "VM.destroy", vec![s(&dom0)]).await;
        assert_eq!(reply, bad(&[VmPowerState::Halted, VmPowerState::Suspended]));
        let reply = pool
            .call_as(
                &session,
                "VM.set_is_a_template",
                vec![s(&dom0), Value::Bool(true)],
            )
            .await;
        assert_eq!(reply, bad(&[VmPowerState::Halted]));
        if let Err(e) = &reply {
            assert_eq!(e.params[1..], ["halted", "running"]);
        }
    }

    /// `VM.destroy` removes a halted VM with its devices and metrics, keeps its disks, and
    /// refuses default templates.
    #[tokio::test]
    async fn destroy_removes_the_vm_with_its_devices_but_not_default_templates() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let template = template(&pool);
        let reply = pool
            .call_as(&session, "VM.destroy", vec![s(&template)])
            .await;
        assert_eq!(
            reply,
            Err(errors::vm_cannot_delete_default_template(&template))
        );
        let clone = pool
            .call_as(&session, "VM.clone", vec![s(&template), s("doomed")])
            .await
            .expect("cloned");
        let clone = clone.as_str().expect("a ref").to_owned();
        let vbd = pool.add_cd(&session, &clone, "3").await;
        let vif = pool.add_nic(&session, &clone, "0").await;
        let metrics = pool.field("VM", &clone, "metrics").expect("metrics");
        let reply = pool.call_as(&session, "VM.destroy", vec![s(&clone)]).await;
        assert_eq!(reply, Ok(s("")));
        let db = pool.read();
        assert!(db.get("VM", &clone).is_none());
        assert!(db.get("VBD", &vbd).is_none() && db.get("VIF", &vif).is_none());
        assert!(
            db.get("VM_metrics", metrics.as_str().expect("a ref"))
                .is_none()
        );
    }

    /// Destroying a suspended VM removes its suspend image but keeps its disks and its
    /// snapshots; destroying a snapshot gives its children its own parent; a running VM is
    /// refused.
    #[tokio::test]
    async fn destroy_removes_the_suspend_image_and_keeps_disks_and_snapshots() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (_, vdi) = pool.add_disk(&session, &vm, "1").await;
        let snap = pool.snapshot(&session, &vm, "snap").await;
        let newer = pool.snapshot(&session, &vm, "newer").await;
        assert_eq!(pool.text("VM", &vm, "parent"), newer);
        pool.call_as(&session, "VM.destroy", vec![s(&newer)])
            .await
            .expect("destroyed");
        assert_eq!(pool.text("VM", &vm, "parent"), snap);
        let reply = pool.call_as(&session, "VM.destroy", vec![s(&vm)]).await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Halted, VmPowerState::Suspended],
                VmPowerState::Running
            ))
        );
        pool.call_as(&session, "VM.suspend", vec![s(&vm)])
            .await
            .expect("suspended");
        let image = pool.text("VM", &vm, "suspend_VDI");
        let image_location = pool.text("VDI", &image, "location");
        let sr_uuid = pool.text("SR", &pool.text("VDI", &image, "SR"), "uuid");
        let holds_image = || {
            let volumes = pool.agent.vdis(&sr_uuid);
            volumes.iter().any(|v| v.location == image_location)
        };
        assert!(holds_image(), "the image has a volume");
        let reply = pool.call_as(&session, "VM.destroy", vec![s(&vm)]).await;
        assert_eq!(reply, Ok(s("")));
        assert!(!holds_image(), "the image's volume went with it");
        let db = pool.read();
        assert!(db.get("VDI", &image).is_none());
        assert!(db.get("VDI", &vdi).is_some());
        assert!(db.get("VM", &snap).is_some());
        assert_eq!(db.get("VM", &snap).expect("kept").str("snapshot_of"), vm);
    }

    /// A VM's free VBD slots leave out those its disks use.
    #[tokio::test]
    async fn allowed_vbd_devices_leave_out_used_ones() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        pool.add_disk(&session, &vm, "1").await;
        let reply = pool
            .call_as(&session, "VM.get_allowed_VBD_devices", vec![s(&vm)])
            .await
            .expect("devices");
        let devices = reply.as_array().expect("a set");
        assert_eq!(devices[..3], [s("0"), s("2"), s("3")]);
        assert_eq!(devices.len(), 254);
    }

    /// `VM.create` makes the VM and its metrics row; `power_state` comes from the record,
    /// DynamicRO fields in it are ignored, and the new VM has no domain.
    #[tokio::test]
    async fn create_makes_the_vm_and_its_metrics() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let source = pool
            .call_as(&session, "VM.get_record", vec![s(&template(&pool))])
            .await;
        let mut fields = source
            .expect("a record")
            .as_struct()
            .expect("a struct")
            .clone();
        fields.insert("name_label".to_owned(), s("made"));
        fields.insert("is_a_template".to_owned(), Value::Bool(false));
        fields.insert("resident_on".to_owned(), s(&pool.host));
        fields.insert("is_control_domain".to_owned(), Value::Bool(true));
        let vm = pool
            .call_as(&session, "VM.create", vec![Value::Struct(fields)])
            .await
            .expect("created");
        let vm = vm.as_str().expect("a ref").to_owned();
        let db = pool.read();
        let row = db.get("VM", &vm).expect("the VM");
        assert_eq!(row.str("power_state"), "Halted");
        assert_eq!(row.str("resident_on"), NULL_REF);
        assert_eq!(row.get("is_control_domain"), Some(&Value::Bool(false)));
        assert_eq!(row.get("domid"), Some(&Value::Int(NO_DOMID)));
        assert!(db.get("VM_metrics", row.str("metrics")).is_some());
        drop(db);
        assert_eq!(pool.allowed("VM", &vm), crate::testing::HALTED_OPERATIONS);
    }
}
