//! Every host of a pool answers the XenAPI: calls and logins on a non-master are forwarded to
//! the master, `event.from` is served from each host's replica with the pool's tokens, VMs are
//! placed over every live host (a host that is down is `HOST_OFFLINE`, then not live), and
//! `pool.forward_calls = false` gives xapi's `HOST_IS_SLAVE`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_spec::Value;
use oxapi_tests::Protocol;
use oxapi_tests::cluster::watch::wait_live;
use oxapi_tests::cluster::{Cluster, ClusterOptions, VmWatch, vm};
use oxapi_tests::events::wait_task;
use serde_json::json;

/// How long the master may take to count a host live or not.
const LIVE_WAIT: Duration = Duration::from_secs(30);

/// Logins, reads and writes through a non-master work, and a write made there is what the
/// master then answers; the non-master names the master as the pool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_and_login_on_a_non_master_are_forwarded() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    for follower in (0..3).filter(|&i| i != master) {
        assert_eq!(cluster.master_seen_by(follower).await, Some(master));
        let client = cluster.nodes[follower].login(Protocol::XmlRpc).await;
        let guest = vm::new_vm(&client, &format!("made via {follower}")).await;
        client
            .ok(
                "VM.set_name_label",
                vec![
                    Value::str(&guest),
                    Value::str(format!("renamed via {follower}")),
                ],
            )
            .await;
        let on_master = cluster.nodes[master].login(Protocol::JsonRpc).await;
        let label = on_master
            .ok("VM.get_name_label", vec![Value::str(&guest)])
            .await;
        assert_eq!(
            label.as_str(),
            Some(format!("renamed via {follower}").as_str())
        );
    }
}

/// A token from the master's `event.from`, used on a non-master, wakes there with a write made
/// through the master: one token space over the pool, each host answering from its replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_from_on_a_non_master_sees_writes_made_through_the_master() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let follower = (0..3).find(|&i| i != master).expect("a non-master");
    let on_master = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let guest = vm::new_vm(&on_master, "watched").await;
    let classes = Value::Array(vec![Value::str("vm")]);
    let first = on_master
        .ok(
            "event.from",
            vec![classes.clone(), Value::str(""), Value::Float(0.0)],
        )
        .await;
    let token = first.as_struct().expect("a batch")["token"].clone();

    let mut on_follower = cluster.nodes[follower].client(Protocol::JsonRpc);
    on_follower.session = on_master.session.clone();
    let watch = tokio::spawn(async move {
        on_follower
            .ok("event.from", vec![classes, token, Value::Float(20.0)])
            .await
    });
    on_master
        .ok(
            "VM.set_name_label",
            vec![Value::str(&guest), Value::str("seen everywhere")],
        )
        .await;
    let batch = tokio::time::timeout(Duration::from_secs(25), watch)
        .await
        .expect("the follower's event.from returns")
        .expect("watcher task");
    let events = batch.as_struct().expect("a batch")["events"].clone();
    let labels: Vec<String> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| {
            e.as_struct()?
                .get("snapshot")?
                .as_struct()?
                .get("name_label")
                .cloned()
        })
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    assert!(labels.contains(&"seen everywhere".to_owned()), "{events:?}");
}

/// Six VMs started without a host land on more than one host, each running exactly where its
/// `resident_on` says (the domain is in that host's simulator), and on no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vms_started_without_a_host_spread_over_the_hosts() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let watch = VmWatch::start(&cluster);
    let client = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let mut used = BTreeSet::new();
    for i in 0..6 {
        let guest = vm::new_vm(&client, &format!("placed {i}")).await;
        vm::start(&client, &guest).await.expect("the VM starts");
        let host = vm::field(&client, &guest, "resident_on").await;
        let uuid = vm::field(&client, &guest, "uuid").await;
        let on = cluster
            .index_of(&host)
            .expect("resident on a host of the pool");
        for node in &cluster.nodes {
            assert_eq!(
                vm::has_domain(&node.simulator_state(), &uuid),
                node.index == on,
                "VM {i} resident on host {on}: domain on host {}?",
                node.index
            );
        }
        used.insert(on);
    }
    assert!(used.len() >= 2, "six VMs all placed on {used:?}");
    watch.finish();
}

/// A host killed is `HOST_OFFLINE` to a VM started on it before the pool counts it dead; once
/// its heartbeats are missed its `host_metrics.live` is false, a start there is `HOST_NOT_LIVE`
/// and placement leaves it out; restarted, it is live again and runs the VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_that_is_down_is_offline_then_not_live_until_it_is_back() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let down = (0..3).find(|&i| i != master).expect("a non-master");
    let down_ref = cluster.nodes[down].host_ref();
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let metrics = admin
        .ok("host.get_metrics", vec![Value::str(&down_ref)])
        .await;
    wait_live(&admin, &metrics, true, LIVE_WAIT).await;
    let guest = vm::new_vm(&admin, "for the host that is down").await;

    cluster.nodes[down].kill();
    let err = vm::start_on(&admin, &guest, &down_ref)
        .await
        .expect_err("a host that is down runs nothing");
    assert_eq!(
        (err.code.as_str(), err.params.clone()),
        ("HOST_OFFLINE", vec![down_ref.clone()])
    );
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Halted");

    wait_live(&admin, &metrics, false, LIVE_WAIT).await;
    let err = vm::start_on(&admin, &guest, &down_ref)
        .await
        .expect_err("a host that is not live runs nothing");
    assert_eq!(err.code, "HOST_NOT_LIVE");
    for i in 0..4 {
        let placed = vm::new_vm(&admin, &format!("placed {i}")).await;
        vm::start(&admin, &placed).await.expect("the VM starts");
        let host = vm::field(&admin, &placed, "resident_on").await;
        assert_ne!(host, down_ref, "VM {i} placed on the host that is down");
    }

    cluster.nodes[down].restart().await;
    wait_live(&admin, &metrics, true, LIVE_WAIT).await;
    vm::start_on(&admin, &guest, &down_ref)
        .await
        .expect("the host is back and runs the VM");
    let uuid = vm::field(&admin, &guest, "uuid").await;
    assert!(vm::has_domain(
        &cluster.nodes[down].simulator_state(),
        &uuid
    ));
}

/// A start on another host, slow there (its simulator builds for 5 s), cancelled with
/// `task.cancel` once that host's agent reports progress: the cancel crosses to that agent,
/// the task ends `cancelled` with `TASK_CANCELLED`, the VM is halted and no domain is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_cancelled_on_the_master_stops_on_the_other_host() {
    let mut options = ClusterOptions::hosts(3);
    let slow = json!({ "simulator": { "latency_ms": { "build": 5000 } } });
    for i in 0..3 {
        options.host_config.insert(i, slow.clone());
    }
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let other = (master + 1) % 3;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let guest = vm::new_vm(&admin, "cancelled elsewhere").await;
    let task = admin
        .ok(
            "Async.VM.start_on",
            vec![
                Value::str(&guest),
                Value::str(cluster.nodes[other].host_ref()),
                Value::Bool(false),
                Value::Bool(false),
            ],
        )
        .await;
    let progressed = |t: &BTreeMap<String, Value>| {
        matches!(t.get("progress"), Some(Value::Float(p)) if *p > 0.0)
            || t.get("status").and_then(Value::as_str) != Some("pending")
    };
    let record = wait_task(&admin, &task, progressed).await;
    assert_eq!(record["status"].as_str(), Some("pending"), "{record:?}");
    admin.ok("task.cancel", vec![task.clone()]).await;
    let record = wait_task(&admin, &task, |t| {
        !matches!(t["status"].as_str(), Some("pending" | "cancelling"))
    })
    .await;
    assert_eq!(record["status"].as_str(), Some("cancelled"), "{record:?}");
    let info = record["error_info"].as_array().expect("error info");
    assert_eq!(info.first().and_then(Value::as_str), Some("TASK_CANCELLED"));
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Halted");
    let uuid = vm::field(&admin, &guest, "uuid").await;
    assert!(!vm::has_domain(
        &cluster.nodes[other].simulator_state(),
        &uuid
    ));
}

/// With `pool.forward_calls = false`, a login on a non-master gets `HOST_IS_SLAVE` with the
/// master's address, as xapi answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_master_answers_host_is_slave_when_forwarding_is_off() {
    let mut options = ClusterOptions::hosts(3);
    options.forward_calls = false;
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let follower = (0..3).find(|&i| i != master).expect("a non-master");
    let node = &cluster.nodes[follower];
    let err = node
        .client(Protocol::XmlRpc)
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str(&node.password)],
        )
        .await
        .expect_err("a non-master does not log in");
    assert_eq!(err.code, "HOST_IS_SLAVE");
    let master_ip = cluster.nodes[master].ip.to_string();
    assert!(
        err.params.iter().any(|p| p.contains(&master_ip)),
        "{:?} names the master {master_ip}",
        err.params
    );
}
