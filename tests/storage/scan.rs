//! `SR.scan` against a real `oxapi`: the host's storage driver (the simulator's) is asked what
//! the SR holds, and a volume the pool DB has no VDI for gets one; with the `file` driver, a
//! qcow2 file made in the local SR's directory is such a volume.

use api_spec::Value;
use oxapi_tests::storage::{file_driver_host, local_sr, sr_directory};
use oxapi_tests::{Client, Host, Protocol, logged_in, read_simulator_state};

/// The VDIs of `sr` with `location`.
async fn vdis_at(client: &Client, sr: &str, location: &str) -> Vec<String> {
    let all = client.ok("VDI.get_all", vec![]).await;
    let mut found = Vec::new();
    for vdi in all.as_array().expect("a list") {
        let of = client.ok("VDI.get_SR", vec![vdi.clone()]).await;
        let at = client.ok("VDI.get_location", vec![vdi.clone()]).await;
        if of.as_str() == Some(sr) && at.as_str() == Some(location) {
            found.push(vdi.as_str().expect("a ref").to_owned());
        }
    }
    found
}

/// A volume put in the simulator's storage while the host was down is found by `SR.scan`:
/// it gets a VDI row with the size the driver reports, once, however often the SR is scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_gives_a_volume_the_host_holds_a_vdi() {
    let mut host = Host::start();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let sr = local_sr(&client).await;
    let uuid = client.ok("SR.get_uuid", vec![Value::str(&sr)]).await;
    let uuid = uuid.as_str().expect("a uuid").to_owned();
    assert_eq!(
        client.call("SR.scan", vec![Value::str(&sr)]).await,
        Ok(Value::str(""))
    );
    assert!(vdis_at(&client, &sr, "found.img").await.is_empty());
    assert_eq!(host.stop(), Some(0));

    let state_path = host.simulator_state();
    let mut state = read_simulator_state(&state_path).expect("the simulator's state");
    state["storage"]["srs"][&uuid]["found.img"] = serde_json::json!({
        "location": "found.img",
        "virtual_size_bytes": 3u64 << 30,
        "physical_utilisation_bytes": 1u64 << 30,
        "read_only": false,
    });
    std::fs::write(&state_path, serde_json::to_vec(&state).expect("JSON")).expect("written");
    host.start_again();

    let client = logged_in(&host, Protocol::JsonRpc).await;
    for _ in 0..2 {
        assert_eq!(
            client.call("SR.scan", vec![Value::str(&sr)]).await,
            Ok(Value::str(""))
        );
    }
    let found = vdis_at(&client, &sr, "found.img").await;
    let [vdi] = found.as_slice() else {
        panic!("one VDI at found.img, got {found:?}");
    };
    assert_eq!(
        client
            .ok("VDI.get_virtual_size", vec![Value::str(vdi)])
            .await,
        Value::Int(3 << 30)
    );
}

/// With `agent.storage_driver = "file"`, a qcow2 image made with `qemu-img` in the local SR's
/// directory is found by `SR.scan` with its virtual size; a file that is not qcow2 beside it
/// is skipped, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_finds_a_qcow2_file_in_the_local_sr() {
    let host = file_driver_host();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let sr = local_sr(&client).await;
    let dir = sr_directory(&client, &sr).await;
    assert!(dir.starts_with(host.data_dir()), "{dir:?}");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(dir.join("x.qcow2"))
        .arg("1G")
        .status()
        .expect("qemu-img runs (tests/run installs it)");
    assert!(status.success());
    std::fs::write(dir.join("junk.qcow2"), b"not an image").expect("written");

    assert_eq!(
        client.call("SR.scan", vec![Value::str(&sr)]).await,
        Ok(Value::str(""))
    );
    let found = vdis_at(&client, &sr, "x.qcow2").await;
    let [vdi] = found.as_slice() else {
        panic!("one VDI at x.qcow2, got {found:?}");
    };
    assert_eq!(
        client
            .ok("VDI.get_virtual_size", vec![Value::str(vdi)])
            .await,
        Value::Int(1 << 30)
    );
    assert!(vdis_at(&client, &sr, "junk.qcow2").await.is_empty());
}
