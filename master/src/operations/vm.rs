//! The operations of a VM: the power states each one needs (xapi's lifecycle table), which ones
//! may run alongside others, the other rules xapi checks (in xapi's order, the first failing one
//! giving the error), and the `allowed_operations` they add up to.

use api_spec::classes::vm::VM_OPERATIONS;
use api_spec::{ApiError, errors};

use super::vm_facts::VmFacts;
use crate::error::xenapi;

const HALTED: &str = "Halted";
const PAUSED: &str = "Paused";
const RUNNING: &str = "Running";
const SUSPENDED: &str = "Suspended";

/// The power states each operation needs (xapi-notes §2.2, `xapi_vm_lifecycle.ml`), the
/// states of a row in xapi's order, which is the order `VM_BAD_POWER_STATE` lists them in.
/// An operation not listed (`import`) is allowed in no power state. Exceptions, in
/// `power_states`: `clone` and `copy` also accept Suspended for snapshots (or when the pool
/// allows cloning suspended VMs), and a control domain may change its VCPUs and memory limits
/// while Running.
static LIFECYCLE: &[(&[&str], &[&str])] = &[
    (
        &[HALTED],
        &[
            "start",
            "start_on",
            "provision",
            "make_into_template",
            "create_vtpm",
            "changing_VCPUs",
            "changing_static_range",
            "changing_memory_limits",
            "changing_shadow_memory",
            "changing_NVRAM",
            "clone",
            "copy",
        ],
    ),
    (&[PAUSED], &["unpause"]),
    (&[SUSPENDED], &["resume", "resume_on", "csvm"]),
    (
        &[RUNNING],
        &[
            "clean_shutdown",
            "clean_reboot",
            "suspend",
            "pause",
            "pool_migrate",
            "send_sysrq",
            "send_trigger",
            "call_plugin",
            "changing_memory_live",
            "awaiting_memory_live",
            "changing_shadow_memory_live",
            "changing_VCPUs_live",
            "data_source_op",
            "snapshot_with_quiesce",
        ],
    ),
    (&[HALTED, RUNNING], &["changing_dynamic_range"]),
    (
        &[HALTED, SUSPENDED],
        &["create_template", "destroy", "export"],
    ),
    (&[PAUSED, RUNNING], &["hard_reboot"]),
    (
        &[PAUSED, SUSPENDED, RUNNING],
        &["hard_shutdown", "shutdown", "checkpoint", "get_boot_record"],
    ),
    (&[HALTED, SUSPENDED, RUNNING], &["migrate_send"]),
    (
        &[HALTED, PAUSED, SUSPENDED, RUNNING],
        &[
            "snapshot",
            "revert",
            "reverting",
            "power_state_reset",
            "metadata_export",
            "query_services",
            "assert_operation_valid",
            "update_allowed_operations",
        ],
    ),
];

/// The operations `allowed_operations` is computed over (xapi's `update_allowed_operations`
/// list, without `snapshot_with_quiesce`, whose message this API version removed).
static LISTED: &[&str] = &[
    "snapshot",
    "copy",
    "clone",
    "revert",
    "checkpoint",
    "start",
    "start_on",
    "pause",
    "unpause",
    "clean_shutdown",
    "clean_reboot",
    "hard_shutdown",
    "hard_reboot",
    "suspend",
    "resume",
    "resume_on",
    "export",
    "destroy",
    "provision",
    "changing_VCPUs_live",
    "pool_migrate",
    "migrate_send",
    "make_into_template",
    "changing_static_range",
    "changing_shadow_memory",
    "changing_dynamic_range",
];

/// Groups of operations that may all run at once (xapi's `is_allowed_concurrently`).
static CONCURRENT_GROUPS: &[&[&str]] = &[
    &["clone", "copy", "export"],
    &["snapshot", "checkpoint"],
    &["get_boot_record"],
];

/// (the operations in progress, an operation that may start beside exactly them).
static MAY_FOLLOW: &[(&[&str], &str)] = &[
    (&["snapshot_with_quiesce"], "snapshot"),
    (&["migrate_send"], "metadata_export"),
    (&["migrate_send"], "clean_shutdown"),
    (&["migrate_send"], "clean_reboot"),
    (&["migrate_send"], "start"),
    (&["migrate_send"], "start_on"),
];

/// What a template may do besides being destroyed or migrated (when it is not a default one).
static TEMPLATE_OPERATIONS: &[&str] = &[
    "changing_dynamic_range",
    "changing_static_range",
    "changing_memory_limits",
    "changing_shadow_memory",
    "changing_VCPUs",
    "clone",
    "copy",
    "export",
    "metadata_export",
    "provision",
];

/// What a snapshot may do.
static SNAPSHOT_OPERATIONS: &[&str] = &[
    "revert",
    "clone",
    "copy",
    "export",
    "destroy",
    "hard_shutdown",
    "metadata_export",
];

/// What a control domain may do.
static CONTROL_DOMAIN_OPERATIONS: &[&str] = &[
    "data_source_op",
    "changing_memory_live",
    "awaiting_memory_live",
    "metadata_export",
    "changing_dynamic_range",
    "changing_memory_limits",
    "changing_static_range",
    "start",
    "start_on",
    "changing_VCPUs",
    "destroy",
];

/// The operations that the guest must be able to migrate for.
static NEEDS_MOBILITY: &[&str] = &["suspend", "checkpoint", "pool_migrate", "migrate_send"];

/// The operations a disk that is reset on boot forbids.
static NEEDS_PERSISTENT_DISKS: &[&str] = &["checkpoint", "snapshot", "suspend"];

/// The power states `op` needs for this VM, in xapi's order.
fn power_states(facts: &VmFacts, op: &str) -> Vec<&'static str> {
    let mut states: Vec<&'static str> = LIFECYCLE
        .iter()
        .find(|(_, ops)| ops.contains(&op))
        .map(|(states, _)| states.to_vec())
        .unwrap_or_default();
    let clones_suspended = facts.is_snapshot || facts.may_clone_suspended;
    if matches!(op, "clone" | "copy") && clones_suspended {
        states.push(SUSPENDED);
    }
    let is_limit_change = matches!(
        op,
        "changing_VCPUs" | "changing_static_range" | "changing_memory_limits"
    );
    if is_limit_change && facts.is_control_domain {
        states.push(RUNNING);
    }
    states
}

/// Whether `op` may start while `current` are in progress (xapi's `is_allowed_concurrently`;
/// the power state is checked apart).
fn is_allowed_concurrently(op: &str, current: &[&str]) -> bool {
    let all_in = |group: &[&str]| group.contains(&op) && current.iter().all(|c| group.contains(c));
    if CONCURRENT_GROUPS.iter().any(|group| all_in(group)) {
        return true;
    }
    match op {
        "hard_shutdown" => !current.contains(&"hard_shutdown"),
        "hard_reboot" => !current
            .iter()
            .any(|c| matches!(*c, "hard_shutdown" | "hard_reboot")),
        _ => MAY_FOLLOW
            .iter()
            .any(|(before, after)| *before == current && *after == op),
    }
}

/// Whether `op` may start on the VM now; the error xapi gives first when not.
pub(crate) fn check(facts: &VmFacts, op: &str) -> Result<(), ApiError> {
    let vm = facts.r.as_str();
    if let Some(reason) = facts.blocked.get(op) {
        return Err(errors::operation_blocked(vm, reason));
    }
    let states = power_states(facts, op);
    if !states.contains(&facts.power_state.as_str()) {
        return Err(xenapi::vm_bad_power_state(vm, &states, &facts.power_state));
    }
    if let Some((key, running)) = facts.current.first() {
        let current: Vec<&str> = facts.current.iter().map(|(_, o)| o.as_str()).collect();
        if !is_allowed_concurrently(op, &current) {
            return Err(errors::other_operation_in_progress("VM", vm, running, key));
        }
    }
    if facts.is_template && !facts.is_snapshot {
        let may = TEMPLATE_OPERATIONS.contains(&op)
            || (matches!(op, "destroy" | "migrate_send") && !facts.is_default_template);
        if !may {
            return Err(errors::vm_is_template(vm));
        }
    }
    if facts.is_snapshot && !SNAPSHOT_OPERATIONS.contains(&op) {
        return Err(errors::vm_is_snapshot(vm, op));
    }
    if op == "provision" && !facts.is_template {
        return Err(errors::only_provision_template());
    }
    if op == "revert" && !facts.is_snapshot {
        return Err(errors::only_revert_snapshot());
    }
    if NEEDS_MOBILITY.contains(&op) && !facts.is_mobile {
        return Err(errors::vm_is_immobile(vm));
    }
    if facts.is_dom0 && matches!(op, "changing_VCPUs" | "destroy") {
        return Err(errors::operation_not_allowed(
            "This operation is not allowed on dom0",
        ));
    }
    if facts.is_control_domain && !CONTROL_DOMAIN_OPERATIONS.contains(&op) {
        return Err(errors::operation_not_allowed(
            "This operation is not allowed on a control domain",
        ));
    }
    let breaks_reset_disk = (NEEDS_PERSISTENT_DISKS.contains(&op) && facts.has_reset_disk)
        || (op == "pool_migrate" && facts.has_cached_reset_disk);
    if breaks_reset_disk {
        return Err(errors::vdi_on_boot_mode_incompatible_with_operation());
    }
    Ok(())
}

/// `allowed_operations`: the listed operations that may start now, in the enum's order.
pub(crate) fn allowed(facts: &VmFacts) -> Vec<&'static str> {
    VM_OPERATIONS
        .values
        .iter()
        .copied()
        .filter(|op| LISTED.contains(op) && check(facts, op).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn facts(power_state: &str) -> VmFacts {
        VmFacts {
            r: "OpaqueRef:vm".to_owned(),
            power_state: power_state.to_owned(),
            current: Vec::new(),
            blocked: BTreeMap::new(),
            is_template: false,
            is_snapshot: false,
            is_default_template: false,
            is_control_domain: false,
            is_dom0: false,
            may_clone_suspended: false,
            is_mobile: true,
            has_reset_disk: false,
            has_cached_reset_disk: false,
        }
    }

    fn busy(power_state: &str, op: &str) -> VmFacts {
        VmFacts {
            current: vec![("OpaqueRef:task".to_owned(), op.to_owned())],
            ..facts(power_state)
        }
    }

    /// Every operation of the enum but `import` appears in the lifecycle table exactly once,
    /// and every listed one is a declared operation.
    #[test]
    fn the_lifecycle_table_covers_every_operation_once() {
        for op in VM_OPERATIONS.values {
            let rows = LIFECYCLE.iter().filter(|(_, ops)| ops.contains(op)).count();
            let expected = usize::from(*op != "import");
            assert_eq!(rows, expected, "{op}");
        }
        for op in LISTED {
            assert!(VM_OPERATIONS.values.contains(op), "{op}");
        }
    }

    /// The allowed operations of a plain VM in each power state are xapi's.
    #[test]
    fn allowed_operations_per_power_state_are_xapis() {
        let cases: [(&str, &[&str]); 4] = [
            (
                HALTED,
                &[
                    "snapshot",
                    "clone",
                    "copy",
                    "start",
                    "start_on",
                    "migrate_send",
                    "changing_dynamic_range",
                    "changing_static_range",
                    "changing_shadow_memory",
                    "make_into_template",
                    "export",
                    "destroy",
                ],
            ),
            (
                PAUSED,
                &[
                    "snapshot",
                    "unpause",
                    "hard_shutdown",
                    "hard_reboot",
                    "checkpoint",
                ],
            ),
            (
                RUNNING,
                &[
                    "snapshot",
                    "checkpoint",
                    "pause",
                    "clean_shutdown",
                    "clean_reboot",
                    "hard_shutdown",
                    "hard_reboot",
                    "suspend",
                    "pool_migrate",
                    "migrate_send",
                    "changing_dynamic_range",
                    "changing_VCPUs_live",
                ],
            ),
            (
                SUSPENDED,
                &[
                    "snapshot",
                    "checkpoint",
                    "hard_shutdown",
                    "resume",
                    "resume_on",
                    "migrate_send",
                    "export",
                    "destroy",
                ],
            ),
        ];
        for (state, expected) in cases {
            let mut got = allowed(&facts(state));
            let mut expected = expected.to_vec();
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "{state}");
        }
    }

    /// A wrong power state names every accepted state, lowercase, in xapi's order.
    #[test]
    fn a_wrong_power_state_lists_the_accepted_ones() {
        let error = check(&facts(HALTED), "hard_shutdown").expect_err("refused");
        assert_eq!(
            error,
            xenapi::vm_bad_power_state("OpaqueRef:vm", &[PAUSED, SUSPENDED, RUNNING], HALTED)
        );
        assert_eq!(error.params[1], "paused, suspended, running");
        assert_eq!(error.params[2], "halted");
    }

    /// A blocked operation is refused before anything else, with the reason given.
    #[test]
    fn blocked_operations_are_refused_first() {
        let mut vm = facts(RUNNING);
        vm.blocked.insert("start".to_owned(), "no".to_owned());
        assert_eq!(
            check(&vm, "start"),
            Err(errors::operation_blocked("OpaqueRef:vm", "no"))
        );
    }

    /// One operation excludes the others, except the pairs xapi lets overlap: copies with
    /// copies, and a hard shutdown or reboot over anything but another hard one.
    #[test]
    fn operations_in_progress_exclude_all_but_xapis_overlaps() {
        let running = busy(RUNNING, "clean_shutdown");
        assert_eq!(
            check(&running, "suspend"),
            Err(errors::other_operation_in_progress(
                "VM",
                "OpaqueRef:vm",
                "clean_shutdown",
                "OpaqueRef:task"
            ))
        );
        assert_eq!(check(&running, "hard_shutdown"), Ok(()));
        assert_eq!(check(&running, "hard_reboot"), Ok(()));
        let mut got = allowed(&running);
        got.sort_unstable();
        assert_eq!(got, ["hard_reboot", "hard_shutdown"]);
        assert!(check(&busy(RUNNING, "hard_shutdown"), "hard_shutdown").is_err());
        assert!(check(&busy(RUNNING, "hard_shutdown"), "hard_reboot").is_err());
        let halted = busy(HALTED, "clone");
        assert_eq!(check(&halted, "export"), Ok(()));
        assert!(check(&halted, "start").is_err());
        assert_eq!(
            check(&busy(RUNNING, "migrate_send"), "clean_shutdown"),
            Ok(())
        );
    }

    /// A template may be cloned, copied, exported, provisioned and have its limits changed,
    /// and destroyed unless it is a default one; anything else is `VM_IS_TEMPLATE`.
    #[test]
    fn templates_allow_only_copies_provisioning_and_limits() {
        let mut template = facts(HALTED);
        template.is_template = true;
        let mut got = allowed(&template);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "changing_dynamic_range",
                "changing_shadow_memory",
                "changing_static_range",
                "clone",
                "copy",
                "destroy",
                "export",
                "migrate_send",
                "provision"
            ]
        );
        assert_eq!(
            check(&template, "start"),
            Err(errors::vm_is_template("OpaqueRef:vm"))
        );
        template.is_default_template = true;
        assert!(check(&template, "destroy").is_err());
        assert!(check(&facts(HALTED), "provision").is_err());
    }

    /// A running control domain may only change its memory; dom0 is never destroyed.
    #[test]
    fn control_domains_allow_only_memory_changes() {
        let mut dom0 = facts(RUNNING);
        dom0.is_control_domain = true;
        dom0.is_dom0 = true;
        let mut got = allowed(&dom0);
        got.sort_unstable();
        assert_eq!(got, ["changing_dynamic_range", "changing_static_range"]);
        assert_eq!(
            check(&dom0, "clean_shutdown"),
            Err(errors::operation_not_allowed(
                "This operation is not allowed on a control domain"
            ))
        );
    }

    /// Suspended VMs are cloned only when they are snapshots or the pool allows it; an
    /// immobile VM cannot be suspended; a disk reset on boot forbids snapshots.
    #[test]
    fn clone_mobility_and_reset_disks_follow_xapi() {
        let mut suspended = facts(SUSPENDED);
        assert!(check(&suspended, "clone").is_err());
        suspended.may_clone_suspended = true;
        assert_eq!(check(&suspended, "clone"), Ok(()));
        let mut running = facts(RUNNING);
        running.is_mobile = false;
        assert_eq!(
            check(&running, "suspend"),
            Err(errors::vm_is_immobile("OpaqueRef:vm"))
        );
        running.is_mobile = true;
        running.has_reset_disk = true;
        assert_eq!(
            check(&running, "snapshot"),
            Err(errors::vdi_on_boot_mode_incompatible_with_operation())
        );
    }
}
