//! The split oxapi promises to survive, on real QEMUs: a VM's QEMU runs on after its host's
//! `oxapi` is killed; the pool counts that host dead (which halts its VMs) and starts the VM on
//! another host; when the dead host's `oxapi` comes back on the same data dir, its agent takes
//! the surviving QEMU over and reports it, and the master leaves it running as a `VM_GHOST`
//! message about the VM, while the VM runs on, on the other host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_spec::{NULL_REF, Value};
use oxapi_tests::cluster::watch::{metrics_of, wait_live};
use oxapi_tests::cluster::{Cluster, ClusterOptions, Node, vm};
use oxapi_tests::events::EventWait;
use oxapi_tests::qemu::{guest_pid, is_alive_qemu_of, kill_guests, parent_pid, qemu_or_skip};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Protocol};
use serde_json::json;

const MIB: i64 = 1 << 20;
/// How long the pool may take to count a host dead or live again, or to raise a message.
const WAIT: Duration = Duration::from_secs(45);
/// Time between two looks at the QEMUs while the test checks that nothing stops them.
const POLL: Duration = Duration::from_millis(200);

/// A 3-host pool (one host may die and the others keep a majority) on the qemu backend, each
/// host named `host-<index>` so that a message naming one is unambiguous (all of them have
/// this machine's hostname at first). `None` (the test skips) without QEMU.
async fn qemu_pool() -> Option<Cluster> {
    if !qemu_or_skip() {
        return None;
    }
    let mut options = ClusterOptions::hosts(3);
    options.qemu = true;
    for host in 0..3 {
        let config = json!({ "agent": { "clean_shutdown_timeout_secs": 2 } });
        options.host_config.insert(host, config);
    }
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    for node in &cluster.nodes {
        let params = vec![Value::str(node.host_ref()), Value::str(label(node))];
        admin.ok("host.set_name_label", params).await;
    }
    Some(cluster)
}

/// The name the test gives `node`'s host.
fn label(node: &Node) -> String {
    format!("host-{}", node.index)
}

/// Waits, following `event.from` on VMs, until `vm` is `power_state` on `resident_on`.
async fn wait_vm(client: &Client, vm: &str, power_state: &str, resident_on: &str) {
    let mut events = EventWait::new(client, &["vm"], WAIT);
    loop {
        let state = vm::field(client, vm, "power_state").await;
        let host = vm::field(client, vm, "resident_on").await;
        if (state.as_str(), host.as_str()) == (power_state, resident_on) {
            return;
        }
        let what = format!("VM {vm} is {state} on {host}, never {power_state} on {resident_on}");
        events.next(&what).await;
    }
}

/// `VM.get_domid(vm)`.
async fn domid(client: &Client, vm: &str) -> Value {
    client.ok("VM.get_domid", vec![Value::str(vm)]).await
}

/// The pool's `VM_GHOST` messages about the VM `uuid`: the class each names and its body.
async fn ghosts_of(client: &Client, uuid: &str) -> Vec<(String, String)> {
    let records = client.ok("message.get_all_records", vec![]).await;
    let text = |record: &BTreeMap<String, Value>, field: &str| {
        let value = record.get(field).and_then(Value::as_str);
        value.unwrap_or_default().to_owned()
    };
    let records = records.as_struct().expect("a map of messages");
    records
        .values()
        .filter_map(Value::as_struct)
        .filter(|m| text(m, "name") == "VM_GHOST" && text(m, "obj_uuid") == uuid)
        .map(|m| (text(m, "cls"), text(m, "body")))
        .collect()
}

/// Waits until process `pid` is no longer the QEMU of `uuid`, at most `WAIT`.
async fn wait_gone(pid: u32, uuid: &str) {
    let deadline = Instant::now() + WAIT;
    while is_alive_qemu_of(pid, uuid) {
        assert!(Instant::now() < deadline, "QEMU {pid} of {uuid} still runs");
        tokio::time::sleep(POLL).await;
    }
}

/// Log lines of `node` (over all its starts) that contain `text`.
fn log_lines(node: &Node, text: &str) -> Vec<String> {
    let logs = node.logs();
    logs.lines()
        .filter(|line| line.contains(text))
        .map(str::to_owned)
        .collect()
}

/// A diskless VM with no OS runs on a host that is not the master. That host's `oxapi` is
/// killed (`kill -9`): its QEMU runs on; the master counts the host dead and halts the VM,
/// which `VM.start` then places on another host, in a QEMU of its own. Restarted on its data
/// dir, the dead host is live again and its agent takes the old QEMU over: the master raises
/// one `VM_GHOST` message about the VM naming both hosts and stops neither QEMU, and the VM
/// stays Running on the other host, where `VM.hard_shutdown` stops it (the ghost is the
/// operator's to kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_restarted_elsewhere_leaves_its_old_qemu_as_a_ghost_when_the_dead_host_returns() {
    let Some(mut cluster) = qemu_pool().await else {
        return;
    };
    let master = cluster.settle(&[0, 1, 2]).await;
    let down = (master + 1) % 3;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let down_ref = cluster.nodes[down].host_ref();
    let metrics = metrics_of(&admin, &down_ref).await;
    wait_live(&admin, &metrics, true, WAIT).await;

    let template = default_template(&admin).await;
    let guest = halted_vm(&admin, &template, "split", 128 * MIB).await;
    let uuid = vm::field(&admin, &guest, "uuid").await;
    vm::start_on(&admin, &guest, &down_ref)
        .await
        .expect("the VM starts on the host that will die");
    let down_dir = cluster.nodes[down].data_dir();
    let old_pid = guest_pid(&down_dir, &uuid).expect("a QEMU runs the VM");
    assert_eq!(parent_pid(old_pid), cluster.nodes[down].pid());

    cluster.nodes[down].kill();
    assert!(is_alive_qemu_of(old_pid, &uuid), "QEMU outlives its oxapi");
    wait_live(&admin, &metrics, false, WAIT).await;
    wait_vm(&admin, &guest, "Halted", NULL_REF).await;
    assert!(is_alive_qemu_of(old_pid, &uuid), "nobody stops the QEMU");

    vm::start(&admin, &guest)
        .await
        .expect("the VM starts on a live host");
    let now_on = vm::field(&admin, &guest, "resident_on").await;
    let elsewhere = cluster
        .index_of(&now_on)
        .unwrap_or_else(|| panic!("the VM runs on no host of the pool: {now_on}"));
    assert_ne!(elsewhere, down, "the VM placed on the dead host");
    let new_pid = guest_pid(&cluster.nodes[elsewhere].data_dir(), &uuid)
        .unwrap_or_else(|| panic!("no QEMU runs the VM on host {elsewhere}"));
    assert_ne!(new_pid, old_pid);
    assert_eq!(parent_pid(new_pid), cluster.nodes[elsewhere].pid());
    let new_domid = domid(&admin, &guest).await;

    cluster.nodes[down].restart().await;
    wait_live(&admin, &metrics, true, WAIT).await;
    let mut events = EventWait::new(&admin, &["message"], WAIT);
    let ghosts = loop {
        let ghosts = ghosts_of(&admin, &uuid).await;
        if !ghosts.is_empty() {
            break ghosts;
        }
        let tails = cluster.log_tails(&[master, down]);
        events
            .next(&format!("no VM_GHOST about {uuid}\n{tails}"))
            .await;
    };
    let (cls, body) = &ghosts[0];
    assert_eq!(cls, "VM", "{body}");
    let (down_label, elsewhere_label) = (
        label(&cluster.nodes[down]),
        label(&cluster.nodes[elsewhere]),
    );
    assert!(body.contains(&uuid), "{body}");
    assert!(
        body.contains(&format!("runs on host {down_label}")),
        "{body}"
    );
    assert!(body.contains(&elsewhere_label), "{body}");

    // Past twice the fencing time after the message, long enough for a late fence of the
    // returning host or a second look by the master: both QEMUs run on, the VM with them.
    let until = Instant::now() + Duration::from_secs(2 * cluster.options.fence_after_secs + 2);
    while Instant::now() < until {
        assert!(
            is_alive_qemu_of(old_pid, &uuid),
            "the ghost QEMU {old_pid} was stopped\n{}",
            cluster.log_tails(&[master, down])
        );
        assert_eq!(guest_pid(&down_dir, &uuid), Some(old_pid), "taken over");
        let elsewhere_dir = cluster.nodes[elsewhere].data_dir();
        assert_eq!(
            guest_pid(&elsewhere_dir, &uuid),
            Some(new_pid),
            "the VM's QEMU on host {elsewhere} was stopped\n{}",
            cluster.log_tails(&[master, elsewhere, down])
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Running");
    assert_eq!(vm::field(&admin, &guest, "resident_on").await, now_on);
    assert_eq!(domid(&admin, &guest).await, new_domid);
    let ghosts = ghosts_of(&admin, &uuid).await;
    assert_eq!(ghosts.len(), 1, "one VM_GHOST: {ghosts:?}");
    let fenced = log_lines(&cluster.nodes[down], "fenced");
    assert!(fenced.is_empty(), "the returning host fenced: {fenced:?}");

    admin.ok("VM.hard_shutdown", vec![Value::str(&guest)]).await;
    assert_eq!(vm::field(&admin, &guest, "power_state").await, "Halted");
    wait_gone(new_pid, &uuid).await;
    assert!(
        is_alive_qemu_of(old_pid, &uuid),
        "the ghost is the operator's to stop"
    );
    for node in &cluster.nodes {
        kill_guests(&node.data_dir());
    }
}
