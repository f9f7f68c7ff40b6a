//! A VM's memory limits: the setters xapi offers, each under the operation xapi records for
//! it, each checking the limits' order (`vm/memory.rs`). A running VM's dynamic range changes
//! live through its agent.

use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{Value, errors};

use super::{Expect, Operation, answer};
use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::vm::memory::Limits;
use crate::vm::operations::{self, Draft, Overlay};
use crate::vm::power_state::{power_state, set_running};
use host_api::{ActionResult, DomainState, HostAction, VmAction};

/// Which limits a setter changes.
#[derive(Debug, Clone, Copy)]
enum Change {
    Static { min: i64, max: i64 },
    Dynamic { min: i64, max: i64 },
    All(Limits),
}

impl Change {
    /// The VM operation xapi records for the change.
    fn operation(self) -> VmOperation {
        match self {
            Change::Static { .. } => VmOperation::ChangingStaticRange,
            Change::Dynamic { .. } => VmOperation::ChangingDynamicRange,
            Change::All(_) => VmOperation::ChangingMemoryLimits,
        }
    }

    fn apply(self, limits: Limits) -> Limits {
        match self {
            Change::Static { min, max } => Limits {
                static_min: min,
                static_max: max,
                ..limits
            },
            Change::Dynamic { min, max } => Limits {
                dynamic_min: min,
                dynamic_max: max,
                ..limits
            },
            Change::All(new) => new,
        }
    }
}

/// Checks `change` may be made to `vm` and writes it.
fn write_limits(draft: &mut Draft, vm: &str, change: Change) -> Result<Limits, Error> {
    let view = draft.view();
    let limits = change.apply(Limits::read(view, vm));
    limits.check(view.bool("VM", vm, "is_control_domain"))?;
    for (field, value) in [
        ("memory_static_min", limits.static_min),
        ("memory_dynamic_min", limits.dynamic_min),
        ("memory_dynamic_max", limits.dynamic_max),
        ("memory_static_max", limits.static_max),
    ] {
        draft.update("VM", vm, field, Value::Int(value));
    }
    Ok(limits)
}

/// Whether the VM's dynamic range is applied to a domain (a running guest that is not a
/// control domain, whose memory the agent does not manage).
fn is_live_domain(view: &Overlay, vm: &str) -> bool {
    power_state(view, vm) == VmPowerState::Running && !view.bool("VM", vm, "is_control_domain")
}

/// Makes `change` under its operation: in one Txn for a VM without a domain; for a running
/// VM's dynamic range, with the agent moving the balloon target to the new maximum first.
async fn change_memory(ctx: &Ctx, vm: &str, change: Change) -> Result<Value, Error> {
    let op = change.operation();
    let is_live =
        matches!(change, Change::Dynamic { .. }) && is_live_domain(&Overlay::new(&ctx.db()), vm);
    if !is_live {
        ctx.master
            .decide(|db| {
                let mut draft = Draft::new(db);
                operations::check(draft.view(), vm, op)?;
                draft.require_unchanged("VM", vm, "current_operations");
                draft.require_unchanged("VM", vm, "power_state");
                write_limits(&mut draft, vm, change)?;
                Ok((draft.into_txn(), ()))
            })
            .await?;
        return Ok(void());
    }
    let operation = Operation::new(ctx, vm, op);
    let (host, action) = operation
        .begin(|draft| {
            if !is_live_domain(draft.view(), vm) {
                return Err(
                    errors::operation_not_allowed("the VM stopped meanwhile; retry").into(),
                );
            }
            let limits = change.apply(Limits::read(draft.view(), vm));
            limits.check(false)?;
            let view = draft.view();
            let action = HostAction::Vm(VmAction::SetMemoryTarget {
                vm: view.str("VM", vm, "uuid").to_owned(),
                bytes: u64::try_from(limits.dynamic_max).unwrap_or(0),
            });
            Ok((view.str("VM", vm, "resident_on").to_owned(), action))
        })
        .await?;
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    operation
        .end(|draft| {
            if let Ok(ActionResult::Domain(Some(info))) = &outcome {
                write_limits(draft, vm, change)?;
                set_running(draft, vm, &host, info, false, now);
            }
            Ok(())
        })
        .await?;
    let paused = matches!(
        &outcome,
        Ok(ActionResult::Domain(Some(info))) if info.state == DomainState::Paused
    );
    answer(vm, outcome, Expect::Domain { paused })
}

/// `VM.set_memory_dynamic_range`: on a halted or running VM.
pub(in crate::handlers) async fn set_memory_dynamic_range(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, min, max) = (args.str("self")?, args.int("min")?, args.int("max")?);
    change_memory(&ctx, vm, Change::Dynamic { min, max }).await
}

/// `VM.set_memory_target_live` (deprecated in xapi): the dynamic range's both ends at
/// `target`, so that a running guest's balloon goes there.
pub(in crate::handlers) async fn set_memory_target_live(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, target) = (args.str("self")?, args.int("target")?);
    let change = Change::Dynamic {
        min: target,
        max: target,
    };
    change_memory(&ctx, vm, change).await
}

/// `VM.set_memory_dynamic_min`: the dynamic range with a new minimum.
pub(in crate::handlers) async fn set_memory_dynamic_min(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, min) = (args.str("self")?, args.int("value")?);
    let max = current(&ctx, vm, "memory_dynamic_max")?;
    change_memory(&ctx, vm, Change::Dynamic { min, max }).await
}

/// `VM.set_memory_dynamic_max`: the dynamic range with a new maximum.
pub(in crate::handlers) async fn set_memory_dynamic_max(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, max) = (args.str("self")?, args.int("value")?);
    let min = current(&ctx, vm, "memory_dynamic_min")?;
    change_memory(&ctx, vm, Change::Dynamic { min, max }).await
}

/// `VM.set_memory_static_range`: on a halted VM.
pub(in crate::handlers) async fn set_memory_static_range(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, min, max) = (args.str("self")?, args.int("min")?, args.int("max")?);
    change_memory(&ctx, vm, Change::Static { min, max }).await
}

/// `VM.set_memory_static_min`: the static range with a new minimum.
pub(in crate::handlers) async fn set_memory_static_min(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, min) = (args.str("self")?, args.int("value")?);
    let max = current(&ctx, vm, "memory_static_max")?;
    change_memory(&ctx, vm, Change::Static { min, max }).await
}

/// `VM.set_memory_static_max`: the static range with a new maximum.
pub(in crate::handlers) async fn set_memory_static_max(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, max) = (args.str("self")?, args.int("value")?);
    let min = current(&ctx, vm, "memory_static_min")?;
    change_memory(&ctx, vm, Change::Static { min, max }).await
}

/// `VM.set_memory_limits`: all four limits of a halted VM.
pub(in crate::handlers) async fn set_memory_limits(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("self")?;
    let limits = Limits {
        static_min: args.int("static_min")?,
        static_max: args.int("static_max")?,
        dynamic_min: args.int("dynamic_min")?,
        dynamic_max: args.int("dynamic_max")?,
    };
    change_memory(&ctx, vm, Change::All(limits)).await
}

/// `VM.set_memory`: the static maximum and the whole dynamic range at `value`, as xapi does.
pub(in crate::handlers) async fn set_memory(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    let static_min = current(&ctx, vm, "memory_static_min")?;
    let limits = Limits {
        static_min,
        dynamic_min: value,
        dynamic_max: value,
        static_max: value,
    };
    change_memory(&ctx, vm, Change::All(limits)).await
}

/// `VM.compute_memory_overhead`: what the VM takes beyond its memory where it runs (or else on
/// its affinity host, or else on the pool's costliest host), by that host's hypervisor.
pub(in crate::handlers) async fn compute_memory_overhead(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let db = ctx.db();
    crate::db::record::row(&db, "VM", vm)?;
    Ok(Value::Int(crate::vm::memory::overhead(
        &Overlay::new(&db),
        vm,
    )))
}

/// An int field of a live VM.
fn current(ctx: &Ctx, vm: &str, field: &str) -> Result<i64, Error> {
    let db = ctx.db();
    let row = crate::db::record::row(&db, "VM", vm)?;
    Ok(row.get(field).and_then(Value::as_int).unwrap_or(0))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{TestPool, s};
    use crate::vm::memory::{EQUALITY_CONSTRAINT, ORDER_CONSTRAINT};
    use api_spec::classes::vm::VmPowerState;

    const GIB: i64 = 1 << 30;

    fn ints(values: &[i64]) -> Vec<Value> {
        values.iter().map(|v| Value::Int(*v)).collect()
    }

    fn args(vm: &str, values: &[i64]) -> Vec<Value> {
        let mut all = vec![s(vm)];
        all.extend(ints(values));
        all
    }

    fn limits(pool: &TestPool, vm: &str) -> [i64; 4] {
        [
            "memory_static_min",
            "memory_dynamic_min",
            "memory_dynamic_max",
            "memory_static_max",
        ]
        .map(|f| {
            pool.field("VM", vm, f)
                .and_then(|v| v.as_int())
                .unwrap_or(-1)
        })
    }

    /// `set_memory_limits`, `set_memory_static_range` and `set_memory` write the limits of a
    /// halted VM; limits out of order are `MEMORY_CONSTRAINT_VIOLATION` with xapi's words and
    /// change nothing.
    #[tokio::test]
    async fn memory_setters_check_the_order_of_the_limits() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_limits",
                args(&vm, &[GIB, 4 * GIB, 2 * GIB, 3 * GIB]),
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(limits(&pool, &vm), [GIB, 2 * GIB, 3 * GIB, 4 * GIB]);
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_limits",
                args(&vm, &[GIB, 4 * GIB, 3 * GIB, 2 * GIB]),
            )
            .await;
        assert_eq!(
            reply,
            Err(errors::memory_constraint_violation(ORDER_CONSTRAINT))
        );
        assert_eq!(limits(&pool, &vm), [GIB, 2 * GIB, 3 * GIB, 4 * GIB]);
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_static_range",
                args(&vm, &[GIB / 2, 8 * GIB]),
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(limits(&pool, &vm), [GIB / 2, 2 * GIB, 3 * GIB, 8 * GIB]);
        let reply = pool
            .call_as(&session, "VM.set_memory", args(&vm, &[6 * GIB]))
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(limits(&pool, &vm), [GIB / 2, 6 * GIB, 6 * GIB, 6 * GIB]);
        let reply = pool
            .call_as(&session, "VM.set_memory_dynamic_min", args(&vm, &[7 * GIB]))
            .await;
        assert_eq!(
            reply,
            Err(errors::memory_constraint_violation(ORDER_CONSTRAINT))
        );
        let reply = pool
            .call_as(&session, "VM.set_memory_static_max", args(&vm, &[16 * GIB]))
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(limits(&pool, &vm)[3], 16 * GIB);
        assert!(pool.agent.received().is_empty());
    }

    /// A running VM's static limits are refused; its dynamic range changes live: the agent
    /// moves the balloon to the new maximum and the DB follows.
    #[tokio::test]
    async fn a_running_vms_dynamic_range_changes_live() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        pool.call_as(
            &session,
            "VM.set_memory_limits",
            args(&vm, &[GIB, 4 * GIB, GIB, 2 * GIB]),
        )
        .await
        .expect("set");
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_static_range",
                args(&vm, &[GIB, 8 * GIB]),
            )
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Halted],
                VmPowerState::Running
            ))
        );
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_dynamic_range",
                args(&vm, &[2 * GIB, 3 * GIB]),
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(limits(&pool, &vm), [GIB, 2 * GIB, 3 * GIB, 4 * GIB]);
        let mut received = pool.agent.received();
        let pushed = received.pop().expect("an action");
        let target = received.pop().expect("an action");
        assert!(
            matches!(target.action, HostAction::Vm(VmAction::SetMemoryTarget { bytes, .. }) if bytes == 3 << 30)
        );
        // The agent also holds the new range for the domain, as a guest reboot would use it.
        assert!(matches!(
            pushed.action,
            HostAction::Vm(VmAction::UpdateSpec { vm: spec }) if spec.memory_dynamic_max_bytes == 3 << 30
        ));
        let metrics = pool.text("VM", &vm, "metrics");
        assert_eq!(
            pool.field("VM_metrics", &metrics, "memory_actual"),
            Some(Value::Int(3 * GIB))
        );
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_dynamic_range",
                args(&vm, &[3 * GIB, 5 * GIB]),
            )
            .await;
        assert_eq!(
            reply,
            Err(errors::memory_constraint_violation(ORDER_CONSTRAINT))
        );
        assert_eq!(pool.agent.kinds().len(), 3);
        assert!(pool.current("VM", &vm).is_empty());
    }

    /// A control domain's dynamic range stays pinned at its static maximum; its limits change
    /// in the DB only (its memory is not the agent's).
    #[tokio::test]
    async fn a_control_domains_range_stays_pinned() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let dom0 = pool.text("host", &pool.host, "control_domain");
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_static_range",
                args(&dom0, &[GIB / 2, 2 * GIB]),
            )
            .await;
        assert_eq!(
            reply,
            Err(errors::memory_constraint_violation(EQUALITY_CONSTRAINT))
        );
        let reply = pool
            .call_as(
                &session,
                "VM.set_memory_static_range",
                args(&dom0, &[GIB / 2, GIB]),
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert!(pool.agent.received().is_empty());
    }
}
