//! SRs made, plugged, unplugged and removed through the API against a real `oxapi` run by the
//! `file` driver: a `file` SR in a temp directory holds qcow2 VDIs and refuses storage calls
//! while its PBD is unplugged; an `iso` SR lists the `.iso` files of its directory as
//! read-only VDIs and refuses to write.

use api_spec::Value;
use oxapi_tests::storage::{
    create_sr, create_vdi, file_driver_host, filesystem_figures, vdi_record,
};
use oxapi_tests::{Client, Protocol, logged_in};

const MIB: i64 = 1 << 20;

/// The int field `field` of `sr`.
async fn int_field(client: &Client, sr: &str, field: &str) -> i64 {
    let value = client
        .ok(&format!("SR.get_{field}"), vec![Value::str(sr)])
        .await;
    value.as_int().expect("an int")
}

/// The one PBD of `sr`.
async fn pbd_of(client: &Client, sr: &str) -> Value {
    let pbds = client.ok("SR.get_PBDs", vec![Value::str(sr)]).await;
    let pbds = pbds.as_array().expect("a list");
    let [pbd] = pbds else {
        panic!("one PBD, got {pbds:?}");
    };
    pbd.clone()
}

/// The error code of `method(sr)`, or `None` when it succeeds.
async fn refusal(client: &Client, method: &str, sr: &str) -> Option<String> {
    client
        .call(method, vec![Value::str(sr)])
        .await
        .err()
        .map(|err| err.code)
}

/// A `file` SR made on a new directory is as large as that directory's filesystem, allocates
/// what its VDIs add up to, and holds a VDI as a qcow2 file there; with its PBD
/// unplugged, `VDI.create` is `SR_HAS_NO_PBDS`; plugged again, it works again. Forget and
/// destroy are `SR_HAS_PBD` while plugged, destroy `SR_NOT_EMPTY` while a VDI is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sr_is_made_plugged_and_unplugged_through_the_api() {
    let host = file_driver_host();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let location = dir.path().join("sr");
    let sr = create_sr(&client, "file", &location.to_string_lossy())
        .await
        .expect("SR.create");
    assert!(location.is_dir(), "the driver made the SR's directory");
    let pbd = pbd_of(&client, &sr).await;
    assert_eq!(
        client
            .ok("PBD.get_currently_attached", vec![pbd.clone()])
            .await,
        Value::Bool(true)
    );

    // Made, the SR is as large as its directory's filesystem and takes what is used there.
    let (size, used) = filesystem_figures(&location);
    assert_eq!(int_field(&client, &sr, "physical_size").await, size);
    let utilisation = int_field(&client, &sr, "physical_utilisation").await;
    assert!(
        utilisation > 0 && utilisation <= size,
        "{utilisation} of {size}, df says {used}"
    );
    assert_eq!(int_field(&client, &sr, "virtual_allocation").await, 0);

    let vdi = create_vdi(&client, &sr, MIB).await;
    let file = client.ok("VDI.get_location", vec![Value::str(&vdi)]).await;
    let file = location.join(file.as_str().expect("a location"));
    assert!(file.is_file(), "{file:?}");
    create_vdi(&client, &sr, 3 * MIB).await;
    assert_eq!(
        int_field(&client, &sr, "virtual_allocation").await,
        4 * MIB,
        "the SR allocates what its disks add up to"
    );
    client.ok("VDI.destroy", vec![Value::str(&vdi)]).await;
    assert_eq!(int_field(&client, &sr, "virtual_allocation").await, 3 * MIB);
    assert_eq!(
        refusal(&client, "SR.forget", &sr).await.as_deref(),
        Some("SR_HAS_PBD")
    );

    client.ok("PBD.unplug", vec![pbd.clone()]).await;
    let refused = client
        .call("VDI.create", vec![Value::Struct(vdi_record(&sr, MIB))])
        .await;
    assert_eq!(
        refused.map_err(|err| err.code),
        Err("SR_HAS_NO_PBDS".to_owned())
    );
    assert_eq!(
        refusal(&client, "SR.destroy", &sr).await.as_deref(),
        Some("SR_NOT_EMPTY")
    );

    client.ok("PBD.plug", vec![pbd]).await;
    create_vdi(&client, &sr, MIB).await;
    assert_eq!(
        refusal(&client, "SR.destroy", &sr).await.as_deref(),
        Some("SR_HAS_PBD")
    );
}

/// `SR.create` of an `iso` SR on a missing directory is refused and records nothing; on a
/// directory holding an `.iso` file, `SR.scan` makes a read-only VDI of it with the file's
/// size, and `VDI.create` on it is `SR_OPERATION_NOT_SUPPORTED`. An unknown SR type is
/// `SR_UNKNOWN_DRIVER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iso_sr_lists_its_files_read_only() {
    let host = file_driver_host();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let srs = client.ok("SR.get_all", vec![]).await;
    let missing = dir.path().join("missing");
    assert_eq!(
        create_sr(&client, "iso", &missing.to_string_lossy()).await,
        Err("SR_BACKEND_FAILURE_47".to_owned())
    );
    assert!(!missing.exists());
    assert_eq!(
        create_sr(&client, "lvmoiscsi", "/nowhere").await,
        Err("SR_UNKNOWN_DRIVER".to_owned())
    );
    assert_eq!(client.ok("SR.get_all", vec![]).await, srs);

    let iso = std::fs::File::create(dir.path().join("x.iso")).expect("an ISO file");
    iso.set_len(MIB as u64).expect("its length");
    let sr = create_sr(&client, "iso", &dir.path().to_string_lossy())
        .await
        .expect("SR.create");
    client.ok("SR.scan", vec![Value::str(&sr)]).await;
    let vdis = client.ok("SR.get_VDIs", vec![Value::str(&sr)]).await;
    let vdis = vdis.as_array().expect("a list");
    let [vdi] = vdis else {
        panic!("one VDI, got {vdis:?}");
    };
    let record = client.ok("VDI.get_record", vec![vdi.clone()]).await;
    let record = record.as_struct().expect("a record");
    assert_eq!(record["location"], Value::str("x.iso"));
    assert_eq!(record["read_only"], Value::Bool(true));
    assert_eq!(record["virtual_size"], Value::Int(MIB));

    let refused = client
        .call("VDI.create", vec![Value::Struct(vdi_record(&sr, MIB))])
        .await;
    let refused = refused.expect_err("no VDI is made in an ISO library");
    assert_eq!(refused.code, "SR_OPERATION_NOT_SUPPORTED", "{refused:?}");
    assert_eq!(refused.params, std::slice::from_ref(&sr));
    assert!(dir.path().join("x.iso").is_file());

    client
        .ok("PBD.unplug", vec![pbd_of(&client, &sr).await])
        .await;
    assert_eq!(
        refusal(&client, "SR.destroy", &sr).await.as_deref(),
        Some("SR_NOT_EMPTY")
    );
    client.ok("SR.forget", vec![Value::str(&sr)]).await;
    assert_eq!(client.ok("SR.get_all", vec![]).await, srs);
    assert!(
        dir.path().join("x.iso").is_file(),
        "a forgotten SR keeps its data"
    );
}
