//! `VmFacts`: what the VM operation rules read about a VM, from the DB (or a Txn's view of
//! it): its own fields, its pool's settings, its metrics and its disks.

use std::collections::BTreeMap;

use api_spec::classes::vm::{VmOperation, VmPowerState};

use super::overlay::Overlay;
use crate::vm::power_state::power_state;

/// What the VM operation rules read about a VM.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VmFacts {
    pub r: String,
    pub power_state: VmPowerState,
    /// `current_operations`: (key, operation), in key order.
    pub current: Vec<(String, VmOperation)>,
    /// `blocked_operations`: operation → the reason given.
    pub blocked: BTreeMap<VmOperation, String>,
    pub is_template: bool,
    pub is_snapshot: bool,
    /// `is_default_template`, or `other_config:default_template` set.
    pub is_default_template: bool,
    pub is_control_domain: bool,
    /// A control domain with domain id 0: the one that runs the toolstack.
    pub is_dom0: bool,
    /// The pool lets suspended VMs be cloned (`pool.other_config:allow_clone_suspended_vm`).
    pub may_clone_suspended: bool,
    /// Neither `nomigrate` nor `nested-virt` is set for the VM.
    pub is_mobile: bool,
    /// One of its disks is reset on boot (`VDI.on_boot = reset`).
    pub has_reset_disk: bool,
    /// One of its disks is reset on boot and cached.
    pub has_cached_reset_disk: bool,
}

/// The fields of a VM that its facts read, which a decision relying on them must see
/// unchanged when it is applied.
pub(crate) static FACT_FIELDS: &[&str] = &[
    "power_state",
    "current_operations",
    "blocked_operations",
    "is_a_template",
    "is_a_snapshot",
    "is_default_template",
    "other_config",
    "is_control_domain",
    "domid",
    "platform",
];

impl VmFacts {
    /// The facts of `vm` in `view`; `None` when it has no live row.
    pub fn read(view: &Overlay, vm: &str) -> Option<VmFacts> {
        let row = view.row("VM", vm)?;
        let text = |field: &str| row.get(field).and_then(|v| v.as_str()).unwrap_or("");
        let flag = |field: &str| row.get(field).and_then(|v| v.as_bool()) == Some(true);
        let current = super::current_operations(view, "VM", vm, VmOperation::from_wire);
        let blocked = view
            .string_map("VM", vm, "blocked_operations")
            .into_iter()
            .filter_map(|(op, reason)| Some((VmOperation::from_wire(&op)?, reason)))
            .collect();
        let other_config = view.string_map("VM", vm, "other_config");
        let is_true =
            |v: Option<&String>| v.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let pool = view.refs("pool").into_iter().next().unwrap_or_default();
        let pool_config = view.string_map("pool", &pool, "other_config");
        let platform = view.string_map("VM", vm, "platform");
        let metrics = text("metrics");
        let is_mobile = if view.exists("VM_metrics", metrics) {
            !view.bool("VM_metrics", metrics, "nomigrate")
                && !view.bool("VM_metrics", metrics, "nested_virt")
        } else {
            !is_true(platform.get("nomigrate")) && !is_true(platform.get("nested-virt"))
        };
        let (mut has_reset_disk, mut has_cached_reset_disk) = (false, false);
        for vbd in view.children("VBD", "VM", vm) {
            let vdi = view.str("VBD", &vbd, "VDI");
            if view.bool("VBD", &vbd, "empty") || !view.exists("VDI", vdi) {
                continue;
            }
            if view.str("VDI", vdi, "on_boot") == "reset" {
                has_reset_disk = true;
                has_cached_reset_disk |= view.bool("VDI", vdi, "allow_caching");
            }
        }
        let is_control_domain = flag("is_control_domain");
        Some(VmFacts {
            r: vm.to_owned(),
            power_state: power_state(view, vm),
            current,
            blocked,
            is_template: flag("is_a_template"),
            is_snapshot: flag("is_a_snapshot"),
            is_default_template: flag("is_default_template")
                || is_true(other_config.get("default_template")),
            is_control_domain,
            is_dom0: is_control_domain && row.get("domid").and_then(|v| v.as_int()) == Some(0),
            may_clone_suspended: is_true(pool_config.get("allow_clone_suspended_vm")),
            is_mobile,
            has_reset_disk,
            has_cached_reset_disk,
        })
    }
}
