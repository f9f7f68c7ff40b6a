//! Keeping the spec of a running domain current. An agent acts on a VM unasked (a guest that
//! reboots, crashes or powers off is handled as its `actions_after_*` say, and a reboot
//! restarts the domain from the spec it holds), so after a write changes what `VmSpec` reads
//! of a VM that has a domain, the agent of its host gets the new spec
//! (`VmAction::UpdateSpec`), as xapi pushes a VM's metadata to xenopsd.
//!
//! `Master::decide` and `Master::commit` call `after_write` for every Txn, so no setter has to
//! remember it. A push reads the DB when it is sent, and sends again while the DB holds a spec
//! newer than the one the agent got: two racing writers cannot leave the older spec last.
//! An operation that boots a domain from a spec read earlier calls `push_if_stale` with it.

use db_schema::{Op, Txn};
use tokio_util::sync::CancellationToken;

use crate::Master;
use crate::host_link::LinkFailure;
use crate::vm::operations::Overlay;
use crate::vm::power_state::power_state;
use crate::vm::vm_spec::{self, SPEC_FIELDS};
use host_api::{ActionResult, AgentFailure, HostAction, VmAction, VmSpec};

/// The most pushes one call makes for a VM whose spec keeps changing under it.
const MAX_PUSHES: usize = 8;

/// The VMs whose spec fields `txn` writes.
pub(crate) fn written_vms(txn: &Txn) -> Vec<String> {
    let mut vms: Vec<String> = Vec::new();
    for op in &txn.ops {
        let (class, r, field) = match op {
            Op::Set {
                class,
                r#ref,
                field,
                ..
            }
            | Op::MapAdd {
                class,
                r#ref,
                field,
                ..
            }
            | Op::MapPut {
                class,
                r#ref,
                field,
                ..
            }
            | Op::MapRemove {
                class,
                r#ref,
                field,
                ..
            }
            | Op::SetAdd {
                class,
                r#ref,
                field,
                ..
            }
            | Op::SetRemove {
                class,
                r#ref,
                field,
                ..
            } => (class, r#ref, field),
            Op::Create { .. } | Op::Destroy { .. } | Op::Touch { .. } | Op::PutInternal { .. } => {
                continue;
            }
        };
        if class == "VM" && SPEC_FIELDS.contains(&field.as_str()) && !vms.contains(r) {
            vms.push(r.clone());
        }
    }
    vms
}

/// Pushes the spec of each of `vms` that has a domain to its agent.
pub(crate) async fn after_write(master: &Master, vms: &[String]) {
    for vm in vms {
        push(master, vm, None).await;
    }
}

/// Pushes the spec of `vm` unless it is still `sent`, the spec its domain was booted with.
pub(crate) async fn push_if_stale(master: &Master, vm: &str, sent: &VmSpec) {
    push(master, vm, Some(sent.clone())).await;
}

/// Sends the spec of `vm` to the agent of its host while the DB holds one the agent has not
/// got and the VM has a domain. A failure is logged: the DB stays right, and the next start
/// sends the spec anew.
async fn push(master: &Master, vm: &str, mut sent: Option<VmSpec>) {
    for _ in 0..MAX_PUSHES {
        let (host, spec) = {
            let db = master.db.read();
            let view = Overlay::new(&db);
            let has_domain = power_state(&view, vm).has_domain();
            if !view.exists("VM", vm) || !has_domain {
                return;
            }
            let spec = vm_spec::build(&view, vm);
            if sent.as_ref() == Some(&spec) {
                return;
            }
            (view.str("VM", vm, "resident_on").to_owned(), spec)
        };
        let (progress, _) = tokio::sync::watch::channel(0.0);
        let action = HostAction::Vm(VmAction::UpdateSpec { vm: spec.clone() });
        let term = master.db.term();
        let outcome = master
            .link
            .run(&host, term, action, progress, CancellationToken::new())
            .await;
        match outcome {
            Ok(ActionResult::Domain(Some(_))) => {
                tracing::debug!(vm = %vm, host = %host, "domain spec pushed");
                sent = Some(spec);
            }
            Ok(_) => return,
            // The domain went away meanwhile; whatever boots it next reads the DB.
            Err(LinkFailure::Agent(AgentFailure::BadPowerState { .. })) => return,
            Err(failure) => {
                tracing::warn!(vm = %vm, host = %host, error = %failure, "domain spec not pushed");
                return;
            }
        }
    }
    tracing::warn!(vm = %vm, "domain spec kept changing; the agent may hold an older one");
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::{ActionKind, TestPool, s};

    /// Only writes of spec fields of VMs count.
    #[test]
    fn written_vms_are_those_whose_spec_fields_change() {
        let set = |class: &str, r: &str, field: &str| Op::Set {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            field: field.to_owned(),
            value: s("x"),
        };
        let txn = Txn {
            preconditions: Vec::new(),
            ops: vec![
                set("VM", "OpaqueRef:a", "name_description"),
                set("VM", "OpaqueRef:b", "actions_after_crash"),
                set("VM", "OpaqueRef:b", "PV_args"),
                set("VBD", "OpaqueRef:c", "name_label"),
                Op::MapPut {
                    class: "VM".to_owned(),
                    r#ref: "OpaqueRef:d".to_owned(),
                    field: "platform".to_owned(),
                    key: "k".to_owned(),
                    value: s("v"),
                },
            ],
        };
        assert_eq!(written_vms(&txn), ["OpaqueRef:b", "OpaqueRef:d"]);
    }

    /// A setter of a running VM's spec field gets the new spec to its agent (generic or custom
    /// setter alike); a halted VM's setter sends nothing, nor does a write of another field.
    #[tokio::test]
    async fn setters_push_the_spec_of_running_vms_only() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let running = pool.running_vm(&session, "running").await;
        let halted = pool.new_vm(&session, "halted").await;
        let uuid = pool.text("VM", &running, "uuid");
        let reply = pool
            .call_as(
                &session,
                "VM.set_actions_after_crash",
                vec![s(&running), s("preserve")],
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        let spec = pool.agent.spec(&uuid).expect("a domain");
        assert_eq!(spec.on_crash, host_api::AfterCrash::Preserve);
        pool.call_as(&session, "VM.set_PV_args", vec![s(&running), s("quiet")])
            .await
            .expect("set");
        assert_eq!(pool.agent.spec(&uuid).expect("a domain").pv_args, "quiet");
        let pushes = pool.agent.kinds().len();
        pool.call_as(&session, "VM.set_PV_args", vec![s(&halted), s("quiet")])
            .await
            .expect("set");
        pool.call_as(
            &session,
            "VM.set_name_description",
            vec![s(&running), s("described")],
        )
        .await
        .expect("set");
        assert_eq!(pool.agent.kinds().len(), pushes);
        assert_eq!(
            pool.agent.kinds()[1..],
            [ActionKind::UpdateSpec, ActionKind::UpdateSpec]
        );
    }

    /// A write that lands while a start is under way (the VM still Halted, its domain
    /// built from the older spec) reaches the domain once the start is over.
    #[tokio::test]
    async fn a_write_during_a_start_reaches_the_new_domain() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let gate = pool.agent.block_next(ActionKind::Start);
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        let task = pool.async_call(&session, "VM.start", start).await;
        gate.entered().await;
        pool.call_as(&session, "VM.set_PV_args", vec![s(&vm), s("late")])
            .await
            .expect("set");
        gate.release();
        assert_eq!(pool.finished(&task).await, "success");
        let uuid = pool.text("VM", &vm, "uuid");
        assert_eq!(pool.agent.spec(&uuid).expect("a domain").pv_args, "late");
        assert_eq!(
            pool.agent.kinds(),
            [ActionKind::Start, ActionKind::UpdateSpec]
        );
    }

    /// A domain the agent lost meanwhile does not fail the write.
    #[tokio::test]
    async fn a_vanished_domain_does_not_fail_the_write() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        pool.agent.remove_domain(&pool.text("VM", &vm, "uuid"));
        let reply = pool
            .call_as(&session, "VM.set_PV_args", vec![s(&vm), s("quiet")])
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "PV_args"), "quiet");
    }
}
