//! The operations of VBDs and VIFs (xapi's `xapi_vbd_helpers` and `xapi_vif_helpers`): each
//! rule refuses some operations with an error, the first rule to refuse an operation gives its
//! error, and `allowed_operations` is what no rule refuses.
//!
//! Not checked, as oxapi has no guest agent yet: the PV drivers an HVM guest needs for
//! hotplug (xapi refuses plug and unplug without them).

use std::collections::BTreeMap;

use api_spec::classes::vbd::VbdOperation as Op;
use api_spec::classes::vdi::VdiOperation;
use api_spec::classes::vif::VifOperation;
use api_spec::classes::vm::VmOperation;
use api_spec::classes::vm::VmPowerState::{Halted, Paused, Running, Suspended};
use api_spec::{ApiError, errors};

use super::current_operations;
use super::overlay::Overlay;
use crate::error::xenapi;
use crate::vm::power_state::power_state;

/// The VBD operations that may run beside any other.
static VBD_PARALLEL: &[Op] = &[Op::Pause, Op::Unpause];

/// The VM operations during which no device is plugged or unplugged.
static VM_OPERATIONS_BLOCKING_HOTPLUG: &[VmOperation] = &[
    VmOperation::CleanShutdown,
    VmOperation::HardShutdown,
    VmOperation::Suspend,
    VmOperation::Pause,
];

/// The fields of a VBD that the rules read, which a decision relying on them must see unchanged
/// when it is applied.
pub(crate) static VBD_FACT_FIELDS: &[&str] = &[
    "current_operations",
    "currently_attached",
    "empty",
    "VDI",
    "type",
    "unpluggable",
];

/// The fields of a VIF that the rules read (`VBD_FACT_FIELDS` that a VIF has).
pub(crate) static VIF_FACT_FIELDS: &[&str] = &["current_operations", "currently_attached"];

/// The fact fields of a device of `class` (`VBD` or `VIF`).
pub(crate) fn fact_fields(class: &str) -> &'static [&'static str] {
    if class == "VBD" {
        VBD_FACT_FIELDS
    } else {
        VIF_FACT_FIELDS
    }
}

/// The fields of the device's VM that the rules read.
pub(crate) static VM_FACT_FIELDS: &[&str] = &["power_state", "current_operations", "domain_type"];

/// The first error of each refused operation of a device's class `Op`.
struct Verdicts<Op> {
    errors: BTreeMap<Op, ApiError>,
}

impl<Op: Ord + Copy> Verdicts<Op> {
    fn new() -> Verdicts<Op> {
        Verdicts {
            errors: BTreeMap::new(),
        }
    }

    /// Refuses `ops` with `error`, unless an earlier rule refused them already.
    fn refuse(&mut self, ops: &[Op], error: &ApiError) {
        for op in ops {
            self.errors.entry(*op).or_insert_with(|| error.clone());
        }
    }

    fn check(&self, op: Op) -> Result<(), ApiError> {
        self.errors
            .get(&op)
            .map_or(Ok(()), |error| Err(error.clone()))
    }

    fn allowed(&self, all: &[Op]) -> Vec<Op> {
        all.iter()
            .copied()
            .filter(|op| !self.errors.contains_key(op))
            .collect()
    }
}

/// The VM operations in progress that forbid hotplug, as the reason xapi gives.
fn hotplug_blocked_by(view: &Overlay, vm: &str) -> Option<String> {
    current_operations(view, "VM", vm, VmOperation::from_wire)
        .into_iter()
        .find(|(_, op)| VM_OPERATIONS_BLOCKING_HOTPLUG.contains(op))
        .map(|(_, op)| format!("Current operation on VM:{vm} is {op}"))
}

/// The verdicts on every operation of a VBD. With `is_sharing_checked`, attaching it also
/// checks the other VBDs of its disk (xapi skips that when it only lists what is allowed).
fn vbd_verdicts(view: &Overlay, vbd: &str, is_sharing_checked: bool) -> Verdicts<Op> {
    let mut verdicts = Verdicts::new();
    let vm = view.str("VBD", vbd, "VM");
    let current = current_operations(view, "VBD", vbd, Op::from_wire);
    if let Some((key, op)) = current.first() {
        let busy = errors::other_operation_in_progress("VBD", vbd, op, key);
        let others: Vec<Op> = Op::ALL
            .iter()
            .copied()
            .filter(|o| !VBD_PARALLEL.contains(o))
            .collect();
        verdicts.refuse(&others, &busy);
        if current.iter().any(|(_, o)| !VBD_PARALLEL.contains(o)) {
            verdicts.refuse(&[Op::Pause], &busy);
        }
        if current
            .iter()
            .any(|(_, o)| !matches!(o, Op::Attach | Op::Pause | Op::Unpause))
        {
            verdicts.refuse(&[Op::Unpause], &busy);
        }
    }
    if !view.bool("VBD", vbd, "unpluggable") {
        verdicts.refuse(
            &[Op::Unplug, Op::UnplugForce],
            &errors::vbd_not_unpluggable(vbd),
        );
    }
    let is_cd = view.str("VBD", vbd, "type") == "CD";
    if !is_cd {
        verdicts.refuse(
            &[Op::Insert, Op::Eject],
            &errors::vbd_not_removable_media(vbd),
        );
    }
    let is_empty = view.bool("VBD", vbd, "empty");
    if is_empty {
        verdicts.refuse(&[Op::Eject], &errors::vbd_is_empty(vbd));
    } else {
        verdicts.refuse(&[Op::Insert], &errors::vbd_not_empty(vbd));
    }
    let power_state = power_state(view, vm);
    match (power_state, view.bool("VBD", vbd, "currently_attached")) {
        (Running, true) => verdicts.refuse(&[Op::Plug], &errors::device_already_attached(vbd)),
        (Running, false) => verdicts.refuse(
            &[Op::Unplug, Op::UnplugForce],
            &errors::device_already_detached(vbd),
        ),
        _ => {
            let error = xenapi::vm_bad_power_state(vm, &[Running], power_state);
            verdicts.refuse(&[Op::Plug, Op::Unplug, Op::UnplugForce], &error);
            if power_state != Paused {
                verdicts.refuse(&[Op::Pause, Op::Unpause], &error);
            }
        }
    }
    if let Some(reason) = hotplug_blocked_by(view, vm) {
        verdicts.refuse(
            &[Op::Plug, Op::Unplug],
            &errors::operation_not_allowed(&reason),
        );
    }
    if power_state == Running && view.str("VM", vm, "domain_type") == "hvm" && is_cd {
        let error = errors::operation_not_allowed(
            "HVM CDROMs cannot be hotplugged/unplugged, only inserted or ejected",
        );
        verdicts.refuse(&[Op::Plug, Op::Unplug, Op::UnplugForce], &error);
    }
    if is_cd && power_state == Suspended {
        let error = xenapi::vm_bad_power_state(vm, &[Halted, Running], power_state);
        verdicts.refuse(&[Op::Insert, Op::Eject], &error);
    }
    let vdi = view.str("VBD", vbd, "VDI");
    if !is_empty && view.exists("VDI", vdi) {
        vdi_rules(view, &mut verdicts, vbd, vdi, is_sharing_checked);
    }
    verdicts
}

/// The rules about the disk in a VBD: operations on the disk itself, and who else uses it.
fn vdi_rules(
    view: &Overlay,
    verdicts: &mut Verdicts<Op>,
    vbd: &str,
    vdi: &str,
    is_sharing_checked: bool,
) {
    let busy = current_operations(view, "VDI", vdi, VdiOperation::from_wire)
        .into_iter()
        .find(|(_, op)| !matches!(op, VdiOperation::Mirror | VdiOperation::Copy));
    if let Some((key, op)) = busy {
        let error = errors::other_operation_in_progress("VDI", vdi, op, &key);
        verdicts.refuse(&[Op::Attach, Op::Plug, Op::Insert], &error);
    }
    if !is_sharing_checked || view.bool("VBD", vbd, "currently_attached") {
        return;
    }
    let in_use: Vec<String> = view
        .children("VBD", "VDI", vdi)
        .into_iter()
        .filter(|other| other != vbd)
        .filter(|other| {
            let other_vm = view.str("VBD", other, "VM");
            power_state(view, other_vm) != Suspended
                && !view.bool("VM", other_vm, "is_control_domain")
                && (view.bool("VBD", other, "currently_attached")
                    || !current_operations(view, "VBD", other, Op::from_wire).is_empty())
        })
        .collect();
    let needs_write = view.str("VBD", vbd, "mode") == "RW";
    let someone_writes = in_use.iter().any(|o| view.str("VBD", o, "mode") == "RW");
    let is_own_vm_system = view.bool("VM", view.str("VBD", vbd, "VM"), "is_control_domain");
    if !view.bool("VDI", vdi, "sharable")
        && !is_own_vm_system
        && (someone_writes || (needs_write && !in_use.is_empty()))
    {
        verdicts.refuse(
            &[Op::Attach, Op::Insert, Op::Plug],
            &errors::vdi_in_use(vdi, Op::Attach),
        );
    }
    if needs_write && view.bool("VDI", vdi, "read_only") {
        verdicts.refuse(
            &[Op::Attach, Op::Insert, Op::Plug],
            &errors::vdi_readonly(vdi),
        );
    }
}

/// The verdicts on every operation of a VIF.
fn vif_verdicts(view: &Overlay, vif: &str) -> Verdicts<VifOperation> {
    let mut verdicts = Verdicts::new();
    let vm = view.str("VIF", vif, "VM");
    let current = current_operations(view, "VIF", vif, VifOperation::from_wire);
    if let Some((key, op)) = current.first() {
        let busy = errors::other_operation_in_progress("VIF", vif, op, key);
        verdicts.refuse(VifOperation::ALL, &busy);
    }
    let is_dom0 = view.bool("VM", vm, "is_control_domain") && view.int("VM", vm, "domid") == 0;
    if is_dom0 {
        let error = errors::operation_not_allowed("Control domain does not support hotplug");
        verdicts.refuse(&[VifOperation::Plug], &error);
    }
    let power_state = power_state(view, vm);
    match (power_state, view.bool("VIF", vif, "currently_attached")) {
        (Running, true) => {
            verdicts.refuse(&[VifOperation::Plug], &errors::device_already_attached(vif))
        }
        (Running, false) => {
            verdicts.refuse(
                &[VifOperation::Unplug],
                &errors::device_already_detached(vif),
            );
        }
        _ => {
            let error = xenapi::vm_bad_power_state(vm, &[Running], power_state);
            verdicts.refuse(&[VifOperation::Plug, VifOperation::Unplug], &error);
        }
    }
    if let Some(reason) = hotplug_blocked_by(view, vm) {
        verdicts.refuse(
            &[VifOperation::Plug, VifOperation::Unplug],
            &errors::operation_not_allowed(&reason),
        );
    }
    verdicts
}

/// Whether `op` may start on the VBD now, with every check (disk sharing included).
pub(crate) fn check_vbd(view: &Overlay, vbd: &str, op: Op) -> Result<(), ApiError> {
    vbd_verdicts(view, vbd, true).check(op)
}

/// The VBD's `allowed_operations`, in the enum's order.
pub(crate) fn allowed_vbd(view: &Overlay, vbd: &str) -> Vec<Op> {
    vbd_verdicts(view, vbd, false).allowed(Op::ALL)
}

/// Whether `op` may start on the VIF now.
pub(crate) fn check_vif(view: &Overlay, vif: &str, op: VifOperation) -> Result<(), ApiError> {
    vif_verdicts(view, vif).check(op)
}

/// The VIF's `allowed_operations`, in the enum's order.
pub(crate) fn allowed_vif(view: &Overlay, vif: &str) -> Vec<VifOperation> {
    vif_verdicts(view, vif).allowed(VifOperation::ALL)
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::TestPool;
    use crate::vm::operations::Draft;

    /// A halted VM with a CD drive and a NIC; returns the view's draft refs.
    fn vm_with_devices(draft: &mut Draft, power_state: &str) -> (String, String, String) {
        let vm = draft.create(
            "VM",
            [
                ("power_state", Value::str(power_state)),
                ("domain_type", Value::str("hvm")),
                ("domid", Value::Int(-1)),
            ],
        );
        let vbd = draft.create(
            "VBD",
            [
                ("VM", Value::str(vm.as_str())),
                ("type", Value::str("CD")),
                ("empty", Value::Bool(true)),
                ("mode", Value::str("RO")),
            ],
        );
        let vif = draft.create("VIF", [("VM", Value::str(vm.as_str()))]);
        (vm, vbd, vif)
    }

    /// On a halted VM a CD drive can only be attached or get a disk; a NIC only attached.
    #[test]
    fn devices_of_a_halted_vm_only_attach() {
        let pool = TestPool::new();
        let db = pool.read();
        let mut draft = Draft::new(&db);
        let (vm, vbd, vif) = vm_with_devices(&mut draft, "Halted");
        assert_eq!(allowed_vbd(draft.view(), &vbd), [Op::Attach, Op::Insert]);
        assert_eq!(allowed_vif(draft.view(), &vif), [VifOperation::Attach]);
        assert_eq!(
            check_vbd(draft.view(), &vbd, Op::Plug),
            Err(xenapi::vm_bad_power_state(&vm, &[Running], Halted))
        );
        assert_eq!(
            check_vbd(draft.view(), &vbd, Op::Eject),
            Err(errors::vbd_is_empty(&vbd))
        );
    }

    /// On a running VM a detached NIC can be plugged, an attached one unplugged; an HVM CD
    /// drive is never hotplugged; an operation in progress excludes the others.
    #[test]
    fn devices_of_a_running_vm_follow_their_attachment() {
        let pool = TestPool::new();
        let db = pool.read();
        let mut draft = Draft::new(&db);
        let (_, vbd, vif) = vm_with_devices(&mut draft, "Running");
        assert_eq!(
            allowed_vif(draft.view(), &vif),
            [VifOperation::Attach, VifOperation::Plug]
        );
        draft.set("VIF", &vif, "currently_attached", Value::Bool(true));
        assert_eq!(
            allowed_vif(draft.view(), &vif),
            [VifOperation::Attach, VifOperation::Unplug]
        );
        assert_eq!(
            allowed_vbd(draft.view(), &vbd),
            [Op::Attach, Op::Insert, Op::Pause, Op::Unpause]
        );
        draft.map_put(
            "VIF",
            &vif,
            "current_operations",
            "OpaqueRef:t",
            Value::str("unplug"),
        );
        assert!(allowed_vif(draft.view(), &vif).is_empty());
        assert_eq!(
            check_vif(draft.view(), &vif, VifOperation::Plug),
            Err(errors::other_operation_in_progress(
                "VIF",
                &vif,
                "unplug",
                "OpaqueRef:t"
            ))
        );
    }
}
