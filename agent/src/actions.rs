//! What each `VmAction` is made of: its precondition on the domain, and its micro-ops.
//!
//! The lists follow xenopsd's (`atomics_of_operation`), with the teardown in the reverse order
//! of the start so each step undoes one of the start's:
//!
//! - start: `vm-pre-start` hook, create, build, plug the disks (read-write ones before
//!   read-only ones, each in device order; each attached and activated by its storage driver
//!   first), plug the NICs (each bridge and port ensured by the network driver first), start
//!   the device model, unpause (unless asked paused), then clear the domain's needs-poweroff
//!   mark (the start is complete);
//! - shutdown: `vm-pre-shutdown` hook, mark needs-poweroff, (clean: ask the guest and wait),
//!   unplug the NICs (tearing down their ports), unplug the disks (deactivating and detaching
//!   them), stop the device model, destroy, `vm-post-destroy` hook;
//! - reboot: the shutdown with a reboot request, then the `vm-pre-reboot` hook and a start;
//! - suspend: `vm-pre-suspend` hook, save to the suspend VDI (attached and activated for it,
//!   then released), then the hard shutdown's teardown;
//! - resume: create, `vm-pre-resume` hook, restore from the suspend VDI (attached read-only
//!   for it, then released), plug, device model, `vm-post-resume` hook, unpause (unless asked
//!   paused), clear the mark;
//! - migrate out: `vm-pre-migrate` hook, pause (if running), stream the memory image to the
//!   destination's agent (done once that agent has checked and kept every byte; if not, the
//!   domain is unpaused and runs on), then the suspend's teardown;
//! - migrate in: receive the image as it streams in, check it and keep it, with no domain yet
//!   (beside the VM's queue, so that a migration to the same host can send it);
//! - migrate finish (once the source's domain is gone): create, restore from the kept image,
//!   plug, device model, `vm-post-migrate` hook, unpause (unless asked paused), clear the mark;
//! - device hotplug and unplug, CD insert and eject: the device's steps of a start or a
//!   shutdown (storage or network, then the hypervisor, or the reverse);
//! - pause, unpause, VCPUs, memory target: one step each;
//! - a new spec for a running domain: no step, and no queue (`Agent::run` keeps it at once, so
//!   that what the guest does next is judged by it, even while an operation holds the queue).
//!
//! The needs-poweroff mark lives with the domain in the hypervisor: if oxapi dies in the middle of
//! a start or a teardown, the restarted agent finds the mark and powers the domain off, so no
//! half-built domain survives a crash.

use host_api::{
    ActionResult, AgentFailure, DiskSpec, PowerState, TransferToken, VbdSpec, VifSpec, VmAction,
    VmSpec,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Agent;
use crate::backend::{BackendError, Domain, RunState, ShutdownReason};
use crate::error::AgentError;
use crate::hooks::{HookPoint, HookReason};
use crate::micro_ops::{MicroOp, execute};

/// Carries out `action` on the domain of `vm` and says what the domain now is.
pub(crate) async fn perform(
    agent: &Agent,
    vm: &str,
    action: &VmAction,
    progress: &watch::Sender<f64>,
    cancel: &CancellationToken,
) -> Result<ActionResult, AgentError> {
    let domain = agent.drivers.hypervisor.domain(vm).await?;
    let plan = plan(action, vm, domain.as_ref())?;
    execute(agent, vm, plan, progress, cancel).await?;
    let now = agent.drivers.hypervisor.domain(vm).await?;
    Ok(ActionResult::Domain(now.as_ref().map(Domain::info)))
}

/// Checks the action's precondition on `domain` (the domain of `vm` now) and lists its steps.
pub(crate) fn plan(
    action: &VmAction,
    vm: &str,
    domain: Option<&Domain>,
) -> Result<Vec<MicroOp>, AgentError> {
    Ok(match action {
        VmAction::Start { vm: spec, paused } => {
            absent(vm, domain, PowerState::Halted)?;
            start(spec, *paused)
        }
        VmAction::Shutdown { clean, .. } => {
            let domain = if *clean {
                in_state(vm, domain, RunState::Running)?
            } else {
                present(vm, domain, PowerState::Running)?
            };
            let (reason, guest) = if *clean {
                (HookReason::CleanShutdown, Some(ShutdownReason::PowerOff))
            } else {
                (HookReason::HardShutdown, None)
            };
            teardown(domain, reason, guest)
        }
        VmAction::Reboot { vm: spec, clean } => {
            let domain = if *clean {
                in_state(vm, domain, RunState::Running)?
            } else {
                present(vm, domain, PowerState::Running)?
            };
            let (reason, guest) = if *clean {
                (HookReason::CleanReboot, Some(ShutdownReason::Reboot))
            } else {
                (HookReason::HardReboot, None)
            };
            reboot(domain, spec, reason, guest)
        }
        VmAction::Suspend { image, .. } => suspend(in_state(vm, domain, RunState::Running)?, image),
        VmAction::Resume {
            vm: spec,
            image,
            paused,
        } => {
            absent(vm, domain, PowerState::Suspended)?;
            resume(spec, image, *paused)
        }
        VmAction::MigrateOut { to_host, token, .. } => {
            migrate_out(live(vm, domain)?, to_host, token)
        }
        // No domain is touched (see `Agent::run`): any may run, as in a migration to its own host.
        VmAction::MigrateIn { token, .. } => vec![MicroOp::ReceiveImage(token.clone())],
        VmAction::MigrateFinish { vm: spec, paused } => {
            absent(vm, domain, PowerState::Halted)?;
            migrate_finish(spec, *paused)
        }
        VmAction::Pause { .. } => {
            in_state(vm, domain, RunState::Running)?;
            vec![MicroOp::Pause]
        }
        VmAction::Unpause { .. } => {
            in_state(vm, domain, RunState::Paused)?;
            vec![MicroOp::Unpause]
        }
        VmAction::PlugVbd { vbd, .. } => {
            live(vm, domain)?;
            plug_disk(vbd).collect()
        }
        VmAction::UnplugVbd { vbd, force, .. } => {
            let plugged = live(vm, domain)?
                .vbds
                .iter()
                .find(|plugged| plugged.uuid == *vbd);
            let vbd = plugged.ok_or_else(|| detached(vbd))?;
            unplug_disk(vbd, *force).collect()
        }
        VmAction::PlugVif { vif, .. } => {
            live(vm, domain)?;
            plug_nic(vif).collect()
        }
        VmAction::UnplugVif { vif, force, .. } => {
            let plugged = live(vm, domain)?
                .vifs
                .iter()
                .find(|plugged| plugged.uuid == *vif);
            let vif = plugged.ok_or_else(|| detached(vif))?;
            unplug_nic(vif, *force).collect()
        }
        VmAction::InsertCd { vbd, disk, .. } => {
            live(vm, domain)?;
            let mut plan = attach_disk(disk, true).collect::<Vec<_>>();
            plan.push(MicroOp::InsertCd {
                vbd: vbd.clone(),
                disk: disk.clone(),
            });
            plan
        }
        VmAction::EjectCd { vbd, .. } => {
            let drive = live(vm, domain)?
                .vbds
                .iter()
                .find(|plugged| plugged.uuid == *vbd);
            let mut plan = vec![MicroOp::EjectCd { vbd: vbd.clone() }];
            // A drive the hypervisor does not know, or an empty one, fails at the eject.
            if let Some(disk) = drive.and_then(|drive| drive.disk.as_ref()) {
                plan.extend(detach_disk(disk, true));
            }
            plan
        }
        VmAction::SetVcpus { count, .. } => {
            live(vm, domain)?;
            vec![MicroOp::SetVcpus(*count)]
        }
        VmAction::SetMemoryTarget { bytes, .. } => {
            live(vm, domain)?;
            vec![MicroOp::SetMemoryTarget(*bytes)]
        }
        // Answered without a queue: from `discover`, and by `Hypervisor::update_spec`.
        VmAction::UpdateSpec { .. } => Vec::new(),
    })
}

/// Start `spec` on a new domain.
pub(crate) fn start(spec: &VmSpec, paused: bool) -> Vec<MicroOp> {
    let mut plan = vec![
        MicroOp::Hook(HookPoint::PreStart, HookReason::None),
        MicroOp::Create(Box::new(spec.clone())),
        MicroOp::Build,
    ];
    plan.extend(plug_devices(spec));
    if !paused {
        plan.push(MicroOp::Unpause);
    }
    plan.push(MicroOp::SetNeedsPoweroff(false));
    plan
}

/// Tear `domain` down, asking its guest first when `guest` says how, else pausing it.
pub(crate) fn teardown(
    domain: &Domain,
    reason: HookReason,
    guest: Option<ShutdownReason>,
) -> Vec<MicroOp> {
    let mut plan = vec![
        MicroOp::Hook(HookPoint::PreShutdown, reason),
        MicroOp::SetNeedsPoweroff(true),
    ];
    plan.extend(guest.map(MicroOp::ShutdownGuest));
    // Without the guest's help its vCPUs stop first: a device then leaves a stopped guest
    // (a running one would have to release it, as in a hot unplug).
    // (A suspend or a migration paused it already, to save its memory.)
    let is_saved = matches!(reason, HookReason::Suspend);
    if guest.is_none() && !is_saved && domain.state == RunState::Running {
        plan.push(MicroOp::Pause);
    }
    plan.extend(
        domain
            .vifs
            .iter()
            .rev()
            .flat_map(|vif| unplug_nic(vif, true)),
    );
    plan.extend(
        domain
            .vbds
            .iter()
            .rev()
            .flat_map(|vbd| unplug_disk(vbd, true)),
    );
    if domain.has_device_model {
        plan.push(MicroOp::StopDeviceModel);
    }
    plan.push(MicroOp::Destroy);
    plan.push(MicroOp::Hook(HookPoint::PostDestroy, reason));
    plan
}

/// Power off a domain an operation left half-built or half torn down (its needs-poweroff
/// mark is set, as after a crash of oxapi): the teardown of what is plugged, then, once the
/// domain is destroyed, the release of what storage and the network may have set up for the
/// devices of its spec that were not plugged yet (releasing what is not set up does nothing).
/// Read-only disks are left: another VM may have the same ISO attached.
pub(crate) fn power_off_cut_short(domain: &Domain) -> Vec<MicroOp> {
    let mut plan = teardown(domain, HookReason::HardShutdown, None);
    let is_plugged_vbd = |vbd: &VbdSpec| domain.vbds.iter().any(|p| p.uuid == vbd.uuid);
    let is_plugged_vif = |vif: &VifSpec| domain.vifs.iter().any(|p| p.uuid == vif.uuid);
    let vifs = domain.spec.vifs.iter().filter(|vif| !is_plugged_vif(vif));
    let mut releases: Vec<MicroOp> = vifs.map(|vif| MicroOp::TearDownVif(vif.clone())).collect();
    for vbd in domain
        .spec
        .vbds
        .iter()
        .filter(|vbd| !vbd.read_only && !is_plugged_vbd(vbd))
    {
        releases.extend(vbd.disk.iter().flat_map(|disk| detach_disk(disk, false)));
    }
    let destroyed = plan.len() - 1;
    plan.splice(destroyed..destroyed, releases);
    plan
}

/// Tear `domain` down and start `spec` on a new one.
pub(crate) fn reboot(
    domain: &Domain,
    spec: &VmSpec,
    reason: HookReason,
    guest: Option<ShutdownReason>,
) -> Vec<MicroOp> {
    let mut plan = teardown(domain, reason, guest);
    plan.push(MicroOp::Hook(HookPoint::PreReboot, HookReason::None));
    plan.extend(start(spec, false));
    plan
}

fn suspend(domain: &Domain, image: &DiskSpec) -> Vec<MicroOp> {
    let mut plan = vec![MicroOp::Hook(HookPoint::PreSuspend, HookReason::Suspend)];
    plan.extend(attach_disk(image, false));
    plan.push(MicroOp::Save(image.clone()));
    plan.extend(detach_disk(image, false));
    plan.extend(teardown(domain, HookReason::Suspend, None));
    plan
}

/// The devices go in before the image is loaded: QEMU loads a device's state into a device
/// that exists.
fn resume(spec: &VmSpec, image: &DiskSpec, paused: bool) -> Vec<MicroOp> {
    let mut plan = vec![
        MicroOp::Create(Box::new(spec.clone())),
        MicroOp::Hook(HookPoint::PreResume, HookReason::None),
    ];
    plan.extend(plug_devices(spec));
    plan.extend(attach_disk(image, true));
    plan.push(MicroOp::Restore(image.clone()));
    plan.extend(detach_disk(image, true));
    plan.push(MicroOp::Hook(HookPoint::PostResume, HookReason::None));
    if !paused {
        plan.push(MicroOp::Unpause);
    }
    plan.push(MicroOp::SetNeedsPoweroff(false));
    plan
}

fn migrate_out(domain: &Domain, to_host: &str, token: &TransferToken) -> Vec<MicroOp> {
    let mut plan = vec![MicroOp::Hook(
        HookPoint::PreMigrate,
        HookReason::MigrateSource,
    )];
    // Paused as a step of its own, so that a failed transfer is undone by unpausing.
    if domain.state == RunState::Running {
        plan.push(MicroOp::Pause);
    }
    plan.push(MicroOp::SaveImage {
        to_host: to_host.to_owned(),
        token: token.clone(),
    });
    plan.extend(teardown(domain, HookReason::Suspend, None));
    plan
}

/// The devices go in before the image is loaded, as for a resume.
fn migrate_finish(spec: &VmSpec, paused: bool) -> Vec<MicroOp> {
    let mut plan = vec![MicroOp::Create(Box::new(spec.clone()))];
    plan.extend(plug_devices(spec));
    plan.push(MicroOp::RestoreReceived);
    plan.push(MicroOp::Hook(
        HookPoint::PostMigrate,
        HookReason::MigrateDestination,
    ));
    if !paused {
        plan.push(MicroOp::Unpause);
    }
    plan.push(MicroOp::SetNeedsPoweroff(false));
    plan
}

/// The disks (read-write before read-only), the NICs, then the device model.
fn plug_devices(spec: &VmSpec) -> impl Iterator<Item = MicroOp> + '_ {
    let read_write = spec.vbds.iter().filter(|vbd| !vbd.read_only);
    let read_only = spec.vbds.iter().filter(|vbd| vbd.read_only);
    read_write
        .chain(read_only)
        .flat_map(plug_disk)
        .chain(spec.vifs.iter().flat_map(plug_nic))
        .chain(std::iter::once(MicroOp::StartDeviceModel))
}

/// Storage attaches and activates the disk of `vbd` (if it has one), then the hypervisor
/// plugs it.
fn plug_disk(vbd: &VbdSpec) -> impl Iterator<Item = MicroOp> + '_ {
    let storage = vbd
        .disk
        .iter()
        .flat_map(|disk| attach_disk(disk, vbd.read_only));
    storage.chain(std::iter::once(MicroOp::PlugDisk(vbd.clone())))
}

/// The hypervisor unplugs `vbd`, then storage deactivates and detaches its disk.
fn unplug_disk(vbd: &VbdSpec, force: bool) -> impl Iterator<Item = MicroOp> + '_ {
    let unplug = MicroOp::UnplugDisk {
        vbd: vbd.clone(),
        force,
    };
    let storage = vbd
        .disk
        .iter()
        .flat_map(|disk| detach_disk(disk, vbd.read_only));
    std::iter::once(unplug).chain(storage)
}

fn attach_disk(disk: &DiskSpec, read_only: bool) -> impl Iterator<Item = MicroOp> {
    [
        MicroOp::AttachDisk {
            disk: disk.clone(),
            read_only,
        },
        MicroOp::ActivateDisk(disk.clone()),
    ]
    .into_iter()
}

fn detach_disk(disk: &DiskSpec, read_only: bool) -> impl Iterator<Item = MicroOp> {
    [
        MicroOp::DeactivateDisk(disk.clone()),
        MicroOp::DetachDisk {
            disk: disk.clone(),
            read_only,
        },
    ]
    .into_iter()
}

/// The network ensures the bridge of `vif` and its port, then the hypervisor plugs it.
fn plug_nic(vif: &VifSpec) -> impl Iterator<Item = MicroOp> {
    [
        MicroOp::EnsureNetwork {
            bridge: vif.bridge.clone(),
            mtu: vif.mtu,
        },
        MicroOp::EnsureVif(vif.clone()),
        MicroOp::PlugNic(vif.clone()),
    ]
    .into_iter()
}

/// The hypervisor unplugs `vif`, then the network tears its port down.
fn unplug_nic(vif: &VifSpec, force: bool) -> impl Iterator<Item = MicroOp> {
    [
        MicroOp::UnplugNic {
            vif: vif.clone(),
            force,
        },
        MicroOp::TearDownVif(vif.clone()),
    ]
    .into_iter()
}

fn absent(vm: &str, domain: Option<&Domain>, expected: PowerState) -> Result<(), AgentError> {
    match domain {
        None => Ok(()),
        Some(domain) => Err(bad_power_state(vm, expected, domain.state.power_state())),
    }
}

fn present<'a>(
    vm: &str,
    domain: Option<&'a Domain>,
    expected: PowerState,
) -> Result<&'a Domain, AgentError> {
    domain.ok_or_else(|| bad_power_state(vm, expected, PowerState::Halted))
}

/// A domain whose guest has not shut down.
fn live<'a>(vm: &str, domain: Option<&'a Domain>) -> Result<&'a Domain, AgentError> {
    let domain = present(vm, domain, PowerState::Running)?;
    match domain.state {
        RunState::Shutdown(_) => Err(bad_power_state(
            vm,
            PowerState::Running,
            domain.state.power_state(),
        )),
        RunState::Running | RunState::Paused => Ok(domain),
    }
}

fn in_state<'a>(
    vm: &str,
    domain: Option<&'a Domain>,
    wanted: RunState,
) -> Result<&'a Domain, AgentError> {
    let expected = wanted.power_state();
    let domain = present(vm, domain, expected)?;
    if domain.state == wanted {
        Ok(domain)
    } else {
        Err(bad_power_state(vm, expected, domain.state.power_state()))
    }
}

fn bad_power_state(vm: &str, expected: PowerState, actual: PowerState) -> AgentError {
    AgentError::Failure(AgentFailure::BadPowerState {
        vm: vm.to_owned(),
        expected,
        actual,
    })
}

fn detached(device: &str) -> AgentError {
    AgentError::Backend(BackendError::DeviceDetached {
        device: device.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cd_drive, vm_spec};

    fn names(plan: &[MicroOp]) -> Vec<&'static str> {
        plan.iter().map(MicroOp::name).collect()
    }

    /// A start plugs read-write disks (attached and activated first) before read-only ones
    /// (an empty CD drive has nothing to attach), then NICs (bridge and port first), the
    /// device model, and unpauses last unless asked paused.
    #[test]
    fn start_plugs_read_write_disks_first_and_unpauses_last() {
        let mut spec = vm_spec("a", 1, 1);
        spec.vbds.insert(0, cd_drive(3));
        let plan = start(&spec, false);
        assert_eq!(
            names(&plan),
            [
                "hook",
                "create",
                "build",
                "attach",
                "activate",
                "plug_disk",
                "plug_disk",
                "ensure_network",
                "ensure_vif",
                "plug_nic",
                "start_device_model",
                "unpause",
                "set_needs_poweroff"
            ]
        );
        assert_eq!(plan[5], MicroOp::PlugDisk(spec.vbds[1].clone()));
        assert_eq!(plan[6], MicroOp::PlugDisk(spec.vbds[0].clone()));
        assert!(!names(&start(&spec, true)).contains(&"unpause"));
    }

    /// A shutdown unplugs each device before its port is torn down or its disk deactivated
    /// and detached: the start's steps, reversed.
    #[test]
    fn teardown_releases_each_device_after_unplugging_it() {
        // A running domain torn down without its guest's help is paused first.
        let spec = vm_spec("a", 1, 1);
        let domain = crate::testing::domain_of(&spec);
        let plan = teardown(&domain, HookReason::HardShutdown, None);
        assert_eq!(
            names(&plan),
            [
                "hook",
                "set_needs_poweroff",
                "pause",
                "unplug_nic",
                "tear_down_vif",
                "unplug_disk",
                "deactivate",
                "detach",
                "stop_device_model",
                "destroy",
                "hook"
            ]
        );
    }

    /// A start on a VM that has a domain, or a clean shutdown of a paused one, is refused with
    /// VM_BAD_POWER_STATE naming what was expected and what is.
    #[test]
    fn preconditions_give_bad_power_state() {
        let spec = vm_spec("a", 0, 0);
        let action = VmAction::Start {
            vm: spec.clone(),
            paused: false,
        };
        assert!(plan(&action, &spec.uuid, None).is_ok());
        let mut domain = crate::testing::domain_of(&spec);
        domain.state = RunState::Paused;
        let refused = plan(&action, &spec.uuid, Some(&domain));
        assert!(matches!(
            refused,
            Err(AgentError::Failure(AgentFailure::BadPowerState {
                expected: PowerState::Halted,
                actual: PowerState::Paused,
                ..
            }))
        ));
        let shutdown = VmAction::Shutdown {
            vm: spec.uuid.clone(),
            clean: true,
        };
        assert!(matches!(
            plan(&shutdown, &spec.uuid, Some(&domain)),
            Err(AgentError::Failure(AgentFailure::BadPowerState {
                expected: PowerState::Running,
                actual: PowerState::Paused,
                ..
            }))
        ));
        assert!(matches!(
            plan(&shutdown, &spec.uuid, None),
            Err(AgentError::Failure(AgentFailure::BadPowerState {
                actual: PowerState::Halted,
                ..
            }))
        ));
    }
}
