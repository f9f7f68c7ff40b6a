//! The operations that boot a VM on a host: `start`, `start_on`, `resume`, `resume_on`. The
//! VM is placed (or the named host checked) and the host's memory reserved with
//! `scheduled_to_be_resident_on` until the domain runs.

use api_spec::classes::vm::VmOperation;
use api_spec::{NULL_REF, Value, errors};

use super::{Expect, Operation, answer, mark_devices, unmark_devices};
use crate::call::ctx::{Args, Ctx};
use crate::error::Error;
use crate::storage::volumes;
use crate::vm::memory::{self, Limits};
use crate::vm::operations::Overlay;
use crate::vm::placement::{self, Need, Policy};
use crate::vm::power_state::{drop_suspend_image, set_running};
use crate::vm::vm_spec;
use host_api::{ActionResult, HostAction, VmAction};

/// Where a VM boots.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// Where placement chooses.
    Anywhere,
    /// On the host the caller named.
    On(&'a str),
}

/// `VM.start`: boots a halted VM where placement chooses, paused when `start_paused`.
/// (`force` skips guest feature checks in xapi; oxapi makes none.)
pub(in crate::handlers) async fn start(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, paused) = (args.str("vm")?, args.bool("start_paused")?);
    boot(&ctx, vm, VmOperation::Start, Target::Anywhere, paused).await
}

/// `VM.start_on`: boots a halted VM on the given host.
pub(in crate::handlers) async fn start_on(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, host, paused) = (
        args.str("vm")?,
        args.str("host")?,
        args.bool("start_paused")?,
    );
    boot(&ctx, vm, VmOperation::StartOn, Target::On(host), paused).await
}

/// `VM.resume`: restores a suspended VM where placement chooses; its suspend image goes.
pub(in crate::handlers) async fn resume(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, paused) = (args.str("vm")?, args.bool("start_paused")?);
    boot(&ctx, vm, VmOperation::Resume, Target::Anywhere, paused).await
}

/// `VM.resume_on`: restores a suspended VM on the given host.
pub(in crate::handlers) async fn resume_on(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, host, paused) = (
        args.str("vm")?,
        args.str("host")?,
        args.bool("start_paused")?,
    );
    boot(&ctx, vm, VmOperation::ResumeOn, Target::On(host), paused).await
}

/// xapi's VCPU checks at boot: at least one, and no more at startup than the maximum.
fn check_vcpus(view: &Overlay, vm: &str) -> Result<(), Error> {
    let (max, at_startup) = (
        view.int("VM", vm, "VCPUs_max"),
        view.int("VM", vm, "VCPUs_at_startup"),
    );
    if max < 1 {
        return Err(errors::invalid_value("VCPUs_max", max).into());
    }
    if at_startup < 1 {
        return Err(errors::invalid_value("VCPUs-at-startup", at_startup).into());
    }
    if at_startup > max {
        return Err(errors::value_not_supported(
            "VCPUs-at-startup",
            at_startup,
            "value greater than VCPUs-max",
        )
        .into());
    }
    Ok(())
}

/// The host `vm` boots on: `target`, checked, or placement's choice among the hosts that see
/// its disks (and, to resume, its suspend image).
fn place(view: &Overlay, vm: &str, target: Target<'_>) -> Result<String, Error> {
    match target {
        Target::On(host) => {
            if !view.exists("host", host) {
                return Err(errors::handle_invalid("host", host).into());
            }
            placement::check_host(view, vm, host)?;
            Ok(host.to_owned())
        }
        Target::Anywhere => {
            let affinity = view.str("VM", vm, "affinity");
            let need = Need {
                memory_bytes: memory::guest_bytes(view, vm),
                affinity: view.exists("host", affinity).then(|| affinity.to_owned()),
            };
            let candidates = placement::candidates(view, vm);
            let (host, reason) = placement::choose(&candidates, &need, Policy::of_pool(view))?;
            tracing::debug!(vm = %vm, host = %host, reason = ?reason, "VM placed");
            Ok(host)
        }
    }
}

/// Starts (or resumes) `vm`: the begin Txn checks the operation, the memory limits and the
/// VCPUs, places the VM and reserves the host (`scheduled_to_be_resident_on`), and marks the
/// devices; the end Txn makes the VM show its new domain, or just releases the host.
async fn boot(
    ctx: &Ctx,
    vm: &str,
    op: VmOperation,
    target: Target<'_>,
    paused: bool,
) -> Result<Value, Error> {
    let is_resume = matches!(op, VmOperation::Resume | VmOperation::ResumeOn);
    let operation = Operation::new(ctx, vm, op);
    let key = operation.key().to_owned();
    let (host, spec, action) = {
        // Placement reads what every host has free; one decision at a time, as xapi's global
        // lock around `choose_host` and the reservation.
        let _placing = ctx.master.placement.lock().await;
        operation
            .begin(|draft| {
                let view = draft.view();
                Limits::read(view, vm).check(view.bool("VM", vm, "is_control_domain"))?;
                check_vcpus(view, vm)?;
                let host = place(view, vm, target)?;
                let spec = vm_spec::build(view, vm);
                let sent = spec.clone();
                let action = if is_resume {
                    let image = view.str("VM", vm, "suspend_VDI");
                    if !view.exists("VDI", image) {
                        return Err(errors::handle_invalid("VDI", image).into());
                    }
                    HostAction::Vm(VmAction::Resume {
                        vm: spec,
                        image: vm_spec::disk(view, image),
                        paused,
                    })
                } else {
                    HostAction::Vm(VmAction::Start { vm: spec, paused })
                };
                draft.set(
                    "VM",
                    vm,
                    "scheduled_to_be_resident_on",
                    Value::str(host.as_str()),
                );
                let overhead = memory::overhead_on(draft.view(), vm, &host);
                draft.set("VM", vm, "memory_overhead", Value::Int(overhead));
                mark_devices(draft, vm, &key)?;
                Ok((host, sent, action))
            })
            .await?
    };
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    let mut image_volume = None;
    operation
        .end(|draft| {
            unmark_devices(draft, vm, &key);
            match &outcome {
                Ok(ActionResult::Domain(Some(info))) => {
                    set_running(draft, vm, &host, info, true, now);
                    if is_resume {
                        image_volume = drop_suspend_image(draft, vm);
                    }
                }
                _ => draft.update(
                    "VM",
                    vm,
                    "scheduled_to_be_resident_on",
                    Value::str(NULL_REF),
                ),
            }
            Ok(())
        })
        .await?;
    if outcome.is_ok() {
        // The resumed VM's suspend image has no row any more: its volume goes too.
        if let Some(volume) = &image_volume {
            volumes::forget(ctx, volume).await;
        }
        tracing::debug!(vm = %vm, host = %host, operation = %op, "VM started");
        crate::vm::spec_push::push_if_stale(&ctx.master, vm, &spec).await;
    }
    answer(vm, outcome, Expect::Domain { paused })
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{
        ActionKind, FAKE_PROGRESS, HALTED_OPERATIONS, RUNNING_OPERATIONS, TestPool, s,
    };
    use api_spec::classes::vm::VmPowerState;

    const GIB: i64 = 1 << 30;

    async fn start(pool: &TestPool, session: &str, vm: &str) -> Result<Value, api_spec::ApiError> {
        let args = vec![s(vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(session, "VM.start", args).await
    }

    /// `VM.start` runs the VM on the host: power state, host, domid, metrics, consoles and
    /// allowed operations follow, and the agent got one `Start` stamped with the term.
    #[tokio::test]
    async fn start_runs_the_vm_with_its_domain_metrics_and_consoles() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
        assert_eq!(start(&pool, &session, &vm).await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(1)));
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
        let metrics = pool.text("VM", &vm, "metrics");
        assert_eq!(
            pool.field("VM_metrics", &metrics, "memory_actual"),
            Some(Value::Int(GIB))
        );
        assert_eq!(
            pool.field("VM_metrics", &metrics, "VCPUs_number"),
            Some(Value::Int(1))
        );
        let start_time = api_spec::datetime::format_unix(crate::testing::TEST_START_UNIX);
        assert_eq!(
            pool.field("VM_metrics", &metrics, "start_time"),
            Some(Value::DateTime(start_time))
        );
        let consoles: Vec<String> = pool
            .field("VM", &vm, "consoles")
            .and_then(|v| {
                v.as_array().map(|c| {
                    c.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        let mut protocols: Vec<String> = consoles
            .iter()
            .map(|c| pool.text("console", c, "protocol"))
            .collect();
        protocols.sort();
        assert_eq!(protocols, ["rfb", "vt100"]);
        let uuid = pool.text("console", &consoles[0], "uuid");
        assert_eq!(
            pool.text("console", &consoles[0], "location"),
            format!("https://127.0.0.1/console?uuid={uuid}")
        );
        let received = pool.agent.received();
        assert_eq!(received.len(), 1);
        assert_eq!(
            (received[0].host.as_str(), received[0].term),
            (pool.host.as_str(), 1)
        );
        let HostAction::Vm(VmAction::Start { vm: spec, paused }) = &received[0].action else {
            panic!("a start: {:?}", received[0].action);
        };
        assert_eq!(
            (spec.uuid.as_str(), *paused),
            (pool.text("VM", &vm, "uuid").as_str(), false)
        );
    }

    /// `start_paused` leaves the VM Paused, with only the paused operations allowed.
    #[tokio::test]
    async fn start_paused_leaves_the_vm_paused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let args = vec![s(&vm), Value::Bool(true), Value::Bool(false)];
        assert_eq!(pool.call_as(&session, "VM.start", args).await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Paused");
        assert_eq!(
            pool.allowed("VM", &vm),
            [
                "checkpoint",
                "hard_reboot",
                "hard_shutdown",
                "snapshot",
                "unpause"
            ]
        );
    }

    /// The errors of xapi's table: a running VM, a template, a blocked start, an unknown VM.
    #[tokio::test]
    async fn start_refuses_running_vms_templates_and_blocked_starts() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        start(&pool, &session, &vm).await.expect("started");
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Halted],
                VmPowerState::Running
            ))
        );
        let template = pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        assert_eq!(
            start(&pool, &session, &template).await,
            Err(errors::vm_is_template(&template))
        );
        let other = pool.new_vm(&session, "db").await;
        let blocked = vec![s(&other), s("start"), s("maintenance")];
        pool.call_as(&session, "VM.add_to_blocked_operations", blocked)
            .await
            .expect("blocked");
        assert!(!pool.allowed("VM", &other).contains(&"start".to_owned()));
        assert_eq!(
            start(&pool, &session, &other).await,
            Err(errors::operation_blocked(&other, "maintenance"))
        );
        assert_eq!(
            start(&pool, &session, "OpaqueRef:gone").await,
            Err(errors::handle_invalid("VM", "OpaqueRef:gone"))
        );
        assert_eq!(pool.agent.kinds(), [ActionKind::Start]);
    }

    /// While a start runs (the agent holds it), the VM has the task in `current_operations`,
    /// its host reserved, its devices marked, nothing else allowed, and a second start gets
    /// `OTHER_OPERATION_IN_PROGRESS` naming the first one's task; the task shows the agent's
    /// progress.
    #[tokio::test]
    async fn a_start_in_progress_excludes_a_second_one() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let vif = pool.add_nic(&session, &vm, "0").await;
        assert_eq!(pool.allowed("VIF", &vif), ["attach"]);
        let gate = pool.agent.block_next(ActionKind::Start);
        let args = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        let task = pool.async_call(&session, "VM.start", args).await;
        gate.entered().await;
        assert_eq!(
            pool.current("VM", &vm),
            [(task.clone(), "start".to_owned())]
        );
        assert_eq!(
            pool.current("VIF", &vif),
            [(task.clone(), "attach".to_owned())]
        );
        assert!(pool.allowed("VM", &vm).is_empty());
        assert!(pool.allowed("VIF", &vif).is_empty());
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            pool.host
        );
        pool.wait_until("the task to show the agent's progress", |db| {
            db.get("task", &task)
                .is_some_and(|t| t.get("progress") == Some(&Value::Float(FAKE_PROGRESS)))
        })
        .await;
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(errors::other_operation_in_progress(
                "VM", &vm, "start", &task
            ))
        );
        gate.release();
        assert_eq!(pool.finished(&task).await, "success");
        assert!(pool.current("VM", &vm).is_empty() && pool.current("VIF", &vif).is_empty());
        assert_eq!(
            pool.field("VIF", &vif, "currently_attached"),
            Some(Value::Bool(true))
        );
        assert_eq!(pool.allowed("VIF", &vif), ["attach", "unplug"]);
    }

    /// Of two starts decided on the same state, the one applied second is decided again and
    /// gets `OTHER_OPERATION_IN_PROGRESS`.
    #[tokio::test]
    async fn racing_starts_cannot_both_win() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let winner = "OpaqueRef:winner";
        pool.db.race_next_proposal(db_schema::Txn {
            preconditions: Vec::new(),
            ops: vec![db_schema::Op::MapPut {
                class: "VM".to_owned(),
                r#ref: vm.clone(),
                field: "current_operations".to_owned(),
                key: winner.to_owned(),
                value: s("start"),
            }],
        });
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(errors::other_operation_in_progress(
                "VM", &vm, "start", winner
            ))
        );
        assert!(pool.agent.received().is_empty());
    }

    /// Cancelling a start while the agent holds it ends the task cancelled and leaves the
    /// VM halted, its host released and no operation behind.
    #[tokio::test]
    async fn cancel_mid_start_leaves_the_vm_halted() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let gate = pool.agent.block_next(ActionKind::Start);
        let args = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        let task = pool.async_call(&session, "VM.start", args).await;
        gate.entered().await;
        pool.call_as(&session, "task.cancel", vec![s(&task)])
            .await
            .expect("cancelled");
        assert_eq!(pool.finished(&task).await, "cancelled");
        assert_eq!(
            pool.field("task", &task, "error_info"),
            Some(Value::Array(vec![s("TASK_CANCELLED"), s(&task)]))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
    }

    /// A start the agent fails answers the agent's error and leaves the VM halted.
    #[tokio::test]
    async fn a_failed_start_answers_the_agents_error() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let error = host_api::AgentFailure::Internal {
            message: "no disk".to_owned(),
        };
        pool.agent.fail_next(ActionKind::Start, error);
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(errors::internal_error("host agent: no disk".to_owned()))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
    }

    /// A VM too big for every host cannot start, and the answer says how much memory is
    /// missing, for a start as for one on a named host; limits out of order are
    /// `MEMORY_CONSTRAINT_VIOLATION`.
    #[tokio::test]
    async fn memory_errors_stop_a_start() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "big").await;
        let limits = [32 * GIB, 32 * GIB, 32 * GIB, 32 * GIB].map(Value::Int);
        let mut args = vec![s(&vm)];
        args.extend(limits);
        pool.call_as(&session, "VM.set_memory_limits", args)
            .await
            .expect("set");
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(errors::host_not_enough_free_memory(32 * GIB, 15 * GIB))
        );
        let on = vec![
            s(&vm),
            s(&pool.host),
            Value::Bool(false),
            Value::Bool(false),
        ];
        assert_eq!(
            pool.call_as(&session, "VM.start_on", on).await,
            Err(errors::host_not_enough_free_memory(32 * GIB, 15 * GIB))
        );
        pool.write("VM", &vm, &[("memory_dynamic_min", Value::Int(64 * GIB))]);
        assert_eq!(
            start(&pool, &session, &vm).await,
            Err(errors::memory_constraint_violation(
                crate::vm::memory::ORDER_CONSTRAINT
            ))
        );
        assert!(pool.agent.received().is_empty());
        assert!(pool.current("VM", &vm).is_empty());
    }

    /// On a QEMU host a VM takes its QEMU's overhead beyond its memory, by the host's
    /// hypervisor (`host_api::overhead`): a host with room for the memory but not the overhead
    /// refuses the start, the VM started elsewhere records that host's figure in
    /// `memory_overhead`, and the host counts it as used. Before it runs,
    /// `VM.compute_memory_overhead` gives the costliest host's figure.
    #[tokio::test]
    async fn a_qemu_host_counts_what_its_qemu_takes() {
        use host_api::overhead::vm_overhead_bytes;
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let int = |field| pool.field("VM", &vm, field).and_then(|v| v.as_int());
        let (vcpus, size) = (int("VCPUs_max"), int("memory_static_max"));
        let (vcpus, size) = (vcpus.expect("VCPUs_max"), size.expect("static max"));
        let memory = int("memory_dynamic_min").expect("dynamic min");
        let (tcg, kvm) = (
            vm_overhead_bytes("qemu-tcg", vcpus, size),
            vm_overhead_bytes("qemu-kvm", vcpus, size),
        );
        assert!(tcg > kvm && kvm > 0, "{tcg} {kvm}");
        let tight = pool.add_host("tight", memory + tcg - 1);
        let roomy = pool.add_host("roomy", 8 * GIB);
        for (host, hypervisor) in [(&tight, "qemu-tcg"), (&roomy, "qemu-kvm")] {
            let software = crate::pool::bootstrap::strings([("hypervisor", hypervisor.to_owned())]);
            pool.write("host", host, &[("software_version", software)]);
        }
        let overhead = |session| pool.call_as(session, "VM.compute_memory_overhead", vec![s(&vm)]);
        assert_eq!(overhead(&session).await, Ok(Value::Int(tcg)));
        let on = |host: &str| vec![s(&vm), s(host), Value::Bool(false), Value::Bool(false)];
        assert_eq!(
            pool.call_as(&session, "VM.start_on", on(&tight)).await,
            Err(errors::host_not_enough_free_memory(
                memory + tcg,
                memory + tcg - 1
            ))
        );
        pool.call_as(&session, "VM.start_on", on(&roomy))
            .await
            .expect("started");
        assert_eq!(
            pool.field("VM", &vm, "memory_overhead"),
            Some(Value::Int(kvm))
        );
        assert_eq!(overhead(&session).await, Ok(Value::Int(kvm)));
        let free = pool
            .call_as(&session, "host.compute_free_memory", vec![s(&roomy)])
            .await;
        assert_eq!(free, Ok(Value::Int(8 * GIB - memory - kvm)));
    }

    /// `start_on` refuses a disabled host.
    #[tokio::test]
    async fn start_on_a_disabled_host_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let other = pool.add_host("host2", 64 * GIB);
        pool.write("host", &other, &[("enabled", Value::Bool(false))]);
        let on = vec![s(&vm), s(&other), Value::Bool(false), Value::Bool(false)];
        assert_eq!(
            pool.call_as(&session, "VM.start_on", on).await,
            Err(errors::host_disabled(&other))
        );
    }

    /// A host that does not reach a VM's disk cannot take it: `start_on` and `resume_on`
    /// there are `VM_REQUIRES_SR [vm; sr]`, nothing sent nor changed, and `start` and `resume`
    /// pass it over though the VM's affinity names it.
    #[tokio::test]
    async fn a_host_that_does_not_reach_the_vms_sr_cannot_take_it() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let other = pool.add_host("other", 64 * GIB);
        let vm = pool.new_vm(&session, "web").await;
        let (_, vdi) = pool.add_disk(&session, &vm, "0").await;
        let sr = pool.text("VDI", &vdi, "SR");
        pool.call_as(&session, "VM.set_affinity", vec![s(&vm), s(&other)])
            .await
            .expect("set");
        let sent = pool.agent.received().len();
        let on = |method: &'static str| {
            let args = vec![s(&vm), s(&other), Value::Bool(false), Value::Bool(false)];
            pool.call_as(&session, method, args)
        };
        assert_eq!(
            on("VM.start_on").await,
            Err(errors::vm_requires_sr(&vm, &sr))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(pool.agent.received().len(), sent);
        start(&pool, &session, &vm).await.expect("started");
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);

        pool.call_as(&session, "VM.suspend", vec![s(&vm)])
            .await
            .expect("suspended");
        let image = pool.text("VM", &vm, "suspend_VDI");
        let allowed = pool.allowed("VM", &vm);
        let sent = pool.agent.received().len();
        assert_eq!(
            on("VM.resume_on").await,
            Err(errors::vm_requires_sr(&vm, &sr))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Suspended");
        assert_eq!(pool.text("VM", &vm, "suspend_VDI"), image);
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert_eq!(pool.allowed("VM", &vm), allowed);
        assert_eq!(pool.agent.received().len(), sent);
        let args = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.resume", args)
            .await
            .expect("resumed");
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
    }

    /// With several hosts, breadth-first (the default) starts on the host with the most free
    /// memory, depth-first on the fullest one that fits, and an affinity host that fits wins.
    #[tokio::test]
    async fn placement_follows_the_pools_policy_and_affinity() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let big = pool.add_host("big", 64 * GIB);
        let small = pool.add_host("small", 4 * GIB);
        let first = pool.new_vm(&session, "first").await;
        start(&pool, &session, &first).await.expect("started");
        assert_eq!(pool.text("VM", &first, "resident_on"), big);
        let pool_ref = pool.refs("pool").remove(0);
        let policy = vec![s(&pool_ref), s("placement-policy"), s("depth-first")];
        pool.call_as(&session, "pool.add_to_other_config", policy)
            .await
            .expect("set");
        let second = pool.new_vm(&session, "second").await;
        start(&pool, &session, &second).await.expect("started");
        assert_eq!(pool.text("VM", &second, "resident_on"), small);
        let third = pool.new_vm(&session, "third").await;
        pool.call_as(&session, "VM.set_affinity", vec![s(&third), s(&big)])
            .await
            .expect("set");
        start(&pool, &session, &third).await.expect("started");
        assert_eq!(pool.text("VM", &third, "resident_on"), big);
        let hosts: Vec<String> = pool.agent.received().into_iter().map(|r| r.host).collect();
        assert_eq!(hosts, [big.clone(), small, big]);
    }
}
