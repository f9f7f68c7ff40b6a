//! A host's data dir is a small tmpfs that the test fills up. With the disk reserve off, its
//! pool DB store fails while it runs a VM: the VM runs on and the host never fences it, the
//! master marks the host not live and raises an alert, calls to the host say why they fail,
//! and once the disk has room again the host opens its store by itself, catches up and serves
//! again. With the reserve on, the pool refuses writes before the disk is full, and takes them
//! again once it has room.

use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::Protocol;
use oxapi_tests::client::Client;
use oxapi_tests::cluster::watch::{is_live, messages_named, metrics_of, wait_live};
use oxapi_tests::cluster::{Cluster, ClusterOptions, skipped, vm};
use oxapi_tests::disk::SmallDisk;
use oxapi_tests::events::EventWait;
use serde_json::json;

/// How long the pool may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(30);
/// The failing host.
const FAILING: usize = 2;

/// The bodies of the messages named `name` about the object `uuid`.
async fn alerts(admin: &Client, name: &str, uuid: &str) -> Vec<String> {
    let messages = messages_named(admin, name).await;
    messages
        .into_iter()
        .filter(|m| m.obj_uuid == uuid)
        .map(|m| m.body)
        .collect()
}

/// The name of the VM `uuid` in the replica of the host `client` talks to (`event.from`
/// answers from the host's own replica), if it has the VM.
async fn label_in_replica(client: &Client, uuid: &str) -> Option<String> {
    let params = vec![
        Value::Array(vec![Value::str("vm")]),
        Value::str(""),
        Value::Float(0.0),
    ];
    let batch = client.call("event.from", params).await.ok()?;
    let events = batch.as_struct()?["events"].as_array()?;
    events.iter().find_map(|event| {
        let snapshot = event.as_struct()?["snapshot"].as_struct()?;
        (snapshot["uuid"] == Value::str(uuid))
            .then(|| snapshot["name_label"].as_str().map(str::to_owned))?
    })
}

/// Host 2's data dir fills up while it runs a VM and the master keeps writing: its store
/// fails. The VM runs on through more than the fencing time, host 2 is not live for the
/// master with a `HOST_DATABASE_STORE_FAILED` alert naming the failure, and a login on host 2
/// says its store failed. With room again, host 2 is live again, answers, and its replica has
/// the writes made meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_whose_disk_fills_keeps_its_vm_is_reported_and_recovers() {
    let test = "a_host_whose_disk_fills_keeps_its_vm_is_reported_and_recovers";
    if let Some(why) = SmallDisk::unsupported() {
        skipped(test, &why);
        return;
    }
    let mut options = ClusterOptions::hosts(3);
    options.small_disks.insert(FAILING, 64 << 20);
    // No reserve: the pool goes on writing until the store fails.
    let raft = json!({ "store_retry_secs": 1, "min_free_bytes": 0 });
    options.host_config.insert(FAILING, json!({ "raft": raft }));
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    assert_ne!(
        master, FAILING,
        "the first master stays while the others join"
    );
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let failing = &cluster.nodes[FAILING];
    let host = failing.host_ref();
    let metrics = metrics_of(&admin, &host).await;
    let host_uuid = failing.identity("host_uuid");
    let host_uuid = host_uuid.as_str().expect("a uuid");
    let guest = vm::running_on(&admin, "on a small disk", &host).await;
    let uuid = vm::field(&admin, &guest, "uuid").await;

    let disk = failing.disk.as_ref().expect("host 2 has a small disk");
    disk.fill(0);
    let deadline = Instant::now() + WAIT;
    let mut writes = 0;
    while is_live(&admin, &metrics).await {
        assert!(
            Instant::now() < deadline,
            "host 2 stayed live\n{}",
            failing.log_tail()
        );
        writes += 1;
        let label = Value::String(format!("label {writes}"));
        admin
            .ok("VM.set_name_label", vec![Value::str(&guest), label])
            .await;
    }
    let last_label = format!("label {writes}");
    // The host may stop being live (its heartbeats stall) before its store failure is
    // reported: wait for the alert.
    let mut wait = EventWait::new(&admin, &["message"], WAIT);
    let bodies = loop {
        let bodies = alerts(&admin, "HOST_DATABASE_STORE_FAILED", host_uuid).await;
        if !bodies.is_empty() {
            break bodies;
        }
        wait.next("no HOST_DATABASE_STORE_FAILED alert").await;
    };
    assert_eq!(bodies.len(), 1, "one alert: {bodies:?}");
    assert!(bodies[0].contains("store"), "{bodies:?}");
    let mut login = failing.client(Protocol::JsonRpc);
    let refused = login
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str(&failing.password)],
        )
        .await
        .expect_err("a host whose store failed answers no calls");
    assert!(
        refused
            .params
            .iter()
            .any(|p| p.contains("store of this host failed")),
        "{refused:?}"
    );

    // Three times the fencing time (2 s): the VM runs on, on host 2 and for the master.
    let fence_after = Duration::from_secs(cluster.options.fence_after_secs);
    let until = Instant::now() + fence_after * 3;
    while Instant::now() < until {
        assert!(
            vm::has_domain(&failing.simulator_state(), &uuid),
            "host 2 stopped the VM\n{}",
            failing.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Running");
    assert_eq!(vm::field(&admin, &guest, "resident_on").await, host);
    assert!(
        !failing.logs().contains("fencing this host domains=1"),
        "{}",
        failing.log_tail()
    );

    disk.free();
    let deadline = Instant::now() + WAIT;
    wait_live(&admin, &metrics, true, WAIT).await;
    login.login(&failing.password).await;
    while label_in_replica(&login, &uuid).await.as_deref() != Some(last_label.as_str()) {
        assert!(
            Instant::now() < deadline,
            "host 2's replica did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(vm::has_domain(&failing.simulator_state(), &uuid));
    assert_eq!(
        alerts(&admin, "HOST_DATABASE_STORE_FAILED", host_uuid)
            .await
            .len(),
        1
    );
}

/// Host 2's disk fills up to below its reserve: within seconds the pool refuses writes with
/// `DATABASE_SPACE_LOW` naming host 2, through any host, raises one alert, and still answers
/// reads; with room again, writes are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_below_its_reserve_makes_the_pool_refuse_writes_until_it_has_room() {
    let test = "a_disk_below_its_reserve_makes_the_pool_refuse_writes_until_it_has_room";
    if let Some(why) = SmallDisk::unsupported() {
        skipped(test, &why);
        return;
    }
    let mut options = ClusterOptions::hosts(3);
    options.small_disks.insert(FAILING, 64 << 20);
    options
        .host_config
        .insert(FAILING, json!({ "raft": { "min_free_bytes": 32 << 20 } }));
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let other = cluster.nodes[(master + 1) % 3]
        .login(Protocol::JsonRpc)
        .await;
    let failing = &cluster.nodes[FAILING];
    let host_uuid = failing.identity("host_uuid");
    let host_uuid = host_uuid.as_str().expect("a uuid");
    let guest = vm::new_vm(&admin, "renamed under a full disk").await;
    let rename = |label: &str| vec![Value::str(&guest), Value::str(label)];

    let disk = failing.disk.as_ref().expect("host 2 has a small disk");
    disk.fill(16 << 20);
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        match admin
            .call("VM.set_name_label", rename("before the alarm"))
            .await
        {
            Ok(_) => {
                assert!(Instant::now() < deadline, "writes were never refused");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(refused) => break refused,
        }
    };
    assert_eq!(refused.code, "DATABASE_SPACE_LOW", "{refused:?}");
    let name = admin
        .ok("host.get_name_label", vec![Value::str(failing.host_ref())])
        .await;
    assert_eq!(
        Some(refused.params[0].as_str()),
        name.as_str(),
        "{refused:?}"
    );
    let through_other = other
        .call("VM.set_name_label", rename("through another host"))
        .await
        .expect_err("refused through any host");
    assert_eq!(through_other.code, "DATABASE_SPACE_LOW");
    assert_eq!(
        vm::field(&admin, &guest, "name_label").await,
        "before the alarm"
    );
    assert_eq!(
        alerts(&admin, "DATABASE_SPACE_LOW", host_uuid).await.len(),
        1
    );

    disk.free();
    let deadline = Instant::now() + WAIT;
    while let Err(refused) = admin.call("VM.set_name_label", rename("with room")).await {
        assert_eq!(refused.code, "DATABASE_SPACE_LOW", "{refused:?}");
        assert!(Instant::now() < deadline, "writes stayed refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(vm::field(&admin, &guest, "name_label").await, "with room");
}
