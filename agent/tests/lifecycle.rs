//! Every action through `LocalLink`, on the simulator: what the domain looks like after each,
//! the errors of wrong states and devices, progress, terms and hosts.

mod support;

use std::time::Duration;

use agent::AgentConfig;
use agent::backend::simulator::GuestAction;
use agent::testing::{cd_drive, disk, hard_disk, nic, vm_spec};
use host_api::{ActionResult, AgentFailure, DomainState, HostAction, PowerState, VmAction};
use support::{TERM, TestAgent, bad_power_state, failure, names};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A start gives a running domain with its disks, NICs, memory, VCPUs and an rfb and a vt100
/// console, and progress ends at 1.
#[tokio::test]
async fn start_gives_a_running_domain_with_consoles_and_devices() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let mut spec = vm_spec("web", 2, 1);
    spec.vbds.push(cd_drive(2));
    let (progress, watched) = watch::channel(0.0);
    let action = HostAction::Vm(VmAction::Start {
        vm: spec.clone(),
        paused: false,
    });
    let result = agent
        .agent()
        .run(TERM, action, progress, CancellationToken::new())
        .await;
    let Ok(ActionResult::Domain(Some(domain))) = result else {
        panic!("a running domain, got {result:?}");
    };
    assert_eq!(domain.vm, spec.uuid);
    assert_eq!(domain.state, DomainState::Running);
    assert!(domain.domid > 0);
    assert_eq!(domain.memory_actual_bytes, spec.memory_dynamic_max_bytes);
    assert_eq!(domain.vcpus, spec.vcpus_at_startup);
    let vbds: Vec<_> = spec.vbds.iter().map(|vbd| vbd.uuid.clone()).collect();
    assert_eq!(domain.vbds, vbds);
    assert_eq!(domain.vifs, [spec.vifs[0].uuid.clone()]);
    let protocols: Vec<_> = domain
        .consoles
        .iter()
        .map(|c| c.protocol.as_str())
        .collect();
    assert_eq!(protocols, ["rfb", "vt100"]);
    assert_eq!(*watched.borrow(), 1.0);
    assert_eq!(
        names(&agent.ops_on(&spec.uuid)),
        [
            "create",
            "build",
            "plug_disk",
            "plug_disk",
            "plug_disk",
            "plug_nic",
            "start_device_model",
            "unpause",
            "set_needs_poweroff"
        ]
    );
}

/// Pause, unpause, a paused start, and the VM_BAD_POWER_STATE of each wrong state.
#[tokio::test]
async fn pause_unpause_and_wrong_power_states() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("paused", 1, 0);
    let vm = spec.uuid.clone();
    let started = agent
        .domain_after(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: true,
        }))
        .await;
    assert_eq!(started.state, DomainState::Paused);
    let again = agent
        .run(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
        .await;
    assert_eq!(
        failure(again),
        bad_power_state(&vm, PowerState::Halted, PowerState::Paused)
    );
    let running = agent
        .domain_after(HostAction::Vm(VmAction::Unpause { vm: vm.clone() }))
        .await;
    assert_eq!(running.state, DomainState::Running);
    let unpause = agent
        .run(HostAction::Vm(VmAction::Unpause { vm: vm.clone() }))
        .await;
    assert_eq!(
        failure(unpause),
        bad_power_state(&vm, PowerState::Paused, PowerState::Running)
    );
    let paused = agent
        .domain_after(HostAction::Vm(VmAction::Pause { vm: vm.clone() }))
        .await;
    assert_eq!(paused.state, DomainState::Paused);
    assert_eq!(paused.domid, started.domid);
    let clean = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: vm.clone(),
            clean: true,
        }))
        .await;
    assert_eq!(
        failure(clean),
        bad_power_state(&vm, PowerState::Running, PowerState::Paused)
    );
    let hard = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: vm.clone(),
            clean: false,
        }))
        .await;
    assert_eq!(hard, Ok(ActionResult::Domain(None)));
    let none = agent
        .run(HostAction::Vm(VmAction::Pause { vm: vm.clone() }))
        .await;
    assert_eq!(
        failure(none),
        bad_power_state(&vm, PowerState::Running, PowerState::Halted)
    );
}

/// Clean and hard shutdowns destroy the domain; clean and hard reboots give a new domid.
#[tokio::test]
async fn shutdowns_destroy_and_reboots_renew_the_domain() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("cycled", 1, 1);
    let vm = spec.uuid.clone();
    let first = agent.start_vm(&spec).await;
    let mut domid = first.domid;
    for clean in [true, false] {
        let rebooted = agent
            .domain_after(HostAction::Vm(VmAction::Reboot {
                vm: spec.clone(),
                clean,
            }))
            .await;
        assert_eq!(rebooted.state, DomainState::Running);
        assert!(rebooted.domid > domid, "a reboot makes a new domain");
        domid = rebooted.domid;
    }
    for clean in [true, false] {
        let down = agent
            .run(HostAction::Vm(VmAction::Shutdown {
                vm: vm.clone(),
                clean,
            }))
            .await;
        assert_eq!(down, Ok(ActionResult::Domain(None)));
        assert_eq!(agent.domain(&vm).await, None);
        if clean {
            agent.start_vm(&spec).await;
        }
    }
}

/// A running domain's disks stay attached and its NICs' ports stay up, a disc while it is in
/// its drive; a shutdown releases them all.
#[tokio::test]
async fn a_domain_holds_its_disks_and_ports_until_shutdown() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let mut spec = vm_spec("holding", 2, 1);
    let drive = cd_drive(3);
    spec.vbds.push(drive.clone());
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    let simulator = agent.simulator();
    let mut disks: Vec<_> = spec
        .vbds
        .iter()
        .filter_map(|vbd| vbd.disk.as_ref().map(|disk| disk.vdi_uuid.clone()))
        .collect();
    disks.sort();
    assert_eq!(simulator.attached_vdis(), disks);
    assert_eq!(simulator.vif_ports(), [spec.vifs[0].uuid.clone()]);
    let iso = disk("debian.iso");
    let insert = HostAction::Vm(VmAction::InsertCd {
        vm: vm.clone(),
        vbd: drive.uuid.clone(),
        disk: iso.clone(),
    });
    agent.domain_after(insert).await;
    assert!(simulator.attached_vdis().contains(&iso.vdi_uuid));
    let eject = HostAction::Vm(VmAction::EjectCd {
        vm: vm.clone(),
        vbd: drive.uuid.clone(),
    });
    agent.domain_after(eject).await;
    assert_eq!(simulator.attached_vdis(), disks);
    let down = agent
        .run(HostAction::Vm(VmAction::Shutdown { vm, clean: true }))
        .await;
    assert_eq!(down, Ok(ActionResult::Domain(None)));
    assert_eq!(simulator.attached_vdis(), Vec::<String>::new());
    assert_eq!(simulator.vif_ports(), Vec::<String>::new());
}

/// A clean shutdown of a guest that does not answer fails with VM_SHUTDOWN_TIMEOUT and leaves
/// it running; a hard shutdown then stops it.
#[tokio::test]
async fn a_hung_guest_times_out_a_clean_shutdown() {
    let config = AgentConfig {
        clean_shutdown_timeout: Duration::from_millis(100),
        ..AgentConfig::default()
    };
    let agent = TestAgent::start(config).await;
    let spec = vm_spec("hung", 1, 0);
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    agent
        .simulator()
        .guest(&vm, GuestAction::Hang)
        .await
        .expect("the guest hangs");
    let clean = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: vm.clone(),
            clean: true,
        }))
        .await;
    assert_eq!(
        failure(clean),
        AgentFailure::ShutdownTimeout {
            vm: String::from(&vm),
            timeout_secs: 0.1
        }
    );
    let still = agent.domain(&vm).await.expect("the domain is still there");
    assert_eq!(still.state, DomainState::Running);
    let hard = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: vm.clone(),
            clean: false,
        }))
        .await;
    assert_eq!(hard, Ok(ActionResult::Domain(None)));
}

/// Suspend saves and destroys the domain; resume brings it back running with the saved
/// memory and VCPUs and its devices. Storage attaches the suspend image for each, and
/// releases it.
#[tokio::test]
async fn suspend_then_resume_brings_the_domain_back() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("sleeper", 1, 1);
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    agent
        .domain_after(HostAction::Vm(VmAction::SetVcpus {
            vm: vm.clone(),
            count: 3,
        }))
        .await;
    let image = disk("suspend-image");
    let suspended = agent
        .run(HostAction::Vm(VmAction::Suspend {
            vm: vm.clone(),
            image: image.clone(),
        }))
        .await;
    assert_eq!(suspended, Ok(ActionResult::Domain(None)));
    assert_eq!(agent.simulator().attached_vdis(), Vec::<String>::new());
    let resumed = agent
        .domain_after(HostAction::Vm(VmAction::Resume {
            vm: spec.clone(),
            image: image.clone(),
            paused: false,
        }))
        .await;
    let release = ["attach", "activate", "deactivate", "detach"];
    assert_eq!(
        names(&agent.ops_on(&image.vdi_uuid)),
        [release, release].concat(),
        "the suspend image is attached for the save and for the restore only"
    );
    assert_eq!(resumed.state, DomainState::Running);
    assert_eq!(resumed.vcpus, 3);
    assert_eq!(resumed.vbds.len(), 1);
    assert_eq!(resumed.vifs.len(), 1);
}

/// Disks and NICs plug and unplug live, with DEVICE_ALREADY_ATTACHED and
/// DEVICE_ALREADY_DETACHED for the repeats.
#[tokio::test]
async fn devices_hotplug_with_already_attached_and_detached_errors() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("hotplug", 1, 0);
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    let (vbd, vif) = (hard_disk("hotplug", 1), nic(0));
    let plug_vbd = HostAction::Vm(VmAction::PlugVbd {
        vm: vm.clone(),
        vbd: vbd.clone(),
    });
    let plugged = agent.domain_after(plug_vbd.clone()).await;
    assert!(plugged.vbds.contains(&vbd.uuid));
    assert_eq!(
        failure(agent.run(plug_vbd).await),
        AgentFailure::DeviceAlreadyAttached {
            device: String::from(&vbd.uuid)
        }
    );
    let plug_vif = HostAction::Vm(VmAction::PlugVif {
        vm: vm.clone(),
        vif: vif.clone(),
    });
    let plugged = agent.domain_after(plug_vif).await;
    assert_eq!(plugged.vifs, std::slice::from_ref(&vif.uuid));
    let unplug_vif = HostAction::Vm(VmAction::UnplugVif {
        vm: vm.clone(),
        vif: vif.uuid.clone(),
        force: false,
    });
    assert!(agent.domain_after(unplug_vif.clone()).await.vifs.is_empty());
    assert_eq!(
        failure(agent.run(unplug_vif).await),
        AgentFailure::DeviceAlreadyDetached {
            device: String::from(&vif.uuid)
        }
    );
    let unplug_vbd = HostAction::Vm(VmAction::UnplugVbd {
        vm: vm.clone(),
        vbd: vbd.uuid.clone(),
        force: true,
    });
    let unplugged = agent.domain_after(unplug_vbd).await;
    assert_eq!(unplugged.vbds, [spec.vbds[0].uuid.clone()]);
}

/// A CD drive takes a disc only when empty (VBD_NOT_EMPTY) and gives one only when full
/// (VBD_IS_EMPTY); a disk is no CD drive (VBD_NOT_REMOVABLE_MEDIA).
#[tokio::test]
async fn cd_insert_and_eject_with_their_errors() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let mut spec = vm_spec("installer", 1, 0);
    let drive = cd_drive(3);
    spec.vbds.push(drive.clone());
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    let insert = HostAction::Vm(VmAction::InsertCd {
        vm: vm.clone(),
        vbd: drive.uuid.clone(),
        disk: disk("debian.iso"),
    });
    agent.domain_after(insert.clone()).await;
    assert_eq!(
        failure(agent.run(insert).await),
        AgentFailure::DriveNotEmpty {
            vbd: String::from(&drive.uuid)
        }
    );
    let eject = HostAction::Vm(VmAction::EjectCd {
        vm: vm.clone(),
        vbd: drive.uuid.clone(),
    });
    agent.domain_after(eject.clone()).await;
    assert_eq!(
        failure(agent.run(eject).await),
        AgentFailure::DriveEmpty {
            vbd: String::from(&drive.uuid)
        }
    );
    let hdd = HostAction::Vm(VmAction::EjectCd {
        vm: vm.clone(),
        vbd: spec.vbds[0].uuid.clone(),
    });
    assert_eq!(
        failure(agent.run(hdd).await),
        AgentFailure::NotRemovable {
            vbd: spec.vbds[0].uuid.clone()
        }
    );
}

/// VCPUs change live within VCPUs_max (VM_TOO_MANY_VCPUS beyond); the memory target moves the
/// domain's actual memory.
#[tokio::test]
async fn vcpus_and_memory_target_change_live() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("tuned", 0, 0);
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    let more = agent
        .domain_after(HostAction::Vm(VmAction::SetVcpus {
            vm: vm.clone(),
            count: spec.vcpus_max,
        }))
        .await;
    assert_eq!(more.vcpus, spec.vcpus_max);
    let too_many = agent
        .run(HostAction::Vm(VmAction::SetVcpus {
            vm: vm.clone(),
            count: spec.vcpus_max + 1,
        }))
        .await;
    assert_eq!(
        failure(too_many),
        AgentFailure::TooManyVcpus {
            vm: String::from(&vm)
        }
    );
    let target = spec.memory_dynamic_min_bytes;
    let smaller = agent
        .domain_after(HostAction::Vm(VmAction::SetMemoryTarget {
            vm: vm.clone(),
            bytes: target,
        }))
        .await;
    assert_eq!(smaller.memory_actual_bytes, target);
}

/// Inventory lists every domain; an action for another host is HOST_OFFLINE.
#[tokio::test]
async fn inventory_lists_domains_and_other_hosts_are_offline() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    assert!(agent.initial_inventory.is_empty());
    let specs = [vm_spec("a", 0, 0), vm_spec("b", 0, 0)];
    for spec in &specs {
        agent.start_vm(spec).await;
    }
    let mut listed: Vec<_> = agent.inventory().await.into_iter().map(|d| d.vm).collect();
    let mut expected: Vec<_> = specs.iter().map(|spec| spec.uuid.clone()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

/// An action stamped with a term older than the newest seen is refused with
/// OPERATION_NOT_ALLOWED; a newer term raises the newest.
#[tokio::test]
async fn stale_terms_are_refused() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    assert_eq!(agent.agent().newest_term(), TERM);
    let run = |term| agent.run_at(term, HostAction::Inventory);
    assert_eq!(
        failure(run(TERM - 1).await),
        AgentFailure::StaleTerm {
            newest_seen: 3,
            got: 2
        }
    );
    assert!(run(TERM + 2).await.is_ok());
    assert_eq!(agent.agent().newest_term(), TERM + 2);
    assert_eq!(
        failure(run(TERM).await),
        AgentFailure::StaleTerm {
            newest_seen: 5,
            got: 3
        }
    );
}
