//! The operations in progress on a reconciled VM and its devices: those this process runs are
//! left to their end Txn; those whose key no operation of this process holds died with an
//! earlier process, and go, their tasks failed.

use api_spec::Value;

use crate::Master;
use crate::call::tasks;
use crate::vm::operations::{Draft, Overlay};

/// What a task killed with its process ends with.
const INTERRUPTED: &str = "operation interrupted by a restart";

/// Whether an operation of this process runs on `vm` or on one of its VBDs and VIFs: its end
/// writes what its action did to the domain.
pub(crate) fn is_busy(master: &Master, view: &Overlay, vm: &str) -> bool {
    master.in_flight.is_busy("VM", vm)
        || ["VBD", "VIF"].into_iter().any(|class| {
            view.children(class, "VM", vm)
                .iter()
                .any(|device| master.in_flight.is_busy(class, device))
        })
}

/// Removes from `vm` and its devices every operation key that no operation of this process
/// holds, and fails the tasks behind them.
pub(crate) fn clear_dead_operations(master: &Master, draft: &mut Draft, vm: &str, now: i64) {
    let mut rows = vec![("VM", vm.to_owned())];
    for class in ["VBD", "VIF"] {
        for device in draft.view().children(class, "VM", vm) {
            rows.push((class, device));
        }
    }
    for (class, r) in rows {
        let keys: Vec<String> = draft
            .view()
            .field(class, &r, "current_operations")
            .and_then(Value::as_struct)
            .map(|ops| ops.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            if master.in_flight.contains(&key) {
                continue;
            }
            draft.map_remove(class, &r, "current_operations", &key);
            fail_task(master, draft, &key, now);
        }
    }
}

/// Ends a pending task that lost its worker with `INTERNAL_ERROR`.
fn fail_task(master: &Master, draft: &mut Draft, task: &str, now: i64) {
    let status = draft.view().str("task", task, "status").to_owned();
    if !tasks::is_orphan(master, task, &status) {
        return;
    }
    tasks::fail_orphan(
        draft,
        task,
        &[api_spec::errors::INTERNAL_ERROR, INTERRUPTED],
        now,
    );
    tracing::info!(task = %task, "task interrupted by a restart failed");
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;
    use api_spec::classes::vif::VifOperation;
    use api_spec::classes::vm::VmOperation;

    use super::*;
    use crate::call::tasks::NewTask;
    use crate::testing::{RUNNING_OPERATIONS, TestPool, s};
    use host_api::AgentReport;

    /// Operations left behind by a dead process are removed and their tasks fail; one this
    /// process runs is kept.
    #[tokio::test]
    async fn an_inventory_clears_operations_of_dead_workers() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let new = NewTask {
            label: "Async.VM.clean_shutdown",
            description: "",
            subtask_of: NULL_REF,
            is_cancellable: true,
        };
        let task = crate::call::tasks::create(&pool.master, new)
            .await
            .expect("a task");
        let live = pool.master.in_flight.register(
            "OpaqueRef:live",
            &vm,
            VmOperation::HardShutdown.into(),
            tokio_util::sync::CancellationToken::new(),
        );
        let stale = Value::Struct(
            [
                (task.clone(), s("clean_shutdown")),
                ("OpaqueRef:live".to_owned(), s("hard_shutdown")),
            ]
            .into(),
        );
        pool.write("VM", &vm, &[("current_operations", stale)]);
        pool.master
            .report(&pool.host, AgentReport::Inventory(pool.agent.domains()))
            .await;
        assert_eq!(
            pool.current("VM", &vm),
            [("OpaqueRef:live".to_owned(), "hard_shutdown".to_owned())]
        );
        assert_eq!(pool.text("task", &task, "status"), "failure");
        assert_eq!(
            pool.field("task", &task, "error_info"),
            Some(Value::Array(vec![s("INTERNAL_ERROR"), s(INTERRUPTED)]))
        );
        drop(live);
        pool.master
            .report(&pool.host, AgentReport::Inventory(pool.agent.domains()))
            .await;
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
    }

    /// A VM whose NIC is being plugged by this process is left to that operation, even when
    /// the inventory lacks its domain; once the operation is over, the inventory applies.
    #[tokio::test]
    async fn an_inventory_leaves_vms_with_a_device_operation_alone() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let vif = pool.add_nic(&session, &vm, "0").await;
        let plugging = pool.master.in_flight.register(
            "OpaqueRef:plug",
            &vif,
            VifOperation::Plug.into(),
            tokio_util::sync::CancellationToken::new(),
        );
        pool.master
            .report(&pool.host, AgentReport::Inventory(Vec::new()))
            .await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        drop(plugging);
        pool.master
            .report(&pool.host, AgentReport::Inventory(Vec::new()))
            .await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
    }
}
