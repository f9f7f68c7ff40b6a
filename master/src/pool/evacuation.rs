//! Where the VMs of a host go when it is evacuated: xapi's evacuation plan (`host.evacuate`,
//! `assert_can_evacuate`, `get_vms_which_prevent_evacuation`), decided on the DB alone.
//!
//! As xapi's `compute_evacuation_plan`: the targets are the other hosts that are enabled (and,
//! in oxapi, live: a dead host is not one a VM can go to); every VM resident on the host
//! (control domains aside) must be able to run on every target, memory aside (so a VM with a
//! disk on the host's local SR gets `VM_REQUIRES_SR`), and must allow `pool_migrate` now (its
//! error otherwise, e.g. `VM_BAD_POWER_STATE` for a paused one); the VMs that pass are placed
//! biggest first, each where `VM.start`'s placement would put it given the VMs placed before
//! it, or `HOST_NOT_ENOUGH_FREE_MEMORY`. With no target at all, every VM gets
//! `NO_HOSTS_AVAILABLE`.

use std::collections::BTreeMap;

use api_spec::classes::vm::VmOperation;
use api_spec::{ApiError, errors};

use crate::vm::memory;
use crate::vm::operations::{self, Overlay};
use crate::vm::placement::{self, Need, Policy};

/// Where each VM resident on a host goes, by VM ref: a target host, or why it cannot go.
pub(crate) type Plan = BTreeMap<String, Result<String, ApiError>>;

/// The VMs resident on `host` that an evacuation moves: all but control domains.
pub(crate) fn resident_vms(view: &Overlay, host: &str) -> Vec<String> {
    view.children("VM", "resident_on", host)
        .into_iter()
        .filter(|vm| !view.bool("VM", vm, "is_control_domain"))
        .collect()
}

/// The evacuation plan of `host`: see the module comment.
pub(crate) fn plan(view: &Overlay, host: &str) -> Plan {
    let vms = resident_vms(view, host);
    let targets: Vec<String> = view
        .refs("host")
        .into_iter()
        .filter(|h| h != host)
        .filter(|h| placement::check(&placement::candidate(view, h, ""), 0).is_ok())
        .collect();
    if targets.is_empty() {
        return vms
            .into_iter()
            .map(|vm| (vm, Err(errors::no_hosts_available())))
            .collect();
    }
    let mut plan = Plan::new();
    let mut movable = Vec::new();
    for vm in vms {
        // xapi records the SR errors first and lets an operation's error replace them.
        let refusal = operations::check(view, &vm, VmOperation::PoolMigrate)
            .err()
            .map(crate::error::to_api_error)
            .or_else(|| {
                targets
                    .iter()
                    .find_map(|target| placement::check_srs(view, &vm, target).err())
            });
        match refusal {
            Some(error) => {
                plan.insert(vm, Err(error));
            }
            None => movable.push((memory::guest_bytes(view, &vm), vm)),
        }
    }
    // Biggest first, ties by ref, so the plan is deterministic.
    movable.sort_by(|(a_bytes, a), (b_bytes, b)| b_bytes.cmp(a_bytes).then(a.cmp(b)));
    let policy = Policy::of_pool(view);
    let mut placed_bytes: BTreeMap<String, i64> = BTreeMap::new();
    for (need_bytes, vm) in movable {
        let candidates: Vec<placement::Candidate> = targets
            .iter()
            .map(|target| {
                let mut candidate = placement::candidate(view, target, &vm);
                let placed = placed_bytes.get(target).copied().unwrap_or(0);
                candidate.free_bytes = candidate.free_bytes.saturating_sub(placed).max(0);
                candidate
            })
            .collect();
        let affinity = view.str("VM", &vm, "affinity");
        let need = Need {
            memory_bytes: need_bytes,
            affinity: targets
                .iter()
                .any(|t| t == affinity)
                .then(|| affinity.to_owned()),
        };
        let chosen = placement::choose(&candidates, &need, policy).map(|(target, _)| target);
        if let Ok(target) = &chosen {
            let overhead = memory::overhead_on(view, &vm, target);
            *placed_bytes.entry(target.clone()).or_default() += need_bytes + overhead;
        }
        plan.insert(vm, chosen);
    }
    plan
}

/// The VMs the plan cannot move, with their errors.
pub(crate) fn refusals(plan: &Plan) -> impl Iterator<Item = (&str, &ApiError)> {
    plan.iter()
        .filter_map(|(vm, target)| target.as_ref().err().map(|e| (vm.as_str(), e)))
}

/// `CANNOT_EVACUATE_HOST` for the refusals of a plan, in xapi's encoding; `None` when there
/// are none.
pub(crate) fn cannot_evacuate(plan: &Plan) -> Option<ApiError> {
    let errors: Vec<String> = refusals(plan)
        .map(|(_, error)| error.description().join(","))
        .collect();
    (!errors.is_empty()).then(|| errors::cannot_evacuate_host(errors.join("|")))
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::TestPool;

    const GIB: i64 = 1 << 30;

    /// A VM of `gib` GiB started on the pool's first host.
    async fn running(pool: &TestPool, session: &str, name: &str, gib: i64) -> String {
        let vm = pool.new_vm(session, name).await;
        let mut limits = vec![Value::str(vm.as_str())];
        limits.extend([gib * GIB; 4].map(Value::Int));
        pool.call_as(session, "VM.set_memory_limits", limits)
            .await
            .expect("limits set");
        pool.start_on(session, &vm, &pool.host).await;
        vm
    }

    /// The biggest VM is placed first, so two VMs fit on hosts where the smaller one, placed
    /// first on the roomiest host, would leave no room for the bigger.
    #[tokio::test]
    async fn the_biggest_vms_are_placed_first() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let roomy = pool.add_host("roomy", 2 * GIB);
        let tight = pool.add_host("tight", GIB);
        let small = running(&pool, &session, "small", 1).await;
        let big = running(&pool, &session, "big", 2).await;
        let db = pool.read();
        let plan = plan(&Overlay::new(&db), &pool.host);
        assert_eq!(plan.get(&big), Some(&Ok(roomy)));
        assert_eq!(plan.get(&small), Some(&Ok(tight)));
        assert_eq!(plan.len(), 2, "the control domain stays");
        assert_eq!(cannot_evacuate(&plan), None);
    }
}
