//! VDIs with data against a real `oxapi` whose local SR is kept by the `file` driver: each
//! VDI call asks the driver first, which makes, grows, branches or deletes a qcow2 file in the
//! SR's directory, and the row records what the driver made; bad input changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_spec::Value;
use oxapi_tests::storage::{
    create_vdi as create, file_driver_host, image_info, local_sr, qemu_io, sr_directory,
};
use oxapi_tests::{Client, Host, Protocol, logged_in};

const GIB: i64 = 1 << 30;

/// The file of `vdi` in the SR's directory `dir`.
async fn file_of(client: &Client, dir: &Path, vdi: &str) -> PathBuf {
    let location = client.ok("VDI.get_location", vec![Value::str(vdi)]).await;
    dir.join(location.as_str().expect("a location"))
}

/// A 1 GiB disk in the local SR of a new host run by the file driver, with its file.
struct FileDisk {
    _host: Host,
    client: Client,
    sr: String,
    dir: PathBuf,
    vdi: String,
    file: PathBuf,
}

impl FileDisk {
    async fn new() -> FileDisk {
        let host = file_driver_host();
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let sr = local_sr(&client).await;
        let dir = sr_directory(&client, &sr).await;
        let vdi = create(&client, &sr, GIB).await;
        let file = file_of(&client, &dir, &vdi).await;
        FileDisk {
            _host: host,
            client,
            sr,
            dir,
            vdi,
            file,
        }
    }

    /// The disk's `virtual_size` as the pool DB has it.
    async fn recorded_size(&self) -> Value {
        let vdi = Value::str(&self.vdi);
        self.client.ok("VDI.get_virtual_size", vec![vdi]).await
    }
}

/// The virtual size `qemu-img` reads in the image at `path`.
fn virtual_size(path: &Path) -> i64 {
    let info = image_info(path).expect("a qcow2 image");
    info["virtual-size"].as_i64().expect("a size")
}

/// `VDI.create` makes a qcow2 file of the size asked in the SR's directory; `resize` grows
/// it, a shrink is `SR_BACKEND_FAILURE_79` and leaves it as it was; `destroy` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vdi_is_a_qcow2_file_that_grows_and_goes() {
    let disk = FileDisk::new().await;
    let (client, vdi, file) = (&disk.client, &disk.vdi, &disk.file);
    assert!(file.starts_with(&disk.dir), "{file:?}");
    let info = image_info(file).expect("a qcow2 image");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(virtual_size(file), GIB);

    let resize = |size: i64| client.call("VDI.resize", vec![Value::str(vdi), Value::Int(size)]);
    assert_eq!(resize(2 * GIB).await, Ok(Value::str("")));
    assert_eq!(virtual_size(file), 2 * GIB);
    assert_eq!(disk.recorded_size().await, Value::Int(2 * GIB));
    let shrink = resize(GIB).await.expect_err("a shrink is refused");
    assert_eq!(shrink.code, "SR_BACKEND_FAILURE_79", "{shrink:?}");
    assert_eq!(virtual_size(file), 2 * GIB);
    assert_eq!(disk.recorded_size().await, Value::Int(2 * GIB));

    assert_eq!(
        client.call("VDI.destroy", vec![Value::str(vdi)]).await,
        Ok(Value::str(""))
    );
    assert!(!file.exists(), "{file:?} is removed");
}

/// A snapshot and a clone read the data their original held: a block written into the
/// original's file before is read back from both, also once the original is destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_clones_hold_their_originals_data() {
    let disk = FileDisk::new().await;
    let (client, vdi) = (&disk.client, &disk.vdi);
    assert!(qemu_io(&disk.file, "write -P 0xab 0 64k"));
    let empty = Value::Struct(BTreeMap::new());
    let mut made = Vec::new();
    for method in ["VDI.snapshot", "VDI.clone"] {
        let new = client
            .ok(method, vec![Value::str(vdi), empty.clone()])
            .await;
        let new = new.as_str().expect("a ref").to_owned();
        let file = file_of(client, &disk.dir, &new).await;
        assert!(qemu_io(&file, "read -P 0xab 0 64k"), "{method}: {file:?}");
        assert!(!qemu_io(&file, "read -P 0xcd 0 64k"), "the check can fail");
        made.push(new);
    }
    assert_eq!(
        client
            .ok("VDI.get_is_a_snapshot", vec![Value::str(&made[0])])
            .await,
        Value::Bool(true)
    );
    assert_eq!(
        client
            .ok("VDI.get_snapshot_of", vec![Value::str(&made[0])])
            .await,
        Value::str(vdi)
    );
    assert!(
        qemu_io(&disk.file, "read -P 0xab 0 64k"),
        "the original keeps its data"
    );
    let sr_of = client.ok("VDI.get_SR", vec![Value::str(&made[1])]).await;
    assert_eq!(sr_of, Value::str(&disk.sr));

    // The original destroyed, its snapshot and clone still read its data: the chain's base
    // stays (no coalesce) while a child needs it.
    client.ok("VDI.destroy", vec![Value::str(vdi)]).await;
    assert!(!disk.file.exists(), "the original's file goes");
    for new in &made {
        let file = file_of(client, &disk.dir, new).await;
        assert!(qemu_io(&file, "read -P 0xab 0 64k"), "{file:?}");
    }
}

/// A VDI whose file is not a qcow2 image is not resized (`SR_BACKEND_FAILURE_110`, with
/// `qemu-img`'s complaint) and its file is left as it was; the row keeps its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_image_is_refused_and_left_alone() {
    let disk = FileDisk::new().await;
    let junk = b"this is not a qcow2 image".to_vec();
    std::fs::write(&disk.file, &junk).expect("corrupted");
    let error = disk
        .client
        .call(
            "VDI.resize",
            vec![Value::str(&disk.vdi), Value::Int(2 * GIB)],
        )
        .await
        .expect_err("a corrupt image is refused");
    assert_eq!(error.code, "SR_BACKEND_FAILURE_110", "{error:?}");
    assert!(!error.params[2].is_empty(), "qemu-img's stderr: {error:?}");
    assert_eq!(std::fs::read(&disk.file).expect("still there"), junk);
    assert_eq!(disk.recorded_size().await, Value::Int(GIB));
}
