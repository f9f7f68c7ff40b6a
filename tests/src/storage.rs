//! Storage on a test host: its local SR, the directory the `file` driver keeps that SR's
//! VDIs in, a host that runs that driver, what `qemu-img` / `qemu-io` say of a VDI's file, and
//! a VDI's bytes through `PUT /import_raw_vdi` and `GET /export_raw_vdi`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_spec::Value;

use crate::{Client, Host, HostOptions};

/// A one-host pool whose local SR keeps its VDIs as qcow2 files (`agent.storage_driver =
/// "file"`).
pub fn file_driver_host() -> Host {
    Host::start_with(HostOptions {
        root_password: Some(format!("pw-{}", std::process::id())),
        config: Some(serde_json::json!({ "agent": { "storage_driver": "file" } })),
        ..HostOptions::default()
    })
}

/// The SR of the host's first PBD: its local SR.
pub async fn local_sr(client: &Client) -> String {
    let pbds = client.ok("PBD.get_all", vec![]).await;
    let pbd = pbds.as_array().and_then(|p| p.first()).expect("a PBD");
    let sr = client.ok("PBD.get_SR", vec![pbd.clone()]).await;
    sr.as_str().expect("an SR ref").to_owned()
}

/// `SR.create` on the pool's one host: a non-shared SR of `sr_type` at `location`.
pub async fn create_sr(client: &Client, sr_type: &str, location: &str) -> Result<String, String> {
    let hosts = client.ok("host.get_all", vec![]).await;
    let host = hosts.as_array().and_then(|h| h.first()).expect("a host");
    let config = BTreeMap::from([("location".to_owned(), Value::str(location))]);
    let params = vec![
        host.clone(),
        Value::Struct(config),
        Value::Int(0),
        Value::str(format!("{sr_type} SR")),
        Value::str(""),
        Value::str(sr_type),
        Value::str("user"),
        Value::Bool(false),
        Value::Struct(BTreeMap::new()),
    ];
    match client.call("SR.create", params).await {
        Ok(sr) => Ok(sr.as_str().expect("a ref").to_owned()),
        Err(err) => Err(err.code),
    }
}

/// The local SR of `host` (a ref): the SR of its PBDs that is not shared.
pub async fn local_sr_of(client: &Client, host: &str) -> String {
    let pbds = client.ok("host.get_PBDs", vec![Value::str(host)]).await;
    for pbd in pbds.as_array().expect("a set of PBDs") {
        let sr = client.ok("PBD.get_SR", vec![pbd.clone()]).await;
        let shared = client.ok("SR.get_shared", vec![sr.clone()]).await;
        if shared == Value::Bool(false) {
            return sr.as_str().expect("an SR ref").to_owned();
        }
    }
    panic!("host {host} has no local SR");
}

/// A user disk of `size` bytes in `sr`, made through `VDI.create`; its ref.
pub async fn create_vdi(client: &Client, sr: &str, size: i64) -> String {
    let vdi = client
        .ok("VDI.create", vec![Value::Struct(vdi_record(sr, size))])
        .await;
    vdi.as_str().expect("a ref").to_owned()
}

/// A read-write disk VBD of `vdi` at `userdevice` of `vm` (bootable when it is "0"), made
/// through `VBD.create`: detached until the VM starts or the VBD is plugged; its ref.
pub async fn create_vbd(client: &Client, vm: &str, vdi: &str, userdevice: &str) -> String {
    new_vbd(client, vm, Some(vdi), userdevice, "Disk").await
}

/// A read-only CD drive of `vm` at `userdevice`, holding `iso` or empty, made through
/// `VBD.create`; its ref.
pub async fn create_cd(client: &Client, vm: &str, iso: Option<&str>, userdevice: &str) -> String {
    new_vbd(client, vm, iso, userdevice, "CD").await
}

/// A VBD of `kind` (`Disk` or `CD`) at `userdevice` of `vm`, on `vdi` or empty.
async fn new_vbd(
    client: &Client,
    vm: &str,
    vdi: Option<&str>,
    userdevice: &str,
    kind: &str,
) -> String {
    let mode = if kind == "CD" { "RO" } else { "RW" };
    let record = vbd_record(vm, vdi, userdevice, kind, mode);
    let vbd = client.ok("VBD.create", vec![record]).await;
    vbd.as_str().expect("a ref").to_owned()
}

/// `VBD.create`'s record of a VBD of `kind` (`Disk` or `CD`) in `mode` (`RW` or `RO`) at
/// `userdevice` of `vm` (bootable when it is "0"), on `vdi` or empty.
pub fn vbd_record(vm: &str, vdi: Option<&str>, userdevice: &str, kind: &str, mode: &str) -> Value {
    let empty = || Value::Struct(BTreeMap::new());
    let record: BTreeMap<String, Value> = [
        ("VM", Value::str(vm)),
        ("VDI", Value::str(vdi.unwrap_or("OpaqueRef:NULL"))),
        ("userdevice", Value::str(userdevice)),
        ("bootable", Value::Bool(userdevice == "0")),
        ("mode", Value::str(mode)),
        ("type", Value::str(kind)),
        ("empty", Value::Bool(vdi.is_none())),
        ("other_config", empty()),
        ("qos_algorithm_type", Value::str("")),
        ("qos_algorithm_params", empty()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Value::Struct(record)
}

/// The size and the bytes used of the filesystem holding `path`, as `df` reports them.
pub fn filesystem_figures(path: &Path) -> (i64, i64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,used"])
        .arg(path)
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("a line of figures");
    let mut figures = line
        .split_whitespace()
        .map(|f| f.parse().expect("a number"));
    let size = figures.next().expect("a size");
    (size, figures.next().expect("the bytes used"))
}

/// `VDI.create`'s record of a user disk of `size` bytes in `sr`.
pub fn vdi_record(sr: &str, size: i64) -> BTreeMap<String, Value> {
    [
        ("name_label", Value::str("data")),
        ("SR", Value::str(sr)),
        ("virtual_size", Value::Int(size)),
        ("type", Value::str("user")),
        ("sharable", Value::Bool(false)),
        ("read_only", Value::Bool(false)),
        ("other_config", Value::Struct(BTreeMap::new())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The directory of `sr` as its first PBD's `device_config:location` names it.
pub async fn sr_directory(client: &Client, sr: &str) -> PathBuf {
    let pbds = client.ok("SR.get_PBDs", vec![Value::str(sr)]).await;
    let pbd = pbds.as_array().and_then(|p| p.first()).expect("a PBD");
    let config = client.ok("PBD.get_device_config", vec![pbd.clone()]).await;
    let config = config.as_struct().expect("a map");
    let dir = config
        .get("location")
        .and_then(Value::as_str)
        .expect("the SR's directory, as a file SR's PBD names it");
    PathBuf::from(dir)
}

/// What `qemu-img info` says of the image at `path` (`None` when it is not one).
pub fn image_info(path: &Path) -> Option<serde_json::Value> {
    let output = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .expect("qemu-img runs (tests/run installs it)");
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// Runs `qemu-io -c <command>` on the qcow2 image at `path`; whether it succeeded (a `read
/// -P` pattern that does not match fails).
pub fn qemu_io(path: &Path, command: &str) -> bool {
    let output = std::process::Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command])
        .arg(path)
        .output()
        .expect("qemu-io runs (tests/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    output.status.success() && !stdout.contains("Pattern verification failed")
}

/// An HTTPS client of the host at `cert_pem`, its certificate pinned.
fn http(cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(crate::client::pinned_tls(cert_pem))
        .build()
        .expect("a client")
}

/// `PUT /import_raw_vdi?{query}` of `image` to the host at `url`; the status and the body.
pub async fn import_raw(url: &str, cert_pem: &[u8], query: &str, image: Vec<u8>) -> (u16, String) {
    let reply = http(cert_pem)
        .put(format!("{url}/import_raw_vdi?{query}"))
        .body(image)
        .send()
        .await
        .expect("an answer");
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap_or_default())
}

/// `GET /export_raw_vdi?{query}` from the host at `url`; the status and the bytes.
pub async fn export_raw(url: &str, cert_pem: &[u8], query: &str) -> (u16, Vec<u8>) {
    let reply = http(cert_pem)
        .get(format!("{url}/export_raw_vdi?{query}"))
        .send()
        .await
        .expect("an answer");
    let status = reply.status().as_u16();
    let bytes = reply.bytes().await.expect("the whole body");
    (status, bytes.to_vec())
}

/// `PUT /import_raw_vdi` of `image` (raw) into `vdi` on `host`, as `xe vdi-import format=raw`
/// sends it; fails the test on any answer but 200 with an empty body.
pub async fn import_image(host: &Host, client: &Client, vdi: &str, image: Vec<u8>) {
    let query = transfer_query(client, vdi, "raw");
    let (status, body) = import_raw(&host.url(), &host.cert_pem(), &query, image).await;
    assert_eq!((status, body.as_str()), (200, ""), "import into {vdi}");
}

/// Asserts that a raw export of `vdi` from `host` is `size` bytes: `image` followed by zeros,
/// byte for byte; `what` names the disk in a failure.
pub async fn assert_exports(
    host: &Host,
    client: &Client,
    vdi: &str,
    image: &[u8],
    size: usize,
    what: &str,
) {
    let query = transfer_query(client, vdi, "raw");
    let (status, bytes) = export_raw(&host.url(), &host.cert_pem(), &query).await;
    assert_eq!(status, 200, "export of {what} ({vdi})");
    assert_eq!(bytes.len(), size, "size of the export of {what}");
    let mut expected = image.to_vec();
    expected.resize(size, 0);
    if let Some(at) = bytes.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!(
            "{what} ({vdi}) differs at byte {at}: {:#04x}, expected {:#04x}",
            bytes[at], expected[at]
        );
    }
}

/// The query of an import or export of `vdi` (a ref or uuid) as `format`, in `client`'s
/// session.
pub fn transfer_query(client: &Client, vdi: &str, format: &str) -> String {
    let session = client.session.as_deref().expect("logged in");
    format!("session_id={session}&vdi={vdi}&format={format}")
}
