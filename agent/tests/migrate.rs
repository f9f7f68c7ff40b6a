//! Migration between two agents on the simulator: `MigrateIn` expects the transfer and keeps
//! the image, `MigrateOut` streams the paused domain's image to it and destroys the domain
//! once the destination has kept every byte, then `MigrateFinish` builds the domain on the
//! destination; a failure on either side before that leaves the domain where it was.

mod support;

use std::num::NonZeroU64;
use std::sync::Arc;

use agent::AgentConfig;
use agent::backend::BackendOp;
use agent::backend::simulator::Failure;
use agent::testing::vm_spec;
use agent::transfer::LocalTransfer;
use host_api::{
    ActionResult, AgentFailure, DomainInfo, DomainState, HostAction, TransferToken, VmAction,
    VmSpec,
};
use support::{TestAgent, failure, names};

fn fail_next(agent: &TestAgent, operation: BackendOp) {
    agent.simulator().fail(Failure {
        operation,
        nth: NonZeroU64::MIN,
    });
}

/// Two agents that migrate to each other.
async fn two_agents() -> (TestAgent, TestAgent) {
    let transfer = LocalTransfer::new();
    let source = TestAgent::start_sharing(AgentConfig::default(), Arc::clone(&transfer)).await;
    let destination = TestAgent::start_sharing(AgentConfig::default(), transfer).await;
    (source, destination)
}

fn token(n: u8) -> TransferToken {
    TransferToken(format!("{n:02x}").repeat(16))
}

/// Runs both halves of a migration of `spec` at once, as the master does: what the source
/// and the destination answered.
async fn migrate(
    source: &TestAgent,
    destination: &TestAgent,
    spec: &VmSpec,
    token: TransferToken,
) -> (
    Result<ActionResult, AgentFailure>,
    Result<ActionResult, AgentFailure>,
) {
    let out = source.run(HostAction::Vm(VmAction::MigrateOut {
        vm: spec.uuid.clone(),
        to_host: "OpaqueRef:destination".to_owned(),
        token: token.clone(),
    }));
    let incoming = destination.run(HostAction::Vm(VmAction::MigrateIn {
        vm: spec.uuid.clone(),
        token,
    }));
    tokio::join!(out, incoming)
}

/// The last step, once the source let its domain go: the destination builds the domain.
async fn finish(destination: &TestAgent, spec: &VmSpec) -> Result<ActionResult, AgentFailure> {
    destination
        .run(HostAction::Vm(VmAction::MigrateFinish {
            vm: spec.clone(),
            paused: false,
        }))
        .await
}

fn built(answer: Result<ActionResult, AgentFailure>) -> DomainInfo {
    match answer {
        Ok(ActionResult::Domain(Some(info))) => info,
        other => panic!("a domain, got {other:?}"),
    }
}

/// The destination keeps the streamed image without building a domain, the source destroys
/// its domain, and only then does the destination build the domain from the image, with the
/// memory, VCPUs and devices it had: the VM never has a domain on both hosts.
#[tokio::test]
async fn a_domain_moves_from_one_agent_to_another() {
    let (source, destination) = two_agents().await;
    let spec = vm_spec("mover", 1, 1);
    let vm = spec.uuid.clone();
    source.start_vm(&spec).await;
    source
        .domain_after(HostAction::Vm(VmAction::SetVcpus {
            vm: vm.clone(),
            count: 3,
        }))
        .await;
    let (out, incoming) = migrate(&source, &destination, &spec, token(1)).await;
    assert_eq!(out, Ok(ActionResult::Domain(None)));
    assert_eq!(incoming, Ok(ActionResult::Domain(None)));
    assert_eq!(source.domain(&vm).await, None);
    assert_eq!(destination.domain(&vm).await, None);
    let moved = built(finish(&destination, &spec).await);
    assert_eq!(moved.state, DomainState::Running);
    assert_eq!(moved.vcpus, 3);
    assert_eq!(moved.vbds, [spec.vbds[0].uuid.clone()]);
    assert_eq!(moved.vifs, [spec.vifs[0].uuid.clone()]);
    let out = names(&source.ops_on(&vm));
    let saved = out.iter().position(|op| *op == "save_image");
    let destroyed = out.iter().position(|op| *op == "destroy");
    assert!(saved.is_some() && saved < destroyed, "{out:?}");
    assert_eq!(
        names(&destination.ops_on(&vm)),
        [
            "receive_image",
            "create",
            "plug_disk",
            "plug_nic",
            "start_device_model",
            "restore_received",
            "unpause",
            "set_needs_poweroff"
        ]
    );
}

/// A save that fails, or a destination that fails to receive the image, leaves the domain
/// running on the source and none on the destination.
#[tokio::test]
async fn a_failure_on_either_side_leaves_the_domain_where_it_was() {
    let (source, destination) = two_agents().await;
    let spec = vm_spec("stay", 1, 1);
    let vm = spec.uuid.clone();
    let before = source.start_vm(&spec).await;
    for (n, (failing, operation)) in [
        (&source, BackendOp::SaveImage),
        (&destination, BackendOp::ReceiveImage),
    ]
    .into_iter()
    .enumerate()
    {
        fail_next(failing, operation);
        let n = u8::try_from(n).expect("a few cases");
        let (out, incoming) = migrate(&source, &destination, &spec, token(n)).await;
        assert!(
            matches!(failure(out), AgentFailure::Internal { .. }),
            "{operation}"
        );
        assert!(incoming.is_err(), "{operation}: {incoming:?}");
        let after = source.domain(&vm).await.expect("the domain remains");
        assert_eq!(
            (after.state, after.domid),
            (DomainState::Running, before.domid),
            "{operation}"
        );
        assert_eq!(destination.domain(&vm).await, None, "{operation}");
    }
    let (out, incoming) = migrate(&source, &destination, &spec, token(9)).await;
    assert_eq!(
        (out, incoming),
        (
            Ok(ActionResult::Domain(None)),
            Ok(ActionResult::Domain(None))
        )
    );
    assert_eq!(
        built(finish(&destination, &spec).await).vifs,
        [spec.vifs[0].uuid.clone()]
    );
}

/// A destination that fails to build the domain once it loaded the kept image undoes what it
/// built, and cannot build it again without a new image; one that fails before (plugging a
/// device: the devices go in first) still has the image.
#[tokio::test]
async fn a_failed_finish_leaves_no_domain_and_uses_the_image_up() {
    let (source, destination) = two_agents().await;
    let spec = vm_spec("lost", 1, 1);
    let vm = spec.uuid.clone();
    source.start_vm(&spec).await;
    let (out, incoming) = migrate(&source, &destination, &spec, token(1)).await;
    assert_eq!(
        (out, incoming),
        (
            Ok(ActionResult::Domain(None)),
            Ok(ActionResult::Domain(None))
        )
    );
    fail_next(&destination, BackendOp::PlugNic);
    assert!(matches!(
        failure(finish(&destination, &spec).await),
        AgentFailure::Internal { .. }
    ));
    assert_eq!(destination.domain(&vm).await, None);
    fail_next(&destination, BackendOp::Unpause);
    assert!(matches!(
        failure(finish(&destination, &spec).await),
        AgentFailure::Internal { .. }
    ));
    assert_eq!(destination.domain(&vm).await, None);
    assert!(matches!(
        failure(finish(&destination, &spec).await),
        AgentFailure::Internal { .. }
    ));
    assert_eq!(destination.domain(&vm).await, None);
}

/// An image is only for the VM it was saved from: the destination refuses it and the source
/// runs on.
#[tokio::test]
async fn an_image_fills_only_its_own_vm() {
    let (source, destination) = two_agents().await;
    let spec = vm_spec("first", 0, 0);
    source.start_vm(&spec).await;
    let other = vm_spec("second", 0, 0);
    let out = source.run(HostAction::Vm(VmAction::MigrateOut {
        vm: spec.uuid.clone(),
        to_host: "OpaqueRef:destination".to_owned(),
        token: token(1),
    }));
    let incoming = destination.run(HostAction::Vm(VmAction::MigrateIn {
        vm: other.uuid.clone(),
        token: token(1),
    }));
    let (out, refused) = tokio::join!(out, incoming);
    assert!(matches!(failure(refused), AgentFailure::Internal { .. }));
    assert!(out.is_err());
    assert!(matches!(
        failure(finish(&destination, &other).await),
        AgentFailure::Internal { .. }
    ));
    assert_eq!(destination.domain(&other.uuid).await, None);
    let source_domain = source.domain(&spec.uuid).await.expect("still there");
    assert_eq!(source_domain.state, DomainState::Running);
}

/// A migration to the VM's own host (both halves on one agent at once) receives the image
/// beside the VM's queue, where the outgoing half runs, then rebuilds the domain there.
#[tokio::test]
async fn a_domain_migrates_to_its_own_host() {
    let agent = TestAgent::start_sharing(AgentConfig::default(), LocalTransfer::new()).await;
    let spec = vm_spec("home", 1, 1);
    let before = agent.start_vm(&spec).await;
    let (out, incoming) = migrate(&agent, &agent, &spec, token(1)).await;
    assert_eq!(out, Ok(ActionResult::Domain(None)));
    assert!(incoming.is_ok(), "{incoming:?}");
    assert_eq!(agent.domain(&spec.uuid).await, None);
    let after = built(finish(&agent, &spec).await);
    assert_eq!(after.state, DomainState::Running);
    assert_ne!(after.domid, before.domid);
}

/// A source whose receiver never comes (the destination failed before it expected the
/// transfer) stops waiting for it when cancelled, and its domain runs on, unpaused.
#[tokio::test]
async fn a_source_waiting_for_its_receiver_stops_when_cancelled() {
    let config = AgentConfig {
        transfer_wait: std::time::Duration::from_secs(600),
        ..AgentConfig::default()
    };
    let source = TestAgent::start_sharing(config, LocalTransfer::new()).await;
    let spec = vm_spec("waiting", 0, 0);
    source.start_vm(&spec).await;
    let (progress, mut watched) = tokio::sync::watch::channel(0.0);
    let cancel = tokio_util::sync::CancellationToken::new();
    let out = source.agent().run(
        support::TERM,
        HostAction::Vm(VmAction::MigrateOut {
            vm: spec.uuid.clone(),
            to_host: "OpaqueRef:destination".to_owned(),
            token: token(1),
        }),
        progress,
        cancel.clone(),
    );
    let cancel_once_paused = async {
        watched
            .wait_for(|_| {
                source
                    .simulator()
                    .history()
                    .iter()
                    .any(|r| r.op == BackendOp::Pause)
            })
            .await
            .expect("progress is reported");
        cancel.cancel();
    };
    let (out, ()) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(out, cancel_once_paused)
    })
    .await
    .expect("the source stops waiting once cancelled");
    assert_eq!(out, Err(AgentFailure::Cancelled));
    let domain = source.domain(&spec.uuid).await.expect("the domain remains");
    assert_eq!(domain.state, DomainState::Running);
}
