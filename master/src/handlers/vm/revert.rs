//! `VM.revert`: a VM brought back to one of its snapshots, as xapi's `Xapi_vm_snapshot.revert`
//! does it. A VM with a domain (or a suspend image) is shut down hard first; the storage
//! drivers clone the snapshot's disks; then one Txn gives the VM those clones (its own disks
//! that the snapshot has copies of go, and the other snapshots of those disks now point at the
//! clones), copies of the snapshot's VBDs and VIFs (MACs kept) instead of its own, and the
//! snapshot's settings. It ends Halted, and the volumes of the disks that went are deleted.

use std::collections::BTreeMap;

use crate::storage::volumes::Made;
use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{NULL_REF, Value, errors};

use super::copies::{create_device, device_fields};
use super::shutdown::hard_shutdown_vm;
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record;
use crate::error::{Error, xenapi};
use crate::storage::vdi_copies::{DiskOp, copy_vdi};
use crate::storage::volumes::{self, Volume};
use crate::vm::operations::{self, Draft};
use crate::vm::power_state::{drop_suspend_image, power_state, set_stopped};

/// Fields of the VM that a revert keeps (xapi's `do_not_copy` for a snapshot without
/// metadata), besides the many ends of relations and the VM's own metrics rows.
const KEPT_FIELDS: &[&str] = &[
    "uuid",
    "name_label",
    "is_a_snapshot",
    "is_a_template",
    "is_default_template",
    "snapshot_of",
    "snapshot_time",
    "snapshot_info",
    "snapshot_metadata",
    "transportable_snapshot_id",
    "suspend_VDI",
    "power_state",
    "parent",
    "current_operations",
    "allowed_operations",
    "metrics",
    "guest_metrics",
    "resident_on",
    "domid",
    "protection_policy",
    "snapshot_schedule",
    "scheduled_to_be_resident_on",
    "tags",
    "affinity",
];

/// `VM.revert`: reverts the VM the snapshot is of (`ONLY_REVERT_SNAPSHOT` for a VM that is
/// not a snapshot; `VM_REVERT_FAILED [vm; snapshot]` when that VM no longer exists).
pub(in crate::handlers) async fn revert(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let snapshot = args.str("snapshot")?;
    let (vm, is_stopped) = {
        let db = ctx.db();
        let view = operations::Overlay::new(&db);
        operations::check(&view, snapshot, VmOperation::Revert)?;
        let vm = view.str("VM", snapshot, "snapshot_of").to_owned();
        if !view.exists("VM", &vm) {
            return Err(errors::vm_revert_failed(&vm, snapshot).into());
        }
        let is_stopped = power_state(&view, &vm) == VmPowerState::Halted;
        (vm, is_stopped)
    };
    if !is_stopped {
        tracing::info!(vm = %vm, "reverting a VM that is not halted: shutting it down first");
        hard_shutdown_vm(&ctx, &vm).await?;
    }
    let disks: Vec<String> = {
        let db = ctx.db();
        let view = operations::Overlay::new(&db);
        view.children("VBD", "VM", snapshot)
            .iter()
            .filter(|vbd| view.str("VBD", vbd, "type") == "Disk")
            .map(|vbd| view.str("VBD", vbd, "VDI").to_owned())
            .filter(|vdi| view.exists("VDI", vdi))
            .collect()
    };
    let clones = volumes::copy_all(&ctx, disks, DiskOp::Clone).await?;
    let now = ctx.now();
    let commit = ctx.master.decide(|db| {
        let mut draft = Draft::new(db);
        let gone = revert_txn(&mut draft, snapshot, &vm, now, &clones)?;
        Ok((draft.into_txn(), gone))
    });
    let (gone, _) = volumes::commit_or_undo(&ctx, clones.values(), commit).await?;
    for volume in &gone {
        volumes::forget(&ctx, volume).await;
    }
    tracing::info!(vm = %vm, snapshot = %snapshot, "VM reverted");
    Ok(void())
}

/// Adds the revert of `vm` to `snapshot` to `draft`, the snapshot's disks cloned on the
/// volumes of `clones` (by the snapshot's disk); returns the volumes of the VM's disks that go.
fn revert_txn(
    draft: &mut Draft,
    snapshot: &str,
    vm: &str,
    now: i64,
    clones: &BTreeMap<String, Made>,
) -> Result<Vec<Volume>, Error> {
    let view = draft.view();
    operations::check(view, snapshot, VmOperation::Revert)?;
    if !view.exists("VM", vm) || view.str("VM", snapshot, "snapshot_of") != vm {
        return Err(errors::vm_revert_failed(vm, snapshot).into());
    }
    let actual = power_state(view, vm);
    if actual != VmPowerState::Halted {
        return Err(xenapi::vm_bad_power_state(vm, &[VmPowerState::Halted], actual).into());
    }
    operations::check(view, vm, VmOperation::Reverting)?;
    for field in [
        "power_state",
        "current_operations",
        "VBDs",
        "VIFs",
        "suspend_VDI",
    ] {
        draft.require_unchanged("VM", vm, field);
    }
    for field in ["snapshot_of", "VBDs", "VIFs"] {
        draft.require_unchanged("VM", snapshot, field);
    }
    let gone = replace_disks(draft, snapshot, vm, now, clones)?;
    for vif in draft.view().children("VIF", "VM", vm) {
        draft.destroy("VIF", &vif);
    }
    for vif in draft.view().children("VIF", "VM", snapshot) {
        let row = draft.view().row("VIF", &vif).cloned();
        create_device(draft, "VIF", device_fields("VIF", row, vm))?;
    }
    copy_settings(draft, snapshot, vm)?;
    let guest_metrics = draft.view().str("VM", vm, "guest_metrics").to_owned();
    draft.destroy("VM_guest_metrics", &guest_metrics);
    draft.update("VM", vm, "guest_metrics", Value::str(NULL_REF));
    draft.update("VM", vm, "parent", Value::str(snapshot));
    let mut gone = gone;
    gone.extend(drop_suspend_image(draft, vm));
    set_stopped(draft, vm, VmPowerState::Halted, now);
    Ok(gone)
}

/// Gives `vm` clones of the snapshot's disks (CD drives keep their disk) on the volumes of
/// `clones`, in VBDs copied from the snapshot's, instead of its own VBDs; its disks the
/// snapshot has copies of go, and their volumes are returned.
fn replace_disks(
    draft: &mut Draft,
    snapshot: &str,
    vm: &str,
    now: i64,
    clones: &BTreeMap<String, Made>,
) -> Result<Vec<Volume>, Error> {
    let snapshot_vbds = draft.view().children("VBD", "VM", snapshot);
    let originals: Vec<String> = snapshot_vbds
        .iter()
        .filter(|vbd| draft.view().str("VBD", vbd, "type") == "Disk")
        .map(|vbd| draft.view().str("VBD", vbd, "VDI"))
        .map(|vdi| draft.view().str("VDI", vdi, "snapshot_of").to_owned())
        .collect();
    let own_disks: Vec<String> = draft
        .view()
        .children("VBD", "VM", vm)
        .iter()
        .map(|vbd| draft.view().str("VBD", vbd, "VDI").to_owned())
        .collect();
    for vbd in draft.view().children("VBD", "VM", vm) {
        draft.destroy("VBD", &vbd);
    }
    let mut gone = Vec::new();
    for vdi in own_disks.iter().filter(|vdi| originals.contains(vdi)) {
        // A disk another VM still uses stays.
        if draft.view().children("VBD", "VDI", vdi).is_empty() {
            match volumes::volume_of(draft.view(), vdi) {
                Ok(volume) => gone.push(volume),
                Err(error) => tracing::warn!(
                    vdi = %vdi,
                    error = %crate::error::to_api_error(error),
                    "the volume of a reverted disk is left: its SR is attached nowhere"
                ),
            }
            draft.destroy("VDI", vdi);
        }
    }
    for vbd in snapshot_vbds {
        let row = draft.view().row("VBD", &vbd).cloned();
        let view = draft.view();
        let vdi = view.str("VBD", &vbd, "VDI").to_owned();
        let is_disk = view.str("VBD", &vbd, "type") == "Disk";
        let new_vdi = if is_disk && view.exists("VDI", &vdi) {
            let original = view.str("VDI", &vdi, "snapshot_of").to_owned();
            // The snapshot's disks changed since their clones were made.
            let made = clones.get(&vdi).ok_or_else(|| {
                errors::operation_not_allowed("the snapshot's disks changed during the revert")
            })?;
            let clone = copy_vdi(draft, &vdi, DiskOp::Clone, now, made)?;
            repoint_snapshots(draft, &original, &clone);
            clone
        } else {
            vdi
        };
        let mut fields = device_fields("VBD", row, vm);
        fields.insert("VDI".to_owned(), Value::String(new_vdi));
        create_device(draft, "VBD", fields)?;
    }
    Ok(gone)
}

/// Makes every snapshot of `original` a snapshot of `clone`, the disk that replaces it.
fn repoint_snapshots(draft: &mut Draft, original: &str, clone: &str) {
    if original == NULL_REF {
        return;
    }
    for snapshot in draft.view().children("VDI", "snapshot_of", original) {
        draft.set("VDI", &snapshot, "snapshot_of", Value::str(clone));
    }
}

/// Copies the snapshot's settings to `vm`, but for `KEPT_FIELDS` and the many ends of
/// relations.
fn copy_settings(draft: &mut Draft, snapshot: &str, vm: &str) -> Result<(), Error> {
    let class = record::class("VM")?;
    let settings: BTreeMap<String, Value> = draft
        .view()
        .row("VM", snapshot)
        .cloned()
        .unwrap_or_default();
    for field in class.fields {
        let name = field.name;
        if KEPT_FIELDS.contains(&name) || record::is_many_end("VM", name) {
            continue;
        }
        if let Some(value) = settings.get(name) {
            draft.update("VM", vm, name, value.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{ActionKind, HALTED_OPERATIONS, TestPool, s};

    /// A VM with a disk, snapshotted, then changed (renamed description, more VCPUs, a new
    /// NIC); returns the VM, its disk and the snapshot.
    async fn snapshotted(pool: &TestPool, session: &str) -> (String, String, String) {
        let vm = pool.new_vm(session, "web").await;
        let (_, vdi) = pool.add_disk(session, &vm, "0").await;
        let snap = pool.snapshot(session, &vm, "before").await;
        pool.call_as(
            session,
            "VM.set_name_description",
            vec![s(&vm), s("changed")],
        )
        .await
        .expect("set");
        pool.call_as(session, "VM.set_VCPUs_max", vec![s(&vm), Value::Int(2)])
            .await
            .expect("set");
        pool.add_nic(session, &vm, "1").await;
        (vm, vdi, snap)
    }

    /// A revert gives the VM a clone of the snapshot's disk (its own goes, and the snapshot's
    /// disk is now a snapshot of the clone), the snapshot's devices and settings, and the
    /// snapshot as parent; the VM keeps its name, uuid and snapshots.
    #[tokio::test]
    async fn revert_brings_back_the_snapshots_disks_and_settings() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, vdi, snap) = snapshotted(&pool, &session).await;
        let uuid = pool.text("VM", &vm, "uuid");
        let reply = pool.call_as(&session, "VM.revert", vec![s(&snap)]).await;
        assert_eq!(reply, Ok(s("")));
        assert!(pool.read().get("VDI", &vdi).is_none());
        let vbds = pool.ref_list("VM", &vm, "VBDs");
        assert_eq!(vbds.len(), 1);
        let disk = pool.text("VBD", &vbds[0], "VDI");
        let snap_disk = pool.text("VBD", &pool.ref_list("VM", &snap, "VBDs")[0], "VDI");
        assert_ne!(disk, snap_disk);
        assert_eq!(pool.text("VDI", &snap_disk, "snapshot_of"), disk);
        assert_eq!(
            pool.field("VDI", &disk, "is_a_snapshot"),
            Some(Value::Bool(false))
        );
        assert!(pool.ref_list("VM", &vm, "VIFs").is_empty());
        assert_eq!(
            pool.text("VM", &vm, "name_description"),
            pool.text("VM", &snap, "name_description")
        );
        assert_ne!(pool.text("VM", &vm, "name_description"), "changed");
        assert_eq!(pool.field("VM", &vm, "VCPUs_max"), Some(Value::Int(1)));
        assert_eq!(pool.text("VM", &vm, "name_label"), "web");
        assert_eq!(pool.text("VM", &vm, "uuid"), uuid);
        assert_eq!(pool.text("VM", &vm, "parent"), snap);
        assert_eq!(
            pool.ref_list("VM", &vm, "snapshots"),
            std::slice::from_ref(&snap)
        );
        assert_eq!(
            pool.field("VM", &vm, "is_a_snapshot"),
            Some(Value::Bool(false))
        );
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
    }

    /// A running VM is shut down hard before it is reverted, then the snapshot's disk is
    /// cloned and the VM's own disk's volume deleted; it ends Halted.
    #[tokio::test]
    async fn a_running_vm_is_shut_down_before_the_revert() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, _, snap) = snapshotted(&pool, &session).await;
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        let reply = pool.call_as(&session, "VM.revert", vec![s(&snap)]).await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::CreateVdi,
                ActionKind::SnapshotVdi,
                ActionKind::Start,
                ActionKind::Shutdown,
                ActionKind::CloneVdi,
                ActionKind::DestroyVdi
            ]
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert!(pool.agent.domains().is_empty());
        assert!(pool.current("VM", &vm).is_empty());
    }

    /// Only a snapshot is reverted to (`ONLY_REVERT_SNAPSHOT`); a snapshot whose VM is gone
    /// gives `VM_REVERT_FAILED [vm; snapshot]`.
    #[tokio::test]
    async fn revert_needs_a_snapshot_of_a_live_vm() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, _, snap) = snapshotted(&pool, &session).await;
        let reply = pool.call_as(&session, "VM.revert", vec![s(&vm)]).await;
        assert_eq!(reply, Err(errors::only_revert_snapshot()));
        pool.call_as(&session, "VM.destroy", vec![s(&vm)])
            .await
            .expect("destroyed");
        let reply = pool.call_as(&session, "VM.revert", vec![s(&snap)]).await;
        assert_eq!(reply, Err(errors::vm_revert_failed(&vm, &snap)));
    }
}
