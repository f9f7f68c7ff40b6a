//! A VDI's bytes between the hosts of a 2-host pool with the `file` storage driver: xapi's
//! HTTP handlers (an image `PUT` to `/import_raw_vdi` on the host that does not have the
//! VDI's SR goes through the data plane into the VDI, with bounded memory on both hosts, and
//! comes back from `/export_raw_vdi` in raw and qcow2; bad requests get xapi's answers and
//! leave the VDI as it was), and `VDI.copy` / `VM.copy` to the other host's SR, which carry
//! the data host to host.

use std::path::PathBuf;

use api_spec::Value;
use oxapi_tests::Client;
use oxapi_tests::Protocol;
use oxapi_tests::cluster::{Cluster, ClusterOptions, Node};
use oxapi_tests::events::wait_task;
use oxapi_tests::storage::{
    create_vbd, create_vdi, export_raw, import_raw, local_sr_of, transfer_query as query,
};
use oxapi_tests::vms::{default_template, halted_vm};
use serde_json::json;

const MIB: usize = 1 << 20;
const NULL: &str = "OpaqueRef:NULL";
/// How much a host's resident memory may grow while an image passes through it.
const RSS_GROWTH_LIMIT: u64 = 64 << 20;

/// A 2-host pool whose directory SRs keep qcow2 files; the index of its master.
async fn file_pool() -> (Cluster, usize) {
    let mut options = ClusterOptions::hosts(2);
    for host in 0..2 {
        options
            .host_config
            .insert(host, json!({ "agent": { "storage_driver": "file" } }));
    }
    let cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1]).await;
    (cluster, master)
}

/// A new VDI of `bytes` on the local SR of `host` (a qcow2 file its driver makes); its uuid.
async fn local_vdi(client: &Client, host: &Node, bytes: usize) -> String {
    let size = i64::try_from(bytes).expect("a small disk");
    let vdi = create_vdi(client, &local_sr_of(client, &host.host_ref()).await, size).await;
    uuid_of(client, "VDI", &vdi).await
}

/// The uuid of the object `r` of `class`.
async fn uuid_of(client: &Client, class: &str, r: &str) -> String {
    let uuid = client
        .ok(&format!("{class}.get_uuid"), vec![Value::str(r)])
        .await;
    uuid.as_str().expect("a uuid").to_owned()
}

/// `PUT /import_raw_vdi` of `image` to `host`; the status and the body.
async fn import(host: &Node, query: &str, image: Vec<u8>) -> (u16, String) {
    import_raw(&host.url(), &host.cert_pem(), query, image).await
}

/// `GET /export_raw_vdi` from `host`; the status and the bytes.
async fn export(host: &Node, query: &str) -> (u16, Vec<u8>) {
    export_raw(&host.url(), &host.cert_pem(), query).await
}

/// `size` bytes of a pattern, every third MiB a hole of zeros, and zeros at the end.
fn image(size: usize) -> Vec<u8> {
    let mut image: Vec<u8> = (0..size).map(|i| (i % 253) as u8 | 1).collect();
    for (index, block) in image.chunks_mut(MIB).enumerate() {
        if index % 3 == 1 {
            block.fill(0);
        }
    }
    let tail = size - MIB / 2;
    image[tail..].fill(0);
    image
}

/// A file of `bytes` in a new temp dir (kept while the dir lives).
fn temp_file(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("written");
    (dir, path)
}

/// A qcow2 image as raw bytes, through `qemu-img convert`.
fn qcow2_to_raw(qcow2: &[u8]) -> Vec<u8> {
    let (dir, path) = temp_file(qcow2, "exported.qcow2");
    let raw = dir.path().join("exported.raw");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&path)
        .arg(&raw)
        .status()
        .expect("qemu-img runs");
    assert!(status.success());
    std::fs::read(raw).expect("the raw image")
}

/// A raw image of 96 MiB with holes, imported through the host that does not have the VDI's
/// SR, reaches the VDI without either host's resident memory growing by 64 MiB; it comes
/// back byte for byte from both hosts in raw (zeros after it) and in qcow2, and an import
/// with a task reports on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_imported_through_another_host_comes_back_whole() {
    let (cluster, master) = file_pool().await;
    let (sr_host, front) = (&cluster.nodes[master], &cluster.nodes[1 - master]);
    let client = front.login(Protocol::JsonRpc).await;
    let vdi = local_vdi(&client, sr_host, 128 * MIB).await;
    let image = image(96 * MIB);
    let before = cluster.reset_peak_resident();
    let (status, body) = import(front, &query(&client, &vdi, "raw"), image.clone()).await;
    assert_eq!((status, body.as_str()), (200, ""));
    cluster.assert_peak_growth_below(&before, RSS_GROWTH_LIMIT);
    let mut expected = image.clone();
    expected.resize(128 * MIB, 0);
    for host in [front, sr_host] {
        let (status, raw) = export(host, &query(&client, &vdi, "raw")).await;
        assert_eq!(status, 200);
        assert!(
            raw == expected,
            "the raw export from host {} differs",
            host.index
        );
    }
    let (status, qcow2) = export(front, &query(&client, &vdi, "qcow2")).await;
    assert_eq!(status, 200);
    assert!(qcow2.starts_with(b"QFI\xfb"));
    assert!(qcow2_to_raw(&qcow2) == expected, "the qcow2 export differs");

    let task = client
        .ok("task.create", vec![Value::str("import"), Value::str("")])
        .await;
    let task = task.as_str().expect("a task").to_owned();
    let with_task = format!("{}&task_id={task}", query(&client, &vdi, "qcow2"));
    let (status, _) = import(front, &with_task, qcow2).await;
    assert_eq!(status, 200);
    let record = client.ok("task.get_record", vec![Value::str(&task)]).await;
    let record = record.as_struct().expect("a record");
    assert_eq!(record.get("status"), Some(&Value::str("success")));
    assert_eq!(record.get("progress"), Some(&Value::Float(1.0)));
}

/// Without a session or with a bad one the answer is 401; an unknown format is
/// `VALUE_NOT_SUPPORTED` (400); an image larger than the VDI is `VDI_TOO_SMALL` and a corrupt
/// qcow2 `VDI_IO_ERROR` (500), and after each the VDI holds what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_imports_are_refused_and_change_nothing() {
    let (cluster, master) = file_pool().await;
    let (sr_host, front) = (&cluster.nodes[master], &cluster.nodes[1 - master]);
    let client = front.login(Protocol::JsonRpc).await;
    let vdi = local_vdi(&client, sr_host, 4 * MIB).await;
    let kept = image(4 * MIB);
    let (status, _) = import(front, &query(&client, &vdi, "raw"), kept.clone()).await;
    assert_eq!(status, 200);

    let no_session = format!("vdi={vdi}&format=raw");
    assert_eq!(import(front, &no_session, kept.clone()).await.0, 401);
    let bad_session = format!("session_id=OpaqueRef:nobody&{no_session}");
    assert_eq!(export(front, &bad_session).await.0, 401);
    let (status, body) = import(front, &query(&client, &vdi, "vhd"), kept.clone()).await;
    assert_eq!(status, 400);
    assert!(body.contains("VALUE_NOT_SUPPORTED"), "{body}");

    let (status, body) = import(front, &query(&client, &vdi, "raw"), vec![9u8; 5 * MIB]).await;
    assert_eq!(status, 500);
    assert!(body.contains("VDI_TOO_SMALL"), "{body}");
    let corrupt = b"QFI\xfbthis is no qcow2 image".repeat(1000);
    let (status, body) = import(front, &query(&client, &vdi, "qcow2"), corrupt).await;
    assert_eq!(status, 500);
    assert!(body.contains("VDI_IO_ERROR"), "{body}");
    let (status, after) = export(front, &query(&client, &vdi, "raw")).await;
    assert_eq!(status, 200);
    assert!(after == kept, "the VDI changed");
}

/// `VDI.copy` to the local SR of the other host moves the VDI's data there (as a task, which
/// ends with success), and so does `VM.copy` to that SR for the VM's disk; each copy comes
/// back byte for byte from its own SR, and the original is left as it was. A copy to an SR
/// attached nowhere is `SR_HAS_NO_PBDS` and leaves no VDI behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_to_the_other_hosts_sr_carry_the_data() {
    let (cluster, master) = file_pool().await;
    let (source, other) = (&cluster.nodes[master], &cluster.nodes[1 - master]);
    let client = other.login(Protocol::JsonRpc).await;
    let vdi_uuid = local_vdi(&client, source, 24 * MIB).await;
    let original = image(24 * MIB);
    let (status, _) = import(source, &query(&client, &vdi_uuid, "raw"), original.clone()).await;
    assert_eq!(status, 200);
    let vdi = client
        .ok("VDI.get_by_uuid", vec![Value::str(&vdi_uuid)])
        .await;
    let to_sr = local_sr_of(&client, &other.host_ref()).await;
    let holds = |uuid: String, what: &'static str| {
        let (client, original) = (&client, &original);
        async move {
            let (status, raw) = export(other, &query(client, &uuid, "raw")).await;
            assert_eq!(status, 200, "export of {what}");
            assert!(raw == *original, "{what} differs from the original");
        }
    };

    let task = client
        .ok(
            "Async.VDI.copy",
            vec![
                vdi.clone(),
                Value::str(&to_sr),
                Value::str(NULL),
                Value::str(NULL),
            ],
        )
        .await;
    let done = wait_task(&client, &task, |t| {
        t.get("status") != Some(&Value::str("pending"))
    })
    .await;
    assert_eq!(done.get("status"), Some(&Value::str("success")), "{done:?}");
    // A task's result is the XML-RPC value of the call's answer, as xapi keeps it.
    let result = done
        .get("result")
        .and_then(Value::as_str)
        .expect("a result");
    let copy = result
        .trim_start_matches("<value>")
        .trim_end_matches("</value>")
        .to_owned();
    let sr = client.ok("VDI.get_SR", vec![Value::str(&copy)]).await;
    assert_eq!(sr.as_str(), Some(to_sr.as_str()));
    holds(uuid_of(&client, "VDI", &copy).await, "the VDI's copy").await;
    holds(vdi_uuid.clone(), "the original").await;

    let template = default_template(&client).await;
    let vm = halted_vm(&client, &template, "with a disk", 64 * MIB as i64).await;
    create_vbd(&client, &vm, vdi.as_str().expect("a ref"), "0").await;
    let vm_copy = client
        .ok(
            "VM.copy",
            vec![Value::str(&vm), Value::str("copied"), Value::str(&to_sr)],
        )
        .await;
    let vbds = client.ok("VM.get_VBDs", vec![vm_copy]).await;
    let vbd = vbds.as_array().and_then(|v| v.first()).expect("a VBD");
    let disk = client.ok("VBD.get_VDI", vec![vbd.clone()]).await;
    let disk = disk.as_str().expect("a VDI ref").to_owned();
    holds(uuid_of(&client, "VDI", &disk).await, "the VM copy's disk").await;

    let vdis = client.ok("VDI.get_all", vec![]).await;
    let pbds = client.ok("SR.get_PBDs", vec![Value::str(&to_sr)]).await;
    for pbd in pbds.as_array().expect("PBDs") {
        client.ok("PBD.unplug", vec![pbd.clone()]).await;
    }
    let refused = client
        .call(
            "VDI.copy",
            vec![vdi, Value::str(&to_sr), Value::str(NULL), Value::str(NULL)],
        )
        .await
        .expect_err("no PBD is attached");
    assert_eq!(refused.code, "SR_HAS_NO_PBDS");
    assert_eq!(client.ok("VDI.get_all", vec![]).await, vdis);
}
