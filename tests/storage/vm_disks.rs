//! A halted VM's disk data through `VM.snapshot`, `VM.clone`, `VM.revert` and `VM.copy` on a
//! real `oxapi` whose local SR is kept by the `file` driver (qcow2 files made by `qemu-img`):
//! bytes go in through `PUT /import_raw_vdi` and are read back through `GET /export_raw_vdi`.

use api_spec::Value;
use oxapi_tests::storage::{
    assert_exports, create_vbd, create_vdi, file_driver_host, import_image, local_sr,
};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Host, Protocol, logged_in};

const MIB: usize = 1 << 20;
/// The virtual size of the VM's disk: what a raw export returns.
const DISK_BYTES: usize = 8 * MIB;
/// How much of the disk a pattern covers; the rest stays zeros.
const PATTERN_BYTES: usize = 3 * MIB + 4096 + 17;
/// The memory of the test VM: it never starts.
const VM_MEMORY_BYTES: i64 = 64 << 20;

/// `PATTERN_BYTES` of a pattern that differs for each `seed` and at every offset (no byte is
/// zero), with a hole of zeros in its second MiB.
fn pattern(seed: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..PATTERN_BYTES)
        .map(|i| {
            let mixed = (i as u32).wrapping_mul(2_654_435_761) >> 13;
            (mixed as u8 ^ seed.wrapping_mul(37)) | 1
        })
        .collect();
    bytes[MIB..MIB + 64 * 1024].fill(0);
    bytes
}

/// A one-host pool on the `file` driver and a root client of it.
struct FileHost {
    host: Host,
    client: Client,
}

impl FileHost {
    /// Imports `image` (raw) into `vdi`, failing the test on any answer but 200.
    async fn import(&self, vdi: &str, image: Vec<u8>) {
        import_image(&self.host, &self.client, vdi, image).await;
    }

    /// Asserts that a raw export of `vdi` is `image` followed by zeros, byte for byte.
    async fn assert_holds(&self, vdi: &str, image: &[u8], what: &str) {
        assert_exports(&self.host, &self.client, vdi, image, DISK_BYTES, what).await;
    }

    /// The VDIs of the disk VBDs of `vm`.
    async fn disks_of(&self, vm: &str) -> Vec<String> {
        let vbds = self.client.ok("VM.get_VBDs", vec![Value::str(vm)]).await;
        let mut disks = Vec::new();
        for vbd in vbds.as_array().expect("a set of VBDs") {
            let kind = self.client.ok("VBD.get_type", vec![vbd.clone()]).await;
            if kind == Value::str("Disk") {
                let vdi = self.client.ok("VBD.get_VDI", vec![vbd.clone()]).await;
                disks.push(vdi.as_str().expect("a VDI ref").to_owned());
            }
        }
        disks
    }

    /// The one disk of `vm`.
    async fn disk_of(&self, vm: &str) -> String {
        let disks = self.disks_of(vm).await;
        assert_eq!(disks.len(), 1, "{vm} has one disk: {disks:?}");
        disks[0].clone()
    }

    /// `method` on `vm` with `params` after it; the new VM's ref.
    async fn new_vm(&self, method: &str, vm: &str, params: Vec<Value>) -> String {
        let mut all = vec![Value::str(vm)];
        all.extend(params);
        let new = self.client.ok(method, all).await;
        new.as_str().expect("a VM ref").to_owned()
    }
}

/// Data follows a halted VM's disk through its copies on the `file` driver: a snapshot keeps
/// what the disk held when it was taken (A) in a VDI that is a snapshot of the disk; a clone
/// made after B was imported holds B; a revert gives the VM a new disk holding A; a copy to
/// the same SR holds A and is a disk of its own (C imported into it leaves the VM's A), and
/// the clone still holds B at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_clone_revert_and_copy_carry_the_disk_data() {
    let host = file_driver_host();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let pool = FileHost { host, client };
    let client = &pool.client;
    let (a, b, c) = (pattern(0x5a), pattern(0xc3), pattern(0x1e));
    assert!(a != b && b != c && a != c, "the patterns differ");

    let sr = local_sr(client).await;
    let template = default_template(client).await;
    let vm = halted_vm(client, &template, "with data", VM_MEMORY_BYTES).await;
    let size = i64::try_from(DISK_BYTES).expect("a small disk");
    let disk = create_vdi(client, &sr, size).await;
    create_vbd(client, &vm, &disk, "0").await;
    assert_eq!(pool.disk_of(&vm).await, disk);
    pool.import(&disk, a.clone()).await;
    pool.assert_holds(&disk, &a, "the VM's disk after importing A")
        .await;

    // VM.snapshot: the snapshot's disk holds A and is a snapshot of the VM's disk.
    let no_vdis = Value::Array(Vec::new());
    let snapshot = pool
        .new_vm("VM.snapshot", &vm, vec![Value::str("snap"), no_vdis])
        .await;
    let snapshot_disk = pool.disk_of(&snapshot).await;
    assert_ne!(snapshot_disk, disk, "the snapshot has a disk of its own");
    let is_a_snapshot = client
        .ok("VDI.get_is_a_snapshot", vec![Value::str(&snapshot_disk)])
        .await;
    assert_eq!(is_a_snapshot, Value::Bool(true));
    let snapshot_of = client
        .ok("VDI.get_snapshot_of", vec![Value::str(&snapshot_disk)])
        .await;
    assert_eq!(snapshot_of, Value::str(&disk));
    pool.assert_holds(&snapshot_disk, &a, "the snapshot's disk")
        .await;

    // B into the VM's disk leaves the snapshot at A; VM.clone then holds B.
    pool.import(&disk, b.clone()).await;
    pool.assert_holds(&disk, &b, "the VM's disk after importing B")
        .await;
    pool.assert_holds(&snapshot_disk, &a, "the snapshot's disk after B")
        .await;
    let clone = pool
        .new_vm("VM.clone", &vm, vec![Value::str("clone")])
        .await;
    let clone_disk = pool.disk_of(&clone).await;
    assert!(
        clone_disk != disk && clone_disk != snapshot_disk,
        "the clone has a disk of its own: {clone_disk}"
    );
    pool.assert_holds(&clone_disk, &b, "the clone's disk").await;

    // VM.revert: the VM's disk is replaced by a new clone of the snapshot's, holding A.
    client.ok("VM.revert", vec![Value::str(&snapshot)]).await;
    let reverted_disk = pool.disk_of(&vm).await;
    assert!(
        reverted_disk != disk && reverted_disk != snapshot_disk,
        "the VM has a new disk after the revert: {reverted_disk}"
    );
    let old = client
        .call("VDI.get_record", vec![Value::str(&disk)])
        .await
        .expect_err("the VM's old disk is gone");
    assert_eq!(old.code, "HANDLE_INVALID", "{old:?}");
    pool.assert_holds(&reverted_disk, &a, "the VM's disk after the revert")
        .await;
    pool.assert_holds(&snapshot_disk, &a, "the snapshot's disk after the revert")
        .await;
    pool.assert_holds(&clone_disk, &b, "the clone's disk after the revert")
        .await;

    // VM.copy to the same SR: a disk of its own holding A.
    let copy = pool
        .new_vm("VM.copy", &vm, vec![Value::str("copy"), Value::str(&sr)])
        .await;
    let copy_disk = pool.disk_of(&copy).await;
    assert!(
        ![&reverted_disk, &snapshot_disk, &clone_disk].contains(&&copy_disk),
        "the copy has a disk of its own: {copy_disk}"
    );
    let copy_sr = client.ok("VDI.get_SR", vec![Value::str(&copy_disk)]).await;
    assert_eq!(copy_sr, Value::str(&sr));
    pool.assert_holds(&copy_disk, &a, "the copy's disk").await;
    pool.import(&copy_disk, c.clone()).await;
    pool.assert_holds(&copy_disk, &c, "the copy's disk after importing C")
        .await;
    pool.assert_holds(
        &reverted_disk,
        &a,
        "the VM's disk after C went into the copy",
    )
    .await;
    pool.assert_holds(&snapshot_disk, &a, "the snapshot's disk at the end")
        .await;
    pool.assert_holds(&clone_disk, &b, "the clone's disk at the end")
        .await;
}
