//! Actions that fail or are cancelled half-way: what was done is undone, newest first, so a
//! start leaves no domain and a shutdown leaves the domain running.

mod support;

use std::num::NonZeroU64;
use std::time::Duration;

use agent::AgentConfig;
use agent::backend::BackendOp;
use agent::backend::simulator::{Failure, GuestAction};
use agent::testing::vm_spec;
use host_api::{AgentFailure, DomainState, HostAction, VmAction};
use support::{TERM, TestAgent, failure, names, wait_until};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn fail_next(agent: &TestAgent, operation: BackendOp) {
    agent.simulator().fail(Failure {
        operation,
        nth: NonZeroU64::MIN,
    });
}

/// A start cancelled after its first progress step, while its build runs, stops at the next
/// micro-op: TASK_CANCELLED, and the domain it created is destroyed.
#[tokio::test]
async fn cancelling_a_start_mid_way_leaves_no_domain() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("cancelled", 1, 1);
    let hold = agent.simulator().hold(BackendOp::Build);
    let (progress, mut watched) = watch::channel(0.0);
    let cancel = CancellationToken::new();
    let start = agent.agent().run(
        TERM,
        HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }),
        progress,
        cancel.clone(),
    );
    tokio::pin!(start);
    tokio::select! {
        _ = &mut start => panic!("the start cannot finish while build is held"),
        seen = watched.wait_for(|done| *done > 0.0) => {
            seen.expect("the start reports progress");
        }
    }
    tokio::select! {
        _ = &mut start => panic!("the start cannot finish while build is held"),
        () = hold.arrivals(1) => {}
    }
    cancel.cancel();
    hold.release();
    assert_eq!(failure(start.await), AgentFailure::Cancelled);
    assert_eq!(agent.domain(&spec.uuid).await, None);
    assert_eq!(
        names(&agent.ops_on(&spec.uuid)),
        ["create", "build", "destroy"]
    );
}

/// A start that fails at its last step releases what storage and network set up for it:
/// every disk deactivated and detached, every port torn down, after the hypervisor unplugged
/// them.
#[tokio::test]
async fn a_failure_late_in_a_start_releases_its_disks_and_ports() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("released", 2, 2);
    fail_next(&agent, BackendOp::SetNeedsPoweroff);
    let failed = agent
        .run(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
        .await;
    assert!(matches!(failure(failed), AgentFailure::Internal { .. }));
    assert_eq!(agent.domain(&spec.uuid).await, None);
    let simulator = agent.simulator();
    assert_eq!(simulator.attached_vdis(), Vec::<String>::new());
    assert_eq!(simulator.vif_ports(), Vec::<String>::new());
    let disk = spec.vbds[0].disk.as_ref().expect("a disk");
    let on_disk = agent.ops_on(&disk.vdi_uuid);
    assert_eq!(
        names(&on_disk),
        ["attach", "activate", "deactivate", "detach"]
    );
    let unplugged = agent
        .ops_on(&spec.uuid)
        .into_iter()
        .find(|record| record.op == BackendOp::UnplugDisk)
        .expect("the disk is unplugged");
    assert!(
        unplugged.ended < on_disk[2].began,
        "unplugged before deactivated"
    );
    assert_eq!(
        names(&agent.ops_on(&spec.vifs[1].uuid)),
        ["ensure_vif", "tear_down_vif"]
    );
}

/// A NIC that fails to plug makes the start fail, and the disks plugged and the domain
/// created before it are undone in reverse order.
#[tokio::test]
async fn a_failure_at_plug_nic_undoes_the_earlier_micro_ops() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("unlucky", 2, 1);
    fail_next(&agent, BackendOp::PlugNic);
    let failed = agent
        .run(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
        .await;
    assert_eq!(
        failure(failed),
        AgentFailure::Internal {
            message: "plug_nic failed: injected failure".to_owned()
        }
    );
    assert_eq!(agent.domain(&spec.uuid).await, None);
    let ops = agent.ops_on(&spec.uuid);
    assert_eq!(
        names(&ops),
        [
            "create",
            "build",
            "plug_disk",
            "plug_disk",
            "plug_nic",
            "unplug_disk",
            "unplug_disk",
            "destroy"
        ]
    );
    assert!(!ops[4].is_ok);
    assert!(ops.iter().enumerate().all(|(i, op)| i == 4 || op.is_ok));
    // A later start of the same VM succeeds: nothing was left behind.
    let started = agent.start_vm(&spec).await;
    assert_eq!(started.state, DomainState::Running);
}

/// A hard shutdown that fails half-way puts back what it had unplugged: the domain runs on
/// with all its devices, whether the hypervisor failed or storage or the network failed to
/// release what the start set up (the devices are plugged again from what the drivers keep).
#[tokio::test]
async fn a_failed_hard_shutdown_leaves_the_domain_running() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("stubborn", 2, 1);
    let before = agent.start_vm(&spec).await;
    for failing in [
        BackendOp::StopDeviceModel,
        BackendOp::Deactivate,
        BackendOp::Detach,
        BackendOp::TearDownVif,
    ] {
        fail_next(&agent, failing);
        let failed = agent
            .run(HostAction::Vm(VmAction::Shutdown {
                vm: spec.uuid.clone(),
                clean: false,
            }))
            .await;
        assert!(
            matches!(failure(failed), AgentFailure::Internal { .. }),
            "{failing}"
        );
        let after = agent.domain(&spec.uuid).await.expect("the domain remains");
        assert_eq!(after.state, DomainState::Running, "{failing}");
        assert_eq!(after.domid, before.domid, "{failing}");
        let mut vbds = after.vbds.clone();
        vbds.sort();
        let mut expected = before.vbds.clone();
        expected.sort();
        assert_eq!(vbds, expected, "{failing}");
        assert_eq!(after.vifs, before.vifs, "{failing}");
        assert_eq!(after.consoles, before.consoles, "{failing}");
        assert_eq!(agent.simulator().vif_ports().len(), 1, "{failing}");
    }
}

/// Past the point of no return (the guest has shut down) a failing release is not undone: a
/// clean shutdown whose disk fails to deactivate makes no new port for the NIC it tore down.
#[tokio::test]
async fn a_failure_after_the_guest_shut_down_undoes_nothing() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("gone", 1, 1);
    agent.start_vm(&spec).await;
    fail_next(&agent, BackendOp::Deactivate);
    let failed = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: spec.uuid.clone(),
            clean: true,
        }))
        .await;
    assert!(matches!(failure(failed), AgentFailure::Internal { .. }));
    assert_eq!(agent.simulator().vif_ports(), Vec::<String>::new());
    assert_eq!(
        names(&agent.ops_on(&spec.vifs[0].uuid)),
        ["ensure_vif", "tear_down_vif"]
    );
}

/// A clean shutdown cancelled while it waits for a guest that does not answer stops waiting
/// at once: TASK_CANCELLED, and the domain runs on.
#[tokio::test]
async fn cancelling_a_clean_shutdown_stops_the_wait() {
    let config = AgentConfig {
        clean_shutdown_timeout: Duration::from_secs(3600),
        ..AgentConfig::default()
    };
    let agent = TestAgent::start(config).await;
    let spec = vm_spec("waited", 1, 0);
    agent.start_vm(&spec).await;
    agent
        .simulator()
        .guest(&spec.uuid, GuestAction::Hang)
        .await
        .expect("the guest hangs");
    let (progress, mut watched) = watch::channel(0.0);
    let cancel = CancellationToken::new();
    let shutdown = agent.agent().run(
        TERM,
        HostAction::Vm(VmAction::Shutdown {
            vm: spec.uuid.clone(),
            clean: true,
        }),
        progress,
        cancel.clone(),
    );
    tokio::pin!(shutdown);
    let asked = async {
        let simulator = agent.simulator();
        let has_asked = || {
            simulator
                .history()
                .iter()
                .any(|record| record.op == BackendOp::RequestShutdown)
        };
        wait_until(has_asked).await;
    };
    tokio::select! {
        _ = &mut shutdown => panic!("a hung guest cannot shut down"),
        () = asked => {}
    }
    assert!(*watched.borrow_and_update() > 0.0);
    cancel.cancel();
    assert_eq!(failure(shutdown.await), AgentFailure::Cancelled);
    let domain = agent.domain(&spec.uuid).await.expect("the domain remains");
    assert_eq!(domain.state, DomainState::Running);
}
