//! Suspend and resume across the hosts of a 2-host pool that both run real QEMUs: a VM whose
//! disk is on a `file` SR both hosts reach (one directory, shared) suspends on one host into a
//! suspend VDI on that SR and resumes with `VM.resume_on` on the other, where it runs on as a
//! QEMU child of that host's `oxapi`; it also starts on either host. A suspend image on a
//! host's local SR does not move: resuming elsewhere is `VM_REQUIRES_SR` and changes nothing.
//! Most guests have no OS (they idle in SeaBIOS); one test carries the Linux test guest,
//! booted once, from one host to the other with the block it wrote, and migrates it back.

use std::collections::BTreeMap;
use std::time::Duration;

use api_spec::{ApiError, NULL_REF, Value};
use oxapi_tests::cluster::{Cluster, ClusterOptions, Node, vm};
use oxapi_tests::guest::{BLOCK_BYTES, block_sha256, kernel_args, marker, sha256_hex};
use oxapi_tests::qemu::{guest_pid, last_serial_log, parent_pid, qemu_or_skip, serial_log};
use oxapi_tests::storage::{
    create_vbd, create_vdi, export_raw, import_raw, local_sr_of, transfer_query,
};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Protocol, SerialLog, test_guest};
use serde_json::json;

const MIB: i64 = 1 << 20;
/// How long the Linux test guest may take to reach a marker under TCG on a busy machine.
const GUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A 2-host pool on the qemu backend under TCG (clean shutdowns give up after 2 s) with a
/// shared `file` SR in a directory both hosts see; the pool, the SR and its directory (kept
/// while the test runs). `None` (the test skips) without QEMU.
async fn qemu_pool() -> Option<(Cluster, String, tempfile::TempDir)> {
    if !qemu_or_skip() {
        return None;
    }
    let mut options = ClusterOptions::hosts(2);
    options.qemu = true;
    for host in 0..2 {
        let config = json!({
            "qemu": { "accel": "tcg" },
            "agent": { "clean_shutdown_timeout_secs": 2 },
        });
        options.host_config.insert(host, config);
    }
    let cluster = Cluster::start(options).await;
    cluster.settle(&[0, 1]).await;
    let dir = tempfile::Builder::new()
        .prefix("oxapi-shared-sr-")
        .tempdir()
        .expect("a directory for the shared SR");
    let client = cluster.nodes[0].login(Protocol::JsonRpc).await;
    let config = BTreeMap::from([(
        "location".to_owned(),
        Value::str(dir.path().to_string_lossy()),
    )]);
    let params = vec![
        Value::str(cluster.nodes[0].host_ref()),
        Value::Struct(config),
        Value::Int(0),
        Value::str("shared"),
        Value::str(""),
        Value::str("file"),
        Value::str("user"),
        Value::Bool(true),
        Value::Struct(BTreeMap::new()),
    ];
    let sr = client.ok("SR.create", params).await;
    let sr = sr.as_str().expect("an SR ref").to_owned();
    Some((cluster, sr, dir))
}

/// A halted VM named `name` of `memory_bytes` with a 16 MiB disk on `sr` at device 0: the
/// VM's ref, its uuid and the disk's ref.
async fn vm_with_disk(
    client: &Client,
    name: &str,
    memory_bytes: i64,
    sr: &str,
) -> (String, String, String) {
    let template = default_template(client).await;
    let guest = halted_vm(client, &template, name, memory_bytes).await;
    let uuid = vm::field(client, &guest, "uuid").await;
    let disk = create_vdi(client, sr, 16 * MIB).await;
    create_vbd(client, &guest, &disk, "0").await;
    (guest, uuid, disk)
}

/// `VM.<method>(vm, host, false, false)`: `start_on` or `resume_on`.
async fn call_on(client: &Client, method: &str, vm: &str, host: &Node) -> Result<Value, ApiError> {
    let params = vec![
        Value::str(vm),
        Value::str(host.host_ref()),
        Value::Bool(false),
        Value::Bool(false),
    ];
    client.call(&format!("VM.{method}"), params).await
}

/// `VM.<method>(vm)`, which must succeed.
async fn act(client: &Client, method: &str, vm: &str) {
    client
        .ok(&format!("VM.{method}"), vec![Value::str(vm)])
        .await;
}

/// `VM.set_<field>(vm, value)` of a string (or ref) field.
async fn set(client: &Client, vm: &str, field: &str, value: &str) {
    let params = vec![Value::str(vm), Value::str(value)];
    client.ok(&format!("VM.set_{field}"), params).await;
}

/// Fails unless `vm` (uuid `uuid`) runs on host `on` of the pool, in a QEMU that is a child of
/// that host's `oxapi`, and the other host runs no QEMU for it.
async fn assert_runs_on(cluster: &Cluster, client: &Client, vm: &str, uuid: &str, on: usize) {
    assert_eq!(vm::field(client, vm, "power_state").await, "Running");
    let node = &cluster.nodes[on];
    assert_eq!(vm::field(client, vm, "resident_on").await, node.host_ref());
    let pid = guest_pid(&node.data_dir(), uuid)
        .unwrap_or_else(|| panic!("no QEMU runs the VM on host {on}"));
    assert_eq!(parent_pid(pid), node.pid(), "QEMU is a child of host {on}");
    let other = &cluster.nodes[1 - on];
    assert_eq!(guest_pid(&other.data_dir(), uuid), None, "a QEMU on both");
}

/// Suspends `vm`; the SR its suspend image is on.
async fn suspend(client: &Client, vm: &str) -> String {
    act(client, "suspend", vm).await;
    assert_eq!(vm::field(client, vm, "power_state").await, "Suspended");
    let image = vm::field(client, vm, "suspend_VDI").await;
    let sr = client.ok("VDI.get_SR", vec![Value::str(image)]).await;
    sr.as_str().expect("an SR ref").to_owned()
}

/// The first `bytes` of `vdi`, exported raw through `host`.
async fn head_of(host: &Node, client: &Client, vdi: &str, bytes: usize) -> Vec<u8> {
    let query = transfer_query(client, vdi, "raw");
    let (status, mut data) = export_raw(&host.url(), &host.cert_pem(), &query).await;
    assert_eq!(status, 200, "export of {vdi}");
    data.truncate(bytes);
    data
}

/// A VM with no OS and a disk on the shared SR goes back and forth: started on the second
/// host (which the pool's `suspend_image_SR`, the first host's local SR, is not on), it
/// suspends into a suspend VDI on the shared SR and resumes on the first host; suspended
/// again there, it resumes on the second. Halted, it starts on either host, its disk's data
/// as it was; `pool_migrate` of a halted VM is `VM_BAD_POWER_STATE`, as in xapi.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vm_on_a_shared_sr_suspends_on_one_host_and_resumes_on_the_other() {
    let Some((cluster, shared, _dir)) = qemu_pool().await else {
        return;
    };
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let client = first.login(Protocol::JsonRpc).await;
    let (guest, uuid, disk) = vm_with_disk(&client, "roamer", 128 * MIB, &shared).await;
    let data: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 | 1).collect();
    let query = transfer_query(&client, &disk, "raw");
    let (status, body) = import_raw(&second.url(), &second.cert_pem(), &query, data.clone()).await;
    assert_eq!((status, body.as_str()), (200, ""));

    call_on(&client, "start_on", &guest, second)
        .await
        .expect("the VM starts on the second host");
    assert_runs_on(&cluster, &client, &guest, &uuid, 1).await;
    assert_eq!(suspend(&client, &guest).await, shared, "the image's SR");
    assert_eq!(vm::field(&client, &guest, "resident_on").await, NULL_REF);
    assert_eq!(guest_pid(&second.data_dir(), &uuid), None);
    call_on(&client, "resume_on", &guest, first)
        .await
        .expect("the VM resumes on the first host");
    assert_runs_on(&cluster, &client, &guest, &uuid, 0).await;
    assert_eq!(vm::field(&client, &guest, "suspend_VDI").await, NULL_REF);

    assert_eq!(suspend(&client, &guest).await, shared, "the image's SR");
    call_on(&client, "resume_on", &guest, second)
        .await
        .expect("the VM resumes on the second host");
    assert_runs_on(&cluster, &client, &guest, &uuid, 1).await;
    act(&client, "hard_shutdown", &guest).await;
    assert_eq!(head_of(first, &client, &disk, data.len()).await, data);

    for (host, node) in [(0, first), (1, second)] {
        call_on(&client, "start_on", &guest, node)
            .await
            .unwrap_or_else(|err| panic!("the VM starts on host {host}: {err}"));
        assert_runs_on(&cluster, &client, &guest, &uuid, host).await;
        act(&client, "hard_shutdown", &guest).await;
    }
    let options = Value::Struct(BTreeMap::new());
    let params = vec![Value::str(&guest), Value::str(first.host_ref()), options];
    let refused = client.call("VM.pool_migrate", params).await;
    let err = refused.expect_err("a halted VM does not migrate");
    assert_eq!(err.code, "VM_BAD_POWER_STATE", "{err:?}");
    assert_eq!(head_of(second, &client, &disk, data.len()).await, data);
}

/// A VM whose suspend image is on the first host's local SR (its `suspend_SR`) cannot resume
/// on the second host: `VM_REQUIRES_SR [vm; sr]`, and the VM stays suspended with its image,
/// nothing started anywhere. `VM.resume` then picks the first host, though the VM's affinity
/// names the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspend_image_out_of_reach_of_a_host_cannot_resume_there() {
    let Some((cluster, shared, _dir)) = qemu_pool().await else {
        return;
    };
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let client = first.login(Protocol::JsonRpc).await;
    let (guest, uuid, _) = vm_with_disk(&client, "kept", 128 * MIB, &shared).await;
    let local = local_sr_of(&client, &first.host_ref()).await;
    set(&client, &guest, "suspend_SR", &local).await;
    set(&client, &guest, "affinity", &second.host_ref()).await;
    call_on(&client, "start_on", &guest, first)
        .await
        .expect("the VM starts on the first host");
    assert_eq!(suspend(&client, &guest).await, local, "the image's SR");
    let image = vm::field(&client, &guest, "suspend_VDI").await;
    let allowed = client
        .ok("VM.get_allowed_operations", vec![Value::str(&guest)])
        .await;

    let refused = call_on(&client, "resume_on", &guest, second).await;
    let err = refused.expect_err("the second host does not reach the image");
    assert_eq!(err.code, "VM_REQUIRES_SR", "{err:?}");
    assert_eq!(err.params, [guest.clone(), local.clone()]);
    assert_eq!(vm::field(&client, &guest, "power_state").await, "Suspended");
    assert_eq!(vm::field(&client, &guest, "suspend_VDI").await, image);
    assert_eq!(vm::field(&client, &guest, "resident_on").await, NULL_REF);
    let scheduled = vm::field(&client, &guest, "scheduled_to_be_resident_on").await;
    assert_eq!(scheduled, NULL_REF);
    let now_allowed = client
        .ok("VM.get_allowed_operations", vec![Value::str(&guest)])
        .await;
    assert_eq!(now_allowed, allowed);
    for node in [first, second] {
        assert_eq!(guest_pid(&node.data_dir(), &uuid), None);
    }

    client
        .ok(
            "VM.resume",
            vec![Value::str(&guest), Value::Bool(false), Value::Bool(false)],
        )
        .await;
    assert_runs_on(&cluster, &client, &guest, &uuid, 0).await;
}

/// The Linux test guest, booted once on the first host, writes a block to its disk on the
/// shared SR; suspended there and resumed on the second host, it runs on without booting
/// again; `VM.pool_migrate` (not live) takes it back to the first host, where it runs on
/// again, without booting, and powers itself off when its power button is pressed; the block
/// is on the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_linux_guest_suspended_on_one_host_runs_on_from_the_other_and_migrates_back() {
    let Some((cluster, shared, _dir)) = qemu_pool().await else {
        return;
    };
    let Some(linux) = test_guest() else { return };
    let (first, second) = (&cluster.nodes[0], &cluster.nodes[1]);
    let client = first.login(Protocol::JsonRpc).await;
    let (guest, uuid, disk) = vm_with_disk(&client, "linux", 256 * MIB, &shared).await;
    for (field, value) in [
        ("PV_kernel", linux.kernel.display().to_string()),
        ("PV_ramdisk", linux.initrd.display().to_string()),
        ("PV_args", kernel_args(&["oxapi.write=c3"])),
    ] {
        set(&client, &guest, field, &value).await;
    }
    let expected = block_sha256(0xc3);

    call_on(&client, "start_on", &guest, first)
        .await
        .expect("the VM starts on the first host");
    let mut log = SerialLog::new(&serial_log(&first.data_dir(), &uuid));
    let wrote = tokio::task::block_in_place(|| log.wait_for(marker::WROTE, GUEST_TIMEOUT));
    assert_eq!(wrote, Ok(expected.clone()));

    assert_eq!(suspend(&client, &guest).await, shared, "the image's SR");
    call_on(&client, "resume_on", &guest, second)
        .await
        .expect("the VM resumes on the second host");
    assert_runs_on(&cluster, &client, &guest, &uuid, 1).await;
    let options = Value::Struct(BTreeMap::new());
    let back = vec![Value::str(&guest), Value::str(first.host_ref()), options];
    client.ok("VM.pool_migrate", back).await;
    assert_runs_on(&cluster, &client, &guest, &uuid, 0).await;
    let mut there = SerialLog::new(&last_serial_log(&second.data_dir(), &uuid));
    assert!(
        there.wait_for(marker::UP, Duration::ZERO).is_err(),
        "the guest did not boot on the second host"
    );
    act(&client, "clean_shutdown", &guest).await;
    assert_eq!(vm::field(&client, &guest, "power_state").await, "Halted");
    let mut back_there = SerialLog::new(&last_serial_log(&first.data_dir(), &uuid));
    assert!(
        back_there
            .wait_for(marker::POWEROFF, Duration::ZERO)
            .is_ok()
    );
    let mut booted = SerialLog::new(&last_serial_log(&first.data_dir(), &uuid));
    assert!(
        booted.wait_for(marker::UP, Duration::ZERO).is_err(),
        "the guest did not boot again"
    );
    let block = head_of(first, &client, &disk, BLOCK_BYTES).await;
    assert_eq!(sha256_hex(&block), expected, "the block is on the disk");
}
