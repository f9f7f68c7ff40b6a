//! Memory: a VM's limits and their constraint, what it takes to start it, and what a host has
//! free, computed from the DB as xapi's `Memory_check` does (no reported figure is trusted).
//!
//! xapi's accounting, followed here: a host has `host_metrics.memory_total` less its own
//! overhead (`host.memory_overhead`) less, for every VM resident on it or scheduled to it,
//! the VM's `memory_dynamic_min` plus its `memory_overhead` (ballooning is assumed to
//! cooperate: the `Dynamic_min` policy), never below zero. Starting or resuming a VM needs
//! its `memory_dynamic_min` (its `memory_static_max` for `pv_in_pvh` guests, which cannot
//! start ballooned down) plus what it takes beyond its memory there.
//!
//! That last part is oxapi's, where xapi adds a shadow-memory estimate from its memory model:
//! what a VM takes beyond its memory depends on the hypervisor of the host
//! (`software_version:hypervisor`): a QEMU under KVM, a QEMU under TCG with its translation
//! cache, or the simulator, which takes nothing (`host_api::overhead`). Placement weighs each
//! candidate host with its own figure; the VM's `memory_overhead` records the figure of the
//! host it was placed on, and that is what it is counted at there.

use api_spec::{ApiError, errors};
use host_api::overhead;

use crate::vm::operations::Overlay;

/// xapi's words for the order the four limits must follow.
pub(crate) const ORDER_CONSTRAINT: &str =
    "Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max";

/// xapi's words for the limits of a control domain, which does not balloon.
pub(crate) const EQUALITY_CONSTRAINT: &str =
    "Memory limits must satisfy: static_min ≤ dynamic_min = dynamic_max = static_max";

/// The four memory limits of a VM, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub static_min: i64,
    pub dynamic_min: i64,
    pub dynamic_max: i64,
    pub static_max: i64,
}

impl Limits {
    pub fn read(view: &Overlay, vm: &str) -> Limits {
        let get = |field| view.int("VM", vm, field);
        Limits {
            static_min: get("memory_static_min"),
            dynamic_min: get("memory_dynamic_min"),
            dynamic_max: get("memory_dynamic_max"),
            static_max: get("memory_static_max"),
        }
    }

    /// `MEMORY_CONSTRAINT_VIOLATION [constraint]` unless the limits are in order; a control
    /// domain's dynamic range must also be pinned at its static maximum.
    pub fn check(&self, is_control_domain: bool) -> Result<(), ApiError> {
        let in_order = 0 <= self.static_min
            && self.static_min <= self.dynamic_min
            && self.dynamic_min <= self.dynamic_max
            && self.dynamic_max <= self.static_max;
        if !in_order {
            return Err(errors::memory_constraint_violation(ORDER_CONSTRAINT));
        }
        let is_pinned = self.dynamic_min == self.static_max && self.dynamic_max == self.static_max;
        if is_control_domain && !is_pinned {
            return Err(errors::memory_constraint_violation(EQUALITY_CONSTRAINT));
        }
        Ok(())
    }
}

/// What `vm` uses on the host it runs on (or is scheduled to), in bytes.
fn used_bytes(view: &Overlay, vm: &str) -> i64 {
    view.int("VM", vm, "memory_dynamic_min")
        .saturating_add(view.int("VM", vm, "memory_overhead"))
        .max(0)
}

/// What `vm` takes on `host` beyond its memory, in bytes, by the host's hypervisor.
pub(crate) fn overhead_on(view: &Overlay, vm: &str, host: &str) -> i64 {
    let software = view.string_map("host", host, "software_version");
    let hypervisor = software.get("hypervisor").map_or("", String::as_str);
    overhead::vm_overhead_bytes(
        hypervisor,
        view.int("VM", vm, "VCPUs_max"),
        view.int("VM", vm, "memory_static_max"),
    )
}

/// What `vm` takes beyond its memory where it runs, or else on the host it would start on
/// first (its affinity host), or else on the pool's costliest host (`VM.compute_memory_overhead`).
pub(crate) fn overhead(view: &Overlay, vm: &str) -> i64 {
    let pinned = ["resident_on", "affinity"]
        .into_iter()
        .map(|field| view.str("VM", vm, field))
        .find(|host| view.exists("host", host));
    match pinned {
        Some(host) => overhead_on(view, vm, host),
        None => view
            .refs("host")
            .iter()
            .map(|host| overhead_on(view, vm, host))
            .max()
            .unwrap_or(0),
    }
}

/// The memory starting or resuming `vm` gives its guest at least, in bytes, wherever it runs.
pub(crate) fn guest_bytes(view: &Overlay, vm: &str) -> i64 {
    if view.str("VM", vm, "domain_type") == "pv_in_pvh" {
        view.int("VM", vm, "memory_static_max")
    } else {
        view.int("VM", vm, "memory_dynamic_min")
    }
}

/// What starting or resuming `vm` on `host` needs free there, in bytes.
pub(crate) fn start_bytes(view: &Overlay, vm: &str, host: &str) -> i64 {
    guest_bytes(view, vm)
        .saturating_add(overhead_on(view, vm, host))
        .max(0)
}

/// What `host` has free, in bytes, not counting `ignored` (the VM being placed, which may be
/// scheduled there already).
pub(crate) fn host_free_bytes(view: &Overlay, host: &str, ignored: Option<&str>) -> i64 {
    let metrics = view.str("host", host, "metrics");
    let total = view.int("host_metrics", metrics, "memory_total");
    let mut free = total.saturating_sub(view.int("host", host, "memory_overhead"));
    for vm in view.refs("VM") {
        if Some(vm.as_str()) == ignored {
            continue;
        }
        let is_here = view.str("VM", &vm, "resident_on") == host
            || view.str("VM", &vm, "scheduled_to_be_resident_on") == host;
        if is_here {
            free = free.saturating_sub(used_bytes(view, &vm));
        }
    }
    free.max(0)
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::{TestPool, sample_facts};
    use crate::vm::operations::Draft;

    const GIB: i64 = 1 << 30;

    fn limits(static_min: i64, dynamic_min: i64, dynamic_max: i64, static_max: i64) -> Limits {
        Limits {
            static_min,
            dynamic_min,
            dynamic_max,
            static_max,
        }
    }

    /// Limits out of order break xapi's constraint; a control domain must be pinned.
    #[test]
    fn limits_must_be_in_order_and_pinned_for_control_domains() {
        assert_eq!(limits(1, 2, 3, 4).check(false), Ok(()));
        assert_eq!(
            limits(1, 3, 2, 4).check(false),
            Err(errors::memory_constraint_violation(ORDER_CONSTRAINT))
        );
        assert_eq!(
            limits(1, 2, 3, 4).check(true),
            Err(errors::memory_constraint_violation(EQUALITY_CONSTRAINT))
        );
        assert_eq!(limits(1, 4, 4, 4).check(true), Ok(()));
    }

    /// Free memory is the total less the control domain and every VM resident or scheduled
    /// here, each counted at its dynamic minimum; the VM being placed is not counted.
    #[test]
    fn free_memory_counts_resident_and_scheduled_vms_at_dynamic_min() {
        let pool = TestPool::new();
        let db = pool.read();
        let total = i64::try_from(sample_facts().memory_total_bytes).expect("fits");
        let mut draft = Draft::new(&db);
        let host = pool.host.as_str();
        assert_eq!(host_free_bytes(draft.view(), host, None), total - GIB);
        let scheduled = draft.create(
            "VM",
            [
                ("memory_dynamic_min", Value::Int(2 * GIB)),
                ("memory_overhead", Value::Int(GIB)),
                ("scheduled_to_be_resident_on", Value::str(host)),
            ],
        );
        assert_eq!(host_free_bytes(draft.view(), host, None), total - 4 * GIB);
        assert_eq!(
            host_free_bytes(draft.view(), host, Some(&scheduled)),
            total - GIB
        );
        assert_eq!(start_bytes(draft.view(), &scheduled, host), 2 * GIB);
    }
}
