//! A VM's copies, as xapi's `Xapi_vm_clone` makes them: `clone` (disks cloned in their SR),
//! `copy` (disks copied to an SR) and, for `snapshot.rs`, snapshots (disks snapshotted; the
//! new VM is a snapshot of the original, which becomes its child). The storage drivers make
//! the new disks' volumes first (`storage/volumes.rs`), then one Txn records the new VDIs
//! (`storage/vdi_copies.rs`), the new VM with its own metrics, and copies of its VBDs and
//! VIFs; if a volume or the Txn fails, the volumes made are destroyed again. CD drives keep
//! their disk and empty drives stay empty.

use std::collections::BTreeMap;

use crate::storage::volumes::Made;
use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{NEVER, NULL_REF, Value, errors};
use db_schema::Op;

use super::records::create_metrics;
use crate::call::ctx::{Args, Ctx};
use crate::db::record;
use crate::error::Error;
use crate::handlers::vif::random_mac;
use crate::storage::vdi_copies::{DiskOp, copy_vdi};
use crate::storage::volumes;
use crate::vm::operations::{self, Draft, Fields, Overlay};
use crate::vm::power_state::{NO_DOMID, power_state_of};

/// Which copy is made.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind<'a> {
    Clone,
    /// To `sr`, or to the SR of each disk when `None`.
    Copy {
        sr: Option<&'a str>,
    },
    /// Without the VBDs of the disks listed.
    Snapshot {
        ignore_vdis: &'a [String],
    },
}

impl<'a> Kind<'a> {
    fn operation(self) -> VmOperation {
        match self {
            Kind::Clone => VmOperation::Clone,
            Kind::Copy { .. } => VmOperation::Copy,
            Kind::Snapshot { .. } => VmOperation::Snapshot,
        }
    }

    fn is_snapshot(self) -> bool {
        matches!(self, Kind::Snapshot { .. })
    }

    /// How each disk of the copy is made from the original's (a copy to each disk's own SR
    /// is a clone there).
    fn disk_op(self) -> DiskOp<'a> {
        match self {
            Kind::Snapshot { .. } => DiskOp::Snapshot,
            Kind::Copy { sr: Some(sr) } => DiskOp::Copy { sr },
            Kind::Copy { sr: None } | Kind::Clone => DiskOp::Clone,
        }
    }
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

/// `other_config` keys a copy leaves out (xapi's `default_template` and `xensource_internal`).
const NOT_COPIED_KEYS: [&str; 2] = ["default_template", "xensource_internal"];

/// `VM.clone`: a Halted VM or template (Suspended too for snapshots, or when the pool allows
/// it) copied under a new name, its disks cloned in their SR. A suspended VM's clone starts
/// Halted, without the suspend image (oxapi has no storage to clone a memory image in yet).
pub(in crate::handlers) async fn clone(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, new_name) = (args.str("vm")?, args.str("new_name")?);
    copy_as(&ctx, vm, new_name, Kind::Clone).await
}

/// `VM.copy`: as `clone`, but each disk is a full copy in `sr` (`NULL`: the disk's own SR).
pub(in crate::handlers) async fn copy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, new_name, sr) = (args.str("vm")?, args.str("new_name")?, args.str("sr")?);
    let sr = (sr != NULL_REF).then_some(sr);
    copy_as(&ctx, vm, new_name, Kind::Copy { sr }).await
}

/// Makes the copy of `vm` that `kind` says: the volumes of its new disks, then one Txn;
/// answers its ref.
pub(super) async fn copy_as(
    ctx: &Ctx,
    vm: &str,
    new_name: &str,
    kind: Kind<'_>,
) -> Result<Value, Error> {
    let disks = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        operations::check(&view, vm, kind.operation())?;
        copied_disks(&view, vm, kind)
    };
    let made = volumes::copy_all(ctx, disks, kind.disk_op()).await?;
    let now = ctx.now();
    let commit = ctx.master.decide(|db| {
        let mut draft = Draft::new(db);
        let r = copy_vm(&mut draft, vm, new_name, kind, now, &made)?;
        Ok((draft.into_txn(), r))
    });
    let (r, _) = volumes::commit_or_undo(ctx, made.values(), commit).await?;
    tracing::debug!(vm = %vm, new = %r, operation = %kind.operation(), "VM copied");
    Ok(Value::String(r))
}

/// Adds to `draft` the copy of `vm` that `kind` says, named `new_name`, its new disks on the
/// volumes in `volumes` (by the original disk); returns its ref.
fn copy_vm(
    draft: &mut Draft,
    vm: &str,
    new_name: &str,
    kind: Kind<'_>,
    now: i64,
    volumes: &BTreeMap<String, Made>,
) -> Result<String, Error> {
    operations::check(draft.view(), vm, kind.operation())?;
    for field in ["power_state", "current_operations", "VBDs", "VIFs"] {
        draft.require_unchanged("VM", vm, field);
    }
    let source = draft.view().row("VM", vm).cloned().unwrap_or_default();
    let disks = copy_disks(draft, vm, kind, now, volumes)?;
    let (metrics, metrics_op) = create_metrics(now)?;
    draft.push(metrics_op);
    let fields = vm_fields(vm, source, new_name, kind, metrics, now);
    let copy = record::new_ref();
    draft.push(Op::Create {
        class: "VM".to_owned(),
        r#ref: copy.clone(),
        fields: record::new_row(record::class("VM")?, fields),
    });
    for (vbd, vdi) in disks {
        let mut fields = device_fields("VBD", vbd, &copy);
        let was_empty = fields.get("empty").and_then(Value::as_bool) == Some(true);
        fields.insert(
            "empty".to_owned(),
            Value::Bool(was_empty || vdi == NULL_REF),
        );
        fields.insert("VDI".to_owned(), Value::String(vdi));
        // xapi's CA-58405: the copy owns its disks, so they go with it.
        let is_disk = fields.get("type").and_then(Value::as_str) == Some("Disk");
        if let Some(Value::Struct(other_config)) = fields.get_mut("other_config")
            && is_disk
        {
            other_config
                .entry("owner".to_owned())
                .or_insert_with(|| Value::str(""));
        }
        create_device(draft, "VBD", fields)?;
    }
    for vif in draft.view().children("VIF", "VM", vm) {
        draft.require_exists("VIF", &vif);
        let mut fields = device_fields("VIF", draft.view().row("VIF", &vif).cloned(), &copy);
        // A snapshot keeps the MACs; other copies get new ones, as xapi's do.
        if !kind.is_snapshot() {
            fields.insert("MAC".to_owned(), Value::String(random_mac()));
            fields.insert("MAC_autogenerated".to_owned(), Value::Bool(true));
        }
        create_device(draft, "VIF", fields)?;
    }
    if kind.is_snapshot() {
        draft.set("VM", vm, "parent", Value::str(copy.as_str()));
    }
    Ok(copy)
}

/// The disks of `vm` that a copy of kind `kind` makes anew: those of its VBDs but CD drives,
/// empty drives and the disks a snapshot ignores.
fn copied_disks(view: &Overlay, vm: &str, kind: Kind<'_>) -> Vec<String> {
    view.children("VBD", "VM", vm)
        .iter()
        .filter(|vbd| copies_disk(view, vbd, kind))
        .map(|vbd| view.str("VBD", vbd, "VDI").to_owned())
        .collect()
}

/// Whether a copy of kind `kind` makes the disk of `vbd` anew.
fn copies_disk(view: &Overlay, vbd: &str, kind: Kind<'_>) -> bool {
    let vdi = view.str("VBD", vbd, "VDI");
    let is_ignored =
        matches!(kind, Kind::Snapshot { ignore_vdis } if ignore_vdis.iter().any(|v| v == vdi));
    let is_empty = view.bool("VBD", vbd, "empty") || !view.exists("VDI", vdi);
    !is_ignored && !is_empty && view.str("VBD", vbd, "type") != "CD"
}

/// The disks of the copy: for each VBD copied (as the replica has it), the VDI its copy
/// points at. Disks are copied as `kind` says, on the volume `volumes` has for each, once
/// each (two VBDs of one disk have the same copy); CD drives keep theirs.
fn copy_disks(
    draft: &mut Draft,
    vm: &str,
    kind: Kind<'_>,
    now: i64,
    volumes: &BTreeMap<String, Made>,
) -> Result<Vec<(Option<Fields>, String)>, Error> {
    let mut disks = Vec::new();
    let mut copies: BTreeMap<String, String> = BTreeMap::new();
    for vbd in draft.view().children("VBD", "VM", vm) {
        let view = draft.view();
        let vdi = view.str("VBD", &vbd, "VDI").to_owned();
        if let Kind::Snapshot { ignore_vdis } = kind
            && ignore_vdis.contains(&vdi)
        {
            continue;
        }
        draft.require_exists("VBD", &vbd);
        for field in ["VDI", "empty"] {
            draft.require_unchanged("VBD", &vbd, field);
        }
        let view = draft.view();
        let row = view.row("VBD", &vbd).cloned();
        let is_empty = view.bool("VBD", &vbd, "empty") || !view.exists("VDI", &vdi);
        let new_vdi = if !copies_disk(view, &vbd, kind) {
            if is_empty { NULL_REF.to_owned() } else { vdi }
        } else if let Some(copy) = copies.get(&vdi) {
            copy.clone()
        } else {
            // The disks changed since their volumes were made: another call won the race.
            let made = volumes.get(&vdi).ok_or_else(|| {
                errors::operation_not_allowed("the VM's disks changed during the copy")
            })?;
            let copy = copy_vdi(draft, &vdi, kind.disk_op(), now, made)?;
            copies.insert(vdi, copy.clone());
            copy
        };
        disks.push((row, new_vdi));
    }
    Ok(disks)
}

/// The fields of the copy of a VBD or VIF row for the VM `vm`.
pub(super) fn device_fields(class: &str, row: Option<Fields>, vm: &str) -> Fields {
    let mut fields = row.unwrap_or_default();
    for name in DEVICE_RUNTIME_FIELDS {
        fields.remove(name);
    }
    fields.insert("uuid".to_owned(), Value::String(record::new_uuid()));
    fields.insert("VM".to_owned(), Value::str(vm));
    if class == "VBD" {
        fields.insert("device".to_owned(), Value::str(""));
    }
    fields
}

/// Adds a VBD or VIF row with `fields` (defaults for the others).
pub(super) fn create_device(
    draft: &mut Draft,
    class: &'static str,
    fields: Fields,
) -> Result<(), Error> {
    draft.push(Op::Create {
        class: class.to_owned(),
        r#ref: record::new_ref(),
        fields: record::new_row(record::class(class)?, fields),
    });
    Ok(())
}

/// The fields of the copy of the VM `vm` (whose row is `source`), as xapi's `copy_vm_record`
/// writes them.
fn vm_fields(
    vm: &str,
    source: Fields,
    new_name: &str,
    kind: Kind<'_>,
    metrics: String,
    now: i64,
) -> Fields {
    let text = |name: &str| source.get(name).and_then(Value::as_str).unwrap_or("");
    let is_template = source.get("is_a_template").and_then(Value::as_bool) == Some(true);
    let is_snapshot = kind.is_snapshot();
    let mut other_config: BTreeMap<String, Value> = source
        .get("other_config")
        .and_then(Value::as_struct)
        .cloned()
        .unwrap_or_default();
    for key in NOT_COPIED_KEYS {
        other_config.remove(key);
    }
    if !is_snapshot {
        other_config.insert("mac_seed".to_owned(), Value::String(record::new_uuid()));
    }
    if is_template {
        other_config
            .entry("base_template_name".to_owned())
            .or_insert_with(|| Value::str(text("name_label")));
    }
    let snapshot_info: BTreeMap<String, Value> = if is_snapshot {
        BTreeMap::from([
            (
                "power-state-at-snapshot".to_owned(),
                Value::from(power_state_of(&source)),
            ),
            (
                "disk-snapshot-type".to_owned(),
                Value::str("crash_consistent"),
            ),
        ])
    } else {
        BTreeMap::new()
    };
    let (snapshot_of, snapshot_time, parent) = if is_snapshot {
        (
            vm,
            api_spec::datetime::format_unix(now),
            text("parent").to_owned(),
        )
    } else {
        (NULL_REF, NEVER.to_owned(), NULL_REF.to_owned())
    };
    let null = || Value::str(NULL_REF);
    let none = || Value::Struct(BTreeMap::new());
    let fresh = [
        ("uuid", Value::String(record::new_uuid())),
        ("name_label", Value::str(new_name)),
        ("power_state", Value::from(VmPowerState::Halted)),
        ("allowed_operations", Value::Array(Vec::new())),
        ("current_operations", none()),
        ("blocked_operations", none()),
        ("is_a_template", Value::Bool(is_snapshot || is_template)),
        ("is_default_template", Value::Bool(false)),
        ("is_a_snapshot", Value::Bool(is_snapshot)),
        ("snapshot_of", Value::str(snapshot_of)),
        ("snapshot_time", Value::DateTime(snapshot_time)),
        ("snapshot_info", Value::Struct(snapshot_info)),
        ("snapshot_metadata", Value::str("")),
        ("transportable_snapshot_id", Value::str("")),
        ("parent", Value::String(parent)),
        ("resident_on", null()),
        ("scheduled_to_be_resident_on", null()),
        ("suspend_VDI", null()),
        ("domid", Value::Int(NO_DOMID)),
        ("domarch", Value::str("")),
        ("metrics", Value::String(metrics)),
        ("guest_metrics", null()),
        ("blobs", none()),
        ("ha_always_run", Value::Bool(false)),
        ("protection_policy", null()),
        ("is_vmss_snapshot", Value::Bool(false)),
        ("snapshot_schedule", null()),
        ("appliance", null()),
        ("start_delay", Value::Int(0)),
        ("shutdown_delay", Value::Int(0)),
        ("order", Value::Int(0)),
        ("suspend_SR", null()),
        ("version", Value::Int(0)),
        ("requires_reboot", Value::Bool(false)),
        ("other_config", Value::Struct(other_config)),
    ];
    let mut fields = source;
    for (name, value) in fresh {
        fields.insert(name.to_owned(), value);
    }
    fields
}

#[cfg(test)]
mod tests {
    use api_spec::errors;

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    fn template(pool: &TestPool) -> String {
        pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned()
    }

    fn answer(reply: Result<Value, api_spec::ApiError>) -> String {
        reply.expect("a new VM").as_str().expect("a ref").to_owned()
    }

    /// Cloning a template gives a new template (not a default one) under the new name, with
    /// its own metrics, a new MAC seed, and copies of the devices pointing at the same
    /// networks and CDs.
    #[tokio::test]
    async fn clone_of_a_template_is_a_new_template_with_copied_devices() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let template = template(&pool);
        let vbd = pool.add_cd(&session, &template, "3").await;
        let vif = pool.add_nic(&session, &template, "0").await;
        let clone = answer(
            pool.call_as(&session, "VM.clone", vec![s(&template), s("my vm")])
                .await,
        );
        let text = |r: &str, field| pool.text("VM", r, field);
        assert_eq!(text(&clone, "name_label"), "my vm");
        assert_eq!(
            pool.field("VM", &clone, "is_a_template"),
            Some(Value::Bool(true))
        );
        assert_eq!(
            pool.field("VM", &clone, "is_default_template"),
            Some(Value::Bool(false))
        );
        assert_ne!(text(&clone, "uuid"), text(&template, "uuid"));
        assert_ne!(text(&clone, "metrics"), text(&template, "metrics"));
        assert!(
            pool.read()
                .get("VM_metrics", &text(&clone, "metrics"))
                .is_some()
        );
        assert_eq!(
            pool.field("VM", &clone, "memory_static_max"),
            pool.field("VM", &template, "memory_static_max")
        );
        let other_config = pool.field("VM", &clone, "other_config").expect("a map");
        let other_config = other_config.as_struct().expect("a map");
        assert!(!other_config.contains_key("default_template"));
        assert!(other_config.contains_key("mac_seed"));
        assert_eq!(
            other_config.get("base_template_name"),
            Some(&s("Debian Bookworm 12"))
        );
        let (vbds, vifs) = (
            pool.ref_list("VM", &clone, "VBDs"),
            pool.ref_list("VM", &clone, "VIFs"),
        );
        assert_eq!((vbds.len(), vifs.len()), (1, 1));
        assert!(!vbds.contains(&vbd) && !vifs.contains(&vif));
        assert_eq!(pool.text("VBD", &vbds[0], "VM"), clone);
        assert_eq!(pool.text("VBD", &vbds[0], "VDI"), NULL_REF);
        assert_eq!(pool.text("VBD", &vbds[0], "userdevice"), "3");
        assert_eq!(
            pool.text("VIF", &vifs[0], "network"),
            pool.text("VIF", &vif, "network")
        );
        assert_ne!(
            pool.text("VIF", &vifs[0], "MAC"),
            pool.text("VIF", &vif, "MAC")
        );
        assert_eq!(pool.ref_list("VM", &template, "VBDs"), [vbd]);
        assert_eq!(pool.allowed("VBD", &vbds[0]), ["attach", "insert"]);
        assert_eq!(pool.allowed("VIF", &vifs[0]), ["attach"]);
        let mut template_operations = pool.allowed("VM", &template);
        template_operations.push("destroy".to_owned());
        template_operations.push("migrate_send".to_owned());
        template_operations.sort();
        assert_eq!(pool.allowed("VM", &clone), template_operations);
    }

    /// A clone and a copy get disks of their own (the copy's in the SR asked for, or the
    /// disk's own SR for NULL) with new locations and the same size; the CD drive stays
    /// empty.
    #[tokio::test]
    async fn clones_and_copies_get_disks_of_their_own() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, vdi) = pool.vm_with_devices(&session).await;
        let other_sr = pool.refs("SR").remove(0);
        let clone = answer(
            pool.call_as(&session, "VM.clone", vec![s(&vm), s("clone")])
                .await,
        );
        let copy = answer(
            pool.call_as(&session, "VM.copy", vec![s(&vm), s("copy"), s(NULL_REF)])
                .await,
        );
        let copy_to = answer(
            pool.call_as(&session, "VM.copy", vec![s(&vm), s("copy2"), s(&other_sr)])
                .await,
        );
        for new in [&clone, &copy, &copy_to] {
            assert_eq!(pool.text("VM", new, "power_state"), "Halted");
            assert_eq!(
                pool.field("VM", new, "is_a_template"),
                Some(Value::Bool(false))
            );
            let vbds = pool.ref_list("VM", new, "VBDs");
            assert_eq!(vbds.len(), 2);
            let disk = vbds
                .iter()
                .find(|vbd| pool.text("VBD", vbd, "type") == "Disk")
                .expect("a disk");
            let new_vdi = pool.text("VBD", disk, "VDI");
            assert_ne!(new_vdi, vdi);
            let location = pool.text("VDI", &new_vdi, "location");
            let sr_uuid = pool.text("SR", &other_sr, "uuid");
            assert!(
                pool.agent
                    .vdis(&sr_uuid)
                    .iter()
                    .any(|v| v.location == location),
                "the driver made the volume at {location}"
            );
            assert_eq!(
                pool.field("VDI", &new_vdi, "virtual_size"),
                Some(Value::Int(1 << 30))
            );
            assert_eq!(pool.text("VDI", &new_vdi, "SR"), other_sr);
            assert_eq!(
                pool.field("VDI", &new_vdi, "is_a_snapshot"),
                Some(Value::Bool(false))
            );
        }
        let reply = pool
            .call_as(
                &session,
                "VM.copy",
                vec![s(&vm), s("x"), s("OpaqueRef:nowhere")],
            )
            .await;
        assert_eq!(
            reply,
            Err(errors::handle_invalid("SR", "OpaqueRef:nowhere"))
        );
    }

    /// A running VM is not copied (`VM_BAD_POWER_STATE`), nor to an SR that does not exist.
    #[tokio::test]
    async fn copies_are_refused_as_xapi_refuses_them() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let reply = pool
            .call_as(&session, "VM.copy", vec![s(&vm), s("x"), s(NULL_REF)])
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Halted],
                VmPowerState::Running
            ))
        );
    }
}
