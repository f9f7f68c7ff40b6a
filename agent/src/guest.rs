//! Checking a VM's domain when the backend says it needs attention (xenopsd's
//! `VM_check_state`), and when the agent starts: the decision is made from the domain's state
//! now, never from the event, so a repeated or late check does nothing wrong.
//!
//! - An operation cut short (the domain still carries its needs-poweroff mark, as after a crash
//!   of oxapi mid-start): the domain is powered off.
//! - A guest that shut down, rebooted or crashed by itself: the VM's `actions_after_shutdown`,
//!   `_reboot` or `_crash` are honoured (destroy; restart in place, with a new domid; preserve
//!   leaves the crashed domain, shown as paused; the coredump variants act as their plain
//!   forms, `rename_restart` as `restart`), and `AgentReport::GuestChanged` says what happened
//!   and what the domain now is.

use host_api::{AfterCrash, AfterShutdown, AgentReport, GuestEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::actions::{power_off_cut_short, reboot, teardown};
use crate::backend::{Domain, RunState, ShutdownReason};
use crate::hooks::HookReason;
use crate::micro_ops::{MicroOp, execute};

/// Looks at the domain of `vm` and does what its state calls for. Runs on the VM's queue.
pub(crate) async fn check_state(agent: &Agent, vm: &str) {
    let domain = match agent.drivers.hypervisor.domain(vm).await {
        Ok(Some(domain)) => domain,
        Ok(None) => return,
        Err(err) => {
            tracing::error!(
                vm,
                error = &err as &dyn std::error::Error,
                "cannot read the domain"
            );
            return;
        }
    };
    let stopped = match domain.state {
        RunState::Shutdown(reason) => Some(reason),
        RunState::Running | RunState::Paused => None,
    };
    let plan = if domain.needs_poweroff {
        tracing::warn!(
            vm,
            domid = domain.domid,
            "an operation on this domain was cut short; powering it off"
        );
        power_off_cut_short(&domain)
    } else if let Some(reason) = stopped {
        let plan = after_stop(&domain, reason);
        tracing::info!(vm, domid = domain.domid, reason = ?reason, steps = plan.len(), "the guest stopped by itself");
        plan
    } else {
        return;
    };
    let (progress, _) = watch::channel(0.0);
    if let Err(err) = execute(agent, vm, plan, &progress, &CancellationToken::new()).await {
        tracing::error!(
            vm,
            error = &err as &dyn std::error::Error,
            "cannot carry out what the domain's state calls for"
        );
    }
    let Some(reason) = stopped else {
        return;
    };
    let now = match agent.drivers.hypervisor.domain(vm).await {
        Ok(now) => now.as_ref().map(Domain::info),
        Err(err) => {
            tracing::error!(
                vm,
                error = &err as &dyn std::error::Error,
                "cannot read the domain"
            );
            return;
        }
    };
    agent
        .report(AgentReport::GuestChanged {
            vm: vm.to_owned(),
            event: event_of(reason),
            now,
        })
        .await;
}

/// The steps that honour the VM's `actions_after_*` for a guest that stopped for `reason`.
fn after_stop(domain: &Domain, reason: ShutdownReason) -> Vec<MicroOp> {
    let spec = &domain.spec;
    let (is_restart, hook_reason) = match reason {
        ShutdownReason::PowerOff => (
            spec.on_shutdown == AfterShutdown::Restart,
            HookReason::CleanShutdown,
        ),
        ShutdownReason::Reboot => (
            spec.on_reboot == AfterShutdown::Restart,
            HookReason::CleanReboot,
        ),
        ShutdownReason::Crash => match spec.on_crash {
            AfterCrash::Destroy | AfterCrash::CoredumpAndDestroy => {
                (false, HookReason::HardShutdown)
            }
            AfterCrash::Restart | AfterCrash::CoredumpAndRestart | AfterCrash::RenameRestart => {
                (true, HookReason::HardReboot)
            }
            AfterCrash::Preserve => return Vec::new(),
        },
    };
    if is_restart {
        reboot(domain, &domain.restart_spec(), hook_reason, None)
    } else {
        teardown(domain, hook_reason, None)
    }
}

fn event_of(reason: ShutdownReason) -> GuestEvent {
    match reason {
        ShutdownReason::PowerOff => GuestEvent::PoweredOff,
        ShutdownReason::Reboot => GuestEvent::Rebooted,
        ShutdownReason::Crash => GuestEvent::Crashed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{domain_of, vm_spec};

    fn after(on_crash: AfterCrash) -> Vec<&'static str> {
        let mut spec = vm_spec("a", 1, 1);
        spec.on_crash = on_crash;
        let mut domain = domain_of(&spec);
        domain.state = RunState::Shutdown(ShutdownReason::Crash);
        after_stop(&domain, ShutdownReason::Crash)
            .iter()
            .map(MicroOp::name)
            .collect()
    }

    /// Each `actions_after_crash` maps to destroy, restart or nothing, the coredump and rename
    /// variants acting as their plain forms.
    #[test]
    fn every_after_crash_action_has_its_plain_form() {
        let destroy = after(AfterCrash::Destroy);
        assert_eq!(destroy.last(), Some(&"hook"));
        assert!(destroy.contains(&"destroy") && !destroy.contains(&"create"));
        assert_eq!(after(AfterCrash::CoredumpAndDestroy), destroy);
        let restart = after(AfterCrash::Restart);
        assert!(restart.contains(&"destroy") && restart.contains(&"create"));
        assert_eq!(after(AfterCrash::CoredumpAndRestart), restart);
        assert_eq!(after(AfterCrash::RenameRestart), restart);
        assert!(after(AfterCrash::Preserve).is_empty());
    }
}
