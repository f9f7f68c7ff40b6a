//! Losing the master under a continuous write load: after kill -9 or SIGSTOP of the master, the
//! other hosts have a master that accepts writes within 3 s, and the history of the run shows no
//! acknowledged write lost, one leader per term and no VM on two hosts.

use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::Protocol;
use oxapi_tests::cluster::{Cluster, ClusterOptions, Load, VmWatch, assert_history, vm};

const WRITERS: usize = 8;
/// Acknowledged writes before the master is lost, and again after.
const WRITES_EACH_SIDE: usize = 100;
/// The longest a pool may be without a master that accepts writes.
const FAILOVER_LIMIT: Duration = Duration::from_secs(3);
/// How long the new master may take to mark a silent host's VMs halted (dead_after + margin).
const HALT_LIMIT: Duration = Duration::from_secs(20);

fn others(master: usize, hosts: usize) -> Vec<usize> {
    (0..hosts).filter(|&i| i != master).collect()
}

/// kill -9 of the master under load: a write sent after the kill is acknowledged through a
/// survivor within 3 s; the killed host restarts as a follower and catches up; nothing
/// acknowledged is missing anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_master_under_load_loses_nothing() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let vms = VmWatch::start(&cluster);
    let load = Load::start(&cluster, WRITERS).await;
    assert!(
        load.history
            .wait_len(WRITES_EACH_SIDE, Duration::from_secs(30))
            .await
    );

    cluster.nodes[master].kill();
    let killed_at = Instant::now();
    let first = load.history.wait_ack_after(killed_at, FAILOVER_LIMIT).await;
    let survivors = others(master, 3);
    assert!(
        first.is_some(),
        "no write acknowledged within {FAILOVER_LIMIT:?} of the kill\n{}",
        cluster.log_tails(&survivors)
    );
    let new_master = cluster.wait_for_master(&survivors).await;
    assert_ne!(new_master, master);
    let before = load.history.len();
    assert!(
        load.history
            .wait_len(before + WRITES_EACH_SIDE, Duration::from_secs(30))
            .await
    );

    cluster.nodes[master].restart().await;
    assert_eq!(cluster.settle(&[0, 1, 2]).await, new_master);
    let history = load.stop().await;
    assert_history(&cluster, &history, &[0, 1, 2], Some(vms)).await;
}

/// SIGSTOP of the master, which runs a VM, under load: a write is acknowledged within 3 s; the
/// new master marks the silent host's VM halted; after SIGCONT the old master is a follower, its
/// domain is gone (fenced), and nothing acknowledged is missing anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigstop_of_the_master_under_load_loses_nothing() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let guest = vm::new_vm(&admin, "on the frozen master").await;
    let master_ref = cluster.nodes[master].host_ref();
    vm::start_on(&admin, &guest, &master_ref)
        .await
        .expect("the VM starts on the master");
    let uuid = vm::field(&admin, &guest, "uuid").await;
    let vms = VmWatch::start(&cluster);
    let load = Load::start(&cluster, WRITERS).await;
    assert!(
        load.history
            .wait_len(WRITES_EACH_SIDE, Duration::from_secs(30))
            .await
    );

    cluster.nodes[master].freeze();
    let frozen_at = Instant::now();
    let survivors = others(master, 3);
    let first = load.history.wait_ack_after(frozen_at, FAILOVER_LIMIT).await;
    assert!(
        first.is_some(),
        "no write acknowledged within {FAILOVER_LIMIT:?} of the SIGSTOP\n{}",
        cluster.log_tails(&survivors)
    );
    let new_master = cluster.wait_for_master(&survivors).await;
    let admin = cluster.nodes[new_master].login(Protocol::JsonRpc).await;
    let deadline = Instant::now() + HALT_LIMIT;
    while vm::field(&admin, &guest, "power_state").await != "Halted" {
        assert!(
            Instant::now() < deadline,
            "the frozen host's VM is still not halted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    cluster.nodes[master].thaw();
    assert_eq!(cluster.wait_for_master(&[0, 1, 2]).await, new_master);
    let state = cluster.nodes[master].simulator_state();
    let deadline = Instant::now() + HALT_LIMIT;
    while vm::has_domain(&state, &uuid) {
        assert!(
            Instant::now() < deadline,
            "the woken host still runs the VM's domain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Halted");
    admin
        .ok(
            "VM.set_name_label",
            vec![Value::str(&guest), Value::str("after")],
        )
        .await;
    let before = load.history.len();
    assert!(
        load.history
            .wait_len(before + WRITES_EACH_SIDE, Duration::from_secs(30))
            .await
    );
    let history = load.stop().await;
    assert_history(&cluster, &history, &[0, 1, 2], Some(vms)).await;
}
