//! The actions that are not about one VM, on the simulator: an SR scan lists what the SR's
//! storage driver holds; VDI actions make and change its VDIs; an import takes an image from
//! the transfer and an export gives it back; a network attach sets up its bridge and a detach
//! removes it, unless a
//! VM's NIC still uses it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use agent::AgentConfig;
use agent::backend::simulator::SimulatorConfig;
use agent::backend::{BackendConfig, BackendOp, Storage};
use agent::testing::{disk, vm_spec};
use agent::transfer::{BulkTransfer, LocalTransfer};
use host_api::{
    ActionResult, AgentFailure, HostAction, ImageFormat, NetworkAction, SrSpec, SrUsage,
    StorageAction, TransferToken, VdiInfo, VmAction,
};
use support::{TestAgent, failure, most_at_once};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

fn sr() -> SrSpec {
    SrSpec {
        uuid: "sr-1".to_owned(),
        sr_type: "ext".to_owned(),
        location: "/srs/sr-1".to_owned(),
    }
}

/// A scan answers the VDIs the SR's driver holds, and only that SR's, with what they take
/// (the simulator's SRs here are no directories: they are as large as what they hold).
#[tokio::test]
async fn an_sr_scan_lists_the_vdis_its_driver_holds() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let scan = |sr: SrSpec| HostAction::Storage(StorageAction::Scan { sr });
    let scanned = |vdis: Vec<VdiInfo>| {
        let used = vdis.iter().map(|vdi| vdi.physical_utilisation_bytes).sum();
        let usage = SrUsage {
            physical_size_bytes: used,
            physical_utilisation_bytes: used,
        };
        Ok(ActionResult::Scanned { vdis, usage })
    };
    assert_eq!(agent.run(scan(sr())).await, scanned(vec![]));
    let made = agent
        .simulator()
        .create_vdi(&sr(), 1 << 30)
        .await
        .expect("a VDI is made");
    assert_eq!(agent.run(scan(sr())).await, scanned(vec![made]));
    let other = SrSpec {
        uuid: "sr-2".to_owned(),
        ..sr()
    };
    assert_eq!(agent.run(scan(other)).await, scanned(vec![]));
}

/// An import reads the image the transfer brings (a raw image larger than the VDI is
/// refused as too large); an export streams the VDI back to the receiver of its token.
#[tokio::test]
async fn an_import_takes_the_transfer_and_an_export_gives_it_back() {
    let transfer = LocalTransfer::new();
    let agent = TestAgent::start_sharing(AgentConfig::default(), transfer.clone()).await;
    let mut vdi = disk("vdi-1");
    vdi.virtual_size_bytes = 1 << 20;
    let import = |token: &str| {
        HostAction::Storage(StorageAction::Import {
            sr: sr(),
            disk: vdi.clone(),
            format: ImageFormat::Raw,
            token: TransferToken(token.to_owned()),
        })
    };
    let send = |token: &'static str, bytes: usize| {
        let transfer = transfer.clone();
        async move {
            let token = TransferToken(token.to_owned());
            transfer
                .wait_for_receiver("host", &token, Duration::from_secs(10))
                .await?;
            let body = Box::pin(std::io::Cursor::new(vec![5u8; bytes]));
            transfer.send("host", &token, body).await
        }
    };
    let (imported, sent) = tokio::join!(agent.run(import("t1")), send("t1", 4096));
    assert_eq!(sent, Ok(4096));
    let Ok(ActionResult::Vdi(written)) = imported else {
        panic!("the imported VDI, got {imported:?}");
    };
    assert_eq!(written.physical_utilisation_bytes, 4096);

    let (refused, _) = tokio::join!(agent.run(import("t2")), send("t2", (1 << 20) + 1));
    assert!(matches!(
        failure(refused),
        AgentFailure::ImageTooLarge { image_bytes, .. } if image_bytes > 1 << 20
    ));

    let token = TransferToken("t3".to_owned());
    let mut incoming = transfer
        .receive(&token, Duration::from_secs(10))
        .expect("expected");
    let export = HostAction::Storage(StorageAction::Export {
        sr: sr(),
        disk: vdi.clone(),
        format: ImageFormat::Raw,
        to_host: "host".to_owned(),
        token,
    });
    let read = async {
        let mut bytes = Vec::new();
        incoming.read_to_end(&mut bytes).await.expect("reads");
        incoming.finish().expect("finished");
        bytes
    };
    let (exported, bytes) = tokio::join!(agent.run(export), read);
    assert_eq!(exported, Ok(ActionResult::Done));
    assert_eq!(bytes.len(), 4096, "the simulator gives back as many bytes");
}

/// VDI actions go to the SR's driver and answer the VDI as it is now: made, grown (a shrink
/// refused), snapshotted read-only, cloned writable, destroyed (then missing).
#[tokio::test]
async fn vdi_actions_answer_the_vdi_their_driver_made() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let vdi = |action| async {
        match agent.run(HostAction::Storage(action)).await {
            Ok(ActionResult::Vdi(vdi)) => vdi,
            other => panic!("a VDI, got {other:?}"),
        }
    };
    let made = vdi(StorageAction::CreateVdi {
        sr: sr(),
        virtual_size_bytes: 1 << 30,
    })
    .await;
    assert_eq!(made.virtual_size_bytes, 1 << 30);
    let location = made.location.clone();
    let grown = vdi(StorageAction::ResizeVdi {
        sr: sr(),
        location: location.clone(),
        virtual_size_bytes: 2 << 30,
    })
    .await;
    assert_eq!(
        (grown.location.as_str(), grown.virtual_size_bytes),
        (location.as_str(), 2 << 30)
    );
    let shrink = StorageAction::ResizeVdi {
        sr: sr(),
        location: location.clone(),
        virtual_size_bytes: 1 << 30,
    };
    assert_eq!(
        failure(agent.run(HostAction::Storage(shrink)).await),
        AgentFailure::VdiCannotShrink {
            sr: sr().uuid,
            location: location.clone(),
            virtual_size_bytes: 2 << 30,
            requested_bytes: 1 << 30,
        }
    );
    let snapshot = vdi(StorageAction::SnapshotVdi {
        sr: sr(),
        location: location.clone(),
    })
    .await;
    let clone = vdi(StorageAction::CloneVdi {
        sr: sr(),
        location: location.clone(),
    })
    .await;
    assert!(snapshot.read_only && !clone.read_only);
    assert_eq!(clone.virtual_size_bytes, 2 << 30);
    let destroy = || {
        HostAction::Storage(StorageAction::DestroyVdi {
            sr: sr(),
            location: location.clone(),
        })
    };
    assert_eq!(agent.run(destroy()).await, Ok(ActionResult::Done));
    assert_eq!(
        failure(agent.run(destroy()).await),
        AgentFailure::VdiMissing {
            sr: sr().uuid,
            location: location.clone(),
        }
    );
}

/// An attach sets up the bridge with its MTU (again: no change), a detach removes it; a
/// bridge a running VM's NIC is on cannot be removed.
#[tokio::test]
async fn a_network_attach_sets_up_its_bridge_and_a_detach_removes_it() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let attach = |bridge: &str| {
        HostAction::Network(NetworkAction::Attach {
            bridge: bridge.to_owned(),
            mtu: 9000,
        })
    };
    let detach = |bridge: &str| {
        HostAction::Network(NetworkAction::Detach {
            bridge: bridge.to_owned(),
        })
    };
    assert_eq!(agent.run(attach("xenbr1")).await, Ok(ActionResult::Done));
    assert_eq!(agent.run(attach("xenbr1")).await, Ok(ActionResult::Done));
    assert_eq!(agent.simulator().bridges().get("xenbr1"), Some(&9000));
    assert_eq!(agent.run(detach("xenbr1")).await, Ok(ActionResult::Done));
    assert_eq!(agent.simulator().bridges().get("xenbr1"), None);

    let spec = vm_spec("web", 0, 1);
    agent
        .domain_after(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
        .await;
    let bridge = spec.vifs[0].bridge.clone();
    assert!(matches!(
        failure(agent.run(detach(&bridge)).await),
        AgentFailure::Internal { .. }
    ));
    assert!(agent.simulator().bridges().contains_key(&bridge));
}

/// Storage actions on one SR run one at a time, however many arrive at once, while those on
/// another SR go on beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_actions_on_one_sr_never_overlap() {
    let slow = [
        BackendOp::CreateVdi,
        BackendOp::Scan,
        BackendOp::SnapshotVdi,
    ]
    .map(|op| (op, Duration::from_millis(3)));
    let config = AgentConfig {
        backend: BackendConfig::Simulator(SimulatorConfig {
            latency: slow.into_iter().collect(),
            failures: Vec::new(),
        }),
        ..AgentConfig::default()
    };
    let agent = Arc::new(TestAgent::start(config).await);
    let other = SrSpec {
        uuid: "sr-2".to_owned(),
        ..sr()
    };
    let made = agent
        .simulator()
        .create_vdi(&sr(), 1 << 20)
        .await
        .expect("a VDI");
    let mut running = JoinSet::new();
    for i in 0..12 {
        let action = match i % 4 {
            0 => StorageAction::CreateVdi {
                sr: sr(),
                virtual_size_bytes: 1 << 20,
            },
            1 => StorageAction::Scan { sr: sr() },
            2 => StorageAction::SnapshotVdi {
                sr: sr(),
                location: made.location.clone(),
            },
            _ => StorageAction::Scan { sr: other.clone() },
        };
        let agent = Arc::clone(&agent);
        running.spawn(async move { agent.run(HostAction::Storage(action)).await });
    }
    while let Some(outcome) = running.join_next().await {
        assert!(outcome.expect("the action's task").is_ok());
    }
    let on_one = agent.ops_on(&sr().uuid);
    assert!(on_one.len() >= 9, "the actions ran: {}", on_one.len());
    assert_eq!(most_at_once(&on_one), 1, "actions on one SR overlapped");
    assert!(!agent.ops_on(&other.uuid).is_empty());
}
