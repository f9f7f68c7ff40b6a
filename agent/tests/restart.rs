//! An agent restarted over the same data dir: the simulator's domains outlive the agent, the
//! new agent checks each one (finishing operations cut short, handling guests that stopped
//! meanwhile) and then reports its inventory.

mod support;

use std::sync::Arc;

use agent::AgentConfig;
use agent::backend::simulator::{GuestAction, STATE_FILE, Simulator, SimulatorConfig};
use agent::backend::{Hypervisor, Network, Storage};
use agent::testing::vm_spec;
use host_api::{AfterShutdown, AgentReport, DomainState, GuestEvent, HostAction, VmAction};
use support::TestAgent;

/// A new agent over the same data dir finds the domains the old one left, with their domids,
/// states and devices, and reports them in its first inventory.
#[tokio::test]
async fn a_new_agent_discovers_the_domains_of_the_state_file() {
    let first = TestAgent::start(AgentConfig::default()).await;
    let dir = Arc::clone(&first.dir);
    let running = first.start_vm(&vm_spec("running", 2, 1)).await;
    let paused_spec = vm_spec("paused", 1, 0);
    let paused = first
        .domain_after(HostAction::Vm(VmAction::Start {
            vm: paused_spec,
            paused: true,
        }))
        .await;
    assert!(dir.path().join(STATE_FILE).is_file());
    drop(first);

    let second = TestAgent::start_in(dir, AgentConfig::default()).await;
    let mut found = second.initial_inventory.clone();
    found.sort_by_key(|domain| domain.domid);
    assert_eq!(found, [running, paused]);
    let next = second.start_vm(&vm_spec("next", 0, 0)).await;
    assert!(next.domid > found[1].domid, "domids are not reused");
}

/// A domain left half-built (as by a crash of oxapi in the middle of a start) is powered off
/// before the inventory, which does not list it.
#[tokio::test]
async fn a_half_built_domain_is_powered_off_at_start() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let spec = vm_spec("interrupted", 1, 1);
    {
        let simulator =
            Simulator::open(dir.path(), SimulatorConfig::default()).expect("the simulator");
        simulator.create(&spec).await.expect("create");
        simulator.build(&spec.uuid).await.expect("build");
        let disk = spec.vbds[0].disk.as_ref().expect("a disk");
        let attached = simulator.attach(disk, false).await.expect("attach");
        simulator
            .plug_disk(&spec.uuid, &spec.vbds[0], Some(&attached))
            .await
            .expect("plug disk");
    }
    let agent = TestAgent::start_in(dir, AgentConfig::default()).await;
    assert!(agent.initial_inventory.is_empty());
    assert_eq!(agent.domain(&spec.uuid).await, None);
    let started = agent.start_vm(&spec).await;
    assert_eq!(started.state, DomainState::Running);
}

/// A start cut short after storage and the network set up a disk and a port but before the
/// hypervisor plugged them leaves nothing behind once the next agent powers the domain off:
/// the disk is released and the port torn down.
#[tokio::test]
async fn a_start_cut_short_before_its_plugs_releases_its_disks_and_ports() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let spec = vm_spec("cut short", 1, 1);
    {
        let simulator =
            Simulator::open(dir.path(), SimulatorConfig::default()).expect("the simulator");
        simulator.create(&spec).await.expect("create");
        simulator.build(&spec.uuid).await.expect("build");
        let disk = spec.vbds[0].disk.as_ref().expect("a disk");
        simulator.attach(disk, false).await.expect("attach");
        simulator.activate(disk).await.expect("activate");
        simulator
            .ensure_vif(&spec.uuid, &spec.vifs[0])
            .await
            .expect("a port");
    }
    let agent = TestAgent::start_in(dir, AgentConfig::default()).await;
    assert_eq!(agent.domain(&spec.uuid).await, None);
    let simulator = agent.simulator();
    assert_eq!(simulator.attached_vdis(), Vec::<String>::new());
    assert_eq!(simulator.vif_ports(), Vec::<String>::new());
}

/// A guest that powered off while no agent ran is handled when the next agent starts: its
/// `actions_after_shutdown` is honoured and reported, before the inventory.
#[tokio::test]
async fn a_guest_that_stopped_meanwhile_is_handled_at_start() {
    let first = TestAgent::start(AgentConfig::default()).await;
    let dir = Arc::clone(&first.dir);
    let mut spec = vm_spec("restarting", 1, 0);
    spec.on_shutdown = AfterShutdown::Restart;
    let before = first.start_vm(&spec).await;
    drop(first);
    {
        let simulator =
            Simulator::open(dir.path(), SimulatorConfig::default()).expect("the simulator");
        simulator
            .guest(&spec.uuid, GuestAction::PowerOff)
            .await
            .expect("the guest powers off");
    }
    let (sender, mut reports) = tokio::sync::mpsc::channel(16);
    let _agent = agent::Agent::start(
        AgentConfig::default(),
        dir.path(),
        1,
        agent::transfer::LocalTransfer::new(),
        sender,
    )
    .await
    .expect("the agent starts");
    let Some(AgentReport::GuestChanged { vm, event, now }) = reports.recv().await else {
        panic!("the guest change comes first");
    };
    assert_eq!(
        (vm.as_str(), event),
        (spec.uuid.as_str(), GuestEvent::PoweredOff)
    );
    let restarted = now.expect("restarted in place");
    assert!(restarted.domid > before.domid);
    let Some(AgentReport::Hypervisor(_)) = reports.recv().await else {
        panic!("then the hypervisor");
    };
    let Some(AgentReport::Inventory(domains)) = reports.recv().await else {
        panic!("then the inventory");
    };
    assert_eq!(domains, [restarted]);
}
