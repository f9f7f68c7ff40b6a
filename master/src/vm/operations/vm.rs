//! The operations of a VM: the power states each one needs (xapi's lifecycle table), which ones
//! may run alongside others, the other rules xapi checks (in xapi's order, the first failing one
//! giving the error), and the `allowed_operations` they add up to.

use api_spec::classes::vm::VmOperation as Op;
use api_spec::classes::vm::VmPowerState::{self, Halted, Paused, Running, Suspended};
use api_spec::{ApiError, errors};

use super::vm_facts::VmFacts;
use crate::error::xenapi;

/// The power states each operation needs (xapi-notes §2.2, `xapi_vm_lifecycle.ml`), the
/// states of a row in xapi's order, which is the order `VM_BAD_POWER_STATE` lists them in.
/// An operation not listed (`import`) is allowed in no power state. Exceptions, in
/// `power_states`: `clone` and `copy` also accept Suspended for snapshots (or when the pool
/// allows cloning suspended VMs), and a control domain may change its VCPUs and memory limits
/// while Running.
static LIFECYCLE: &[(&[VmPowerState], &[Op])] = &[
    (
        &[Halted],
        &[
            Op::Start,
            Op::StartOn,
            Op::Provision,
            Op::MakeIntoTemplate,
            Op::CreateVtpm,
            Op::ChangingVcpus,
            Op::ChangingStaticRange,
            Op::ChangingMemoryLimits,
            Op::ChangingShadowMemory,
            Op::ChangingNvram,
            Op::Clone,
            Op::Copy,
        ],
    ),
    (&[Paused], &[Op::Unpause]),
    (&[Suspended], &[Op::Resume, Op::ResumeOn, Op::Csvm]),
    (
        &[Running],
        &[
            Op::CleanShutdown,
            Op::CleanReboot,
            Op::Suspend,
            Op::Pause,
            Op::PoolMigrate,
            Op::SendSysrq,
            Op::SendTrigger,
            Op::CallPlugin,
            Op::ChangingMemoryLive,
            Op::AwaitingMemoryLive,
            Op::ChangingShadowMemoryLive,
            Op::ChangingVcpusLive,
            Op::DataSourceOp,
            Op::SnapshotWithQuiesce,
        ],
    ),
    (&[Halted, Running], &[Op::ChangingDynamicRange]),
    (
        &[Halted, Suspended],
        &[Op::CreateTemplate, Op::Destroy, Op::Export],
    ),
    (&[Paused, Running], &[Op::HardReboot]),
    (
        &[Paused, Suspended, Running],
        &[
            Op::HardShutdown,
            Op::Shutdown,
            Op::Checkpoint,
            Op::GetBootRecord,
        ],
    ),
    (&[Halted, Suspended, Running], &[Op::MigrateSend]),
    (
        &[Halted, Paused, Suspended, Running],
        &[
            Op::Snapshot,
            Op::Revert,
            Op::Reverting,
            Op::PowerStateReset,
            Op::MetadataExport,
            Op::QueryServices,
            Op::AssertOperationValid,
            Op::UpdateAllowedOperations,
        ],
    ),
];

/// The operations `allowed_operations` is computed over (xapi's `update_allowed_operations`
/// list, without `snapshot_with_quiesce`, whose message this API version removed).
static LISTED: &[Op] = &[
    Op::Snapshot,
    Op::Copy,
    Op::Clone,
    Op::Revert,
    Op::Checkpoint,
    Op::Start,
    Op::StartOn,
    Op::Pause,
    Op::Unpause,
    Op::CleanShutdown,
    Op::CleanReboot,
    Op::HardShutdown,
    Op::HardReboot,
    Op::Suspend,
    Op::Resume,
    Op::ResumeOn,
    Op::Export,
    Op::Destroy,
    Op::Provision,
    Op::ChangingVcpusLive,
    Op::PoolMigrate,
    Op::MigrateSend,
    Op::MakeIntoTemplate,
    Op::ChangingStaticRange,
    Op::ChangingShadowMemory,
    Op::ChangingDynamicRange,
];

/// Groups of operations that may all run at once (xapi's `is_allowed_concurrently`).
static CONCURRENT_GROUPS: &[&[Op]] = &[
    &[Op::Clone, Op::Copy, Op::Export],
    &[Op::Snapshot, Op::Checkpoint],
    &[Op::GetBootRecord],
];

/// (the operations in progress, an operation that may start beside exactly them).
static MAY_FOLLOW: &[(&[Op], Op)] = &[
    (&[Op::SnapshotWithQuiesce], Op::Snapshot),
    (&[Op::MigrateSend], Op::MetadataExport),
    (&[Op::MigrateSend], Op::CleanShutdown),
    (&[Op::MigrateSend], Op::CleanReboot),
    (&[Op::MigrateSend], Op::Start),
    (&[Op::MigrateSend], Op::StartOn),
];

/// What a template may do besides being destroyed or migrated (when it is not a default one).
static TEMPLATE_OPERATIONS: &[Op] = &[
    Op::ChangingDynamicRange,
    Op::ChangingStaticRange,
    Op::ChangingMemoryLimits,
    Op::ChangingShadowMemory,
    Op::ChangingVcpus,
    Op::Clone,
    Op::Copy,
    Op::Export,
    Op::MetadataExport,
    Op::Provision,
];

/// What a snapshot may do.
static SNAPSHOT_OPERATIONS: &[Op] = &[
    Op::Revert,
    Op::Clone,
    Op::Copy,
    Op::Export,
    Op::Destroy,
    Op::HardShutdown,
    Op::MetadataExport,
];

/// What a control domain may do.
static CONTROL_DOMAIN_OPERATIONS: &[Op] = &[
    Op::DataSourceOp,
    Op::ChangingMemoryLive,
    Op::AwaitingMemoryLive,
    Op::MetadataExport,
    Op::ChangingDynamicRange,
    Op::ChangingMemoryLimits,
    Op::ChangingStaticRange,
    Op::Start,
    Op::StartOn,
    Op::ChangingVcpus,
    Op::Destroy,
];

/// The operations that the guest must be able to migrate for.
static NEEDS_MOBILITY: &[Op] = &[
    Op::Suspend,
    Op::Checkpoint,
    Op::PoolMigrate,
    Op::MigrateSend,
];

/// The operations a disk that is reset on boot forbids.
static NEEDS_PERSISTENT_DISKS: &[Op] = &[Op::Checkpoint, Op::Snapshot, Op::Suspend];

/// The power states `op` needs for this VM, in xapi's order.
fn power_states(facts: &VmFacts, op: Op) -> Vec<VmPowerState> {
    let mut states: Vec<VmPowerState> = LIFECYCLE
        .iter()
        .find(|(_, ops)| ops.contains(&op))
        .map(|(states, _)| states.to_vec())
        .unwrap_or_default();
    let clones_suspended = facts.is_snapshot || facts.may_clone_suspended;
    if matches!(op, Op::Clone | Op::Copy) && clones_suspended {
        states.push(Suspended);
    }
    let is_limit_change = matches!(
        op,
        Op::ChangingVcpus | Op::ChangingStaticRange | Op::ChangingMemoryLimits
    );
    if is_limit_change && facts.is_control_domain {
        states.push(Running);
    }
    states
}

/// Whether `op` may start while `current` are in progress (xapi's `is_allowed_concurrently`;
/// the power state is checked apart).
fn is_allowed_concurrently(op: Op, current: &[Op]) -> bool {
    let all_in = |group: &[Op]| group.contains(&op) && current.iter().all(|c| group.contains(c));
    if CONCURRENT_GROUPS.iter().any(|group| all_in(group)) {
        return true;
    }
    match op {
        Op::HardShutdown => !current.contains(&Op::HardShutdown),
        Op::HardReboot => !current
            .iter()
            .any(|c| matches!(*c, Op::HardShutdown | Op::HardReboot)),
        _ => MAY_FOLLOW
            .iter()
            .any(|(before, after)| *before == current && *after == op),
    }
}

/// Whether `op` may start on the VM now; the error xapi gives first when not.
pub(crate) fn check(facts: &VmFacts, op: Op) -> Result<(), ApiError> {
    let vm = facts.r.as_str();
    if let Some(reason) = facts.blocked.get(&op) {
        return Err(errors::operation_blocked(vm, reason));
    }
    let states = power_states(facts, op);
    if !states.contains(&facts.power_state) {
        return Err(xenapi::vm_bad_power_state(vm, &states, facts.power_state));
    }
    if let Some((key, running)) = facts.current.first() {
        let current: Vec<Op> = facts.current.iter().map(|(_, o)| *o).collect();
        if !is_allowed_concurrently(op, &current) {
            return Err(errors::other_operation_in_progress("VM", vm, running, key));
        }
    }
    if facts.is_template && !facts.is_snapshot {
        let may = TEMPLATE_OPERATIONS.contains(&op)
            || (matches!(op, Op::Destroy | Op::MigrateSend) && !facts.is_default_template);
        if !may {
            return Err(errors::vm_is_template(vm));
        }
    }
    if facts.is_snapshot && !SNAPSHOT_OPERATIONS.contains(&op) {
        return Err(errors::vm_is_snapshot(vm, op));
    }
    if op == Op::Provision && !facts.is_template {
        return Err(errors::only_provision_template());
    }
    if op == Op::Revert && !facts.is_snapshot {
        return Err(errors::only_revert_snapshot());
    }
    if NEEDS_MOBILITY.contains(&op) && !facts.is_mobile {
        return Err(errors::vm_is_immobile(vm));
    }
    if facts.is_dom0 && matches!(op, Op::ChangingVcpus | Op::Destroy) {
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
        || (op == Op::PoolMigrate && facts.has_cached_reset_disk);
    if breaks_reset_disk {
        return Err(errors::vdi_on_boot_mode_incompatible_with_operation());
    }
    Ok(())
}

/// `allowed_operations`: the listed operations that may start now, in the enum's order.
pub(crate) fn allowed(facts: &VmFacts) -> Vec<Op> {
    Op::ALL
        .iter()
        .copied()
        .filter(|op| LISTED.contains(op) && check(facts, *op).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn facts(power_state: VmPowerState) -> VmFacts {
        VmFacts {
            r: "OpaqueRef:vm".to_owned(),
            power_state,
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

    fn busy(power_state: VmPowerState, op: Op) -> VmFacts {
        VmFacts {
            current: vec![("OpaqueRef:task".to_owned(), op)],
            ..facts(power_state)
        }
    }

    /// `allowed` as wire names, sorted, to compare with xapi's lists.
    fn names(ops: Vec<Op>) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = ops.into_iter().map(Op::wire).collect();
        names.sort_unstable();
        names
    }

    /// Every operation of the enum but `import` appears in the lifecycle table exactly once.
    #[test]
    fn the_lifecycle_table_covers_every_operation_once() {
        for op in Op::ALL {
            let rows = LIFECYCLE.iter().filter(|(_, ops)| ops.contains(op)).count();
            let expected = usize::from(*op != Op::Import);
            assert_eq!(rows, expected, "{op}");
        }
    }

    /// The allowed operations of a plain VM in each power state are xapi's.
    #[test]
    fn allowed_operations_per_power_state_are_xapis() {
        let cases: [(VmPowerState, &[&str]); 4] = [
            (
                Halted,
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
                Paused,
                &[
                    "snapshot",
                    "unpause",
                    "hard_shutdown",
                    "hard_reboot",
                    "checkpoint",
                ],
            ),
            (
                Running,
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
                Suspended,
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
            let got = names(allowed(&facts(state)));
            let mut expected = expected.to_vec();
            expected.sort_unstable();
            assert_eq!(got, expected, "{state}");
        }
    }

    /// A wrong power state names every accepted state, lowercase, in xapi's order.
    #[test]
    fn a_wrong_power_state_lists_the_accepted_ones() {
        let error = check(&facts(Halted), Op::HardShutdown).expect_err("refused");
        assert_eq!(
            error,
            xenapi::vm_bad_power_state("OpaqueRef:vm", &[Paused, Suspended, Running], Halted)
        );
        assert_eq!(error.params[1], "paused, suspended, running");
        assert_eq!(error.params[2], "halted");
    }

    /// A blocked operation is refused before anything else, with the reason given.
    #[test]
    fn blocked_operations_are_refused_first() {
        let mut vm = facts(Running);
        vm.blocked.insert(Op::Start, "no".to_owned());
        assert_eq!(
            check(&vm, Op::Start),
            Err(errors::operation_blocked("OpaqueRef:vm", "no"))
        );
    }

    /// One operation excludes the others, except the pairs xapi lets overlap: copies with
    /// copies, and a hard shutdown or reboot over anything but another hard one.
    #[test]
    fn operations_in_progress_exclude_all_but_xapis_overlaps() {
        let running = busy(Running, Op::CleanShutdown);
        assert_eq!(
            check(&running, Op::Suspend),
            Err(errors::other_operation_in_progress(
                "VM",
                "OpaqueRef:vm",
                "clean_shutdown",
                "OpaqueRef:task"
            ))
        );
        assert_eq!(check(&running, Op::HardShutdown), Ok(()));
        assert_eq!(check(&running, Op::HardReboot), Ok(()));
        let got = names(allowed(&running));
        assert_eq!(got, ["hard_reboot", "hard_shutdown"]);
        assert!(check(&busy(Running, Op::HardShutdown), Op::HardShutdown).is_err());
        assert!(check(&busy(Running, Op::HardShutdown), Op::HardReboot).is_err());
        let halted = busy(Halted, Op::Clone);
        assert_eq!(check(&halted, Op::Export), Ok(()));
        assert!(check(&halted, Op::Start).is_err());
        assert_eq!(
            check(&busy(Running, Op::MigrateSend), Op::CleanShutdown),
            Ok(())
        );
    }

    /// A template may be cloned, copied, exported, provisioned and have its limits changed,
    /// and destroyed unless it is a default one; anything else is `VM_IS_TEMPLATE`.
    #[test]
    fn templates_allow_only_copies_provisioning_and_limits() {
        let mut template = facts(Halted);
        template.is_template = true;
        let got = names(allowed(&template));
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
            check(&template, Op::Start),
            Err(errors::vm_is_template("OpaqueRef:vm"))
        );
        template.is_default_template = true;
        assert!(check(&template, Op::Destroy).is_err());
        assert!(check(&facts(Halted), Op::Provision).is_err());
    }

    /// A running control domain may only change its memory; dom0 is never destroyed.
    #[test]
    fn control_domains_allow_only_memory_changes() {
        let mut dom0 = facts(Running);
        dom0.is_control_domain = true;
        dom0.is_dom0 = true;
        let got = names(allowed(&dom0));
        assert_eq!(got, ["changing_dynamic_range", "changing_static_range"]);
        assert_eq!(
            check(&dom0, Op::CleanShutdown),
            Err(errors::operation_not_allowed(
                "This operation is not allowed on a control domain"
            ))
        );
    }

    /// Suspended VMs are cloned only when they are snapshots or the pool allows it; an
    /// immobile VM cannot be suspended; a disk reset on boot forbids snapshots.
    #[test]
    fn clone_mobility_and_reset_disks_follow_xapi() {
        let mut suspended = facts(Suspended);
        assert!(check(&suspended, Op::Clone).is_err());
        suspended.may_clone_suspended = true;
        assert_eq!(check(&suspended, Op::Clone), Ok(()));
        let mut running = facts(Running);
        running.is_mobile = false;
        assert_eq!(
            check(&running, Op::Suspend),
            Err(errors::vm_is_immobile("OpaqueRef:vm"))
        );
        running.is_mobile = true;
        running.has_reset_disk = true;
        assert_eq!(
            check(&running, Op::Snapshot),
            Err(errors::vdi_on_boot_mode_incompatible_with_operation())
        );
    }
}
