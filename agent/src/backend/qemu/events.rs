//! How the qemu driver learns that a domain changed without being asked: its QEMU's QMP
//! events (a guest's power-off, reboot, panic, pause, balloon) and its QEMU's exit, each
//! recorded in the domain and told to the agent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::qmp::{Qmp, QmpEvent, QmpEvents};
use super::{Qemu, Vm};
use crate::backend::{DomainEvent, RunState, ShutdownReason};

/// What tells the agent a domain changed.
pub(super) struct Signals {
    pub(super) events: broadcast::Sender<DomainEvent>,
    /// Bumped on every change of any domain (`wait_shutdown` watches it).
    pub(super) changed: watch::Sender<u64>,
}

impl Signals {
    pub(super) fn changed(&self, vm: &str, is_event: bool) {
        self.changed.send_modify(|generation| *generation += 1);
        if is_event {
            let _ = self.events.send(DomainEvent { vm: vm.to_owned() });
        }
    }
}

impl Qemu {
    /// Follows the events and the exit of `vm`'s QEMU until it is gone.
    pub(super) fn watch(&self, vm: Arc<Vm>) {
        let signals = self.signals.clone();
        let events = vm.qmp.as_ref().map(Qmp::events);
        tokio::spawn(async move {
            let mut exited = vm.exited.clone();
            let mut events = events;
            loop {
                tokio::select! {
                    gone = exited.wait_for(|exited| *exited) => {
                        let _ = gone;
                        if !vm.is_destroying.load(Ordering::SeqCst) {
                            crashed(&vm, &signals);
                        }
                        return;
                    }
                    event = next_event(&mut events) => match event {
                        Some(event) => on_event(&vm, &event, &signals),
                        None => events = None,
                    },
                }
            }
        });
    }
}

/// The next event of `events`, if QEMU's events are followed at all.
async fn next_event(events: &mut Option<QmpEvents>) -> Option<QmpEvent> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The run state `query-status` gives, `before` being the one kept (for a shutdown's reason).
pub(super) fn state_of(status: &Value, before: RunState) -> RunState {
    match status
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "running" => RunState::Running,
        "shutdown" => match before {
            RunState::Shutdown(reason) => RunState::Shutdown(reason),
            _ => RunState::Shutdown(ShutdownReason::PowerOff),
        },
        "guest-panicked" | "internal-error" => RunState::Shutdown(ShutdownReason::Crash),
        _ => RunState::Paused,
    }
}

/// Applies one QMP event to the domain of `vm`.
fn on_event(vm: &Vm, event: &QmpEvent, signals: &Signals) {
    let reason = event.data.get("reason").and_then(Value::as_str);
    let change: Option<(RunState, bool)> = match (event.name.as_str(), reason) {
        ("SHUTDOWN", Some("guest-shutdown")) => {
            let reason = if vm.is_reboot_requested.swap(false, Ordering::SeqCst) {
                ShutdownReason::Reboot
            } else {
                ShutdownReason::PowerOff
            };
            Some((RunState::Shutdown(reason), true))
        }
        ("SHUTDOWN", Some("guest-reset")) => {
            Some((RunState::Shutdown(ShutdownReason::Reboot), true))
        }
        ("SHUTDOWN", Some("guest-panic")) | ("GUEST_PANICKED", _) => {
            Some((RunState::Shutdown(ShutdownReason::Crash), true))
        }
        ("STOP", _) if vm.domain().state == RunState::Running => Some((RunState::Paused, false)),
        ("RESUME", _) if vm.domain().state == RunState::Paused => Some((RunState::Running, false)),
        ("BALLOON_CHANGE", _) => {
            if let Some(actual) = event.data.get("actual").and_then(Value::as_u64) {
                let name = vm.domain().vm().to_owned();
                let _ = vm.update(|domain| domain.memory_actual_bytes = actual);
                signals.changed(&name, false);
            }
            None
        }
        _ => None,
    };
    let Some((state, is_event)) = change else {
        return;
    };
    let name = vm.domain().vm().to_owned();
    if let Err(err) = vm.update(|domain| domain.state = state) {
        tracing::error!(vm = %name, error = &err as &dyn std::error::Error, "cannot keep the domain");
    }
    tracing::info!(vm = %name, event = %event.name, ?state, "domain changed");
    signals.changed(&name, is_event);
}

/// Records that the QEMU of `vm` disappeared without being destroyed.
fn crashed(vm: &Vm, signals: &Signals) {
    let name = vm.domain().vm().to_owned();
    let is_shut_down = matches!(vm.domain().state, RunState::Shutdown(_));
    if !is_shut_down {
        let crash = RunState::Shutdown(ShutdownReason::Crash);
        if let Err(err) = vm.update(|domain| domain.state = crash) {
            tracing::error!(vm = %name, error = &err as &dyn std::error::Error, "cannot keep the domain");
        }
    }
    tracing::warn!(vm = %name, "QEMU exited without being destroyed");
    signals.changed(&name, true);
}
