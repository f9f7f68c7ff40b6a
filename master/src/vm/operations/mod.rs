//! `allowed_operations` and `current_operations` of VMs, VBDs and VIFs.
//!
//! An operation begins by checking it may start (`vm.rs`, `devices.rs`: xapi's rules, in
//! xapi's order) and recording `current_operations[key] = op` in the same Txn, whose
//! preconditions hold what the check read: of two racing calls one applies and the other is
//! decided again and gets `OTHER_OPERATION_IN_PROGRESS`. It ends by removing its key. The key
//! is the task's ref for `Async.` calls and a fresh ref that names no task for sync calls, as
//! xapi's context tasks; `in_flight.rs` lists the keys of the operations this process runs.
//!
//! `allowed_operations` is never written by hand: `complete` recomputes it for every VM, VBD
//! and VIF a Txn touches (and for the devices of every VM it touches) from the DB as the Txn
//! leaves it (`overlay.rs`), and adds the preconditions that keep that computation true.
//! `Master::decide` and `Master::commit` run every Txn through it.

mod devices;
mod in_flight;
mod overlay;
mod vm;
mod vm_facts;

use std::collections::BTreeSet;

use api_spec::classes::vbd::VbdOperation;
use api_spec::classes::vif::VifOperation;
use api_spec::classes::vm::VmOperation;
use api_spec::{ApiError, Value, errors};
use db_schema::{Db, Op, Txn};

use crate::error::Error;
pub(crate) use devices::VBD_FACT_FIELDS;
pub(crate) use in_flight::{InFlight, InFlightGuard};
pub(crate) use overlay::{Draft, Fields, Overlay, field_equals};
pub(crate) use vm_facts::VmFacts;

/// An operation the master checks and records in `current_operations`: one of a VM, a VBD or
/// a VIF, whose class it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectOperation {
    Vm(VmOperation),
    Vbd(VbdOperation),
    Vif(VifOperation),
}

impl ObjectOperation {
    /// The class whose rows the operation runs on.
    pub fn class(self) -> &'static str {
        match self {
            ObjectOperation::Vm(_) => "VM",
            ObjectOperation::Vbd(_) => "VBD",
            ObjectOperation::Vif(_) => "VIF",
        }
    }

    /// The operation as spelled on the wire and in the DB.
    pub fn wire(self) -> &'static str {
        match self {
            ObjectOperation::Vm(op) => op.wire(),
            ObjectOperation::Vbd(op) => op.wire(),
            ObjectOperation::Vif(op) => op.wire(),
        }
    }
}

impl From<VmOperation> for ObjectOperation {
    fn from(op: VmOperation) -> Self {
        ObjectOperation::Vm(op)
    }
}

impl From<VbdOperation> for ObjectOperation {
    fn from(op: VbdOperation) -> Self {
        ObjectOperation::Vbd(op)
    }
}

impl From<VifOperation> for ObjectOperation {
    fn from(op: VifOperation) -> Self {
        ObjectOperation::Vif(op)
    }
}

/// The `current_operations` of a row as (key, operation), in key order, each operation read
/// with `parse` (its class's `from_wire`). The DB holds only declared operations.
pub(crate) fn current_operations<Op>(
    view: &Overlay,
    class: &str,
    r: &str,
    parse: impl Fn(&str) -> Option<Op>,
) -> Vec<(String, Op)> {
    view.field(class, r, "current_operations")
        .and_then(|v| v.as_struct())
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), parse(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `op` may start on the row `r` of its class now.
pub(crate) fn check(view: &Overlay, r: &str, op: impl Into<ObjectOperation>) -> Result<(), Error> {
    let op = op.into();
    let class = op.class();
    if !view.exists(class, r) {
        return Err(errors::handle_invalid(class, r).into());
    }
    let verdict: Result<(), ApiError> = match op {
        ObjectOperation::Vm(op) => match VmFacts::read(view, r) {
            Some(facts) => vm::check(&facts, op),
            None => Err(errors::handle_invalid(class, r)),
        },
        ObjectOperation::Vbd(op) => devices::check_vbd(view, r, op),
        ObjectOperation::Vif(op) => devices::check_vif(view, r, op),
    };
    Ok(verdict?)
}

/// Checks that `op` may start on `r` and records it under `key` in `current_operations`. The
/// Txn then requires the row's `current_operations` and (for a VM) `power_state`, and a
/// device's VM's, to be as read.
pub(crate) fn begin(
    draft: &mut Draft,
    r: &str,
    op: impl Into<ObjectOperation>,
    key: &str,
) -> Result<(), Error> {
    let op = op.into();
    let class = op.class();
    check(draft.view(), r, op)?;
    draft.require_unchanged(class, r, "current_operations");
    if class == "VM" {
        draft.require_unchanged(class, r, "power_state");
    } else {
        let vm = draft.view().str(class, r, "VM").to_owned();
        draft.require_unchanged("VM", &vm, "power_state");
        draft.require_unchanged("VM", &vm, "current_operations");
    }
    draft.map_put(class, r, "current_operations", key, Value::str(op.wire()));
    Ok(())
}

/// Removes `key` from the row's `current_operations` (nothing when it is not there).
pub(crate) fn end(draft: &mut Draft, class: &str, r: &str, key: &str) {
    if draft.view().exists(class, r) {
        draft.map_remove(class, r, "current_operations", key);
    }
}

/// The `allowed_operations` of a live VM, VBD or VIF in `view`.
fn allowed(view: &Overlay, class: &str, r: &str) -> Option<Vec<Value>> {
    fn values<Op: Into<Value>>(ops: Vec<Op>) -> Vec<Value> {
        ops.into_iter().map(Into::into).collect()
    }
    match class {
        "VM" => VmFacts::read(view, r).map(|facts| values(vm::allowed(&facts))),
        "VBD" if view.exists(class, r) => Some(values(devices::allowed_vbd(view, r))),
        "VIF" if view.exists(class, r) => Some(values(devices::allowed_vif(view, r))),
        _ => None,
    }
}

/// `txn` with `allowed_operations` set right on every VM, VBD and VIF it touches (and on the
/// VBDs and VIFs of every VM it touches), as the DB will be after it, and with preconditions
/// on the fields that computation read from the replica; and with the `virtual_allocation` of
/// the SRs whose disks it changes (`storage::allocation`).
pub(crate) fn complete(db: &Db, txn: Txn) -> Txn {
    let mut draft = Draft::new(db);
    let Txn { preconditions, ops } = txn;
    for precondition in preconditions {
        draft.precondition(precondition);
    }
    let mut measured = BTreeSet::new();
    for op in ops {
        if let Op::Set {
            class,
            r#ref,
            field,
            ..
        } = &op
            && class == "SR"
            && field == "physical_utilisation"
        {
            measured.insert(r#ref.clone());
        }
        draft.push(op);
    }
    crate::storage::allocation::settle(&mut draft, &measured);
    let mut rows: BTreeSet<(&'static str, String)> = BTreeSet::new();
    for (class, r) in draft.view().touched() {
        match class {
            "VM" => {
                rows.insert(("VM", r.to_owned()));
            }
            "VBD" => {
                rows.insert(("VBD", r.to_owned()));
            }
            "VIF" => {
                rows.insert(("VIF", r.to_owned()));
            }
            _ => {}
        }
    }
    let vms: Vec<String> = rows
        .iter()
        .filter(|(class, _)| *class == "VM")
        .map(|(_, r)| r.clone())
        .collect();
    for vm in &vms {
        for class in ["VBD", "VIF"] {
            for device in draft.view().children(class, "VM", vm) {
                rows.insert((class, device));
            }
        }
    }
    for (class, r) in &rows {
        let Some(allowed) = allowed(draft.view(), class, r) else {
            continue;
        };
        let value = Value::Array(allowed);
        draft.update(class, r, "allowed_operations", value);
        require_facts(&mut draft, class, r);
    }
    draft.into_txn()
}

/// Requires the fields `allowed_operations` of the row was computed from to be, when the Txn
/// is applied, as the replica holds them now.
fn require_facts(draft: &mut Draft, class: &str, r: &str) {
    if class == "VM" {
        for field in vm_facts::FACT_FIELDS {
            draft.require_unchanged(class, r, field);
        }
        return;
    }
    for field in devices::fact_fields(class) {
        draft.require_unchanged(class, r, field);
    }
    let vm = draft.view().str(class, r, "VM").to_owned();
    for field in devices::VM_FACT_FIELDS {
        draft.require_unchanged("VM", &vm, field);
    }
}

#[cfg(test)]
mod tests {
    use db_schema::Op;

    use super::*;
    use crate::testing::TestPool;

    /// A Txn that touches a VM gets its allowed operations recomputed and a precondition on
    /// its power state; one that changes nothing it reads gets no new Set.
    #[test]
    fn complete_recomputes_allowed_operations_of_touched_vms() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let block = Txn {
            preconditions: Vec::new(),
            ops: vec![Op::MapPut {
                class: "VM".to_owned(),
                r#ref: vm.clone(),
                field: "blocked_operations".to_owned(),
                key: "clone".to_owned(),
                value: Value::str("kept"),
            }],
        };
        let completed = complete(&db, block);
        let allowed = completed.ops.iter().find_map(|op| match op {
            Op::Set { field, value, .. } if field == "allowed_operations" => Some(value.clone()),
            _ => None,
        });
        let allowed = allowed.expect("allowed_operations recomputed");
        assert!(
            !allowed
                .as_array()
                .expect("a set")
                .contains(&Value::str("clone"))
        );
        assert!(completed.preconditions.contains(&field_equals(
            "VM",
            &vm,
            "power_state",
            Value::str("Halted")
        )));
        assert_eq!(complete(&db, rename(&vm)).ops.len(), 1);
    }

    /// The Txn that renames `vm`.
    fn rename(vm: &str) -> Txn {
        Txn {
            preconditions: Vec::new(),
            ops: vec![Op::Set {
                class: "VM".to_owned(),
                r#ref: vm.to_owned(),
                field: "name_label".to_owned(),
                value: Value::str("renamed"),
            }],
        }
    }

    /// A rename of a VM whose `other_config` holds 100 KB is an entry of a few hundred bytes:
    /// the facts `allowed_operations` was computed from are required unchanged by digest.
    #[test]
    fn a_change_to_a_vm_with_large_facts_is_a_small_entry() {
        let pool = TestPool::new();
        let vm = pool.read().refs_by_name_label("VM", "Other install media")[0].to_owned();
        let large: std::collections::BTreeMap<String, Value> = (0..1000)
            .map(|i| (format!("key{i}"), Value::str("v".repeat(100))))
            .collect();
        pool.write("VM", &vm, &[("other_config", Value::Struct(large))]);
        let completed = complete(&pool.read(), rename(&vm));
        assert!(
            completed
                .preconditions
                .iter()
                .any(|p| matches!(p, db_schema::Precondition::FieldDigest { field, .. } if field == "other_config"))
        );
        let bytes = rmp_serde::to_vec_named(&completed)
            .expect("a Txn encodes")
            .len();
        assert!(bytes < 2048, "an entry of {bytes} bytes");
    }

    /// Beginning an operation records its key; a second operation on the same VM is refused
    /// with the first one's operation and key.
    #[test]
    fn begin_records_the_key_and_refuses_a_second_operation() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Control domain on host: host1")[0].to_owned();
        let mut draft = Draft::new(&db);
        begin(
            &mut draft,
            &vm,
            VmOperation::ChangingDynamicRange,
            "OpaqueRef:k",
        )
        .expect("begun");
        let current = draft.view().field("VM", &vm, "current_operations").cloned();
        assert_eq!(
            current,
            Some(Value::Struct(
                [(
                    "OpaqueRef:k".to_owned(),
                    Value::str("changing_dynamic_range")
                )]
                .into()
            ))
        );
        let second = begin(
            &mut draft,
            &vm,
            VmOperation::ChangingStaticRange,
            "OpaqueRef:j",
        );
        assert_eq!(
            second.map_err(crate::error::to_api_error),
            Err(errors::other_operation_in_progress(
                "VM",
                &vm,
                "changing_dynamic_range",
                "OpaqueRef:k"
            ))
        );
        end(&mut draft, "VM", &vm, "OpaqueRef:k");
        let current = draft.view().field("VM", &vm, "current_operations").cloned();
        assert_eq!(current, Some(Value::Struct([].into())));
    }
}
