//! The pool operations an operator runs: `pool.designate_new_master` (a leadership transfer
//! under load), `pool.sync_database`, and for a pool that lost its quorum for good,
//! `pool.emergency_transition_to_master` on a survivor then `pool.recover_slaves`; the hosts of
//! the old configuration that come back meanwhile detect the split and raise an alert.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::cluster::history::{Ack, History, assert_no_ack_lost};
use oxapi_tests::cluster::pool::{SETTLE_TIMEOUT, within};
use oxapi_tests::cluster::watch::messages_named;
use oxapi_tests::cluster::{Cluster, ClusterOptions, Load, assert_history};
use oxapi_tests::events::EventWait;
use oxapi_tests::{Client, Protocol};

/// `pool.designate_new_master` under load moves the master to the named host; writes go on,
/// `pool.sync_database` succeeds, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn designate_new_master_moves_the_master_under_load() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let target = (0..3).find(|&i| i != master).expect("a non-master");
    let load = Load::start(&cluster, 4).await;
    assert!(load.history.wait_len(50, Duration::from_secs(30)).await);

    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let target_ref = cluster.nodes[target].host_ref();
    admin
        .ok("pool.designate_new_master", vec![Value::str(&target_ref)])
        .await;
    assert_eq!(cluster.wait_for_master(&[0, 1, 2]).await, target);
    let moved_at = Instant::now();
    assert!(
        load.history
            .wait_ack_after(moved_at, Duration::from_secs(5))
            .await
            .is_some()
    );
    let admin = cluster.nodes[target].login(Protocol::JsonRpc).await;
    admin.ok("pool.sync_database", vec![]).await;
    let history = load.stop().await;
    assert_history(&cluster, &history, &[0, 1, 2], None).await;
}

/// Waits until host `via` answers a normal login and names itself master.
async fn wait_master_alone(cluster: &Cluster, via: usize) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while cluster.master_seen_by(via).await != Some(via) {
        assert!(
            Instant::now() < deadline,
            "host {via} does not become master\n{}",
            cluster.log_tails(&[via])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pool's other_config through `client`.
async fn other_config(client: &Client) -> BTreeSet<String> {
    let pools = client.ok("pool.get_all", vec![]).await;
    let pool = pools
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .expect("a pool");
    let config = client.ok("pool.get_other_config", vec![pool]).await;
    config.as_struct().expect("a map").keys().cloned().collect()
}

/// Waits, with `event.from` on `message`, until the pool `client` reaches through host `via`
/// has a `POOL_SPLIT_DETECTED` message; returns its body.
async fn wait_split_alert(cluster: &Cluster, via: usize, client: &Client) -> String {
    let mut events = EventWait::new(client, &["message"], SETTLE_TIMEOUT);
    loop {
        let split = messages_named(client, "POOL_SPLIT_DETECTED").await;
        if let Some(message) = split.into_iter().next() {
            return message.body;
        }
        let what = format!(
            "no POOL_SPLIT_DETECTED message through host {via}\n{}",
            cluster.log_tails(&[0, 1, 2])
        );
        events.next(&what).await;
    }
}

/// Refused while the quorum is there; once two of three hosts are gone for good, the survivor
/// becomes master of its own (with what it had) and takes writes. The two come back in the old
/// configuration: both sides raise `POOL_SPLIT_DETECTED`, and the two do not rejoin silently
/// (they do not get the survivor's writes) until `pool.recover_slaves` brings them into its
/// pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emergency_transition_then_recover_slaves_rebuilds_the_pool() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let survivor = (0..3).find(|&i| i != master).expect("a non-master");
    let lost: Vec<usize> = (0..3).filter(|&i| i != survivor).collect();

    // A session made while the pool is whole: the survivor checks it on its own replica later.
    let on_survivor = cluster.nodes[survivor].login(Protocol::JsonRpc).await;
    let refused = within(on_survivor.call("pool.emergency_transition_to_master", vec![])).await;
    assert!(
        matches!(refused, Some(Err(_))),
        "an emergency transition with the quorum reachable is refused: {refused:?}"
    );
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let pools = admin.ok("pool.get_all", vec![]).await;
    let pool = pools
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .expect("a pool");
    let sent = Instant::now();
    admin
        .ok(
            "pool.add_to_other_config",
            vec![
                pool.clone(),
                Value::str("before-emergency"),
                Value::str("v"),
            ],
        )
        .await;
    admin.ok("pool.sync_database", vec![]).await;
    // The survivor's own replica has the write before the others go.
    let history = History::default();
    history.record(Ack {
        key: "before-emergency".into(),
        via: master,
        sent,
        acked: Instant::now(),
    });
    assert_no_ack_lost(&cluster, &history, &[survivor]).await;

    for &i in &lost {
        cluster.nodes[i].kill();
    }
    // The survivor counts a voter unreachable once silent for an election timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match on_survivor
            .call("pool.emergency_transition_to_master", vec![])
            .await
        {
            Ok(_) => break,
            Err(e) if e.code == "OPERATION_NOT_ALLOWED" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("pool.emergency_transition_to_master failed: {e}"),
        }
    }
    wait_master_alone(&cluster, survivor).await;
    let client = cluster.nodes[survivor].login(Protocol::JsonRpc).await;
    assert!(other_config(&client).await.contains("before-emergency"));
    client
        .ok(
            "pool.add_to_other_config",
            vec![pool.clone(), Value::str("after-emergency"), Value::str("v")],
        )
        .await;

    let mut readies = Vec::new();
    for &i in &lost {
        cluster.nodes[i].restart().await;
        readies.push(cluster.nodes[i].ready_count());
    }
    let body = wait_split_alert(&cluster, survivor, &client).await;
    assert!(body.contains("epoch"), "{body}");
    cluster.wait_for_master(&lost).await;
    let old_side = cluster
        .try_login(lost[0])
        .await
        .expect("the old configuration's two hosts have a master");
    wait_split_alert(&cluster, lost[0], &old_side).await;
    let old_keys = other_config(&old_side).await;
    assert!(old_keys.contains("before-emergency"), "{old_keys:?}");
    assert!(!old_keys.contains("after-emergency"), "{old_keys:?}");

    let recovered = client.ok("pool.recover_slaves", vec![]).await;
    let recovered: BTreeSet<String> = recovered
        .as_array()
        .expect("a set of hosts")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let want: BTreeSet<String> = lost.iter().map(|&i| cluster.nodes[i].host_ref()).collect();
    assert_eq!(recovered, want);
    for (&i, ready) in lost.iter().zip(readies) {
        cluster.nodes[i].wait_ready(ready + 1).await;
    }
    assert_eq!(cluster.settle(&[0, 1, 2]).await, survivor);
    for i in 0..3 {
        let client = cluster.nodes[i].login(Protocol::JsonRpc).await;
        let keys = other_config(&client).await;
        assert!(keys.contains("after-emergency"), "host {i}: {keys:?}");
        assert_eq!(cluster.hosts_seen_by(i).await.len(), 3);
    }
}
