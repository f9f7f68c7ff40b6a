//! The custom messages of `VM`: its records (`records.rs`: create, destroy,
//! set_is_a_template, free device slots; `settings.rs`: setters xapi checks), its copies
//! (`copies.rs`: clone, copy; `snapshot.rs`; `revert.rs`; `provision.rs`: a template's disks), its
//! power operations (`start.rs`: start and resume, placed; `power.rs`: suspend, pause,
//! unpause, reboots; `shutdown.rs`: the shutdowns and power_state_reset; `migrate.rs`:
//! pool_migrate, which `host.evacuate` also uses) and its resources (`memory.rs`, `vcpus.rs`).
//!
//! A power operation is an `Operation`: a Txn that checks and records it in
//! `current_operations` with whatever it reserves (`scheduled_to_be_resident_on`, its devices
//! marked `attach`), the host action, stamped with the Raft term, its progress reported to the
//! task and cancelled with it, then a Txn that writes the outcome and removes the operation.

mod copies;
mod memory;
mod migrate;
mod power;
mod provision;
mod records;
mod revert;
mod settings;
mod shutdown;
mod snapshot;
mod start;
mod vcpus;

use api_spec::classes::vbd::VbdOperation;
use api_spec::classes::vif::VifOperation;
use api_spec::{ApiError, Value, errors};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::call::ctx::Ctx;
use crate::error::Error;
use crate::vm::agent_failures;
use crate::vm::operations::{self, Draft, InFlightGuard, ObjectOperation};
use host_api::{ActionResult, DomainInfo, HostAction};

pub(super) use copies::{clone, copy};
pub(super) use memory::{
    compute_memory_overhead, set_memory, set_memory_dynamic_max, set_memory_dynamic_min,
    set_memory_dynamic_range, set_memory_limits, set_memory_static_max, set_memory_static_min,
    set_memory_static_range, set_memory_target_live,
};
pub(super) use migrate::{migrate, pool_migrate};
pub(super) use power::{clean_reboot, hard_reboot, pause, suspend, unpause};
pub(super) use provision::provision;
pub(super) use records::{
    create, destroy, get_allowed_vbd_devices, get_allowed_vif_devices, set_is_a_template,
};
pub(super) use revert::revert;
pub(super) use settings::{
    set_actions_after_crash, set_order, set_shutdown_delay, set_start_delay,
};
pub(super) use shutdown::{clean_shutdown, hard_shutdown, power_state_reset, shutdown};
pub(super) use snapshot::snapshot;
pub(super) use start::{resume, resume_on, start, start_on};
pub(super) use vcpus::{set_vcpus_at_startup, set_vcpus_max, set_vcpus_number_live};

/// One operation on a VM (or a VBD or VIF), from the Txn that records it in
/// `current_operations` to the one that removes it. While it lives, this process lists it as
/// running, so reconciliation leaves its key alone.
pub(crate) struct Operation<'c> {
    ctx: &'c Ctx,
    r: String,
    op: ObjectOperation,
    cancel: CancellationToken,
    in_flight: InFlightGuard<'c>,
    /// The part of the task's progress this operation's host actions fill.
    share: Share,
}

/// A part of a task's progress: from `start`, `length` wide (both within 0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Share {
    pub start: f64,
    pub length: f64,
}

impl Share {
    /// The whole of a task's progress.
    pub const WHOLE: Share = Share {
        start: 0.0,
        length: 1.0,
    };

    /// The `index`th of `count` equal parts of this share.
    pub fn part(self, index: usize, count: usize) -> Share {
        // Counts are small: the conversions are exact.
        let length = self.length / count.max(1) as f64;
        Share {
            start: self.start + length * index as f64,
            length,
        }
    }

    /// Where progress `fraction` (0 to 1) of this share puts the task.
    fn at(self, fraction: f64) -> f64 {
        self.start + self.length * fraction.clamp(0.0, 1.0)
    }
}

impl<'c> Operation<'c> {
    /// An operation `op` on the row `r` of its class, under the call's key.
    pub fn new(ctx: &'c Ctx, r: &str, op: impl Into<ObjectOperation>) -> Operation<'c> {
        let op = op.into();
        let cancel = ctx.cancel_token();
        let key = ctx.operation_key();
        let in_flight = ctx.master.in_flight.register(&key, r, op, cancel.clone());
        Operation {
            ctx,
            r: r.to_owned(),
            op,
            cancel,
            in_flight,
            share: Share::WHOLE,
        }
    }

    /// The same operation, its host actions filling only `share` of the task's progress.
    pub fn sharing(self, share: Share) -> Operation<'c> {
        Operation { share, ..self }
    }

    /// The key the operation holds in `current_operations`.
    pub fn key(&self) -> &str {
        self.in_flight.key()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The token that cancels the operation's host actions.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Checks that the operation may start and records it, in one Txn with what `decide`
    /// adds; answers what `decide` answered. Decided again if a racing writer gets there
    /// first, so the loser gets the error the winner's state calls for.
    pub async fn begin<T>(
        &self,
        mut decide: impl FnMut(&mut Draft) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.ctx.check_cancelled()?;
        let (out, _) = self
            .ctx
            .master
            .decide(|db| {
                let mut draft = Draft::new(db);
                operations::begin(&mut draft, &self.r, self.op, self.key())?;
                let out = decide(&mut draft)?;
                Ok((draft.into_txn(), out))
            })
            .await?;
        Ok(out)
    }

    /// Runs `action` on the agent of `host` with the operation's cancellation.
    pub async fn run(&self, host: &str, action: HostAction) -> Result<ActionResult, ApiError> {
        self.run_with(host, action, self.cancel.clone()).await
    }

    /// Runs `action` on the agent of `host`, stamped with this master's Raft term; its
    /// progress becomes the task's, `cancel` stops it. An agent's `TASK_CANCELLED` names the
    /// task (or, for a sync call, the operation's key); its other errors name objects by ref.
    pub async fn run_with(
        &self,
        host: &str,
        action: HostAction,
        cancel: CancellationToken,
    ) -> Result<ActionResult, ApiError> {
        self.run_in(host, action, cancel, Share::WHOLE).await
    }

    /// As `run_with`, the action's progress filling `part` of the operation's share.
    pub async fn run_in(
        &self,
        host: &str,
        action: HostAction,
        cancel: CancellationToken,
        part: Share,
    ) -> Result<ActionResult, ApiError> {
        let share = Share {
            start: self.share.at(part.start),
            length: self.share.length * part.length,
        };
        let master = &self.ctx.master;
        let (progress, mut reports) = watch::channel(0.0);
        let term = master.db.term();
        let operation = self.op.wire();
        tracing::debug!(vm = %self.r, host = %host, operation, term, "host action sent");
        let run = master.link.run(host, term, action, progress, cancel);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                changed = reports.changed() => match changed {
                    Ok(()) => {
                        let progress = *reports.borrow_and_update();
                        self.ctx.set_progress(share.at(progress)).await;
                    }
                    Err(_) => break run.await,
                },
            }
        };
        outcome.map_err(|failure| {
            let db = master.db.read();
            let vm = match self.op.class() {
                "VM" => self.r.clone(),
                class => db
                    .get(class, &self.r)
                    .map_or_else(|| self.r.clone(), |row| row.str("VM").to_owned()),
            };
            let task = self
                .ctx
                .task
                .as_ref()
                .map_or(self.key(), |t| t.r#ref.as_str());
            let context = agent_failures::Context {
                host,
                vm: &vm,
                task,
            };
            agent_failures::to_api_error(&db, &context, failure)
        })
    }

    /// Removes the operation, in one Txn with what `decide` writes (the outcome).
    pub async fn end(
        &self,
        mut decide: impl FnMut(&mut Draft) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.ctx
            .master
            .decide(|db| {
                let mut draft = Draft::new(db);
                operations::end(&mut draft, self.op.class(), &self.r, self.key());
                decide(&mut draft)?;
                Ok((draft.into_txn(), ()))
            })
            .await?;
        Ok(())
    }
}

/// Records `attach` under `key` on every VBD and VIF of `vm` (what xapi does while a VM
/// starts, resumes or reboots), checking each may be attached.
pub(crate) fn mark_devices(draft: &mut Draft, vm: &str, key: &str) -> Result<(), Error> {
    for vbd in draft.view().children("VBD", "VM", vm) {
        operations::begin(draft, &vbd, VbdOperation::Attach, key)?;
    }
    for vif in draft.view().children("VIF", "VM", vm) {
        operations::begin(draft, &vif, VifOperation::Attach, key)?;
    }
    Ok(())
}

/// Removes what `mark_devices` recorded.
pub(crate) fn unmark_devices(draft: &mut Draft, vm: &str, key: &str) {
    for class in ["VBD", "VIF"] {
        for device in draft.view().children(class, "VM", vm) {
            operations::end(draft, class, &device, key);
        }
    }
}

/// What a domain's state should be after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The domain runs (or is paused, when `paused`).
    Domain { paused: bool },
    /// The domain is gone.
    Gone,
}

/// The answer of a void operation whose host action ended with `outcome`: its error, or
/// `INTERNAL_ERROR` when the domain is not in the state the operation promises (xapi's
/// `assert_final_power_state_in`).
pub(crate) fn answer(
    vm: &str,
    outcome: Result<ActionResult, ApiError>,
    expect: Expect,
) -> Result<Value, Error> {
    let domain: Option<DomainInfo> = match outcome? {
        ActionResult::Domain(domain) => domain,
        ActionResult::Inventory(_)
        | ActionResult::Scanned { .. }
        | ActionResult::Vdi(_)
        | ActionResult::Done => {
            let message = format!(
                "the host agent answered another action's result for VM {vm}; this is a bug"
            );
            return Err(errors::internal_error(message).into());
        }
    };
    let is_expected = match (&domain, expect) {
        (Some(info), Expect::Domain { paused }) => {
            (info.state == host_api::DomainState::Paused) == paused
        }
        (None, Expect::Gone) => true,
        _ => false,
    };
    if !is_expected {
        let message =
            format!("VM {vm} not in expected power state after completing operation ({expect:?})");
        return Err(errors::internal_error(message).into());
    }
    Ok(crate::call::ctx::void())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{HALTED_OPERATIONS, RUNNING_OPERATIONS, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    /// The whole lifecycle through `Async.` calls: each task succeeds, and after each step
    /// the power state, the allowed operations and the (empty) current operations are exact.
    #[tokio::test]
    async fn the_whole_lifecycle_keeps_the_record_exact() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let no = Value::Bool(false);
        let paused = [
            "checkpoint",
            "hard_reboot",
            "hard_shutdown",
            "snapshot",
            "unpause",
        ];
        let suspended = [
            "checkpoint",
            "destroy",
            "export",
            "hard_shutdown",
            "migrate_send",
            "resume",
            "resume_on",
            "snapshot",
        ];
        let steps: [(&str, Vec<Value>, &str, &[&str]); 8] = [
            (
                "VM.start",
                vec![s(&vm), no.clone(), no.clone()],
                "Running",
                &RUNNING_OPERATIONS,
            ),
            ("VM.pause", vec![s(&vm)], "Paused", &paused),
            ("VM.unpause", vec![s(&vm)], "Running", &RUNNING_OPERATIONS),
            ("VM.suspend", vec![s(&vm)], "Suspended", &suspended),
            (
                "VM.resume",
                vec![s(&vm), no.clone(), no.clone()],
                "Running",
                &RUNNING_OPERATIONS,
            ),
            (
                "VM.clean_reboot",
                vec![s(&vm)],
                "Running",
                &RUNNING_OPERATIONS,
            ),
            (
                "VM.hard_reboot",
                vec![s(&vm)],
                "Running",
                &RUNNING_OPERATIONS,
            ),
            (
                "VM.clean_shutdown",
                vec![s(&vm)],
                "Halted",
                &HALTED_OPERATIONS,
            ),
        ];
        for (method, args, state, allowed) in steps {
            let task = pool.async_call(&session, method, args).await;
            assert_eq!(pool.finished(&task).await, "success", "{method}");
            assert_eq!(pool.field("task", &task, "result"), Some(s("")), "{method}");
            assert_eq!(pool.text("VM", &vm, "power_state"), state, "{method}");
            assert_eq!(pool.allowed("VM", &vm), allowed, "{method}");
            assert!(pool.current("VM", &vm).is_empty(), "{method}");
        }
        assert!(pool.agent.domains().is_empty());
    }

    /// Every power operation called in a power state xapi's table does not allow it in is
    /// `VM_BAD_POWER_STATE` naming the states it needs, and reaches no agent.
    #[tokio::test]
    async fn power_operations_in_the_wrong_state_are_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let halted = pool.new_vm(&session, "halted").await;
        let running = pool.running_vm(&session, "running").await;
        let paused = pool.running_vm(&session, "paused").await;
        pool.call_as(&session, "VM.pause", vec![s(&paused)])
            .await
            .expect("paused");
        let suspended = pool.running_vm(&session, "suspended").await;
        pool.call_as(&session, "VM.suspend", vec![s(&suspended)])
            .await
            .expect("suspended");
        let vms = [
            (&halted, VmPowerState::Halted),
            (&running, VmPowerState::Running),
            (&paused, VmPowerState::Paused),
            (&suspended, VmPowerState::Suspended),
        ];
        let table: [(&str, &[VmPowerState]); 13] = [
            ("VM.start", &[VmPowerState::Halted]),
            ("VM.start_on", &[VmPowerState::Halted]),
            ("VM.resume", &[VmPowerState::Suspended]),
            ("VM.resume_on", &[VmPowerState::Suspended]),
            ("VM.pause", &[VmPowerState::Running]),
            ("VM.unpause", &[VmPowerState::Paused]),
            ("VM.suspend", &[VmPowerState::Running]),
            ("VM.clean_shutdown", &[VmPowerState::Running]),
            ("VM.clean_reboot", &[VmPowerState::Running]),
            (
                "VM.hard_reboot",
                &[VmPowerState::Paused, VmPowerState::Running],
            ),
            (
                "VM.hard_shutdown",
                &[
                    VmPowerState::Paused,
                    VmPowerState::Suspended,
                    VmPowerState::Running,
                ],
            ),
            (
                "VM.shutdown",
                &[
                    VmPowerState::Paused,
                    VmPowerState::Suspended,
                    VmPowerState::Running,
                ],
            ),
            ("VM.set_VCPUs_number_live", &[VmPowerState::Running]),
        ];
        let before = pool.agent.received().len();
        let mut refused = 0;
        for (method, states) in table {
            for (vm, state) in vms {
                if states.contains(&state) {
                    continue;
                }
                let no = Value::Bool(false);
                let args = match method {
                    "VM.start" | "VM.resume" => vec![s(vm), no.clone(), no],
                    "VM.start_on" | "VM.resume_on" => vec![s(vm), s(&pool.host), no.clone(), no],
                    "VM.set_VCPUs_number_live" => vec![s(vm), Value::Int(1)],
                    _ => vec![s(vm)],
                };
                let reply = pool.call_as(&session, method, args).await;
                assert_eq!(
                    reply,
                    Err(xenapi::vm_bad_power_state(vm, states, state)),
                    "{method} on a {state} VM"
                );
                refused += 1;
            }
        }
        assert_eq!(refused, 34);
        assert_eq!(pool.agent.received().len(), before);
    }

    /// Each power-state change is an event `event.from` watchers see, with the new state in
    /// its snapshot.
    #[tokio::test]
    async fn power_state_changes_are_events() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let classes = Value::Array(vec![s("VM")]);
        let from = |token: String| {
            pool.call_as(
                &session,
                "event.from",
                vec![classes.clone(), Value::String(token), Value::Float(1.0)],
            )
        };
        let reply = from(String::new()).await.expect("events");
        let token = reply.as_struct().expect("a struct")["token"].clone();
        let token = token.as_str().expect("a token").to_owned();
        let args = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", args)
            .await
            .expect("started");
        let reply = from(token).await.expect("events");
        let events = reply.as_struct().expect("a struct")["events"].clone();
        let event = events
            .as_array()
            .expect("events")
            .iter()
            .filter_map(Value::as_struct)
            .find(|e| e["ref"] == s(&vm))
            .expect("an event of the VM");
        assert_eq!(event["operation"], s("mod"));
        let snapshot = event["snapshot"].as_struct().expect("a record");
        assert_eq!(snapshot["power_state"], s("Running"));
    }
}
