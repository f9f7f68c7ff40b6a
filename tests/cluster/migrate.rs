//! Migration across real hosts: `VM.pool_migrate` moves a running diskless VM to another host
//! (its domain leaves one host's simulator for the other's, never running on both), a VM with a
//! disk on a host's local SR cannot move, `host.evacuate` empties a host, and xe's `vm-migrate`
//! and `host-evacuate` do the same from the command line. A 2 GiB memory image moves between
//! hosts over the data plane with bounded memory and no election.

#[path = "../xe/support.rs"]
mod support;

use std::collections::BTreeMap;

use api_spec::Value;
use oxapi_tests::cluster::{Cluster, ClusterOptions, VmWatch, history, vm};
use oxapi_tests::storage::{create_vbd, create_vdi, local_sr_of};
use oxapi_tests::{Client, Protocol, vms};
use support::Xe;

/// The hosts whose simulator runs a domain of the VM `uuid`.
fn hosts_running(cluster: &Cluster, uuid: &str) -> Vec<usize> {
    cluster
        .nodes
        .iter()
        .filter(|node| vm::has_domain(&node.simulator_state(), uuid))
        .map(|node| node.index)
        .collect()
}

/// `VM.pool_migrate(vm, host, {"live": "true"})`.
async fn pool_migrate(
    client: &Client,
    guest: &str,
    host: &str,
) -> Result<Value, api_spec::ApiError> {
    let options = Value::Struct(BTreeMap::from([("live".to_owned(), Value::str("true"))]));
    client
        .call(
            "VM.pool_migrate",
            vec![Value::str(guest), Value::str(host), options],
        )
        .await
}

/// A diskless VM started on one host and migrated to another runs there: `resident_on` names
/// it, its simulator has the domain and the first host's no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_migrate_moves_a_diskless_vm_to_another_host() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let watch = VmWatch::start(&cluster);
    let client = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let (from, to) = ((master + 1) % 3, (master + 2) % 3);
    let guest = vm::running_on(&client, "mover", &cluster.nodes[from].host_ref()).await;
    let uuid = vm::field(&client, &guest, "uuid").await;
    assert_eq!(hosts_running(&cluster, &uuid), [from]);
    let destination = cluster.nodes[to].host_ref();
    assert_eq!(
        pool_migrate(&client, &guest, &destination).await,
        Ok(Value::str(""))
    );
    assert_eq!(vm::field(&client, &guest, "resident_on").await, destination);
    assert_eq!(vm::field(&client, &guest, "power_state").await, "Running");
    assert_eq!(hosts_running(&cluster, &uuid), [to]);
    watch.finish();
}

/// How much a host's resident memory may grow while a 2 GiB image passes through it.
const RSS_GROWTH_LIMIT: u64 = 64 << 20;

/// A VM with 2 GiB of memory migrates between two hosts that are not the master: its image
/// (2 GiB of simulated memory, checked byte by byte on arrival) streams agent to agent over
/// the data plane, so no oxapi process's resident memory grows by 64 MiB, and the Raft
/// stream stays quiet enough that no election happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_gib_image_moves_with_bounded_memory_and_no_election() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let watch = VmWatch::start(&cluster);
    let client = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let (from, to) = ((master + 1) % 3, (master + 2) % 3);
    let template = vms::default_template(&client).await;
    let guest = vms::halted_vm(&client, &template, "big", 2 << 30).await;
    vm::start_on(&client, &guest, &cluster.nodes[from].host_ref())
        .await
        .expect("the VM starts");
    let uuid = vm::field(&client, &guest, "uuid").await;
    let leaderships = history::leaderships(&cluster);
    let before = cluster.reset_peak_resident();
    let destination = cluster.nodes[to].host_ref();
    assert_eq!(
        pool_migrate(&client, &guest, &destination).await,
        Ok(Value::str(""))
    );
    assert_eq!(hosts_running(&cluster, &uuid), [to]);
    let received = cluster.nodes[to]
        .logs()
        .lines()
        .filter(|line| line.contains("migration image received"))
        .find_map(|line| {
            line.split(" bytes=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
    assert!(
        received.is_some_and(|bytes| bytes > 2 << 30),
        "the destination received {received:?} bytes"
    );
    cluster.assert_peak_growth_below(&before, RSS_GROWTH_LIMIT);
    assert_eq!(history::leaderships(&cluster), leaderships);
    assert!(cluster.nodes[master].leads_by_its_logs());
    watch.finish();
}

/// A VM whose disk is on its host's local SR cannot migrate: `VM_REQUIRES_SR [vm; sr]`, and
/// it runs on where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_with_a_local_disk_cannot_migrate() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let client = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let (from, to) = ((master + 1) % 3, (master + 2) % 3);
    let host = cluster.nodes[from].host_ref();
    let sr = local_sr_of(&client, &host).await;
    let guest = vm::new_vm(&client, "rooted").await;
    let vdi = create_vdi(&client, &sr, 1 << 30).await;
    create_vbd(&client, &guest, &vdi, "0").await;
    vm::start_on(&client, &guest, &host)
        .await
        .expect("the VM starts on its disk's host");
    let refused = pool_migrate(&client, &guest, &cluster.nodes[to].host_ref())
        .await
        .expect_err("a VM on a local SR stays");
    assert_eq!(refused.code, "VM_REQUIRES_SR");
    assert_eq!(refused.params, [guest.clone(), sr]);
    assert_eq!(vm::field(&client, &guest, "resident_on").await, host);
    let uuid = vm::field(&client, &guest, "uuid").await;
    assert_eq!(hosts_running(&cluster, &uuid), [from]);
}

/// `host.evacuate` of a host running two diskless VMs moves both to the other hosts, where
/// they run; the host runs none after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evacuate_moves_every_vm_off_the_host() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let watch = VmWatch::start(&cluster);
    let client = cluster.nodes[master].login(Protocol::XmlRpc).await;
    let from = (master + 1) % 3;
    let host = cluster.nodes[from].host_ref();
    let mut guests = Vec::new();
    for name in ["first", "second"] {
        guests.push(vm::running_on(&client, name, &cluster.nodes[from].host_ref()).await);
    }
    client
        .ok("host.assert_can_evacuate", vec![Value::str(&host)])
        .await;
    client.ok("host.evacuate", vec![Value::str(&host)]).await;
    for guest in &guests {
        let now_on = vm::field(&client, guest, "resident_on").await;
        let index = cluster.index_of(&now_on).expect("a host of the pool");
        assert_ne!(index, from);
        assert_eq!(vm::field(&client, guest, "power_state").await, "Running");
        let uuid = vm::field(&client, guest, "uuid").await;
        assert_eq!(hosts_running(&cluster, &uuid), [index]);
    }
    watch.finish();
}

/// `xe vm-migrate vm= host=` moves a VM to the host named, and `xe host-evacuate uuid=` moves
/// it off again, through a host that is not the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xe_vm_migrate_and_host_evacuate_move_vms() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let client = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let (from, to) = ((master + 1) % 3, (master + 2) % 3);
    let guest = vm::running_on(&client, "xe-mover", &cluster.nodes[from].host_ref()).await;
    let uuid = vm::field(&client, &guest, "uuid").await;
    let via = &cluster.nodes[from];
    let xe = Xe::at(&via.ip.to_string(), &via.password);
    let destination = cluster.nodes[to].host_ref();
    let destination_uuid = client
        .ok("host.get_uuid", vec![Value::str(&destination)])
        .await;
    let destination_uuid = destination_uuid.as_str().expect("a uuid").to_owned();
    xe.ok(&[
        "vm-migrate",
        "vm=xe-mover",
        &format!("host={destination_uuid}"),
        "live=true",
    ]);
    assert_eq!(vm::field(&client, &guest, "resident_on").await, destination);
    assert_eq!(hosts_running(&cluster, &uuid), [to]);
    xe.ok(&["host-evacuate", &format!("uuid={destination_uuid}")]);
    let now_on = vm::field(&client, &guest, "resident_on").await;
    let index = cluster.index_of(&now_on).expect("a host of the pool");
    assert_ne!(index, to);
    assert_eq!(hosts_running(&cluster, &uuid), [index]);
}
