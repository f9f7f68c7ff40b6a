//! The simulator on its own: failure injection by count, latency, holds, and the state
//! file that lets its domains outlive the daemon.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use agent::backend::simulator::{Failure, STATE_FILE, Simulator, SimulatorConfig};
use agent::backend::{BackendError, BackendOp, Hypervisor, Storage};
use agent::testing::vm_spec;

fn open(dir: &tempfile::TempDir, config: SimulatorConfig) -> std::sync::Arc<Simulator> {
    Simulator::open(dir.path(), config).expect("the simulator opens")
}

/// `{"operation": "build", "nth": 3}` fails the third build and only that one.
#[tokio::test]
async fn the_nth_operation_of_a_kind_fails_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SimulatorConfig {
        failures: vec![Failure {
            operation: BackendOp::Build,
            nth: NonZeroU64::new(3).expect("non-zero"),
        }],
        ..SimulatorConfig::default()
    };
    let simulator = open(&dir, config);
    let mut outcomes = Vec::new();
    for i in 0..5 {
        let spec = vm_spec(&format!("vm-{i}"), 0, 0);
        simulator.create(&spec).await.expect("create");
        outcomes.push(simulator.build(&spec.uuid).await.is_ok());
    }
    assert_eq!(outcomes, [true, true, false, true, true]);
    let failed = simulator.history().into_iter().find(|record| !record.is_ok);
    assert_eq!(failed.map(|record| record.op), Some(BackendOp::Build));
}

/// An operation with a latency takes at least that long; others take none.
#[tokio::test]
async fn latency_applies_to_its_operation_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let latency = Duration::from_millis(50);
    let config = SimulatorConfig {
        latency: BTreeMap::from([(BackendOp::Build, latency)]),
        ..SimulatorConfig::default()
    };
    let simulator = open(&dir, config);
    let spec = vm_spec("slow", 0, 0);
    simulator.create(&spec).await.expect("create");
    let began = Instant::now();
    simulator.build(&spec.uuid).await.expect("build");
    assert!(began.elapsed() >= latency);
}

/// The state file is replaced whole after each change (no temp file stays), a new simulator
/// over it finds the same domains, and a garbled one is refused at open.
#[tokio::test]
async fn the_state_file_outlives_the_simulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = vm_spec("kept", 1, 1);
    let kept = {
        let simulator = open(&dir, SimulatorConfig::default());
        simulator.create(&spec).await.expect("create");
        simulator.build(&spec.uuid).await.expect("build");
        let disk = spec.vbds[0].disk.as_ref().expect("a disk");
        let attached = simulator.attach(disk, false).await.expect("attach");
        simulator
            .plug_disk(&spec.uuid, &spec.vbds[0], Some(&attached))
            .await
            .expect("plug");
        simulator.discover().await.expect("discover")
    };
    let state = dir.path().join(STATE_FILE);
    let leftovers: Vec<_> = std::fs::read_dir(state.parent().expect("a folder"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("domains.json")]);
    let reopened = open(&dir, SimulatorConfig::default());
    assert_eq!(reopened.discover().await.expect("discover"), kept);

    std::fs::write(&state, b"{not json").expect("garble");
    let garbled = Simulator::open(dir.path(), SimulatorConfig::default());
    assert!(matches!(garbled, Err(BackendError::Corrupt { .. })));
}

/// A held operation waits until released; other kinds pass meanwhile.
#[tokio::test]
async fn a_hold_stops_its_kind_until_released() {
    let dir = tempfile::tempdir().expect("temp dir");
    let simulator = open(&dir, SimulatorConfig::default());
    let spec = vm_spec("held", 0, 0);
    simulator.create(&spec).await.expect("create");
    let hold = simulator.hold(BackendOp::Build);
    let build = simulator.build(&spec.uuid);
    tokio::pin!(build);
    tokio::select! {
        _ = &mut build => panic!("a held build cannot finish"),
        () = hold.arrivals(1) => {}
    }
    simulator
        .set_needs_poweroff(&spec.uuid, false)
        .await
        .expect("another kind passes");
    hold.release();
    build.await.expect("the build ends once released");
}
