//! `VM.pool_migrate`: a running VM moved to another host of the pool (or to its own, as xapi's
//! localhost migration), stop-and-copy, in two steps:
//!
//! 1. The master draws a one-use transfer token and sends, at once, `MigrateIn` to the
//!    destination's agent (expect the token, check the image it brings and keep it) and
//!    `MigrateOut` to the source's (pause the domain, stream its image to the destination over
//!    the data plane, and destroy the domain once the destination has kept every byte). The
//!    image goes agent to agent, never through the master nor on the peer stream. If either
//!    side fails, the source unpauses its domain and the VM stays where it was.
//! 2. Once the source's domain is gone, `MigrateFinish` builds the domain on the destination
//!    from the image it kept. So the VM never has a domain on two hosts at once.
//!
//! A cancel is honoured until the source has destroyed its domain; after that, the only
//! consistent outcome left is the domain running on the destination.

use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{ApiError, NULL_REF, Value, errors};
use tokio_util::sync::CancellationToken;

use super::{Operation, Share};
use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::vm::placement;
use crate::vm::power_state::{power_state, set_resident_unknown, set_running, set_stopped};
use crate::vm::vm_spec;
use host_api::{ActionResult, DomainInfo, HostAction, TransferToken, VmAction};

/// `VM.pool_migrate`: moves a running VM to `host`. The `live` option is accepted; every
/// migration is stop-and-copy for now.
pub(in crate::handlers) async fn pool_migrate(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, host) = (args.str("vm")?, args.str("host")?);
    migrate(&ctx, vm, host, Share::WHOLE).await?;
    Ok(void())
}

/// What became of the domain once the source had sent it.
enum Landed {
    /// It runs on the destination.
    There(DomainInfo),
    /// The destination failed to build the domain with the error after the source destroyed
    /// its own: the VM runs nowhere.
    Lost(ApiError),
    /// The destination could not be reached for its answer (`HOST_OFFLINE`): it may have built
    /// the domain. The VM is left resident there, its domain unknown, for that host's next
    /// inventory, a power operation or the host's fencing to settle; marking it halted could
    /// let it start elsewhere while it runs there.
    Unknown(ApiError),
}

/// Migrates `vm` to `host`, its host actions filling `share` of the task's progress: the begin
/// Txn checks the operation and the destination and reserves it (`scheduled_to_be_resident_on`);
/// the end Txn makes the VM show where its domain now runs, in one commit.
pub(in crate::handlers) async fn migrate(
    ctx: &Ctx,
    vm: &str,
    host: &str,
    share: Share,
) -> Result<(), Error> {
    let operation = Operation::new(ctx, vm, VmOperation::PoolMigrate).sharing(share);
    let (source, spec, paused) = {
        // Reads what the destination has free: one decision at a time, as for a start.
        let _placing = ctx.master.placement.lock().await;
        operation
            .begin(|draft| {
                let view = draft.view();
                if !view.exists("host", host) {
                    return Err(errors::handle_invalid("host", host).into());
                }
                placement::check_host(view, vm, host)?;
                let source = view.str("VM", vm, "resident_on").to_owned();
                if !view.exists("host", &source) {
                    let message = format!("VM {vm} is running but resident on no host");
                    return Err(errors::internal_error(message).into());
                }
                let paused = power_state(view, vm) == VmPowerState::Paused;
                let spec = vm_spec::build(view, vm);
                draft.require_unchanged("VM", vm, "resident_on");
                draft.set("VM", vm, "scheduled_to_be_resident_on", Value::str(host));
                Ok((source, spec, paused))
            })
            .await?
    };
    // One token names the image's transfer to both ends: the destination expects it, the
    // source streams the image to the destination straight, never through this master.
    let token = TransferToken(uuid::Uuid::new_v4().simple().to_string());
    let incoming = HostAction::Vm(VmAction::MigrateIn {
        vm: spec.uuid.clone(),
        token: token.clone(),
    });
    let out = HostAction::Vm(VmAction::MigrateOut {
        vm: spec.uuid.clone(),
        to_host: host.to_owned(),
        token,
    });
    let cancel = operation.cancel_token().clone();
    // Each side waits for the other: a source that fails stops the destination's wait for its
    // bytes, a destination that fails stops the source's wait for a receiver.
    let stop_waiting = cancel.child_token();
    let stop_sending = cancel.child_token();
    let (into, out) = tokio::join!(
        async {
            let into = operation
                .run_in(
                    host,
                    incoming,
                    stop_waiting.clone(),
                    Share::WHOLE.part(1, 3),
                )
                .await;
            if into.is_err() {
                stop_sending.cancel();
            }
            into
        },
        async {
            let out = operation
                .run_in(&source, out, stop_sending.clone(), Share::WHOLE.part(0, 3))
                .await;
            if out.is_err() {
                stop_waiting.cancel();
            }
            out
        }
    );
    if let Err(error) = out {
        // The source unpaused its domain (or, unreachable, keeps what it runs): the VM stays
        // where it is. The destination built no domain; the image it may have kept is
        // replaced by the next migration's.
        let error = match into {
            Err(into) if !is_cancelled(&into) => destination_error(vm, &source, host, Err(into)),
            _ => error,
        };
        release(&operation, vm).await?;
        return Err(error.into());
    }
    // The source destroyed its domain only once the destination had kept every byte of the
    // image (whether or not the destination's answer made it back): build the domain there.
    let finish = HostAction::Vm(VmAction::MigrateFinish {
        vm: spec.clone(),
        paused,
    });
    let never = CancellationToken::new();
    let landed = match operation
        .run_in(host, finish, never, Share::WHOLE.part(2, 3))
        .await
    {
        Ok(ActionResult::Domain(Some(info))) => Landed::There(info),
        Err(error) if error.code == errors::HOST_OFFLINE => Landed::Unknown(error),
        outcome => Landed::Lost(destination_error(vm, &source, host, outcome)),
    };
    let now = ctx.now();
    operation
        .end(|draft| {
            match &landed {
                Landed::There(info) => set_running(draft, vm, host, info, false, now),
                Landed::Lost(_) => set_stopped(draft, vm, VmPowerState::Halted, now),
                Landed::Unknown(_) => set_resident_unknown(draft, vm, host),
            }
            Ok(())
        })
        .await?;
    match landed {
        Landed::There(_) => {
            tracing::info!(vm = %vm, source = %source, destination = %host, "VM migrated");
            crate::vm::spec_push::push_if_stale(&ctx.master, vm, &spec).await;
            Ok(())
        }
        Landed::Lost(error) => {
            tracing::error!(vm = %vm, source = %source, destination = %host, code = %error.code, "the destination failed after the source let the domain go; the VM is halted");
            Err(error.into())
        }
        Landed::Unknown(error) => {
            tracing::error!(vm = %vm, source = %source, destination = %host, "the destination did not answer whether it built the domain; the VM is left resident there");
            Err(error.into())
        }
    }
}

/// Frees the destination the begin Txn reserved, the VM unchanged.
async fn release(operation: &Operation<'_>, vm: &str) -> Result<(), Error> {
    operation
        .end(|draft| {
            draft.update(
                "VM",
                vm,
                "scheduled_to_be_resident_on",
                Value::str(NULL_REF),
            );
            Ok(())
        })
        .await
}

/// The error of a migration the destination failed: `HOST_OFFLINE` as it is, anything else as
/// xapi reports a failed migration, `VM_MIGRATE_FAILED [vm; source; destination; msg]`.
fn destination_error(
    vm: &str,
    source: &str,
    destination: &str,
    outcome: Result<ActionResult, ApiError>,
) -> ApiError {
    let error = match outcome {
        Err(error) if error.code == errors::HOST_OFFLINE => return error,
        Err(error) => error,
        Ok(_) => unexpected(vm, "MigrateFinish"),
    };
    let message = error.description().join(" ");
    errors::vm_migrate_failed(vm, source, destination, &message)
}

/// Whether `error` says the action was cancelled (here: the destination stopped waiting for
/// a source that failed, or the task was cancelled).
fn is_cancelled(error: &ApiError) -> bool {
    error.code == errors::TASK_CANCELLED
}

fn unexpected(vm: &str, action: &str) -> ApiError {
    errors::internal_error(format!(
        "the host agent answered {action} for VM {vm} with another action's result; this is a bug"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use api_spec::Value;

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, FAKE_PROGRESS, RUNNING_OPERATIONS, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    const GIB: i64 = 1 << 30;

    fn live() -> Value {
        Value::Struct(BTreeMap::from([("live".to_owned(), s("true"))]))
    }

    async fn migrate(
        pool: &TestPool,
        session: &str,
        vm: &str,
        host: &str,
    ) -> Result<Value, ApiError> {
        pool.call_as(session, "VM.pool_migrate", vec![s(vm), s(host), live()])
            .await
    }

    /// A running VM with a NIC and an empty CD drive moves to the named host: the source
    /// saves and destroys the domain before the destination builds it from that image, and
    /// one commit makes the VM show its new host, domain, devices and consoles.
    #[tokio::test]
    async fn pool_migrate_moves_a_running_vm_to_the_named_host() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let second = pool.add_host("second", 64 * GIB);
        let vm = pool.new_vm(&session, "web").await;
        let vif = pool.add_nic(&session, &vm, "0").await;
        pool.add_cd(&session, &vm, "3").await;
        pool.start_on(&session, &vm, &pool.host).await;
        let domid = pool.field("VM", &vm, "domid");
        let metrics = pool.text("VM", &vm, "metrics");
        let started_at = pool.field("VM_metrics", &metrics, "start_time");
        assert_eq!(migrate(&pool, &session, &vm, &second).await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "resident_on"), second);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert_ne!(pool.field("VM", &vm, "domid"), domid);
        assert_eq!(pool.field("VM_metrics", &metrics, "start_time"), started_at);
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
        assert_eq!(
            pool.field("VIF", &vif, "currently_attached"),
            Some(Value::Bool(true))
        );
        for console in pool.ref_list("VM", &vm, "consoles") {
            let location = pool.text("console", &console, "location");
            assert!(location.starts_with("https://127.0.0.2/"), "{location}");
        }
        let uuid = pool.text("VM", &vm, "uuid");
        let received = pool.agent.received();
        let mut sent: Vec<(ActionKind, &str, u64)> = received
            .iter()
            .map(|r| (ActionKind::of(&r.action), r.host.as_str(), r.term))
            .collect();
        // Both halves go out at once, in either order; the destination builds the domain last.
        sent[1..3].sort_by_key(|(kind, ..)| *kind == ActionKind::MigrateIn);
        assert_eq!(
            sent,
            [
                (ActionKind::Start, pool.host.as_str(), 1),
                (ActionKind::MigrateOut, pool.host.as_str(), 1),
                (ActionKind::MigrateIn, second.as_str(), 1),
                (ActionKind::MigrateFinish, second.as_str(), 1),
            ]
        );
        let half = |kind: ActionKind| {
            let found = received[1..]
                .iter()
                .find(|r| ActionKind::of(&r.action) == kind);
            &found.expect("both halves were sent").action
        };
        let (out, incoming) = (half(ActionKind::MigrateOut), half(ActionKind::MigrateIn));
        let HostAction::Vm(VmAction::MigrateOut { to_host, token, .. }) = out else {
            panic!("a migrate out: {out:?}");
        };
        let HostAction::Vm(VmAction::MigrateIn {
            vm: into,
            token: expected,
        }) = incoming
        else {
            panic!("a migrate in: {incoming:?}");
        };
        let finish = &received[3].action;
        let HostAction::Vm(VmAction::MigrateFinish { vm: spec, paused }) = finish else {
            panic!("a migrate finish: {finish:?}");
        };
        assert_eq!(
            (into, spec.uuid.as_str(), *paused),
            (&uuid, uuid.as_str(), false)
        );
        assert_eq!((to_host, token), (&second, expected));
        assert_eq!(token.0.len(), 32);
    }

    /// xapi's refusals, none of which reaches an agent: a halted or paused VM, an unknown,
    /// dead, disabled or too small host, and a VM with a disk on the source's local SR.
    #[tokio::test]
    async fn pool_migrate_refuses_what_xapi_refuses() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let second = pool.add_host("second", 64 * GIB);
        let halted = pool.new_vm(&session, "halted").await;
        assert_eq!(
            migrate(&pool, &session, &halted, &second).await,
            Err(xenapi::vm_bad_power_state(
                &halted,
                &[VmPowerState::Running],
                VmPowerState::Halted
            ))
        );
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        let before = pool.agent.received().len();
        assert_eq!(
            migrate(&pool, &session, &vm, "OpaqueRef:nowhere").await,
            Err(errors::handle_invalid("host", "OpaqueRef:nowhere"))
        );
        let small = pool.add_host("small", GIB / 2);
        assert_eq!(
            migrate(&pool, &session, &vm, &small).await,
            Err(errors::host_not_enough_free_memory(GIB, GIB / 2))
        );
        pool.write("host", &second, &[("enabled", Value::Bool(false))]);
        assert_eq!(
            migrate(&pool, &session, &vm, &second).await,
            Err(errors::host_disabled(&second))
        );
        let metrics = pool.text("host", &second, "metrics");
        pool.write("host_metrics", &metrics, &[("live", Value::Bool(false))]);
        assert_eq!(
            migrate(&pool, &session, &vm, &second).await,
            Err(errors::host_not_live())
        );
        let third = pool.add_host("third", 64 * GIB);
        let with_disk = pool.new_vm(&session, "with disk").await;
        let (_, vdi) = pool.add_disk(&session, &with_disk, "0").await;
        pool.start_on(&session, &with_disk, &pool.host).await;
        let sr = pool.text("VDI", &vdi, "SR");
        assert_eq!(
            migrate(&pool, &session, &with_disk, &third).await,
            Err(errors::vm_requires_sr(&with_disk, &sr))
        );
        pool.call_as(&session, "VM.pause", vec![s(&vm)])
            .await
            .expect("paused");
        assert_eq!(
            migrate(&pool, &session, &vm, &third).await,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Running],
                VmPowerState::Paused
            ))
        );
        let kinds = pool.agent.kinds();
        assert!(
            !kinds[before..]
                .iter()
                .any(|k| matches!(k, ActionKind::MigrateOut | ActionKind::MigrateIn)),
            "{kinds:?}"
        );
        assert_eq!(pool.text("VM", &with_disk, "resident_on"), pool.host);
        assert!(pool.current("VM", &with_disk).is_empty());
    }

    /// Migrates a running VM from the pool's host to a second one whose agent fails its
    /// action of `kind` with "no room", and checks the answer is `VM_MIGRATE_FAILED`; the VM
    /// and the second host.
    async fn migrate_failing(pool: &TestPool, kind: ActionKind) -> (String, String) {
        let session = pool.login().await;
        let second = pool.add_host("second", 64 * GIB);
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        let failure = host_api::AgentFailure::Internal {
            message: "no room".to_owned(),
        };
        pool.agent.fail_next(kind, failure);
        assert_eq!(
            migrate(pool, &session, &vm, &second).await,
            Err(errors::vm_migrate_failed(
                &vm,
                &pool.host,
                &second,
                "INTERNAL_ERROR host agent: no room"
            ))
        );
        (vm, second)
    }

    /// When the destination fails to receive the image, the source keeps its domain (it
    /// destroys it only once the destination has kept the image): the VM runs where it was
    /// and the answer is `VM_MIGRATE_FAILED`.
    #[tokio::test]
    async fn a_failed_destination_leaves_the_vm_running_on_the_source() {
        let pool = TestPool::new();
        let (vm, second) = migrate_failing(&pool, ActionKind::MigrateIn).await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert!(pool.current("VM", &vm).is_empty());
        let mut hosts: Vec<(ActionKind, String)> = pool
            .agent
            .received()
            .into_iter()
            .map(|r| (ActionKind::of(&r.action), r.host))
            .collect();
        hosts[1..].sort_by_key(|(kind, _)| *kind == ActionKind::MigrateIn);
        assert_eq!(
            hosts[1..],
            [
                (ActionKind::MigrateOut, pool.host.clone()),
                (ActionKind::MigrateIn, second),
            ]
        );
        let uuid = pool.text("VM", &vm, "uuid");
        assert_eq!(
            pool.agent.domain(&uuid).map(|d| d.domid),
            pool.field("VM", &vm, "domid").and_then(|d| match d {
                Value::Int(domid) => Some(domid),
                _ => None,
            })
        );
    }

    /// While the source saves the domain, the VM has the task in `current_operations` and the
    /// destination reserved, a second migration is refused, and the task's progress is an
    /// agent's (the source's half first, the destination's second); a cancel then leaves the VM where it
    /// was, with no domain built on the destination.
    #[tokio::test]
    async fn a_migration_in_progress_excludes_others_and_cancels_before_the_image() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let second = pool.add_host("second", 64 * GIB);
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        let gate = pool.agent.block_next(ActionKind::MigrateOut);
        let task = pool
            .async_call(
                &session,
                "VM.pool_migrate",
                vec![s(&vm), s(&second), live()],
            )
            .await;
        gate.entered().await;
        assert_eq!(
            pool.current("VM", &vm),
            [(task.clone(), "pool_migrate".to_owned())]
        );
        assert_eq!(pool.text("VM", &vm, "scheduled_to_be_resident_on"), second);
        pool.wait_until("the task to show the agents' progress", |db| {
            db.get("task", &task).is_some_and(|t| {
                [FAKE_PROGRESS / 3.0, (1.0 + FAKE_PROGRESS) / 3.0]
                    .iter()
                    .any(|p| t.get("progress") == Some(&Value::Float(*p)))
            })
        })
        .await;
        assert_eq!(
            migrate(&pool, &session, &vm, &second).await,
            Err(errors::other_operation_in_progress(
                "VM",
                &vm,
                "pool_migrate",
                &task
            ))
        );
        pool.call_as(&session, "task.cancel", vec![s(&task)])
            .await
            .expect("cancelled");
        assert_eq!(pool.finished(&task).await, "cancelled");
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
        let uuid = pool.text("VM", &vm, "uuid");
        let domid = pool.field("VM", &vm, "domid");
        assert_eq!(pool.agent.domain(&uuid).map(|d| Value::Int(d.domid)), domid);
    }

    /// A destination that fails to build the domain once the source has let its own go
    /// leaves the VM running nowhere: halted, with `VM_MIGRATE_FAILED`.
    #[tokio::test]
    async fn a_destination_failing_after_the_source_let_go_leaves_the_vm_halted() {
        let pool = TestPool::new();
        let (vm, _) = migrate_failing(&pool, ActionKind::MigrateFinish).await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(pool.text("VM", &vm, "resident_on"), NULL_REF);
        assert!(pool.current("VM", &vm).is_empty());
        let uuid = pool.text("VM", &vm, "uuid");
        assert_eq!(pool.agent.domain(&uuid), None);
    }

    /// A destination that cannot be reached for its answer once the source has let its
    /// domain go may run the VM: it stays resident there, running, its domid unknown, and the
    /// answer is `HOST_OFFLINE` (never halted, which would let it start elsewhere).
    #[tokio::test]
    async fn an_unreachable_destination_keeps_the_vm_resident_there() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let second = pool.add_host("second", 64 * GIB);
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        pool.agent.fail_next(
            ActionKind::MigrateFinish,
            crate::host_link::LinkFailure::HostOffline,
        );
        assert_eq!(
            migrate(&pool, &session, &vm, &second).await,
            Err(errors::host_offline(&second))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "resident_on"), second);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(-1)));
        assert!(pool.current("VM", &vm).is_empty());
    }

    /// A migration to the VM's own host (xapi's localhost migration) rebuilds the domain
    /// there: its own memory is not counted against it.
    #[tokio::test]
    async fn pool_migrate_to_its_own_host_rebuilds_the_domain_there() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        let domid = pool.field("VM", &vm, "domid");
        assert_eq!(migrate(&pool, &session, &vm, &pool.host).await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_ne!(pool.field("VM", &vm, "domid"), domid);
    }
}
