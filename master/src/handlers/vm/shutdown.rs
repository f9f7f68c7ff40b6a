//! The shutdowns: `clean_shutdown` (the guest is asked), `hard_shutdown` (the domain is
//! destroyed; it cancels the operations it overrides), `shutdown` (clean, then hard when the
//! clean one fails or outlasts the VM's `shutdown_delay`), and `power_state_reset`, which
//! forces Halted in the DB without asking anyone to stop anything.

use std::collections::BTreeMap;
use std::time::Duration;

use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{ApiError, Value, errors};

use super::{Expect, Operation, answer};
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::row;
use crate::error::Error;
use crate::storage::volumes::{self, Volume};
use crate::vm::operations::Draft;
use crate::vm::power_state::{
    drop_suspend_image, power_state, power_state_of, set_running, set_stopped,
};
use host_api::{ActionResult, HostAction, VmAction};

/// The operations a hard shutdown cancels when it starts (xapi's list).
const OVERRIDDEN_BY_HARD_SHUTDOWN: &[VmOperation] = &[
    VmOperation::CleanShutdown,
    VmOperation::CleanReboot,
    VmOperation::HardReboot,
    VmOperation::PoolMigrate,
    VmOperation::CallPlugin,
    VmOperation::Suspend,
];

/// How a shutdown stops the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Clean,
    Hard,
    /// Clean, then hard when the clean one fails or times out.
    CleanThenHard,
}

/// `VM.clean_shutdown`.
pub(in crate::handlers) async fn clean_shutdown(ctx: Ctx, args: Args) -> Result<Value, Error> {
    stop(
        &ctx,
        args.str("vm")?,
        VmOperation::CleanShutdown,
        How::Clean,
    )
    .await
}

/// `VM.hard_shutdown`; a suspended VM just loses its suspend image.
pub(in crate::handlers) async fn hard_shutdown(ctx: Ctx, args: Args) -> Result<Value, Error> {
    stop(&ctx, args.str("vm")?, VmOperation::HardShutdown, How::Hard).await
}

/// A hard shutdown of `vm` as part of another operation (a revert).
pub(super) async fn hard_shutdown_vm(ctx: &Ctx, vm: &str) -> Result<Value, Error> {
    stop(ctx, vm, VmOperation::HardShutdown, How::Hard).await
}

/// `VM.shutdown`: clean, then hard.
pub(in crate::handlers) async fn shutdown(ctx: Ctx, args: Args) -> Result<Value, Error> {
    stop(
        &ctx,
        args.str("vm")?,
        VmOperation::Shutdown,
        How::CleanThenHard,
    )
    .await
}

/// Halts a suspended VM in the begin Txn itself: its suspend image goes, and the operation
/// ends in the same Txn.
fn halt_suspended(draft: &mut Draft, vm: &str, key: &str, now: i64) -> Option<Volume> {
    let image = drop_suspend_image(draft, vm);
    set_stopped(draft, vm, VmPowerState::Halted, now);
    crate::vm::operations::end(draft, "VM", vm, key);
    image
}

async fn stop(ctx: &Ctx, vm: &str, op: VmOperation, how: How) -> Result<Value, Error> {
    let operation = Operation::new(ctx, vm, op);
    let key = operation.key().to_owned();
    let now = ctx.now();
    let mut image_volume = None;
    let begun = operation
        .begin(|draft| {
            let view = draft.view();
            if power_state(view, vm) == VmPowerState::Suspended {
                image_volume = halt_suspended(draft, vm, &key, now);
                return Ok(None);
            }
            let host = view.str("VM", vm, "resident_on").to_owned();
            let uuid = view.str("VM", vm, "uuid").to_owned();
            let delay_secs = view.int("VM", vm, "shutdown_delay");
            Ok(Some((host, uuid, delay_secs)))
        })
        .await?;
    let Some((host, uuid, delay_secs)) = begun else {
        // The suspend image's row went in the Txn: its volume goes now.
        if let Some(volume) = &image_volume {
            volumes::forget(ctx, volume).await;
        }
        tracing::debug!(vm = %vm, "suspended VM halted");
        return Ok(void());
    };
    let outcome = match how {
        How::Clean => operation.run(&host, shutdown_action(&uuid, true)).await,
        How::Hard => hard(ctx, &operation, vm, &host, &uuid).await,
        How::CleanThenHard => {
            let clean = clean_within(&operation, &host, &uuid, delay_secs).await;
            match clean {
                Err(e) if !operation.is_cancelled() => {
                    tracing::info!(vm = %vm, code = %e.code, "clean shutdown failed; shutting down hard");
                    hard(ctx, &operation, vm, &host, &uuid).await
                }
                clean => clean,
            }
        }
    };
    operation
        .end(|draft| {
            match &outcome {
                Ok(ActionResult::Domain(None)) => set_stopped(draft, vm, VmPowerState::Halted, now),
                Ok(ActionResult::Domain(Some(info))) => {
                    set_running(draft, vm, &host, info, false, now);
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
    if outcome.is_ok() {
        tracing::debug!(vm = %vm, operation = %op, "VM shut down");
    }
    answer(vm, outcome, Expect::Gone)
}

fn shutdown_action(uuid: &str, clean: bool) -> HostAction {
    HostAction::Vm(VmAction::Shutdown {
        vm: uuid.to_owned(),
        clean,
    })
}

/// A hard shutdown: first the operations it overrides are cancelled (their agents stop at
/// their next cancellation point, and the VM's queue runs this one after them).
async fn hard(
    ctx: &Ctx,
    operation: &Operation<'_>,
    vm: &str,
    host: &str,
    uuid: &str,
) -> Result<ActionResult, ApiError> {
    let cancelled = ctx.master.in_flight.cancel(vm, OVERRIDDEN_BY_HARD_SHUTDOWN);
    if cancelled > 0 {
        tracing::info!(vm = %vm, cancelled, "operations cancelled by a hard shutdown");
    }
    operation.run(host, shutdown_action(uuid, false)).await
}

/// A clean shutdown given `delay_secs` when positive (xapi uses the VM's `shutdown_delay` as
/// the limit of `VM.shutdown`'s clean phase); else the agent's own clean-shutdown limit holds.
async fn clean_within(
    operation: &Operation<'_>,
    host: &str,
    uuid: &str,
    delay_secs: i64,
) -> Result<ActionResult, ApiError> {
    let clean = operation.cancel_token().child_token();
    let run = operation.run_with(host, shutdown_action(uuid, true), clean.clone());
    let Ok(secs) = u64::try_from(delay_secs) else {
        return run.await;
    };
    if secs == 0 {
        return run.await;
    }
    tokio::pin!(run);
    tokio::select! {
        outcome = &mut run => outcome,
        () = tokio::time::sleep(Duration::from_secs(secs)) => {
            clean.cancel();
            run.await
        }
    }
}

/// `VM.power_state_reset`: forces a VM Halted in the DB (operations cleared, devices
/// detached), for VMs whose host died. Refused for control domains, and for a running or
/// paused VM whose host's agent reports its domain still there, as xapi refuses; a host that
/// cannot be reached does not stop the reset.
pub(in crate::handlers) async fn power_state_reset(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let (host, uuid, domid, is_live) = {
        let db = ctx.db();
        let row = row(&db, "VM", vm)?;
        if row.get("is_control_domain").and_then(Value::as_bool) == Some(true) {
            return Err(errors::cannot_reset_control_domain(vm).into());
        }
        let is_live = power_state_of(&row.fields).has_domain();
        let host = row.str("resident_on").to_owned();
        let is_hosted = db.get("host", &host).is_some();
        let domid = row.get("domid").and_then(Value::as_int).unwrap_or(-1);
        (
            host,
            row.str("uuid").to_owned(),
            domid,
            is_live && is_hosted,
        )
    };
    if is_live && still_runs(&ctx, &host, &uuid).await {
        return Err(errors::domain_exists(vm, domid).into());
    }
    let now = ctx.now();
    ctx.master
        .decide(|db| {
            row(db, "VM", vm)?;
            let mut draft = Draft::new(db);
            draft.require_exists("VM", vm);
            draft.update(
                "VM",
                vm,
                "current_operations",
                Value::Struct(BTreeMap::new()),
            );
            set_stopped(&mut draft, vm, VmPowerState::Halted, now);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::info!(vm = %vm, "VM power state reset to Halted");
    Ok(void())
}

/// Whether the agent of `host` runs a domain of the VM `uuid`; an agent that cannot be asked
/// is taken to run nothing.
async fn still_runs(ctx: &Ctx, host: &str, uuid: &str) -> bool {
    let (progress, _) = tokio::sync::watch::channel(0.0);
    let term = ctx.master.db.term();
    let cancel = tokio_util::sync::CancellationToken::new();
    match ctx
        .master
        .link
        .run(host, term, HostAction::Inventory, progress, cancel)
        .await
    {
        Ok(ActionResult::Inventory(domains)) => domains.iter().any(|d| d.vm == uuid),
        Ok(
            ActionResult::Domain(_)
            | ActionResult::Scanned { .. }
            | ActionResult::Vdi(_)
            | ActionResult::Done,
        ) => false,
        Err(failure) => {
            tracing::warn!(host = %host, error = %failure, "host agent not reached; resetting anyway");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, HALTED_OPERATIONS, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    fn assert_halted(pool: &TestPool, vm: &str) {
        assert_eq!(pool.text("VM", vm, "power_state"), "Halted");
        assert_eq!(pool.text("VM", vm, "resident_on"), NULL_REF);
        assert_eq!(pool.field("VM", vm, "domid"), Some(Value::Int(-1)));
        assert_eq!(
            pool.field("VM", vm, "consoles"),
            Some(Value::Array(Vec::new()))
        );
        let metrics = pool.text("VM", vm, "metrics");
        assert_eq!(
            pool.field("VM_metrics", &metrics, "memory_actual"),
            Some(Value::Int(0))
        );
        assert!(pool.current("VM", vm).is_empty());
        assert_eq!(pool.allowed("VM", vm), HALTED_OPERATIONS);
    }

    /// A clean shutdown halts the VM: no host, domain, consoles or memory, and the halted
    /// operations allowed again.
    #[tokio::test]
    async fn clean_shutdown_halts_the_vm() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let reply = pool
            .call_as(&session, "VM.clean_shutdown", vec![s(&vm)])
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_halted(&pool, &vm);
        let received = pool.agent.received();
        assert!(matches!(
            received[1].action,
            HostAction::Vm(VmAction::Shutdown { clean: true, .. })
        ));
        let reply = pool
            .call_as(&session, "VM.clean_shutdown", vec![s(&vm)])
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Running],
                VmPowerState::Halted
            ))
        );
        let reply = pool
            .call_as(&session, "VM.hard_shutdown", vec![s(&vm)])
            .await;
        assert_eq!(
            reply,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[
                    VmPowerState::Paused,
                    VmPowerState::Suspended,
                    VmPowerState::Running
                ],
                VmPowerState::Halted
            ))
        );
    }

    /// `VM.shutdown` shuts down hard when the clean shutdown fails.
    #[tokio::test]
    async fn shutdown_goes_hard_when_the_clean_one_fails() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let refusal = host_api::AgentFailure::ShutdownTimeout {
            vm: pool.text("VM", &vm, "uuid"),
            timeout_secs: 1.0,
        };
        pool.agent.fail_next(ActionKind::Shutdown, refusal);
        assert_eq!(
            pool.call_as(&session, "VM.shutdown", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_halted(&pool, &vm);
        let received = pool.agent.received();
        assert!(matches!(
            received[1].action,
            HostAction::Vm(VmAction::Shutdown { clean: true, .. })
        ));
        assert!(matches!(
            received[2].action,
            HostAction::Vm(VmAction::Shutdown { clean: false, .. })
        ));
    }

    /// `VM.shutdown` gives the clean shutdown the VM's `shutdown_delay`, then cancels it and
    /// shuts down hard (the test's clock is paused: the delay passes without waiting).
    #[tokio::test(start_paused = true)]
    async fn shutdown_goes_hard_after_the_shutdown_delay() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        pool.write("VM", &vm, &[("shutdown_delay", Value::Int(30))]);
        let _held = pool.agent.block_next(ActionKind::Shutdown);
        assert_eq!(
            pool.call_as(&session, "VM.shutdown", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_halted(&pool, &vm);
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::Start,
                ActionKind::Shutdown,
                ActionKind::Shutdown
            ]
        );
    }

    /// A hard shutdown cancels a clean shutdown under way (whose task ends cancelled) and
    /// halts the VM; while the clean one ran, only the hard operations were allowed.
    #[tokio::test]
    async fn hard_shutdown_cancels_a_clean_one_in_progress() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let gate = pool.agent.block_next(ActionKind::Shutdown);
        let clean = pool
            .async_call(&session, "VM.clean_shutdown", vec![s(&vm)])
            .await;
        gate.entered().await;
        assert_eq!(pool.allowed("VM", &vm), ["hard_reboot", "hard_shutdown"]);
        assert_eq!(
            pool.call_as(&session, "VM.hard_shutdown", vec![s(&vm)])
                .await,
            Ok(s(""))
        );
        assert_eq!(pool.finished(&clean).await, "cancelled");
        assert_halted(&pool, &vm);
    }

    /// A hard shutdown of a suspended VM drops its suspend image without asking any agent.
    #[tokio::test]
    async fn hard_shutdown_of_a_suspended_vm_drops_its_image() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, image) = pool.suspended_vm(&session, "web").await;
        assert_eq!(
            pool.call_as(&session, "VM.hard_shutdown", vec![s(&vm)])
                .await,
            Ok(s(""))
        );
        assert_halted(&pool, &vm);
        assert!(pool.read().get("VDI", &image).is_none());
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::Start,
                ActionKind::CreateVdi,
                ActionKind::Suspend,
                ActionKind::DestroyVdi
            ]
        );
    }

    /// `power_state_reset` halts a VM whose domain its agent no longer has (or whose agent
    /// cannot be reached), clearing its operations; it refuses a VM whose domain still runs
    /// and control domains.
    #[tokio::test]
    async fn power_state_reset_halts_vms_without_a_domain() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let domid = pool
            .field("VM", &vm, "domid")
            .and_then(|v| v.as_int())
            .expect("a domid");
        let reply = pool
            .call_as(&session, "VM.power_state_reset", vec![s(&vm)])
            .await;
        assert_eq!(reply, Err(errors::domain_exists(&vm, domid)));
        pool.agent.remove_domain(&pool.text("VM", &vm, "uuid"));
        pool.write(
            "VM",
            &vm,
            &[(
                "current_operations",
                Value::Struct([("OpaqueRef:lost".to_owned(), s("clean_shutdown"))].into()),
            )],
        );
        let reply = pool
            .call_as(&session, "VM.power_state_reset", vec![s(&vm)])
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_halted(&pool, &vm);
        let other = pool.running_vm(&session, "web").await;
        pool.agent.fail_next(
            ActionKind::Inventory,
            crate::host_link::LinkFailure::HostOffline,
        );
        let reply = pool
            .call_as(&session, "VM.power_state_reset", vec![s(&other)])
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_halted(&pool, &other);
        let dom0 = pool.text("host", &pool.host, "control_domain");
        let reply = pool
            .call_as(&session, "VM.power_state_reset", vec![s(&dom0)])
            .await;
        assert_eq!(reply, Err(errors::cannot_reset_control_domain(&dom0)));
    }
}
