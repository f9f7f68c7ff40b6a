//! xe's pool and host commands on a pool of real hosts: `pool-designate-new-master`,
//! `pool-sync-database`, `host-disable` / `host-enable`, `pool-eject`, `pool-join`, and for a
//! pool that lost its quorum, `pool-emergency-transition-to-master` (through a slave-local
//! login) then `pool-recover-slaves`.

#[path = "../xe/support.rs"]
mod support;

use std::time::{Duration, Instant};

use oxapi_tests::Protocol;
use oxapi_tests::cluster::pool::SETTLE_TIMEOUT;
use oxapi_tests::cluster::{Cluster, ClusterOptions};
use support::Xe;

/// xe talking to host `index` of the cluster, with its root password.
fn xe_via(cluster: &Cluster, index: usize) -> Xe {
    let node = &cluster.nodes[index];
    Xe::at(&node.ip.to_string(), &node.password)
}

/// The uuid of host `index`, as `xe host-list address=` prints it.
fn host_uuid(xe: &Xe, cluster: &Cluster, index: usize) -> String {
    let address = format!("address={}", cluster.nodes[index].ip);
    xe.minimal(&["host-list", &address, "params=uuid"])
}

/// `host-param-get uuid= param-name=enabled`.
fn is_enabled(xe: &Xe, uuid: &str) -> String {
    let uuid = format!("uuid={uuid}");
    xe.ok(&["host-param-get", &uuid, "param-name=enabled"])
        .trim()
        .to_owned()
}

/// The master moves where xe says, the database syncs, a host is disabled and enabled again,
/// then ejected (it comes back as a pool of its own) and joined back with `pool-join`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xe_moves_the_master_ejects_and_joins_a_host() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let (next, other) = ((master + 1) % 3, (master + 2) % 3);
    let xe = xe_via(&cluster, other);
    let next_uuid = host_uuid(&xe, &cluster, next);
    xe.ok(&[
        "pool-designate-new-master",
        &format!("host-uuid={next_uuid}"),
    ]);
    assert_eq!(cluster.wait_for_master(&[0, 1, 2]).await, next);
    xe.ok(&["pool-sync-database"]);

    let other_uuid = host_uuid(&xe, &cluster, other);
    xe.ok(&["host-disable", &format!("uuid={other_uuid}")]);
    assert_eq!(is_enabled(&xe, &other_uuid), "false");
    xe.ok(&["host-enable", &format!("uuid={other_uuid}")]);
    assert_eq!(is_enabled(&xe, &other_uuid), "true");

    let on_master = xe_via(&cluster, next);
    let ready = cluster.nodes[other].ready_count();
    on_master.ok(&["pool-eject", &format!("host-uuid={other_uuid}"), "--force"]);
    cluster.nodes[other].wait_ready(ready + 1).await;
    let rest = [master, next];
    cluster.wait_for_master(&rest).await;
    assert_eq!(cluster.hosts_seen_by(next).await.len(), 2);

    // The ejected host is a pool of its own, with the root password of its first start or
    // the pool's.
    let pool_password = cluster.password().to_owned();
    cluster.nodes[other].password = cluster.nodes[other].first_password.clone();
    if cluster.try_login(other).await.is_none() {
        cluster.nodes[other].password = pool_password.clone();
    }
    let ejected = xe_via(&cluster, other);
    let ready = cluster.nodes[other].ready_count();
    ejected.ok(&[
        "pool-join",
        &format!("master-address={}", cluster.nodes[next].ip),
        "master-username=root",
        &format!("master-password={pool_password}"),
    ]);
    cluster.nodes[other].wait_ready(ready + 1).await;
    cluster.nodes[other].password = pool_password;
    assert_eq!(cluster.settle(&[0, 1, 2]).await, next);
    assert_eq!(cluster.hosts_seen_by(other).await.len(), 3);
}

/// Two of three hosts killed: `xe pool-emergency-transition-to-master` on the survivor (which
/// logs in with `session.slave_local_login_with_password`, the pool having no master) makes it
/// the master of its own; the two restarted, `xe pool-recover-slaves` brings them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xe_emergency_transition_then_recover_slaves() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let survivor = (master + 1) % 3;
    let lost: Vec<usize> = (0..3).filter(|&i| i != survivor).collect();
    let xe = xe_via(&cluster, survivor);
    let refused = xe.fails(&["pool-emergency-transition-to-master"]);
    assert!(refused.contains("OPERATION_NOT_ALLOWED"), "{refused}");

    for &i in &lost {
        cluster.nodes[i].kill();
    }
    // Refused until the survivor has counted the others unreachable (an election timeout).
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let run = xe.run(&["pool-emergency-transition-to-master"]);
        if run.ok {
            break;
        }
        assert!(
            run.stderr.contains("OPERATION_NOT_ALLOWED") && Instant::now() < deadline,
            "{}",
            run.stderr
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(cluster.wait_for_master(&[survivor]).await, survivor);

    let mut readies = Vec::new();
    for &i in &lost {
        cluster.nodes[i].restart().await;
        readies.push(cluster.nodes[i].ready_count());
    }
    let recovered = xe.ok(&["pool-recover-slaves"]);
    for (&i, ready) in lost.iter().zip(readies) {
        cluster.nodes[i].wait_ready(ready + 1).await;
    }
    assert_eq!(cluster.settle(&[0, 1, 2]).await, survivor);
    let client = cluster.nodes[survivor].login(Protocol::JsonRpc).await;
    for &i in &lost {
        let host = api_spec::Value::str(cluster.nodes[i].host_ref());
        let uuid = client.ok("host.get_uuid", vec![host]).await;
        let uuid = uuid.as_str().expect("a uuid");
        assert!(recovered.contains(uuid), "{recovered} names host {i}");
    }
    assert_eq!(cluster.hosts_seen_by(survivor).await.len(), 3);
}

/// xe remembers the members of the pool it talked to: with that host (the master) killed, the
/// same command line reaches the pool through another member, whose new master answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xe_reaches_the_pool_through_another_member_when_its_host_is_down() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let xe = xe_via(&cluster, master);
    let before = xe.minimal(&["host-list", "params=uuid"]);
    assert_eq!(before.split(',').count(), 3, "{before}");

    cluster.nodes[master].kill();
    let after = xe.minimal(&["host-list", "params=uuid"]);
    let sorted = |list: &str| {
        let mut uuids: Vec<String> = list.split(',').map(str::to_owned).collect();
        uuids.sort();
        uuids
    };
    assert_eq!(sorted(&after), sorted(&before));
    let survivors: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    assert_ne!(cluster.wait_for_master(&survivors).await, master);
}
