//! Migration between two agents on the simulator: `MigrateOut` saves the domain to an image
//! and destroys it, `MigrateIn` builds it from that image on another host; a failure on either
//! side leaves the domain where it was.

mod support;

use std::num::NonZeroU64;

use agent::AgentConfig;
use agent::backend::BackendOp;
use agent::backend::simulator::Failure;
use agent::testing::vm_spec;
use host_api::{ActionResult, AgentFailure, DomainState, HostAction, VmAction};
use support::{TestAgent, failure, names};

fn fail_next(agent: &TestAgent, operation: BackendOp) {
    agent.simulator().fail(Failure {
        operation,
        nth: NonZeroU64::MIN,
    });
}

/// Saves the domain of `vm` on `agent` for a migration; its image.
async fn migrate_out(agent: &TestAgent, vm: &str) -> Vec<u8> {
    let out = agent
        .run(HostAction::Vm(VmAction::MigrateOut { vm: vm.to_owned() }))
        .await;
    let Ok(ActionResult::Image(image)) = out else {
        panic!("an image, got {out:?}");
    };
    image
}

/// The domain leaves the source once saved, and the destination builds it from the image
/// with the memory, VCPUs and devices it had.
#[tokio::test]
async fn a_domain_moves_from_one_agent_to_another() {
    let source = TestAgent::start(AgentConfig::default()).await;
    let destination = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("mover", 1, 1);
    let vm = spec.uuid.clone();
    source.start_vm(&spec).await;
    source
        .domain_after(HostAction::Vm(VmAction::SetVcpus {
            vm: vm.clone(),
            count: 3,
        }))
        .await;
    let image = migrate_out(&source, &vm).await;
    assert_eq!(source.domain(&vm).await, None);
    let moved = destination
        .domain_after(HostAction::Vm(VmAction::MigrateIn {
            vm: spec.clone(),
            image,
            paused: false,
        }))
        .await;
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

/// A save that fails leaves the domain running on the source; a restore that fails leaves
/// no domain on the destination, and the source can build it back from the same image.
#[tokio::test]
async fn a_failure_on_either_side_leaves_the_domain_where_it_was() {
    let source = TestAgent::start(AgentConfig::default()).await;
    let destination = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("stay", 1, 1);
    let vm = spec.uuid.clone();
    let before = source.start_vm(&spec).await;
    fail_next(&source, BackendOp::SaveImage);
    let failed = source
        .run(HostAction::Vm(VmAction::MigrateOut { vm: vm.clone() }))
        .await;
    assert!(matches!(failure(failed), AgentFailure::Internal { .. }));
    let after = source.domain(&vm).await.expect("the domain remains");
    assert_eq!(
        (after.state, after.domid),
        (DomainState::Running, before.domid)
    );
    let image = migrate_out(&source, &vm).await;
    fail_next(&destination, BackendOp::RestoreImage);
    let incoming = HostAction::Vm(VmAction::MigrateIn {
        vm: spec.clone(),
        image,
        paused: false,
    });
    let refused = destination.run(incoming.clone()).await;
    assert!(matches!(failure(refused), AgentFailure::Internal { .. }));
    assert_eq!(destination.domain(&vm).await, None);
    let back = source.domain_after(incoming).await;
    assert_eq!(back.state, DomainState::Running);
    assert_eq!(back.vifs, [spec.vifs[0].uuid.clone()]);
}

/// An image is only for the VM it was saved from.
#[tokio::test]
async fn an_image_fills_only_its_own_vm() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let spec = vm_spec("first", 0, 0);
    agent.start_vm(&spec).await;
    let image = migrate_out(&agent, &spec.uuid).await;
    let other = vm_spec("second", 0, 0);
    let refused = agent
        .run(HostAction::Vm(VmAction::MigrateIn {
            vm: other.clone(),
            image,
            paused: false,
        }))
        .await;
    assert!(matches!(failure(refused), AgentFailure::Internal { .. }));
    assert_eq!(agent.domain(&other.uuid).await, None);
}
