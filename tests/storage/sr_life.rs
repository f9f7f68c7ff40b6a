//! The life of a `file` SR on a real `oxapi` run by the `file` driver (qcow2 files made by
//! `qemu-img`): with its PBD unplugged, every call that would touch its disks is refused and
//! changes nothing; forgotten, introduced again and scanned, it has its disks back with their
//! data; and the sizes of the SR and of its disks follow what the disks hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_spec::Value;
use oxapi_tests::cluster::skipped;
use oxapi_tests::disk::SmallDisk;
use oxapi_tests::storage::{
    assert_exports, create_sr, create_vbd, create_vdi, export_raw, file_driver_host,
    filesystem_figures, image_info, import_image, import_raw, transfer_query,
};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Host, Protocol, logged_in};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;
/// The memory of the test VMs: they never run.
const VM_MEMORY_BYTES: i64 = 64 << 20;

/// `len` bytes of a pattern that differs for each `seed` and at every offset; no byte is zero,
/// so every cluster of a qcow2 holding it is allocated.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let mixed = (i as u32).wrapping_mul(2_654_435_761) >> 13;
            (mixed as u8 ^ seed.wrapping_mul(37)) | 1
        })
        .collect()
}

/// `bytes` as an `i64`, as the XenAPI carries sizes.
fn int(bytes: usize) -> i64 {
    i64::try_from(bytes).expect("a small size")
}

/// Every file in `dir`, hidden ones too (a snapshot chain's bases, an import's temp file),
/// with the SHA-256 of its bytes.
fn files_in(dir: &Path) -> BTreeMap<String, String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {dir:?}: {e}"));
    entries
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let name = path.file_name().expect("a name").to_string_lossy();
            (name.into_owned(), format!("{:x}", Sha256::digest(&bytes)))
        })
        .collect()
}

/// A one-host pool on the `file` driver, a root client of it, and a temp directory for the
/// SRs a test makes.
struct FileSrs {
    host: Host,
    client: Client,
    dir: tempfile::TempDir,
}

impl FileSrs {
    async fn start() -> FileSrs {
        let host = file_driver_host();
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let dir = tempfile::tempdir().expect("temp dir");
        FileSrs { host, client, dir }
    }

    /// A `file` SR at the directory `name` under the test's temp dir: its ref and directory.
    async fn new_sr(&self, name: &str) -> (String, PathBuf) {
        let location = self.dir.path().join(name);
        let sr = create_sr(&self.client, "file", &location.to_string_lossy())
            .await
            .expect("SR.create");
        (sr, location)
    }

    /// `PUT /import_raw_vdi` of `image` (raw) into `vdi`: the status and the body.
    async fn import_answer(&self, vdi: &str, image: Vec<u8>) -> (u16, String) {
        let query = transfer_query(&self.client, vdi, "raw");
        import_raw(&self.host.url(), &self.host.cert_pem(), &query, image).await
    }

    /// Imports `image` (raw) into `vdi`, failing the test on any answer but 200.
    async fn import(&self, vdi: &str, image: Vec<u8>) {
        import_image(&self.host, &self.client, vdi, image).await;
    }

    /// `GET /export_raw_vdi` of `vdi` (raw): the status and the bytes.
    async fn export(&self, vdi: &str) -> (u16, Vec<u8>) {
        let query = transfer_query(&self.client, vdi, "raw");
        export_raw(&self.host.url(), &self.host.cert_pem(), &query).await
    }

    /// Asserts that a raw export of `vdi` is `image` followed by zeros up to `size` bytes.
    async fn assert_holds(&self, vdi: &str, image: &[u8], size: usize, what: &str) {
        assert_exports(&self.host, &self.client, vdi, image, size, what).await;
    }

    /// The one PBD of `sr`.
    async fn pbd_of(&self, sr: &str) -> Value {
        let pbds = self.client.ok("SR.get_PBDs", vec![Value::str(sr)]).await;
        let pbds = pbds.as_array().expect("a list");
        let [pbd] = pbds else {
            panic!("one PBD, got {pbds:?}");
        };
        pbd.clone()
    }

    /// The field `field` of the row `class` `row`.
    async fn field(&self, class: &str, row: &str, field: &str) -> Value {
        let method = format!("{class}.get_{field}");
        self.client.ok(&method, vec![Value::str(row)]).await
    }

    /// The int field `field` of the row `class` `row`.
    async fn int_field(&self, class: &str, row: &str, field: &str) -> i64 {
        let value = self.field(class, row, field).await;
        value
            .as_int()
            .unwrap_or_else(|| panic!("{class}.{field}: {value:?}"))
    }

    /// The VDIs of `sr` by `location`.
    async fn vdis_by_location(&self, sr: &str) -> BTreeMap<String, String> {
        let vdis = self.client.ok("SR.get_VDIs", vec![Value::str(sr)]).await;
        let mut found = BTreeMap::new();
        for vdi in vdis.as_array().expect("a set of VDIs") {
            let vdi = vdi.as_str().expect("a ref");
            let location = self.field("VDI", vdi, "location").await;
            let location = location.as_str().expect("a location").to_owned();
            assert!(found.insert(location, vdi.to_owned()).is_none(), "{vdi}");
        }
        found
    }

    /// What `qemu-img` says the file of `vdi` in the SR directory `dir` takes on disk.
    async fn actual_size(&self, dir: &Path, vdi: &str) -> i64 {
        let name = self.field("VDI", vdi, "location").await;
        let path = dir.join(name.as_str().expect("a location"));
        let info = image_info(&path).unwrap_or_else(|| panic!("{path:?} is a qcow2 image"));
        info["actual-size"].as_i64().expect("an actual size")
    }

    /// The sum of the `virtual_size` of the VDIs of `sr`.
    async fn virtual_sizes(&self, sr: &str) -> i64 {
        let mut sum = 0;
        for vdi in self.vdis_by_location(sr).await.values() {
            sum += self.int_field("VDI", vdi, "virtual_size").await;
        }
        sum
    }
}

/// What an unplugged SR must keep as it is: every VDI record, the files of the SR's
/// directory and of the SR a copy would go to, the VM's record and its disk VBD's.
#[derive(Debug, PartialEq)]
struct Untouched {
    vdis: Value,
    files: BTreeMap<String, String>,
    target_files: BTreeMap<String, String>,
    vm: Value,
    vbd: Value,
}

/// With a `file` SR's PBD unplugged, an import into its VDI, an export, `VDI.resize`,
/// `snapshot`, `clone`, `copy` to another (plugged) SR and `destroy` are each
/// `SR_HAS_NO_PBDS [sr]`, and `VM.start` of a halted VM with a disk on it is
/// `NO_HOSTS_AVAILABLE` (`VM.start_on` its host: `VM_REQUIRES_SR [vm, sr]`); after each,
/// every VDI record, every file of both SRs' directories (the same names, the same bytes),
/// the VM's record (still Halted) and its VBD's are as they were before the unplug. Plugged
/// again, the VDI exports the data imported before, and a snapshot works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_file_sr_refuses_disk_calls_and_changes_nothing() {
    let srs = FileSrs::start().await;
    let client = &srs.client;
    let (sr, dir) = srs.new_sr("unplugged").await;
    let (target, target_dir) = srs.new_sr("target").await;
    let disk_bytes = 8 * MIB;
    let data = pattern(0x5a, 3 * MIB + 4096 + 17);
    let vdi = create_vdi(client, &sr, int(disk_bytes)).await;
    srs.import(&vdi, data.clone()).await;
    let template = default_template(client).await;
    let vm = halted_vm(client, &template, "on an unplugged SR", VM_MEMORY_BYTES).await;
    let vbd = create_vbd(client, &vm, &vdi, "0").await;

    let untouched = || async {
        Untouched {
            vdis: client.ok("VDI.get_all_records", vec![]).await,
            files: files_in(&dir),
            target_files: files_in(&target_dir),
            vm: client.ok("VM.get_record", vec![Value::str(&vm)]).await,
            vbd: client.ok("VBD.get_record", vec![Value::str(&vbd)]).await,
        }
    };
    let before = untouched().await;
    assert!(
        before.files.keys().any(|name| name.ends_with(".qcow2")),
        "the SR's directory holds the VDI's file: {:?}",
        before.files
    );
    assert_eq!(
        srs.field("VM", &vm, "power_state").await,
        Value::str("Halted")
    );

    let pbd = srs.pbd_of(&sr).await;
    client.ok("PBD.unplug", vec![pbd.clone()]).await;
    assert_eq!(
        client
            .ok("PBD.get_currently_attached", vec![pbd.clone()])
            .await,
        Value::Bool(false)
    );
    let no_pbds = serde_json::json!(["SR_HAS_NO_PBDS", &sr]).to_string();

    // The HTTP handlers answer 500 with the XenAPI error as a JSON array.
    let (status, body) = srs.import_answer(&vdi, pattern(0xc3, MIB)).await;
    assert_eq!((status, body.as_str()), (500, no_pbds.as_str()), "import");
    assert_eq!(untouched().await, before, "after the refused import");
    let (status, body) = srs.export(&vdi).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!((status, &*body), (500, no_pbds.as_str()), "export");
    assert_eq!(untouched().await, before, "after the refused export");

    let empty = || Value::Struct(BTreeMap::new());
    let host = client.ok("host.get_all", vec![]).await;
    let host = host
        .as_array()
        .and_then(|h| h.first())
        .expect("a host")
        .clone();
    let no_pbds = || ("SR_HAS_NO_PBDS", vec![sr.clone()]);
    let calls = [
        (
            "VDI.resize",
            vec![Value::str(&vdi), Value::Int(int(16 * MIB))],
            no_pbds(),
        ),
        ("VDI.snapshot", vec![Value::str(&vdi), empty()], no_pbds()),
        ("VDI.clone", vec![Value::str(&vdi), empty()], no_pbds()),
        (
            "VDI.copy",
            vec![Value::str(&vdi), Value::str(&target)],
            no_pbds(),
        ),
        ("VDI.destroy", vec![Value::str(&vdi)], no_pbds()),
        // xapi's placement finds no host that sees the SR; named, the host is refused.
        (
            "VM.start",
            vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)],
            ("NO_HOSTS_AVAILABLE", vec![]),
        ),
        (
            "VM.start_on",
            vec![Value::str(&vm), host, Value::Bool(false), Value::Bool(true)],
            ("VM_REQUIRES_SR", vec![vm.clone(), sr.clone()]),
        ),
    ];
    for (method, params, expected) in calls {
        let refused = client
            .call(method, params)
            .await
            .expect_err("refused while the SR is unplugged");
        assert_eq!(
            (refused.code.as_str(), refused.params),
            expected,
            "{method}"
        );
        assert_eq!(untouched().await, before, "after the refused {method}");
    }
    assert_eq!(
        srs.field("VM", &vm, "power_state").await,
        Value::str("Halted")
    );

    client.ok("PBD.plug", vec![pbd]).await;
    srs.assert_holds(&vdi, &data, disk_bytes, "the VDI plugged again")
        .await;
    assert_eq!(files_in(&dir), before.files, "a plug writes nothing");
    let snapshot = client
        .call("VDI.snapshot", vec![Value::str(&vdi), empty()])
        .await;
    let snapshot = snapshot.expect("a snapshot once the SR is plugged again");
    srs.assert_holds(
        snapshot.as_str().expect("a ref"),
        &data,
        disk_bytes,
        "the snapshot taken after the plug",
    )
    .await;
}

/// A disk of a `file` SR as a test knows it before the SR is forgotten.
#[derive(Debug)]
struct KnownDisk {
    uuid: String,
    virtual_size: i64,
    /// What a raw export of it starts with (zeros follow).
    data: Vec<u8>,
}

/// `SR.forget` of a `file` SR leaves its files; `SR.introduce` with its uuid, `PBD.create`
/// with the same `device_config`, `PBD.plug` and `SR.scan` (xapi's way to re-attach an SR)
/// give every disk it held its VDI record again, under the same uuid (its file is named
/// after it), at the same `location` with the same `virtual_size`, whose export is the data it
/// held: a disk written after a snapshot, the
/// snapshot (an overlay on a hidden base), and a second disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_file_sr_is_introduced_again_with_its_disks() {
    let srs = FileSrs::start().await;
    let client = &srs.client;
    let (sr, dir) = srs.new_sr("kept").await;
    let (a, b, c) = (
        pattern(0x5a, 3 * MIB + 17),
        pattern(0xc3, 2 * MIB + 4096),
        pattern(0x1e, MIB),
    );
    let first = create_vdi(client, &sr, int(8 * MIB)).await;
    srs.import(&first, a.clone()).await;
    let snapshot = client
        .ok(
            "VDI.snapshot",
            vec![Value::str(&first), Value::Struct(BTreeMap::new())],
        )
        .await;
    let snapshot = snapshot.as_str().expect("a ref").to_owned();
    srs.import(&first, b.clone()).await;
    let second = create_vdi(client, &sr, int(4 * MIB)).await;
    srs.import(&second, c.clone()).await;

    let mut known = BTreeMap::new();
    for (vdi, data) in [(&first, &b), (&snapshot, &a), (&second, &c)] {
        let location = srs.field("VDI", vdi, "location").await;
        let disk = KnownDisk {
            uuid: srs
                .field("VDI", vdi, "uuid")
                .await
                .as_str()
                .expect("a uuid")
                .to_owned(),
            virtual_size: srs.int_field("VDI", vdi, "virtual_size").await,
            data: data.clone(),
        };
        srs.assert_holds(vdi, data, disk.virtual_size as usize, "before the forget")
            .await;
        known.insert(location.as_str().expect("a location").to_owned(), disk);
    }
    let uuid = srs.field("SR", &sr, "uuid").await;
    let content_type = srs.field("SR", &sr, "content_type").await;
    let pbd = srs.pbd_of(&sr).await;
    let pbd = pbd.as_str().expect("a ref");
    let host = srs.field("PBD", pbd, "host").await;
    let device_config = srs.field("PBD", pbd, "device_config").await;
    let files = files_in(&dir);

    client.ok("PBD.unplug", vec![Value::str(pbd)]).await;
    client.ok("SR.forget", vec![Value::str(&sr)]).await;
    let gone = client
        .call("VDI.get_record", vec![Value::str(&first)])
        .await;
    assert_eq!(
        gone.map_err(|e| e.code),
        Err("HANDLE_INVALID".to_owned()),
        "a forgotten SR's VDIs go"
    );
    let gone = client.call("SR.get_by_uuid", vec![uuid.clone()]).await;
    assert_eq!(gone.map_err(|e| e.code), Err("UUID_INVALID".to_owned()));
    assert_eq!(files_in(&dir), files, "a forgotten SR's files stay");

    let again = client
        .ok(
            "SR.introduce",
            vec![
                uuid.clone(),
                Value::str("kept, again"),
                Value::str(""),
                Value::str("file"),
                content_type,
                Value::Bool(false),
                Value::Struct(BTreeMap::new()),
            ],
        )
        .await;
    let again = again.as_str().expect("an SR ref").to_owned();
    assert_eq!(srs.field("SR", &again, "uuid").await, uuid);
    assert!(srs.vdis_by_location(&again).await.is_empty());
    let pbd_record = [
        ("host", host),
        ("SR", Value::str(&again)),
        ("device_config", device_config),
        ("other_config", Value::Struct(BTreeMap::new())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let new_pbd = client
        .ok("PBD.create", vec![Value::Struct(pbd_record)])
        .await;
    assert_eq!(
        client
            .ok("PBD.get_currently_attached", vec![new_pbd.clone()])
            .await,
        Value::Bool(false),
        "a PBD is made detached"
    );
    let early = client.call("SR.scan", vec![Value::str(&again)]).await;
    assert_eq!(
        early.map_err(|e| (e.code, e.params)),
        Err(("SR_HAS_NO_PBDS".to_owned(), vec![again.clone()])),
        "no scan before the plug"
    );
    client.ok("PBD.plug", vec![new_pbd]).await;
    client.ok("SR.scan", vec![Value::str(&again)]).await;

    let found = srs.vdis_by_location(&again).await;
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        known.keys().collect::<Vec<_>>(),
        "the disks come back at their locations"
    );
    for (location, vdi) in &found {
        let disk = &known[location];
        assert_eq!(
            srs.int_field("VDI", vdi, "virtual_size").await,
            disk.virtual_size,
            "{location}"
        );
        assert_eq!(
            srs.field("VDI", vdi, "uuid").await,
            Value::str(&disk.uuid),
            "{location} keeps its VDI's uuid"
        );
        let what = format!("{location} (uuid {})", disk.uuid);
        srs.assert_holds(vdi, &disk.data, disk.virtual_size as usize, &what)
            .await;
    }
    assert_eq!(
        files_in(&dir),
        files,
        "the scan and the exports write nothing"
    );
}

/// On a `file` SR of its own tmpfs: a fresh 64 MiB VDI is thin (its `physical_utilisation`,
/// `qemu-img`'s actual size of its file, is under 4 MiB) and reaches at least 16 MiB once 16
/// MiB of non-zero data are imported; `SR.update` sets the SR's `physical_size` and
/// `physical_utilisation` to what `df` says of the tmpfs, which grows by the import and shrinks
/// by a destroy, and between two updates the SR's figure moves by what its disks take; `virtual_allocation` is the sum of the VDIs' `virtual_size` through create,
/// import, snapshot, clone and destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_and_vdi_sizes_follow_what_the_disks_hold() {
    let test = "sr_and_vdi_sizes_follow_what_the_disks_hold";
    if let Some(why) = SmallDisk::unsupported() {
        skipped(test, &why);
        return;
    }
    let srs = FileSrs::start().await;
    let client = &srs.client;
    let location = srs.dir.path().join("sized");
    let _disk = SmallDisk::mount(&location, 256 << 20).expect("a tmpfs for the SR");
    let sr = create_sr(client, "file", &location.to_string_lossy())
        .await
        .expect("SR.create");
    let sr_int = |field: &'static str| srs.int_field("SR", &sr, field);
    let update = || async {
        client.ok("SR.update", vec![Value::str(&sr)]).await;
        let (size, used) = filesystem_figures(&location);
        assert_eq!(sr_int("physical_size").await, size, "as df says");
        assert_eq!(sr_int("physical_utilisation").await, used, "as df says");
        used
    };
    let (size, used) = filesystem_figures(&location);
    assert_eq!(size, 256 << 20);
    assert_eq!(sr_int("physical_size").await, size, "scanned when made");
    assert_eq!(sr_int("physical_utilisation").await, used);
    assert_eq!(sr_int("virtual_allocation").await, 0);

    // A fresh VDI is thin; its physical_utilisation is what its file takes.
    let vdi = create_vdi(client, &sr, int(64 * MIB)).await;
    let fresh = srs.int_field("VDI", &vdi, "physical_utilisation").await;
    assert!(fresh < int(4 * MIB), "a fresh VDI is thin: {fresh}");
    assert_eq!(fresh, srs.actual_size(&location, &vdi).await);
    assert_eq!(sr_int("virtual_allocation").await, int(64 * MIB));
    let used_fresh = update().await;

    // 16 MiB of data: the VDI takes them, the SR's filesystem too.
    srs.import(&vdi, pattern(0x5a, 16 * MIB)).await;
    let written = srs.int_field("VDI", &vdi, "physical_utilisation").await;
    assert!(
        (int(16 * MIB)..int(20 * MIB)).contains(&written),
        "16 MiB imported into a thin VDI: {written}"
    );
    assert_eq!(written, srs.actual_size(&location, &vdi).await);
    assert_eq!(
        srs.int_field("VDI", &vdi, "virtual_size").await,
        int(64 * MIB)
    );
    assert_eq!(sr_int("virtual_allocation").await, int(64 * MIB));
    // Between two measures, the SR's figure follows what its disks take.
    assert_eq!(
        sr_int("physical_utilisation").await,
        used_fresh + written - fresh,
        "the import's bytes count before any SR.update"
    );
    let used_written = update().await;
    assert!(
        used_written >= used_fresh + int(16 * MIB),
        "the SR takes the 16 MiB: {used_fresh} then {used_written}"
    );

    let other = create_vdi(client, &sr, int(32 * MIB)).await;
    let other_fresh = srs.int_field("VDI", &other, "physical_utilisation").await;
    assert_eq!(sr_int("virtual_allocation").await, int(96 * MIB));
    client.ok("VDI.destroy", vec![Value::str(&vdi)]).await;
    assert_eq!(sr_int("virtual_allocation").await, int(32 * MIB));
    assert_eq!(
        sr_int("physical_utilisation").await,
        used_written + other_fresh - written,
        "a create and a destroy count before any SR.update"
    );
    let used_destroyed = update().await;
    assert!(
        used_destroyed + int(16 * MIB) <= used_written,
        "a destroy gives the 16 MiB back: {used_written} then {used_destroyed}"
    );

    // A snapshot and a clone are disks of the SR's allocation, each a thin overlay.
    srs.import(&other, pattern(0xc3, 16 * MIB)).await;
    let empty = || Value::Struct(BTreeMap::new());
    for method in ["VDI.snapshot", "VDI.clone"] {
        let new = client.ok(method, vec![Value::str(&other), empty()]).await;
        let new = new.as_str().expect("a ref");
        let used = srs.int_field("VDI", new, "physical_utilisation").await;
        assert!(used < int(4 * MIB), "{method} is an overlay: {used}");
        assert_eq!(used, srs.actual_size(&location, new).await, "{method}");
    }
    let allocated = sr_int("virtual_allocation").await;
    assert_eq!(allocated, int(3 * 32 * MIB));
    assert_eq!(allocated, srs.virtual_sizes(&sr).await);
    update().await;
}

/// A disk made by `VDI.create` on a `file` SR is `managed`, as xapi records every VDI its
/// storage makes (`xe vdi-list` lists only managed ones); it stays so once a snapshot and a
/// clone of it are taken, and they are managed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_made_through_the_api_are_managed() {
    let srs = FileSrs::start().await;
    let client = &srs.client;
    let (sr, _) = srs.new_sr("managed").await;
    let vdi = create_vdi(client, &sr, int(MIB)).await;
    let srs = &srs;
    let managed = |vdi: String| async move { srs.field("VDI", &vdi, "managed").await };
    assert_eq!(managed(vdi.clone()).await, Value::Bool(true), "VDI.create");
    for method in ["VDI.snapshot", "VDI.clone"] {
        let empty = Value::Struct(BTreeMap::new());
        let new = client.ok(method, vec![Value::str(&vdi), empty]).await;
        let new = new.as_str().expect("a ref").to_owned();
        assert_eq!(managed(new).await, Value::Bool(true), "{method}");
        assert_eq!(
            managed(vdi.clone()).await,
            Value::Bool(true),
            "the original after {method}"
        );
    }
}
