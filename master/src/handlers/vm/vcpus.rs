//! A VM's VCPUs: the maximum and startup count of a halted VM, and hotplug of a running
//! one's through its agent, with xapi's checks and words.

use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{Value, errors};

use super::{Expect, Operation, answer};
use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::vm::operations::{self, Draft};
use crate::vm::power_state::{power_state, set_running};
use host_api::{ActionResult, HostAction, VmAction};

/// xapi's words for the VCPU counts a VM may have.
const VCPUS_CONSTRAINT: &str = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max";

/// xapi's words for the VCPUs a running VM may have.
const LIVE_VCPUS_CONSTRAINT: &str = "VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max";

/// `VM.set_VCPUs_max`: a halted VM's maximum, never below its startup count.
pub(in crate::handlers) async fn set_vcpus_max(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            operations::check(draft.view(), vm, VmOperation::ChangingVcpus)?;
            draft.require_unchanged("VM", vm, "current_operations");
            draft.require_unchanged("VM", vm, "power_state");
            draft.require_unchanged("VM", vm, "VCPUs_at_startup");
            let view = draft.view();
            if value < 1 || value < view.int("VM", vm, "VCPUs_at_startup") {
                return Err(errors::invalid_value(VCPUS_CONSTRAINT, value).into());
            }
            let is_running_control_domain = view.bool("VM", vm, "is_control_domain")
                && power_state(view, vm) == VmPowerState::Running;
            draft.update("VM", vm, "VCPUs_max", Value::Int(value));
            if is_running_control_domain {
                draft.update("VM", vm, "requires_reboot", Value::Bool(true));
            }
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(void())
}

/// `VM.set_VCPUs_at_startup`: between 1 and `VCPUs_max`, in any power state (it applies at
/// the next boot); not on dom0.
pub(in crate::handlers) async fn set_vcpus_at_startup(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let view = draft.view();
            if !view.exists("VM", vm) {
                return Err(errors::handle_invalid("VM", vm).into());
            }
            if view.bool("VM", vm, "is_control_domain") && view.int("VM", vm, "domid") == 0 {
                let reason = "set_VCPUs_at_startup is not allowed on dom0";
                return Err(errors::operation_not_allowed(reason).into());
            }
            if value < 1 || value > view.int("VM", vm, "VCPUs_max") {
                return Err(errors::invalid_value(VCPUS_CONSTRAINT, value).into());
            }
            draft.require_unchanged("VM", vm, "VCPUs_max");
            draft.update("VM", vm, "VCPUs_at_startup", Value::Int(value));
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(void())
}

/// `VM.set_VCPUs_number_live`: hotplugs VCPUs of a running VM, up to `VCPUs_max`; the count
/// also becomes its startup count, as xapi does.
pub(in crate::handlers) async fn set_vcpus_number_live(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, count) = (args.str("self")?, args.int("nvcpu")?);
    let operation = Operation::new(&ctx, vm, VmOperation::ChangingVcpusLive);
    let (host, action) = operation
        .begin(|draft| {
            let view = draft.view();
            if count < 1 || count > view.int("VM", vm, "VCPUs_max") {
                return Err(errors::invalid_value(LIVE_VCPUS_CONSTRAINT, count).into());
            }
            let action = HostAction::Vm(VmAction::SetVcpus {
                vm: view.str("VM", vm, "uuid").to_owned(),
                count: u32::try_from(count).unwrap_or(u32::MAX),
            });
            Ok((view.str("VM", vm, "resident_on").to_owned(), action))
        })
        .await?;
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    operation
        .end(|draft| {
            if let Ok(ActionResult::Domain(Some(info))) = &outcome {
                draft.update("VM", vm, "VCPUs_at_startup", Value::Int(count));
                set_running(draft, vm, &host, info, false, now);
            }
            Ok(())
        })
        .await?;
    answer(vm, outcome, Expect::Domain { paused: false })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    fn args(vm: &str, values: &[i64]) -> Vec<Value> {
        let mut all = vec![s(vm)];
        all.extend(values.iter().map(|v| Value::Int(*v)));
        all
    }

    /// `set_VCPUs_max` and `set_VCPUs_at_startup` keep 0 < at startup ≤ max, with xapi's
    /// words; the maximum changes only while halted.
    #[tokio::test]
    async fn vcpu_setters_keep_startup_within_max() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        assert_eq!(
            pool.call_as(&session, "VM.set_VCPUs_max", args(&vm, &[4]))
                .await,
            Ok(s(""))
        );
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_at_startup", args(&vm, &[3]))
            .await;
        assert_eq!(reply, Ok(s("")));
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_max", args(&vm, &[2]))
            .await;
        assert_eq!(reply, Err(errors::invalid_value(VCPUS_CONSTRAINT, 2)));
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_at_startup", args(&vm, &[5]))
            .await;
        assert_eq!(reply, Err(errors::invalid_value(VCPUS_CONSTRAINT, 5)));
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_at_startup", args(&vm, &[0]))
            .await;
        assert_eq!(reply, Err(errors::invalid_value(VCPUS_CONSTRAINT, 0)));
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_max", args(&vm, &[8]))
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Halted],
                VmPowerState::Running
            ))
        );
        assert_eq!(pool.field("VM", &vm, "VCPUs_max"), Some(Value::Int(4)));
    }

    /// `set_VCPUs_number_live` hotplugs VCPUs up to the maximum through the agent, and the
    /// count becomes the startup count and the metrics'; it needs a running VM.
    #[tokio::test]
    async fn vcpus_are_hotplugged_up_to_the_maximum() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        pool.call_as(&session, "VM.set_VCPUs_max", args(&vm, &[4]))
            .await
            .expect("set");
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_number_live", args(&vm, &[2]))
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Running],
                VmPowerState::Halted
            ))
        );
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_number_live", args(&vm, &[3]))
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(
            pool.field("VM", &vm, "VCPUs_at_startup"),
            Some(Value::Int(3))
        );
        let metrics = pool.text("VM", &vm, "metrics");
        assert_eq!(
            pool.field("VM_metrics", &metrics, "VCPUs_number"),
            Some(Value::Int(3))
        );
        let reply = pool
            .call_as(&session, "VM.set_VCPUs_number_live", args(&vm, &[5]))
            .await;
        assert_eq!(reply, Err(errors::invalid_value(LIVE_VCPUS_CONSTRAINT, 5)));
        // The new startup count reaches the agent too, for a reboot of the guest.
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::Start,
                ActionKind::SetVcpus,
                ActionKind::UpdateSpec
            ]
        );
        let uuid = pool.text("VM", &vm, "uuid");
        assert_eq!(pool.agent.spec(&uuid).map(|s| s.vcpus_at_startup), Some(3));
    }
}
