//! A VM's records: the generic messages `VM` extends (`create`, `destroy`,
//! `set_is_a_template`) and `clone`. Each is one Txn; `allowed_operations` of what it writes
//! is recomputed on the way to the DB (`operations::complete`).

use std::collections::BTreeMap;

use api_spec::{NEVER, NULL_REF, Value};
use db_schema::{Db, Op, Precondition, Row, Txn};

use crate::ctx::{Args, Ctx, void};
use crate::error::{Error, xenapi};
use crate::generic;
use crate::operations::{self, Overlay, field_equals};
use crate::power_state::NO_DOMID;
use crate::record::{self, exists, row};

/// Checks that `op` may start on `vm` now (xapi's operation rules); returns the preconditions
/// that keep what the check read: the VM's power state and operations in progress.
fn require_operation(db: &Db, vm: &str, op: &str) -> Result<Vec<Precondition>, Error> {
    operations::check(&Overlay::new(db), "VM", vm, op)?;
    let row = row(db, "VM", vm)?;
    Ok(["power_state", "current_operations"]
        .into_iter()
        .filter_map(|field| {
            let value = row.get(field)?.clone();
            Some(field_equals("VM", vm, field, value))
        })
        .collect())
}

/// The refs in a ref-set field of a row.
fn ref_set(row: &Row, field: &str) -> Vec<String> {
    row.get(field)
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The precondition that a field of the VM still holds what the decision read.
fn unchanged(vm: &str, row: &Row, field: &str) -> Precondition {
    let value = row.get(field).cloned().unwrap_or(Value::Array(Vec::new()));
    field_equals("VM", vm, field, value)
}

/// The op that creates the VM_metrics row of a new VM; returns its ref.
fn create_metrics(now: i64) -> Result<(String, Op), Error> {
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
/// VIFs, consoles and metrics rows. Its disks (VDIs) stay.
pub(in crate::handlers) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("self")?;
    ctx.master
        .decide(|db| Ok((destroy_txn(db, vm)?, ())))
        .await?;
    Ok(void())
}

fn destroy_txn(db: &Db, vm: &str) -> Result<Txn, Error> {
    let row = row(db, "VM", vm)?;
    if row.get("is_default_template").and_then(Value::as_bool) == Some(true) {
        return Err(xenapi::vm_cannot_delete_default_template(vm).into());
    }
    let mut txn = Txn {
        preconditions: require_operation(db, vm, "destroy")?,
        ops: Vec::new(),
    };
    for (class, field) in [("VBD", "VBDs"), ("VIF", "VIFs"), ("console", "consoles")] {
        let children = ref_set(row, field);
        txn.preconditions.push(unchanged(vm, row, field));
        for child in children.into_iter().filter(|c| db.get(class, c).is_some()) {
            txn.preconditions.push(exists(class, &child));
            txn.ops.push(Op::Destroy {
                class: class.to_owned(),
                r#ref: child,
            });
        }
    }
    for (class, field) in [
        ("VM_metrics", "metrics"),
        ("VM_guest_metrics", "guest_metrics"),
    ] {
        let child = row.str(field);
        if db.get(class, child).is_some() {
            txn.preconditions.push(exists(class, child));
            txn.ops.push(Op::Destroy {
                class: class.to_owned(),
                r#ref: child.to_owned(),
            });
        }
    }
    txn.ops.push(Op::Destroy {
        class: "VM".to_owned(),
        r#ref: vm.to_owned(),
    });
    Ok(txn)
}

/// `VM.clone`: a Halted or Suspended VM or template copied under a new name, with new refs
/// and uuids, a new metrics row and copies of its VBD and VIF rows. The VBD copies point at
/// the same VDIs: copying the disks themselves comes with the VM lifecycle work. A suspended
/// VM's clone starts Halted, without the suspend image.
pub(in crate::handlers) async fn clone(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, new_name) = (args.str("vm")?, args.str("new_name")?);
    let now = ctx.now();
    let (r, _) = ctx
        .master
        .decide(|db| clone_txn(db, vm, new_name, now))
        .await?;
    Ok(Value::String(r))
}

/// Fields of a VM that a clone does not inherit, with the values it starts with.
fn fresh_vm_fields(new_name: &str, metrics: String) -> [(&'static str, Value); 15] {
    [
        ("uuid", Value::String(record::new_uuid())),
        ("name_label", Value::str(new_name)),
        ("is_default_template", Value::Bool(false)),
        ("power_state", Value::str("Halted")),
        ("suspend_VDI", Value::str(NULL_REF)),
        ("resident_on", Value::str(NULL_REF)),
        ("scheduled_to_be_resident_on", Value::str(NULL_REF)),
        ("domid", Value::Int(NO_DOMID)),
        ("allowed_operations", Value::Array(Vec::new())),
        ("current_operations", Value::Struct(BTreeMap::new())),
        ("metrics", Value::String(metrics)),
        ("guest_metrics", Value::str(NULL_REF)),
        ("is_a_snapshot", Value::Bool(false)),
        ("snapshot_of", Value::str(NULL_REF)),
        ("snapshot_time", Value::DateTime(NEVER.to_owned())),
    ]
}

/// Fields of a VBD or VIF that a copy does not inherit, besides its uuid and VM.
const DEVICE_RUNTIME_FIELDS: [&str; 6] = [
    "currently_attached",
    "allowed_operations",
    "current_operations",
    "status_code",
    "status_detail",
    "runtime_properties",
];

fn clone_txn(db: &Db, vm: &str, new_name: &str, now: i64) -> Result<(Txn, String), Error> {
    let vm_class = record::class("VM")?;
    let source = row(db, "VM", vm)?;
    let mut txn = Txn {
        preconditions: require_operation(db, vm, "clone")?,
        ops: Vec::new(),
    };
    let (metrics, metrics_op) = create_metrics(now)?;
    txn.ops.push(metrics_op);
    let mut fields = source.fields.clone();
    for (name, value) in fresh_vm_fields(new_name, metrics) {
        fields.insert(name.to_owned(), value);
    }
    if let Some(Value::Struct(other_config)) = fields.get_mut("other_config") {
        other_config.remove("default_template");
        other_config.remove("mac_seed");
    }
    let clone = record::new_ref();
    txn.ops.push(Op::Create {
        class: "VM".to_owned(),
        r#ref: clone.clone(),
        fields: record::new_row(vm_class, fields),
    });
    for (class, field) in [("VBD", "VBDs"), ("VIF", "VIFs")] {
        let devices = ref_set(source, field);
        txn.preconditions.push(unchanged(vm, source, field));
        let device_class = record::class(class)?;
        for device in devices {
            let Some(device_row) = db.get(class, &device) else {
                continue;
            };
            let mut fields = device_row.fields.clone();
            for name in DEVICE_RUNTIME_FIELDS {
                fields.remove(name);
            }
            fields.insert("uuid".to_owned(), Value::String(record::new_uuid()));
            fields.insert("VM".to_owned(), Value::String(clone.clone()));
            fields.insert("metrics".to_owned(), Value::str(NULL_REF));
            let is_mac_generated = fields.get("MAC_autogenerated").and_then(Value::as_bool);
            if class == "VIF" && is_mac_generated == Some(true) {
                fields.insert("MAC".to_owned(), Value::String(random_mac()));
            }
            txn.ops.push(Op::Create {
                class: class.to_owned(),
                r#ref: record::new_ref(),
                fields: record::new_row(device_class, fields),
            });
        }
    }
    Ok((txn, clone))
}

/// A random locally administered unicast MAC address.
fn random_mac() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let first = (bytes[0] & 0xfe) | 0x02;
    let rest: Vec<String> = bytes[1..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{first:02x}:{}", rest.join(":"))
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
                let checked = require_operation(db, vm, "make_into_template")?;
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
    use super::*;
    use crate::testing::TestPool;

    fn s(text: &str) -> Value {
        Value::str(text)
    }

    fn template(pool: &TestPool) -> String {
        pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned()
    }

    fn control_domain(pool: &TestPool) -> String {
        pool.field("host", &pool.host, "control_domain")
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("dom0")
    }

    fn record(pairs: &[(&str, Value)]) -> Value {
        Value::Struct(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// Gives `vm` an empty CD drive and a NIC on the management network; returns their refs.
    async fn add_devices(pool: &TestPool, session: &str, vm: &str) -> (String, String) {
        let empty = Value::Struct(BTreeMap::new());
        let vbd = record(&[
            ("VM", s(vm)),
            ("VDI", s(NULL_REF)),
            ("userdevice", s("3")),
            ("bootable", Value::Bool(false)),
            ("mode", s("RO")),
            ("type", s("CD")),
            ("empty", Value::Bool(true)),
            ("other_config", empty.clone()),
            ("qos_algorithm_type", s("")),
            ("qos_algorithm_params", empty.clone()),
        ]);
        let vbd = pool
            .call_as(session, "VBD.create", vec![vbd])
            .await
            .expect("a VBD");
        let network = pool.refs("network").remove(0);
        let vif = record(&[
            ("device", s("0")),
            ("network", s(&network)),
            ("VM", s(vm)),
            ("MAC", s("")),
            ("MTU", Value::Int(1500)),
            ("other_config", empty.clone()),
            ("qos_algorithm_type", s("")),
            ("qos_algorithm_params", empty),
            ("locking_mode", s("network_default")),
        ]);
        let vif = pool
            .call_as(session, "VIF.create", vec![vif])
            .await
            .expect("a VIF");
        let text = |v: Value| v.as_str().expect("a ref").to_owned();
        (text(vbd), text(vif))
    }

    /// Cloning a template gives a new template (not a default one) under the new name, with
    /// its own metrics and copies of the devices pointing at the same disks and networks.
    #[tokio::test]
    async fn clone_of_a_template_is_a_new_template_with_copied_devices() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let template = template(&pool);
        let (vbd, vif) = add_devices(&pool, &session, &template).await;
        let clone = pool
            .call_as(&session, "VM.clone", vec![s(&template), s("my vm")])
            .await
            .expect("cloned");
        let clone = clone.as_str().expect("a ref").to_owned();
        let db = pool.read();
        let (source, copy) = (
            db.get("VM", &template).expect("kept"),
            db.get("VM", &clone).expect("new"),
        );
        assert_eq!(copy.str("name_label"), "my vm");
        assert_eq!(copy.get("is_a_template"), Some(&Value::Bool(true)));
        assert_eq!(copy.get("is_default_template"), Some(&Value::Bool(false)));
        assert_ne!(copy.str("uuid"), source.str("uuid"));
        assert_ne!(copy.str("metrics"), source.str("metrics"));
        assert!(db.get("VM_metrics", copy.str("metrics")).is_some());
        assert_eq!(
            copy.get("memory_static_max"),
            source.get("memory_static_max")
        );
        let other_config = copy
            .get("other_config")
            .and_then(Value::as_struct)
            .expect("a map");
        assert!(!other_config.contains_key("default_template"));
        let vbds = ref_set(copy, "VBDs");
        let vifs = ref_set(copy, "VIFs");
        assert_eq!((vbds.len(), vifs.len()), (1, 1));
        assert!(!vbds.contains(&vbd) && !vifs.contains(&vif));
        let vbd_copy = db.get("VBD", &vbds[0]).expect("VBD copy");
        assert_eq!(vbd_copy.str("VM"), clone);
        assert_eq!(
            vbd_copy.str("VDI"),
            db.get("VBD", &vbd).expect("VBD").str("VDI")
        );
        assert_eq!(vbd_copy.str("userdevice"), "3");
        let vif_copy = db.get("VIF", &vifs[0]).expect("VIF copy");
        assert_eq!(
            vif_copy.str("network"),
            db.get("VIF", &vif).expect("VIF").str("network")
        );
        assert_eq!(ref_set(source, "VBDs"), [vbd]);
        drop(db);
        assert_eq!(pool.allowed("VBD", &vbds[0]), ["attach", "insert"]);
        assert_eq!(pool.allowed("VIF", &vifs[0]), ["attach"]);
        let mut template_operations = pool.allowed("VM", &template);
        template_operations.push("destroy".to_owned());
        template_operations.push("migrate_send".to_owned());
        template_operations.sort();
        assert_eq!(pool.allowed("VM", &clone), template_operations);
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
        let bad = |expected: &[&str]| Err(xenapi::vm_bad_power_state(&dom0, expected, "Running"));
        let reply = pool
            .call_as(&session, "VM.clone", vec![s(&dom0), s("x")])
            .await;
        assert_eq!(reply, bad(&["Halted"]));
        let reply = pool.call_as(&session, "VM.destroy", vec![s(&dom0)]).await;
        assert_eq!(reply, bad(&["Halted", "Suspended"]));
        let reply = pool
            .call_as(
                &session,
                "VM.set_is_a_template",
                vec![s(&dom0), Value::Bool(true)],
            )
            .await;
        assert_eq!(reply, bad(&["Halted"]));
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
            Err(xenapi::vm_cannot_delete_default_template(&template))
        );
        let clone = pool
            .call_as(&session, "VM.clone", vec![s(&template), s("doomed")])
            .await
            .expect("cloned");
        let clone = clone.as_str().expect("a ref").to_owned();
        let (vbd, vif) = add_devices(&pool, &session, &clone).await;
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
