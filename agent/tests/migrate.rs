//! Migration between two agents on the simulator: `MigrateIn` expects the transfer, and
//! `MigrateOut` streams the paused domain's image to it and destroys the domain once the
//! destination has built its own; a failure on either side leaves the domain where it was.

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
        vm: spec.clone(),
        token,
        paused: false,
    }));
    tokio::join!(out, incoming)
}

fn built(answer: Result<ActionResult, AgentFailure>) -> DomainInfo {
    match answer {
        Ok(ActionResult::Domain(Some(info))) => info,
        other => panic!("a domain, got {other:?}"),
    }
}

/// The destination builds the domain from the streamed image with the memory, VCPUs and
/// devices it had, and the source destroys its domain only once the destination has.
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
    let moved = built(incoming);
    assert_eq!(source.domain(&vm).await, None);
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
            "create",
            "restore_image",
            "plug_disk",
            "plug_nic",
            "start_device_model",
            "unpause",
            "set_needs_poweroff"
        ]
    );
}

/// A save that fails, or a destination that fails to build the domain from the image,
/// leaves the domain running on the source and none on the destination.
#[tokio::test]
async fn a_failure_on_either_side_leaves_the_domain_where_it_was() {
    let (source, destination) = two_agents().await;
    let spec = vm_spec("stay", 1, 1);
    let vm = spec.uuid.clone();
    let before = source.start_vm(&spec).await;
    for (n, (failing, operation)) in [
        (&source, BackendOp::SaveImage),
        (&destination, BackendOp::RestoreImage),
        (&destination, BackendOp::PlugNic),
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
    assert_eq!(out, Ok(ActionResult::Domain(None)));
    assert_eq!(built(incoming).vifs, [spec.vifs[0].uuid.clone()]);
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
        vm: other.clone(),
        token: token(1),
        paused: false,
    }));
    let (out, refused) = tokio::join!(out, incoming);
    assert!(matches!(failure(refused), AgentFailure::Internal { .. }));
    assert!(out.is_err());
    assert_eq!(destination.domain(&other.uuid).await, None);
    let source_domain = source.domain(&spec.uuid).await.expect("still there");
    assert_eq!(source_domain.state, DomainState::Running);
}
