//! The per-VM queues and the worker pool, seen from the simulator's history: one VM's
//! operations never overlap, the pool bounds how many run at once, hundreds of VMs start in
//! parallel, and a newer term reaches actions that were still queued.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agent::backend::BackendOp;
use agent::backend::simulator::SimulatorConfig;
use agent::testing::{nic, vm_spec};
use agent::{AgentConfig, BackendConfig};
use host_api::{ActionResult, AgentFailure, DomainState, HostAction, VmAction};
use support::{TERM, TestAgent, failure, most_at_once};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Every simulated operation takes `latency`, so that unserialised work would overlap.
fn slow_config(workers: usize, latency: Duration) -> AgentConfig {
    let every_op = [
        BackendOp::Create,
        BackendOp::Build,
        BackendOp::PlugDisk,
        BackendOp::PlugNic,
        BackendOp::StartDeviceModel,
        BackendOp::Unpause,
        BackendOp::SetNeedsPoweroff,
        BackendOp::Pause,
        BackendOp::UnplugNic,
        BackendOp::UnplugDisk,
        BackendOp::StopDeviceModel,
        BackendOp::Destroy,
    ];
    AgentConfig {
        workers,
        backend: BackendConfig::Simulator(SimulatorConfig {
            latency: every_op.into_iter().map(|op| (op, latency)).collect(),
            failures: Vec::new(),
        }),
        ..AgentConfig::default()
    }
}

/// Many actions on one VM sent at once run one after the other: none of their backend
/// operations overlap, while another VM's do run beside them. One thread runs the test, so
/// the actions reach the VM's queue in the order they were sent (on several, a shutdown could
/// overtake the start and leave the rest nothing to do); they still interleave at every await.
#[tokio::test(flavor = "current_thread")]
async fn operations_on_one_vm_never_overlap() {
    let agent = Arc::new(TestAgent::start(slow_config(8, Duration::from_millis(2))).await);
    let (spec, other) = (vm_spec("busy", 2, 1), vm_spec("other", 2, 1));
    let vm = spec.uuid.clone();
    let mut actions = vec![HostAction::Vm(VmAction::Start {
        vm: spec.clone(),
        paused: false,
    })];
    for _ in 0..3 {
        actions.push(HostAction::Vm(VmAction::Pause { vm: vm.clone() }));
        actions.push(HostAction::Vm(VmAction::Unpause { vm: vm.clone() }));
        actions.push(HostAction::Vm(VmAction::PlugVif {
            vm: vm.clone(),
            vif: nic(1),
        }));
        actions.push(HostAction::Vm(VmAction::Reboot {
            vm: spec.clone(),
            clean: false,
        }));
    }
    actions.push(HostAction::Vm(VmAction::Shutdown {
        vm: vm.clone(),
        clean: false,
    }));
    let mut running = JoinSet::new();
    for action in actions {
        let agent = Arc::clone(&agent);
        running.spawn(async move { agent.run(action).await });
    }
    let other_agent = Arc::clone(&agent);
    let other_spec = other.clone();
    running.spawn(async move {
        other_agent
            .run(HostAction::Vm(VmAction::Start {
                vm: other_spec,
                paused: false,
            }))
            .await
    });
    while let Some(outcome) = running.join_next().await {
        let result = outcome.expect("the action's task");
        if let Err(err) = result {
            assert!(!matches!(err, AgentFailure::Internal { .. }), "{err:?}");
        }
    }
    let ops = agent.ops_on(&vm);
    assert!(ops.len() > 20, "the actions ran: {}", ops.len());
    assert_eq!(most_at_once(&ops), 1, "operations on one vm overlapped");
    assert!(!agent.ops_on(&other.uuid).is_empty());
}

/// With 3 workers, 10 starts at once run 3 at a time: three builds are held together, and
/// never more than three operations are in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pool_bounds_actions_in_progress() {
    let config = AgentConfig {
        workers: 3,
        ..AgentConfig::default()
    };
    let agent = Arc::new(TestAgent::start(config).await);
    let hold = agent.simulator().hold(BackendOp::Build);
    let mut starts = JoinSet::new();
    for i in 0..10 {
        let agent = Arc::clone(&agent);
        let spec = vm_spec(&format!("vm-{i}"), 1, 1);
        starts.spawn(async move { agent.start_vm(&spec).await });
    }
    hold.arrivals(3).await;
    hold.release();
    let mut domids = BTreeSet::new();
    while let Some(started) = starts.join_next().await {
        let domain = started.expect("the start's task");
        assert_eq!(domain.state, DomainState::Running);
        domids.insert(domain.domid);
    }
    assert_eq!(domids.len(), 10);
    assert_eq!(most_at_once(&agent.simulator().history()), 3);
}

/// 200 VMs started at once through `LocalLink` all end running, with distinct domids, and the
/// inventory lists them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_vms_start_in_parallel() {
    let agent = Arc::new(TestAgent::start(AgentConfig::default()).await);
    let mut starts = JoinSet::new();
    for i in 0..200 {
        let agent = Arc::clone(&agent);
        let spec = vm_spec(&format!("many-{i:03}"), 1, 1);
        starts.spawn(async move { (spec.uuid.clone(), agent.start_vm(&spec).await) });
    }
    let mut domids = BTreeSet::new();
    while let Some(started) = starts.join_next().await {
        let (vm, domain) = started.expect("the start's task");
        assert_eq!(domain.vm, vm);
        assert_eq!(domain.state, DomainState::Running);
        domids.insert(domain.domid);
    }
    assert_eq!(domids.len(), 200);
    let inventory = agent.inventory().await;
    assert_eq!(inventory.len(), 200);
    assert!(most_at_once(&agent.simulator().history()) <= AgentConfig::default().workers);
}

/// An action queued behind another on its VM is refused once a newer term has been seen
/// before its turn came.
#[tokio::test]
async fn a_queued_action_is_refused_after_a_newer_term() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("queued", 1, 0);
    let hold = agent.simulator().hold(BackendOp::Build);
    let start = agent.run(HostAction::Vm(VmAction::Start {
        vm: spec.clone(),
        paused: false,
    }));
    let (progress, _) = watch::channel(0.0);
    let pause = agent.agent().run(
        TERM,
        HostAction::Vm(VmAction::Pause {
            vm: spec.uuid.clone(),
        }),
        progress,
        CancellationToken::new(),
    );
    tokio::pin!(start, pause);
    // Poll each once: the start reaches the held build, the pause is queued behind it.
    tokio::select! {
        biased;
        _ = &mut start => panic!("the start cannot finish while build is held"),
        _ = &mut pause => panic!("the pause cannot run before the start"),
        () = hold.arrivals(1) => {}
    }
    let (progress, _) = watch::channel(0.0);
    let newer = agent
        .agent()
        .run(
            TERM + 1,
            HostAction::Inventory,
            progress,
            CancellationToken::new(),
        )
        .await;
    assert!(matches!(newer, Ok(ActionResult::Inventory(_))));
    hold.release();
    assert!(start.await.is_ok(), "the start was already running");
    assert_eq!(
        failure(pause.await),
        AgentFailure::StaleTerm {
            newest_seen: 4,
            got: 3
        }
    );
}
