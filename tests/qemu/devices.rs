//! Disks of running guests on the `qemu` backend, against a real `oxapi` running real QEMUs
//! whose guests have no OS (SeaBIOS finds nothing to boot and idles under KVM where it works):
//! such a guest never answers a hot-unplug, so `VBD.unplug` gives up after
//! `qemu.unplug_timeout_secs` as xapi does (`DEVICE_DETACH_REJECTED`), and so does
//! `VBD.unplug_force` (QEMU cannot take a PCI device from a guest); read-only VBDs and VDIs are opened read-only by QEMU; the `Async.`
//! forms of these calls end their tasks as the calls end.
//!
//! What QEMU holds is read from `/proc/<pid>/fd` and `/proc/<pid>/fdinfo` of the guest's QEMU:
//! its one QMP socket (`<data>/qemu/<uuid>/qmp`) is held by `oxapi` for as long as the guest
//! runs, and QEMU serves a single client there (a second one connects but is never greeted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api_spec::{ApiError, Value};
use oxapi_tests::events::wait_task;
use oxapi_tests::qemu::{guest_pid, has_open};
use oxapi_tests::storage::{
    create_vbd, create_vdi, local_sr, sr_directory, vbd_record, vdi_record,
};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Host, Protocol, logged_in};

const MIB: i64 = 1 << 20;
/// How long a guest has to release a disk on the test host (`qemu.unplug_timeout_secs`).
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(2);
/// xapi's error for a device the guest would not let go.
const DEVICE_DETACH_REJECTED: &str = "DEVICE_DETACH_REJECTED";
/// How long a change in QEMU's open files may take to show once the call that made it returned.
const QEMU_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A host on the qemu backend whose guests have `UNPLUG_TIMEOUT` to release a device; `None`
/// (the test skips) without QEMU.
fn qemu_host() -> Option<Host> {
    let config = serde_json::json!({"qemu": {"unplug_timeout_secs": UNPLUG_TIMEOUT.as_secs()}});
    oxapi_tests::qemu::qemu_host(Some(config))
}

/// A halted VM of 128 MiB without an OS or devices; its ref and uuid.
async fn no_os_vm(client: &Client, name: &str) -> (String, String) {
    let template = default_template(client).await;
    let vm = halted_vm(client, &template, name, 128 * MIB).await;
    let uuid = client.ok("VM.get_uuid", vec![Value::str(&vm)]).await;
    (vm, uuid.as_str().expect("a uuid").to_owned())
}

/// `VM.start`'s parameters for `vm`: not paused, not forced.
fn start_params(vm: &str) -> Vec<Value> {
    vec![Value::str(vm), Value::Bool(false), Value::Bool(false)]
}

async fn power_state(client: &Client, vm: &str) -> String {
    let state = client.ok("VM.get_power_state", vec![Value::str(vm)]).await;
    state.as_str().expect("a power state").to_owned()
}

async fn currently_attached(client: &Client, vbd: &str) -> bool {
    let attached = client
        .ok("VBD.get_currently_attached", vec![Value::str(vbd)])
        .await;
    attached.as_bool().expect("a bool")
}

/// Stops `vm` hard; it is Halted after.
async fn hard_shutdown(client: &Client, vm: &str) {
    client.ok("VM.hard_shutdown", vec![Value::str(vm)]).await;
    assert_eq!(power_state(client, vm).await, "Halted");
}

/// A new 16 MiB user disk on the local SR, read-only when `read_only`; its ref and the qcow2
/// file the SR keeps it in.
async fn new_disk(client: &Client, read_only: bool) -> (String, PathBuf) {
    let sr = local_sr(client).await;
    let vdi = if read_only {
        let mut record: BTreeMap<String, Value> = vdi_record(&sr, 16 * MIB);
        record.insert("read_only".to_owned(), Value::Bool(true));
        let vdi = client.ok("VDI.create", vec![Value::Struct(record)]).await;
        vdi.as_str().expect("a ref").to_owned()
    } else {
        create_vdi(client, &sr, 16 * MIB).await
    };
    let location = client.ok("VDI.get_location", vec![Value::str(&vdi)]).await;
    let file = sr_directory(client, &sr)
        .await
        .join(location.as_str().expect("a location"));
    assert!(file.is_file(), "the SR keeps {vdi} in {}", file.display());
    (vdi, file)
}

/// A read-only (`mode` RO) disk VBD of `vdi` at `userdevice` of `vm`; its ref.
async fn create_ro_vbd(client: &Client, vm: &str, vdi: &str, userdevice: &str) -> String {
    let record = vbd_record(vm, Some(vdi), userdevice, "Disk", "RO");
    let vbd = client.ok("VBD.create", vec![record]).await;
    vbd.as_str().expect("a ref").to_owned()
}

/// How a process opened a file: the access mode of its `open(2)` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

/// The access mode of each descriptor process `pid` holds on the file at `path`, read from
/// `/proc/<pid>/fdinfo/<fd>` (`flags:` in octal).
fn open_modes(pid: u32, path: &Path) -> Vec<Access> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut modes = Vec::new();
    for fd in fds.flatten() {
        if !std::fs::read_link(fd.path()).is_ok_and(|target| target == path) {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info_path) else {
            continue; // closed since the listing
        };
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
            .unwrap_or_else(|| panic!("fdinfo without flags: {info}"));
        modes.push(match flags as i32 & libc::O_ACCMODE {
            libc::O_RDONLY => Access::ReadOnly,
            libc::O_WRONLY => Access::WriteOnly,
            _ => Access::ReadWrite,
        });
    }
    modes
}

/// Polls `holds` until it is true; fails the test, saying `what` never happened, after
/// `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !holds() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that `err` is xapi's `DEVICE_DETACH_REJECTED` for the VBD `vbd`.
fn assert_detach_rejected(err: &ApiError, vbd: &str) {
    assert_eq!(err.code, DEVICE_DETACH_REJECTED, "{err:?}");
    assert_eq!(
        err.params.first().map(String::as_str),
        Some("VBD"),
        "{err:?}"
    );
    assert_eq!(err.params.get(1).map(String::as_str), Some(vbd), "{err:?}");
}

/// A running guest without an OS on a new host, with a disk hot-plugged into it.
struct PluggedDisk {
    /// Its drop kills the QEMUs a failed test leaves.
    host: Host,
    client: Client,
    vm: String,
    uuid: String,
    /// The pid of the guest's QEMU.
    pid: u32,
    vbd: String,
    /// The disk's qcow2 file.
    file: PathBuf,
}

impl PluggedDisk {
    /// Starts a VM without devices, then `VBD.plug`s a new disk at userdevice 1: it is
    /// `currently_attached` and its QEMU has the file open read-write; `None` without QEMU.
    async fn new(name: &str) -> Option<PluggedDisk> {
        let host = qemu_host()?;
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let (vm, uuid) = no_os_vm(&client, name).await;
        let (vdi, file) = new_disk(&client, false).await;
        client.ok("VM.start", start_params(&vm)).await;
        let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
        assert!(!has_open(pid, &file), "the disk is not the guest's yet");
        let vbd = create_vbd(&client, &vm, &vdi, "1").await;
        assert!(!currently_attached(&client, &vbd).await);
        client.ok("VBD.plug", vec![Value::str(&vbd)]).await;
        assert!(currently_attached(&client, &vbd).await);
        let modes = open_modes(pid, &file);
        assert_eq!(modes, [Access::ReadWrite], "QEMU writes the plugged disk");
        Some(PluggedDisk {
            host,
            client,
            vm,
            uuid,
            pid,
            vbd,
            file,
        })
    }

    /// `VBD.unplug`, which the guest never answers: it fails after `UNPLUG_TIMEOUT` (not much
    /// later), the VBD still attached, the disk still open in the same running QEMU; its error.
    async fn unplug_refused(&self, method: &str) -> ApiError {
        let asked = Instant::now();
        let refused = self.client.call(method, vec![Value::str(&self.vbd)]).await;
        let waited = asked.elapsed();
        let err = refused.expect_err("a guest without an OS never releases the disk");
        assert!(
            waited >= UNPLUG_TIMEOUT,
            "the guest was given {UNPLUG_TIMEOUT:?}, not {waited:?}: {err:?}"
        );
        assert!(
            waited < UNPLUG_TIMEOUT + Duration::from_secs(20),
            "the unplug gave up only after {waited:?}"
        );
        assert!(
            currently_attached(&self.client, &self.vbd).await,
            "a refused unplug leaves the VBD attached"
        );
        assert!(
            has_open(self.pid, &self.file),
            "the guest still has the disk"
        );
        self.assert_same_qemu_runs().await;
        err
    }

    /// The VM is still Running, on the QEMU it started on.
    async fn assert_same_qemu_runs(&self) {
        assert_eq!(power_state(&self.client, &self.vm).await, "Running");
        let pid = guest_pid(&self.host.data_dir(), &self.uuid);
        assert_eq!(pid, Some(self.pid), "the same QEMU runs on");
    }
}

/// `VBD.unplug` of a disk hot-plugged into a running guest without an OS waits
/// `qemu.unplug_timeout_secs` for the guest, which never lets go, and fails with xapi's
/// `DEVICE_DETACH_REJECTED` (class VBD, the VBD's ref), the VBD still `currently_attached`
/// and its disk still open in QEMU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplug_the_guest_ignores_fails_with_device_detach_rejected() {
    let Some(disk) = PluggedDisk::new("unplug").await else {
        return;
    };
    let err = disk.unplug_refused("VBD.unplug").await;
    hard_shutdown(&disk.client, &disk.vm).await;
    // Checked once the VM is down, so that a wrong code still shows the steps above work.
    assert_detach_rejected(&err, &disk.vbd);
}

/// `VBD.unplug_force` cannot take a virtio disk from a running guest that keeps it either
/// (QEMU hot-unplugs a PCI device only when the guest lets it go): it fails as `VBD.unplug`
/// does, changing nothing; a hard shutdown then frees the disk, its QEMU gone and the VBD
/// detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_force_cannot_take_a_disk_the_guest_keeps() {
    let Some(disk) = PluggedDisk::new("unplug-force").await else {
        return;
    };
    let err = disk.unplug_refused("VBD.unplug_force").await;
    let client = &disk.client;
    hard_shutdown(client, &disk.vm).await;
    assert!(!currently_attached(client, &disk.vbd).await);
    wait_until("the disk's QEMU is gone", QEMU_SETTLE_TIMEOUT, || {
        !has_open(disk.pid, &disk.file)
    })
    .await;
    assert_detach_rejected(&err, &disk.vbd);
}

/// A VBD of mode RO on a read-write VDI, and a VBD on a read-only VDI (which, as in xapi, only
/// a RO VBD may have: `VDI_READONLY` for RW), are opened read-only by the guest's QEMU, both
/// at start and when hot-plugged (`VBD.plug`), beside a RW VBD that QEMU opens read-write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_vbds_and_vdis_are_opened_read_only_by_qemu() {
    let Some(host) = qemu_host() else { return };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let (vm, uuid) = no_os_vm(&client, "read-only").await;
    let (written, written_file) = new_disk(&client, false).await;
    // (RO VBD's VDI, RO VDI) at start, then the same pair hot-plugged.
    let (ro_mode, ro_mode_file) = new_disk(&client, false).await;
    let (ro_vdi, ro_vdi_file) = new_disk(&client, true).await;
    let (hot_ro_mode, hot_ro_mode_file) = new_disk(&client, false).await;
    let (hot_ro_vdi, hot_ro_vdi_file) = new_disk(&client, true).await;
    let read_only = client
        .ok("VDI.get_read_only", vec![Value::str(&ro_vdi)])
        .await;
    assert_eq!(read_only, Value::Bool(true), "VDI.create keeps read_only");
    let refused = client
        .call(
            "VBD.create",
            vec![vbd_record(&vm, Some(&ro_vdi), "5", "Disk", "RW")],
        )
        .await
        .expect_err("a read-only VDI takes no RW VBD");
    assert_eq!(refused.code, "VDI_READONLY", "{refused:?}");

    create_vbd(&client, &vm, &written, "0").await;
    create_ro_vbd(&client, &vm, &ro_mode, "1").await;
    create_ro_vbd(&client, &vm, &ro_vdi, "2").await;
    client.ok("VM.start", start_params(&vm)).await;
    let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
    let opened = |file: &Path| open_modes(pid, file);
    assert_eq!(opened(&written_file), [Access::ReadWrite], "the RW disk");
    assert_eq!(
        opened(&ro_mode_file),
        [Access::ReadOnly],
        "the RO VBD at start"
    );
    assert_eq!(
        opened(&ro_vdi_file),
        [Access::ReadOnly],
        "the RO VDI at start"
    );

    for (vdi, userdevice) in [(&hot_ro_mode, "3"), (&hot_ro_vdi, "4")] {
        let vbd = create_ro_vbd(&client, &vm, vdi, userdevice).await;
        client.ok("VBD.plug", vec![Value::str(&vbd)]).await;
        assert!(currently_attached(&client, &vbd).await);
    }
    let hot_mode = opened(&hot_ro_mode_file);
    assert_eq!(hot_mode, [Access::ReadOnly], "the RO VBD hot-plugged");
    let hot_vdi = opened(&hot_ro_vdi_file);
    assert_eq!(hot_vdi, [Access::ReadOnly], "the RO VDI hot-plugged");
    assert_eq!(
        opened(&written_file),
        [Access::ReadWrite],
        "the RW disk still"
    );
    hard_shutdown(&client, &vm).await;
}

/// Waits until the task `task` has left `pending`; returns its record.
async fn finished_task(client: &Client, task: &Value) -> BTreeMap<String, Value> {
    wait_task(client, task, |record| {
        record.get("status").and_then(Value::as_str) != Some("pending")
    })
    .await
}

/// The `status` of a task record.
fn status(record: &BTreeMap<String, Value>) -> &str {
    record.get("status").and_then(Value::as_str).unwrap_or("")
}

/// `Async.VM.start` on QEMU gives a task that ends `success` with the VM Running on a QEMU;
/// `Async.VBD.unplug` of a disk the guest never releases gives one that ends `failure` with
/// `DEVICE_DETACH_REJECTED` in `error_info`, the VBD still attached; `Async.VM.hard_shutdown`
/// gives one that ends `success` with the VM Halted and its QEMU gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_start_unplug_and_hard_shutdown_end_their_tasks_as_the_calls_do() {
    let Some(host) = qemu_host() else { return };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let (vm, uuid) = no_os_vm(&client, "async").await;
    let (vdi, file) = new_disk(&client, false).await;
    let vbd = create_vbd(&client, &vm, &vdi, "1").await;

    let task = client.ok("Async.VM.start", start_params(&vm)).await;
    let record = finished_task(&client, &task).await;
    assert_eq!(status(&record), "success", "{record:?}");
    assert_eq!(power_state(&client, &vm).await, "Running");
    let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
    assert!(currently_attached(&client, &vbd).await);
    assert!(has_open(pid, &file), "QEMU has the VM's disk");

    let task = client.ok("Async.VBD.unplug", vec![Value::str(&vbd)]).await;
    let record = finished_task(&client, &task).await;
    assert_eq!(status(&record), "failure", "{record:?}");
    let info: Vec<String> = record["error_info"]
        .as_array()
        .expect("error_info is a list")
        .iter()
        .map(|item| item.as_str().expect("strings").to_owned())
        .collect();
    assert!(currently_attached(&client, &vbd).await);
    assert!(has_open(pid, &file), "the guest still has the disk");

    let task = client
        .ok("Async.VM.hard_shutdown", vec![Value::str(&vm)])
        .await;
    let record = finished_task(&client, &task).await;
    assert_eq!(status(&record), "success", "{record:?}");
    assert_eq!(power_state(&client, &vm).await, "Halted");
    assert!(!currently_attached(&client, &vbd).await);
    assert_eq!(guest_pid(&host.data_dir(), &uuid), None, "the QEMU is gone");
    // Checked once the VM is down, so that a wrong code still shows the steps above work.
    let (code, params) = info.split_first().expect("error_info names the error");
    assert_detach_rejected(&ApiError::new(code, params.to_vec()), &vbd);
}
