//! A VM's life on the `qemu` backend, against a real `oxapi` running real QEMUs: each running
//! VM is one `qemu-system-x86_64`, a direct child of `oxapi`, driven over QMP. Most guests have
//! no OS (SeaBIOS finds nothing to boot and idles), so they run under KVM where it works and
//! ignore the ACPI power button, as a guest without its tools does; the tests of `LinuxVm`
//! boot the real Linux test guest (`tests/guest/build`) under TCG.

use std::time::Duration;

use api_spec::Value;
use oxapi_tests::events::EventWait;
use oxapi_tests::guest::{BLOCK_BYTES, block_sha256, kernel_args, marker, sha256_hex};
use oxapi_tests::qemu::{guest_pid, has_open, is_alive_qemu_of, parent_pid, peak_resident_bytes};
use oxapi_tests::storage::{
    create_cd, create_sr, create_vbd, export_raw, import_raw, local_sr, transfer_query,
};
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Host, HostOptions, Protocol, SerialLog, logged_in, test_guest};

const MIB: i64 = 1 << 20;

/// A host on the qemu backend whose clean shutdowns give up after 2 s.
fn qemu_host() -> Option<Host> {
    let config = serde_json::json!({"agent": {"clean_shutdown_timeout_secs": 2}});
    oxapi_tests::qemu::qemu_host(Some(config))
}

async fn field(client: &Client, vm: &str, name: &str) -> Value {
    client
        .ok(&format!("VM.get_{name}"), vec![Value::str(vm)])
        .await
}

async fn power_state(client: &Client, vm: &str) -> String {
    let state = field(client, vm, "power_state").await;
    state.as_str().expect("a power state").to_owned()
}

async fn uuid(client: &Client, vm: &str) -> String {
    let uuid = field(client, vm, "uuid").await;
    uuid.as_str().expect("a uuid").to_owned()
}

/// Waits, following `event.from`, until `vm` is in `state`.
async fn wait_power_state(client: &Client, vm: &str, state: &str) {
    let mut wait = EventWait::new(client, &["vm"], Duration::from_secs(60));
    while power_state(client, vm).await != state {
        wait.next(&format!("VM {vm} never became {state}")).await;
    }
}

/// Waits until process `pid` is no longer the QEMU of `uuid` (gone, or a zombie not yet
/// reaped by PID 1 when `oxapi` was not its parent).
async fn wait_gone(pid: u32, uuid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while is_alive_qemu_of(pid, uuid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "QEMU {pid} of {uuid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The arguments process `pid` was started with.
fn command_line(pid: u32) -> Vec<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let arguments = bytes.split(|byte| *byte == 0).filter(|arg| !arg.is_empty());
    arguments
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// start (QEMU started paused, `-S`, and continued once its devices are plugged) → pause →
/// unpause → clean shutdown that the guest ignores → hard reboot → shutdown (clean, then hard
/// when ignored) of a VM with a disk, each seen in the VM's power state and in the QEMU process
/// that runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_lives_its_whole_life_in_one_qemu_per_start() {
    let Some(host) = qemu_host() else { return };
    let said = host
        .startup_lines
        .iter()
        .find(|line| line.starts_with("guests run on: "));
    let said = said.expect("oxapi says what runs guests");
    assert!(said.starts_with("guests run on: qemu ("), "{said}");
    let client = logged_in(&host, Protocol::JsonRpc).await;
    // The host's row says which accelerator its guests run with.
    let hosts = client.ok("host.get_all", vec![]).await;
    let this = hosts
        .as_array()
        .and_then(|h| h.first())
        .expect("a host")
        .clone();
    let mut wait = EventWait::new(&client, &["host"], Duration::from_secs(30));
    let accel = loop {
        let cpu_info = client.ok("host.get_cpu_info", vec![this.clone()]).await;
        let accel = cpu_info
            .as_struct()
            .and_then(|info| info.get("accel"))
            .cloned();
        if let Some(Value::String(accel)) = accel {
            break accel;
        }
        wait.next("the host's cpu_info never named its accelerator")
            .await;
    };
    assert!(said.contains(&format!("({accel},")), "{said} vs {accel}");
    let capabilities = client.ok("host.get_capabilities", vec![this]).await;
    let expected = Value::str(format!("qemu-{accel}-x86_64"));
    let offered = capabilities.as_array().expect("a set");
    assert!(offered.contains(&expected), "{capabilities:?}");
    let template = default_template(&client).await;
    let vm = halted_vm(&client, &template, "qemu-life", 128 * MIB).await;
    let uuid = uuid(&client, &vm).await;
    let data_dir = host.data_dir();
    // A disk the guest never releases: stopping it hard must not wait for the guest.
    let disk = new_disk(&client, &local_sr(&client).await).await;
    create_vbd(&client, &vm, &disk, "0").await;

    let params = [("mask", "1"), ("weight", "512"), ("cap", "50")];
    let params = params.map(|(key, value)| (key.to_owned(), Value::str(value)));
    let params = Value::Struct(params.into_iter().collect());
    client
        .ok("VM.set_VCPUs_params", vec![Value::str(&vm), params])
        .await;

    client
        .ok(
            "VM.start",
            vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)],
        )
        .await;
    assert_eq!(power_state(&client, &vm).await, "Running");
    let pid = guest_pid(&data_dir, &uuid).expect("a QEMU runs the VM");
    assert_eq!(
        parent_pid(pid),
        host.pid(),
        "QEMU is a direct child of oxapi"
    );
    // QEMU starts paused (`-S`) and is continued once every device is plugged.
    let arguments = command_line(pid);
    assert!(
        arguments.iter().any(|arg| arg == "-S"),
        "QEMU is started paused: {arguments:?}"
    );
    // VCPUs_params:mask keeps every vCPU thread on host CPU 1.
    let affinities = oxapi_tests::qemu::vcpu_affinities(pid);
    assert!(!affinities.is_empty(), "QEMU names its vCPU threads");
    assert!(affinities.iter().all(|cpus| cpus == "1"), "{affinities:?}");
    // `weight` and `cap` are the share and quota of a cpu cgroup of the guest's own.
    let group = oxapi_tests::qemu::cpu_cgroup(pid);
    if let Some((group, is_v2)) = &group {
        assert!(
            group.ends_with(format!("oxapi/{uuid}")),
            "{}",
            group.display()
        );
        let read = |file: &str| {
            let value = std::fs::read_to_string(group.join(file)).expect(file);
            value.trim().to_owned()
        };
        if *is_v2 {
            assert_eq!(read("cpu.weight"), "200");
            assert_eq!(read("cpu.max"), "50000 100000");
        } else {
            assert_eq!(read("cpu.shares"), "2048");
            assert_eq!(read("cpu.cfs_quota_us"), "50000");
            assert_eq!(read("cpu.cfs_period_us"), "100000");
        }
    } else {
        eprintln!("the cpu cgroup is not checked: this machine has no cpu controller");
    }
    let domid = field(&client, &vm, "domid").await;
    assert!(matches!(domid, Value::Int(id) if id > 0), "{domid:?}");

    client.ok("VM.pause", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(&client, &vm).await, "Paused");
    client.ok("VM.unpause", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(&client, &vm).await, "Running");

    // No OS answers the power button: the clean shutdown times out and the VM runs on.
    let ignored = client
        .call("VM.clean_shutdown", vec![Value::str(&vm)])
        .await;
    let err = ignored.expect_err("a guest without an OS ignores the power button");
    assert_eq!(err.code, "VM_SHUTDOWN_TIMEOUT", "{err:?}");
    assert_eq!(power_state(&client, &vm).await, "Running");
    assert_eq!(guest_pid(&data_dir, &uuid), Some(pid));

    client.ok("VM.hard_reboot", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(&client, &vm).await, "Running");
    let rebooted = guest_pid(&data_dir, &uuid).expect("a QEMU runs the VM again");
    assert_ne!(rebooted, pid, "a hard reboot starts a new QEMU");
    wait_gone(pid, &uuid).await;
    assert_eq!(
        oxapi_tests::qemu::cpu_cgroup(rebooted),
        group,
        "the new QEMU's group"
    );

    // `VM.shutdown` tries the power button, then stops the guest hard.
    client.ok("VM.shutdown", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(&client, &vm).await, "Halted");
    wait_gone(rebooted, &uuid).await;
    assert!(!oxapi_tests::qemu::guest_dir(&data_dir, &uuid).exists());
    if let Some((group, _)) = group {
        assert!(!group.exists(), "the guest's cpu cgroup goes with it");
    }
}

/// `oxapi` killed with SIGKILL leaves its QEMUs running; started again, it takes over those
/// that still run (the VM stays Running on the same QEMU, with its domid, and can be paused
/// through it) and finds those that died meanwhile crashed, honoured through
/// `actions_after_crash` (destroy: Halted; restart: Running on a new QEMU of the new `oxapi`,
/// with a domid of its own). A QEMU that dies while `oxapi` runs is a crash too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_oxapi_takes_over_its_qemus_and_a_dead_qemu_is_a_crash() {
    let Some(mut host) = qemu_host() else { return };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let template = default_template(&client).await;
    let data_dir = host.data_dir();
    let mut vms = Vec::new();
    for (name, after_crash) in [
        ("qemu-kept", "destroy"),
        ("qemu-died-destroy", "destroy"),
        ("qemu-died-restart", "restart"),
    ] {
        let vm = halted_vm(&client, &template, name, 128 * MIB).await;
        let after_crash = vec![Value::str(&vm), Value::str(after_crash)];
        client.ok("VM.set_actions_after_crash", after_crash).await;
        client
            .ok(
                "VM.start",
                vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)],
            )
            .await;
        let uuid = uuid(&client, &vm).await;
        let pid = guest_pid(&data_dir, &uuid).expect("a QEMU runs the VM");
        let domid = field(&client, &vm, "domid").await;
        vms.push((vm, uuid, pid, domid));
    }
    let [kept, destroyed, restarted] = &vms[..] else {
        unreachable!("three VMs")
    };
    let (vm, uuid, pid, domid) = kept.clone();

    host.kill();
    assert!(is_alive_qemu_of(pid, &uuid), "QEMU outlives a killed oxapi");
    // Two QEMUs die while nobody watches them.
    for (_, dead_uuid, dead_pid, _) in [destroyed, restarted] {
        sigkill(*dead_pid);
        wait_gone(*dead_pid, dead_uuid).await;
    }
    host.start_again();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    assert_eq!(power_state(&client, &vm).await, "Running");
    assert_eq!(field(&client, &vm, "domid").await, domid);
    assert_eq!(
        guest_pid(&data_dir, &uuid),
        Some(pid),
        "the same QEMU, taken over"
    );
    client.ok("VM.pause", vec![Value::str(&vm)]).await;
    client.ok("VM.unpause", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(&client, &vm).await, "Running");

    // actions_after_crash=destroy: Halted, its QEMU's files gone.
    let (died, died_uuid, _, _) = destroyed;
    wait_power_state(&client, died, "Halted").await;
    assert!(!oxapi_tests::qemu::guest_dir(&data_dir, died_uuid).exists());
    // actions_after_crash=restart: running again on a QEMU the new oxapi started.
    let (again, again_uuid, dead_pid, _) = restarted;
    let new_pid = wait_new_qemu(&data_dir, again_uuid, *dead_pid).await;
    assert_eq!(
        parent_pid(new_pid),
        host.pid(),
        "the restarted VM's QEMU is a child of the new oxapi"
    );
    wait_power_state(&client, again, "Running").await;
    let new_domid = field(&client, again, "domid").await;
    assert!(
        matches!(new_domid, Value::Int(id) if id > 0),
        "{new_domid:?}"
    );
    // Domids go on from the earlier run's, those of the QEMUs that died included.
    let earlier = vms
        .iter()
        .filter_map(|(_, _, _, domid)| domid.as_int())
        .max();
    assert!(
        new_domid.as_int() > earlier,
        "a restart is a new domain: {new_domid:?} after {earlier:?}"
    );
    client.ok("VM.hard_shutdown", vec![Value::str(again)]).await;
    wait_gone(new_pid, again_uuid).await;

    // A QEMU that dies while oxapi runs is a crash too.
    sigkill(pid);
    wait_power_state(&client, &vm, "Halted").await;
    assert!(!oxapi_tests::qemu::guest_dir(&data_dir, &uuid).exists());
}

/// Kills process `pid` (a guest's QEMU) with SIGKILL.
fn sigkill(pid: u32) {
    // SAFETY: kill has no memory effects; the caller names a QEMU it found by its pidfile.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Waits until the VM `uuid` runs on a QEMU other than `old` (after a restart); returns its pid.
async fn wait_new_qemu(data_dir: &std::path::Path, uuid: &str, old: u32) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match guest_pid(data_dir, uuid) {
            Some(pid) if pid != old => return pid,
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "VM {uuid} never ran on a new QEMU"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CD drive on QEMU: a VM starts with its drive empty; `VBD.insert` of an ISO from an ISO
/// library puts the ISO in the running guest's drive (QEMU opens the file) and `VBD.eject`
/// takes it out (QEMU lets the file go), as often as asked; a full drive takes no ISO and a
/// disk is not ejected, as xapi refuses them; a VM started with the ISO in the drive has it
/// open from the start, until ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_guests_cd_drive_takes_and_gives_back_an_iso() {
    let Some(host) = qemu_host() else { return };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let disk = oxapi_tests::storage::create_vdi(&client, &local_sr(&client).await, MIB).await;
    let library = tempfile::tempdir().expect("a temp dir");
    let iso_path = library.path().join("tools.iso");
    std::fs::write(&iso_path, vec![0u8; 64 * 2048]).expect("an ISO file");
    let sr = create_sr(&client, "iso", &library.path().to_string_lossy())
        .await
        .expect("SR.create");
    client.ok("SR.scan", vec![Value::str(&sr)]).await;
    let isos = client.ok("SR.get_VDIs", vec![Value::str(&sr)]).await;
    let iso = isos.as_array().and_then(|v| v.first()).expect("the ISO");
    let iso = iso.as_str().expect("a ref").to_owned();
    let template = default_template(&client).await;
    let vm = halted_vm(&client, &template, "cd", 64 * MIB).await;
    let cd = create_cd(&client, &vm, None, "3").await;
    let vm_uuid = uuid(&client, &vm).await;
    let start = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    client.ok("VM.start", start.clone()).await;
    let pid = guest_pid(&host.data_dir(), &vm_uuid).expect("a QEMU");
    assert!(!has_open(pid, &iso_path), "the drive starts empty");
    for _ in 0..2 {
        client
            .ok("VBD.insert", vec![Value::str(&cd), Value::str(&iso)])
            .await;
        assert!(has_open(pid, &iso_path), "QEMU reads the inserted ISO");
        let empty = client.ok("VBD.get_empty", vec![Value::str(&cd)]).await;
        assert_eq!(empty, Value::Bool(false));
        client.ok("VBD.eject", vec![Value::str(&cd)]).await;
        assert!(!has_open(pid, &iso_path), "QEMU let the ejected ISO go");
    }
    client
        .ok("VBD.insert", vec![Value::str(&cd), Value::str(&iso)])
        .await;
    let refused = client
        .call("VBD.insert", vec![Value::str(&cd), Value::str(&iso)])
        .await
        .expect_err("the drive is full");
    assert_eq!(refused.code, "VBD_NOT_EMPTY");
    let disk_vbd = create_vbd(&client, &vm, &disk, "1").await;
    let refused = client
        .call("VBD.eject", vec![Value::str(&disk_vbd)])
        .await
        .expect_err("a disk is not removable");
    assert_eq!(refused.code, "VBD_NOT_REMOVABLE_MEDIA");
    assert!(has_open(pid, &iso_path), "the refusals left the ISO in");
    client.ok("VM.hard_shutdown", vec![Value::str(&vm)]).await;

    client.ok("VM.start", start).await;
    let pid = guest_pid(&host.data_dir(), &vm_uuid).expect("a QEMU");
    assert!(
        has_open(pid, &iso_path),
        "QEMU starts with the ISO in the drive"
    );
    client.ok("VM.hard_shutdown", vec![Value::str(&vm)]).await;
}

/// A halted VM of 256 MiB on a new qemu host under TCG that boots the Linux test guest
/// directly, with the guest's `words` on its kernel command line.
struct LinuxVm {
    host: Host,
    client: Client,
    vm: String,
    uuid: String,
    serial: std::path::PathBuf,
}

impl LinuxVm {
    /// `None` (the test skips) without QEMU or the test guest.
    async fn new(name: &str, words: &[&str]) -> Option<LinuxVm> {
        if !oxapi_tests::qemu::qemu_or_skip() {
            return None;
        }
        let guest = test_guest()?;
        let host = Host::start_with(HostOptions {
            qemu: true,
            config: Some(serde_json::json!({"qemu": {"accel": "tcg"}})),
            ..HostOptions::default()
        });
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let template = default_template(&client).await;
        let vm = halted_vm(&client, &template, name, 256 * MIB).await;
        let uuid = uuid(&client, &vm).await;
        let serial = oxapi_tests::qemu::serial_log(&host.data_dir(), &uuid);
        let linux = LinuxVm {
            host,
            client,
            vm,
            uuid,
            serial,
        };
        linux
            .set("PV_kernel", guest.kernel.display().to_string())
            .await;
        linux
            .set("PV_ramdisk", guest.initrd.display().to_string())
            .await;
        linux.set("PV_args", kernel_args(words)).await;
        Some(linux)
    }

    /// Sets the VM's string field `field` to `value`.
    async fn set(&self, field: &str, value: String) {
        let setter = format!("VM.set_{field}");
        let params = vec![Value::str(&self.vm), Value::str(&value)];
        self.client.ok(&setter, params).await;
    }

    /// The host, the client, and copies of the VM's ref, uuid and serial log path.
    fn parts(&self) -> (&Host, &Client, String, String, std::path::PathBuf) {
        let (vm, uuid, serial) = (self.vm.clone(), self.uuid.clone(), self.serial.clone());
        (&self.host, &self.client, vm, uuid, serial)
    }
}

/// Waits until the VM's QEMU `pid` is gone although nobody asked (its guest stopped and oxapi
/// honoured an `actions_after_*`); returns the VM's power state then and its next QEMU: after a
/// restart, a new QEMU whose guest runs, and the power state read once it runs; after a destroy,
/// Halted and none. Polls the QEMU's pidfile: a restart need not change the VM's record.
async fn wait_next_qemu(linux: &LinuxVm, pid: u32) -> (String, Option<u32>) {
    let (client, vm, data_dir) = (&linux.client, &linux.vm, linux.host.data_dir());
    let deadline = tokio::time::Instant::now() + GUEST_BOOT_TIMEOUT;
    loop {
        let next = guest_pid(&data_dir, &linux.uuid);
        if next != Some(pid) {
            match (next, power_state(client, vm).await.as_str()) {
                (None, "Halted") => return ("Halted".to_owned(), None),
                (Some(next), _) => {
                    // Any line: the kernel writes on the console from its first steps, so the
                    // guest runs, its domain whole.
                    wait_marker(&mut SerialLog::new(&linux.serial), "");
                    return (power_state(client, vm).await, Some(next));
                }
                _ => {}
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "VM {vm} still on QEMU {pid}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The memory the VM's guest has now, as `VM_metrics.memory_actual` says.
async fn memory_actual(client: &Client, vm: &str) -> i64 {
    let metrics = field(client, vm, "metrics").await;
    let actual = client
        .ok("VM_metrics.get_memory_actual", vec![metrics])
        .await;
    actual.as_int().expect("memory_actual is an int")
}

/// When the VM's last domain was started, as `VM_metrics.start_time` says.
async fn start_time(client: &Client, vm: &str) -> String {
    let metrics = field(client, vm, "metrics").await;
    let time = client.ok("VM_metrics.get_start_time", vec![metrics]).await;
    time.as_str().expect("a datetime").to_owned()
}

/// Waits for `marker` on the serial console of `vm`'s QEMU (a new log at each start).
fn wait_marker(log: &mut SerialLog, marker: &str) -> String {
    tokio::task::block_in_place(|| log.wait_for(marker, GUEST_BOOT_TIMEOUT))
        .unwrap_or_else(|err| panic!("{err}"))
}

/// How long the Linux test guest may take to reach a marker under TCG on a busy machine.
const GUEST_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The real Linux test guest, booted directly from `PV_kernel` / `PV_ramdisk` / `PV_args`
/// under TCG: it reaches user space; once it has touched all its memory, its QEMU holds more
/// than the guest's memory but never more than that and the VM's `memory_overhead` (what the
/// host's free memory counts it at); a CPU hot-added comes online and the balloon moves
/// `memory_actual`; `VM.clean_shutdown` presses its power button and it
/// powers itself off (Halted); started again with `VCPUs_params:cap`, its QEMU is throttled;
/// `VM.clean_reboot` brings it back on a new QEMU; a kernel panic
/// (pvpanic) is a crash, honoured through `actions_after_crash`; the guest's own reboot and
/// power-off are honoured through `actions_after_reboot` and `_shutdown` (destroy: Halted;
/// restart: booted again, with a later `VM_metrics.start_time`), a change of them reaching the
/// running VM at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_guest_boots_powers_off_reboots_and_crashes_as_asked() {
    let Some(linux) = LinuxVm::new("linux", &["oxapi.fill"]).await else {
        return;
    };
    let (host, client, vm, uuid, serial) = linux.parts();
    let set = |field, value| linux.set(field, value);
    let start = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    let int = |value: i64| Value::Int(value);
    let limits = [128 * MIB, 256 * MIB, 256 * MIB, 256 * MIB].map(int);
    let mut call = vec![Value::str(&vm)];
    call.extend(limits);
    client.ok("VM.set_memory_limits", call).await;
    client
        .ok("VM.set_VCPUs_max", vec![Value::str(&vm), int(2)])
        .await;
    client
        .ok("VM.set_VCPUs_at_startup", vec![Value::str(&vm), int(1)])
        .await;

    client.ok("VM.start", start.clone()).await;
    let mut log = SerialLog::new(&serial);
    wait_marker(&mut log, marker::UP);
    wait_marker(&mut log, marker::FILLED);
    let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
    let peak = peak_resident_bytes(pid).expect("QEMU's peak resident memory");
    let overhead = field(client, &vm, "memory_overhead").await;
    let computed = client
        .ok("VM.compute_memory_overhead", vec![Value::str(&vm)])
        .await;
    assert_eq!(overhead, computed);
    let Value::Int(overhead) = overhead else {
        panic!("memory_overhead is an int: {overhead:?}");
    };
    assert!(peak > 256 * MIB, "QEMU takes more than its guest: {peak}");
    assert!(
        peak <= 256 * MIB + overhead,
        "QEMU's peak {peak} is within the guest's memory and its overhead {overhead}"
    );
    // A CPU hot-added comes online in the guest; the balloon gives memory back to the host.
    client
        .ok("VM.set_VCPUs_number_live", vec![Value::str(&vm), int(2)])
        .await;
    wait_marker(&mut log, "OXAPI-GUEST-INFO cpus online=0-1 count=2");
    let range = vec![Value::str(&vm), int(192 * MIB), int(192 * MIB)];
    client.ok("VM.set_memory_dynamic_range", range).await;
    let actual = memory_actual(client, &vm).await;
    assert!(
        (actual - 192 * MIB).abs() <= 2 * MIB,
        "memory_actual {actual}"
    );
    // xapi's deprecated target call moves the balloon too, the range's both ends at it.
    let target = vec![Value::str(&vm), int(160 * MIB)];
    client.ok("VM.set_memory_target_live", target).await;
    let actual = memory_actual(client, &vm).await;
    assert!(
        (actual - 160 * MIB).abs() <= 2 * MIB,
        "memory_actual {actual} after set_memory_target_live"
    );
    assert_eq!(
        field(client, &vm, "memory_dynamic_max").await,
        int(160 * MIB)
    );
    client.ok("VM.clean_shutdown", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(client, &vm).await, "Halted");

    // Capped at half a host CPU, the guest's boot is throttled.
    let cap = [("cap".to_owned(), Value::str("50"))].into_iter().collect();
    client
        .ok(
            "VM.set_VCPUs_params",
            vec![Value::str(&vm), Value::Struct(cap)],
        )
        .await;
    client.ok("VM.start", start.clone()).await;
    let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
    wait_marker(&mut SerialLog::new(&serial), marker::UP);
    match oxapi_tests::qemu::cpu_cgroup(pid) {
        Some((group, _)) => {
            let stat = std::fs::read_to_string(group.join("cpu.stat")).expect("cpu.stat");
            let throttled = stat
                .lines()
                .find_map(|line| line.strip_prefix("nr_throttled "))
                .and_then(|n| n.trim().parse::<u64>().ok());
            assert!(throttled.is_some_and(|n| n > 0), "{stat}");
        }
        None => eprintln!("the cap is not checked: this machine has no cpu controller"),
    }
    client.ok("VM.clean_reboot", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(client, &vm).await, "Running");
    assert_ne!(guest_pid(&host.data_dir(), &uuid), Some(pid), "a new QEMU");
    let mut log = SerialLog::new(&serial);
    wait_marker(&mut log, marker::UP);

    client.ok("VM.hard_shutdown", vec![Value::str(&vm)]).await;
    set("actions_after_crash", "destroy".to_owned()).await;
    set("PV_args", kernel_args(&["oxapi.panic"])).await;
    client.ok("VM.start", start.clone()).await;
    wait_power_state(client, &vm, "Halted").await;

    // The guest reboots and powers off by itself, each honoured through its own setting while
    // the other settings say the opposite, so that one event taken for another fails. With a
    // disk and both words its boots alternate: one that finds no flag on the disk sets it and
    // reboots (REBOOTING), the next clears it (REBOOTED) and powers off (POWEROFF). Each boot's
    // markers are read in the log its QEMU leaves (before the next stop replaces it, a boot later).
    let disk = new_disk(client, &local_sr(client).await).await;
    create_vbd(client, &vm, &disk, "0").await;
    // Uncapped, so that the four boots below take no longer than they must.
    let uncapped = vec![Value::str(&vm), Value::Struct(Default::default())];
    client.ok("VM.set_VCPUs_params", uncapped).await;
    set("PV_args", kernel_args(&["oxapi.reboot", "oxapi.poweroff"])).await;
    set("actions_after_crash", "restart".to_owned()).await;
    set("actions_after_reboot", "destroy".to_owned()).await;
    set("actions_after_shutdown", "restart".to_owned()).await;
    let last_log = oxapi_tests::qemu::last_serial_log(&host.data_dir(), &uuid);
    let left_in_log = |markers: &[&str]| {
        let mut log = SerialLog::new(&last_log);
        for marker in markers {
            log.wait_for(marker, Duration::ZERO)
                .unwrap_or_else(|err| panic!("the last boot's log: {err}"));
        }
    };
    let qemu = || guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the VM");
    client.ok("VM.start", start.clone()).await;
    let (state, _) = wait_next_qemu(&linux, qemu()).await;
    assert_eq!(
        state, "Halted",
        "actions_after_reboot=destroy after the guest rebooted"
    );
    left_in_log(&[marker::UP, marker::REBOOTING]);

    // Started again, the guest finds the flag and powers off: restarted; that boot reboots:
    // restarted; the next powers off again, now that `actions_after_shutdown` says destroy.
    set("actions_after_reboot", "restart".to_owned()).await;
    client.ok("VM.start", start).await;
    let started_at = start_time(client, &vm).await;
    let (state, second) = wait_next_qemu(&linux, qemu()).await;
    assert_eq!(
        state, "Running",
        "actions_after_shutdown=restart after the guest powered off"
    );
    // Set as the guest boots again, seconds before that boot reboots.
    set("actions_after_shutdown", "destroy".to_owned()).await;
    left_in_log(&[marker::UP, marker::REBOOTED, marker::POWEROFF]);
    let second = second.expect("a restart runs a new QEMU");
    let (state, third) = wait_next_qemu(&linux, second).await;
    assert_eq!(
        state, "Running",
        "actions_after_reboot=restart after the guest rebooted"
    );
    left_in_log(&[marker::UP, marker::REBOOTING]);
    let third = third.expect("a restart runs a new QEMU");
    let (state, _) = wait_next_qemu(&linux, third).await;
    assert_eq!(
        state, "Halted",
        "actions_after_shutdown=destroy after the guest powered off"
    );
    left_in_log(&[marker::UP, marker::REBOOTED, marker::POWEROFF]);
    // Each restart is a new domain, booted later (as xapi records it).
    let restarted_at = start_time(client, &vm).await;
    assert!(
        restarted_at > started_at,
        "VM_metrics.start_time after two restarts: {restarted_at}, not later than VM.start's {started_at}"
    );
}

/// The Linux guest powers itself off (`oxapi.poweroff`) while `oxapi` is down, killed with
/// SIGKILL right after `VM.start`: QEMU keeps the stop, and `oxapi`, started again after it,
/// honours it through `actions_after_shutdown=destroy` (Halted, its QEMU gone) while the
/// other `actions_after_*` say restart, so that a power-off taken for a reboot or a crash fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_guests_power_off_while_oxapi_is_down_is_honoured_once_it_is_back() {
    let Some(mut linux) = LinuxVm::new("off-while-down", &["oxapi.poweroff"]).await else {
        return;
    };
    linux
        .set("actions_after_shutdown", "destroy".to_owned())
        .await;
    linux
        .set("actions_after_reboot", "restart".to_owned())
        .await;
    linux.set("actions_after_crash", "restart".to_owned()).await;
    let (vm, uuid, serial, data_dir) = (
        linux.vm.clone(),
        linux.uuid.clone(),
        linux.serial.clone(),
        linux.host.data_dir(),
    );
    let start = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    linux.client.ok("VM.start", start).await;
    linux.host.kill();
    let pid = guest_pid(&data_dir, &uuid).expect("a QEMU runs the VM");
    let mut log = SerialLog::new(&serial);
    assert!(
        log.wait_for(marker::POWEROFF, Duration::ZERO).is_err(),
        "oxapi was killed before the guest powered off"
    );
    wait_marker(&mut log, marker::POWEROFF);
    // The guest's power-off is a stop QEMU keeps (`-action shutdown=pause`), not its exit.
    let dir = oxapi_tests::qemu::guest_dir(&data_dir, &uuid);
    let status = tokio::task::block_in_place(|| wait_qmp_status(&dir, "shutdown"));
    assert_eq!(status, "shutdown", "QEMU {pid} after the guest's power-off");
    assert!(is_alive_qemu_of(pid, &uuid), "QEMU waits for the agent");

    linux.host.start_again();
    let client = logged_in(&linux.host, Protocol::JsonRpc).await;
    wait_power_state(&client, &vm, "Halted").await;
    wait_gone(pid, &uuid).await;
    assert!(!oxapi_tests::qemu::guest_dir(&data_dir, &uuid).exists());
    assert_eq!(
        guest_pid(&data_dir, &uuid),
        None,
        "no QEMU runs the VM again"
    );
    let last_log = oxapi_tests::qemu::last_serial_log(&data_dir, &uuid);
    let kept = SerialLog::new(&last_log).wait_for(marker::POWEROFF, Duration::ZERO);
    assert!(kept.is_ok(), "the run's log is kept: {kept:?}");
}

/// Polls, over the QMP socket in the QEMU directory `dir` (while no `oxapi` holds it), QEMU's
/// run status until it is `wanted` or 30 s have passed; returns the last status read.
fn wait_qmp_status(dir: &std::path::Path, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = qmp_status(&dir.join("qmp")).unwrap_or_else(|err| format!("({err})"));
        if status == wanted || std::time::Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// QEMU's run status (`query-status`), asked over the QMP socket at `path`.
fn qmp_status(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let mut lines = BufReader::new(stream).lines();
    // The greeting, then one answer per command; events may come between them.
    let mut answer = || -> std::io::Result<serde_json::Value> {
        loop {
            let line = lines.next().ok_or(std::io::ErrorKind::UnexpectedEof)??;
            let message: serde_json::Value = serde_json::from_str(&line)?;
            if message.get("QMP").is_some() || message.get("return").is_some() {
                return Ok(message);
            }
            if let Some(error) = message.get("error") {
                return Err(std::io::Error::other(error.to_string()));
            }
        }
    };
    answer()?;
    writer.write_all(b"{\"execute\": \"qmp_capabilities\"}\n")?;
    answer()?;
    writer.write_all(b"{\"execute\": \"query-status\"}\n")?;
    let status = answer()?;
    let status = status["return"]["status"].as_str().unwrap_or_default();
    Ok(status.to_owned())
}

/// A new 16 MiB user disk in `sr`.
async fn new_disk(client: &Client, sr: &str) -> String {
    oxapi_tests::storage::create_vdi(client, sr, 16 * MIB).await
}

/// The sha256 of the first MiB of `vdi`, exported raw through `host`.
async fn first_mib_sha256(host: &Host, client: &Client, vdi: &str) -> (String, Vec<u8>) {
    let query = transfer_query(client, vdi, "raw");
    let (status, bytes) = export_raw(&host.url(), &host.cert_pem(), &query).await;
    assert_eq!(status, 200, "export of {vdi}");
    (sha256_hex(&bytes[..BLOCK_BYTES]), bytes)
}

/// The Linux guest writes a known block to its virtio disk, a qcow2 VDI on the local SR, which
/// is snapshotted and copied to another file SR while the guest runs; the VM suspends into a suspend VDI and resumes (the
/// guest, not booted again, then sees a second disk hot-plugged, snapshotted twice and
/// unplugged, and powers off on the button); the block is read back from the VDI's export,
/// from the live snapshot and copy, from a clone that another boot of the guest reads, from a snapshot,
/// from a copy to another file SR, and from a VDI the export was imported into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_guests_disk_keeps_its_data_through_suspend_clone_copy_export_and_import() {
    let Some(linux) = LinuxVm::new("disk", &["oxapi.write=a7"]).await else {
        return;
    };
    let (host, client, vm, _, serial) = linux.parts();
    let set = |field, value| linux.set(field, value);
    let sr = local_sr(client).await;
    let new_vdi = || new_disk(client, &sr);
    let vdi = new_vdi().await;
    let vbd = create_vbd(client, &vm, &vdi, "0").await;
    let start = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    let expected = block_sha256(0xa7);
    let dir = tempfile::tempdir().expect("a temp dir");
    let location = dir.path().join("other-sr");
    let other_sr = create_sr(client, "file", &location.to_string_lossy())
        .await
        .expect("SR.create");
    let null = || Value::str("OpaqueRef:NULL");
    let copy_to_other_sr = |vdi: &str| {
        let params = vec![Value::str(vdi), Value::str(&other_sr), null(), null()];
        client.ok("VDI.copy", params)
    };

    client.ok("VM.start", start.clone()).await;
    let wrote = wait_marker(&mut SerialLog::new(&serial), marker::WROTE);
    assert_eq!(wrote, expected);
    // A snapshot of the running guest's disk: the guest goes on, on a new top of the chain.
    let empty = || Value::Struct(Default::default());
    let live_snapshot = client
        .ok("VDI.snapshot", vec![Value::str(&vdi), empty()])
        .await;
    let live_copy = copy_to_other_sr(&vdi).await;
    assert_eq!(power_state(client, &vm).await, "Running");

    client.ok("VM.suspend", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(client, &vm).await, "Suspended");
    let image = field(client, &vm, "suspend_VDI").await;
    let resume = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    client.ok("VM.resume", resume).await;
    assert_eq!(power_state(client, &vm).await, "Running");
    let gone = client.call("VDI.get_uuid", vec![image]).await;
    assert!(gone.is_err(), "the suspend image goes once resumed");
    // The resumed guest sees a disk plugged into it and released again, without a boot.
    let second = new_vdi().await;
    let hotplugged = create_vbd(client, &vm, &second, "1").await;
    client.ok("VBD.plug", vec![Value::str(&hotplugged)]).await;
    let mut log = SerialLog::new(&serial);
    wait_marker(&mut log, "OXAPI-GUEST-INFO block vdb added");
    // Its chain grows twice under the guest, and still unplugs whole.
    for _ in 0..2 {
        client
            .ok("VDI.snapshot", vec![Value::str(&second), empty()])
            .await;
    }
    client.ok("VBD.unplug", vec![Value::str(&hotplugged)]).await;
    wait_marker(&mut log, "OXAPI-GUEST-INFO block vdb removed");
    let booted = SerialLog::new(&serial).wait_for(marker::UP, Duration::ZERO);
    assert!(booted.is_err(), "the resumed guest did not boot again");
    client.ok("VM.clean_shutdown", vec![Value::str(&vm)]).await;
    assert_eq!(power_state(client, &vm).await, "Halted");

    let (written, image) = first_mib_sha256(host, client, &vdi).await;
    assert_eq!(written, expected, "the block is in the VDI");

    let clone = client
        .ok(
            "VDI.clone",
            vec![Value::str(&vdi), Value::Struct(Default::default())],
        )
        .await;
    let clone = clone.as_str().expect("a VDI ref").to_owned();
    client.ok("VBD.destroy", vec![Value::str(&vbd)]).await;
    create_vbd(client, &vm, &clone, "0").await;
    set("PV_args", kernel_args(&["oxapi.read"])).await;
    client.ok("VM.start", start).await;
    let read = wait_marker(&mut SerialLog::new(&serial), marker::READ);
    assert_eq!(read, expected, "the clone holds the block");
    client.ok("VM.hard_shutdown", vec![Value::str(&vm)]).await;

    let snapshot = client
        .ok("VDI.snapshot", vec![Value::str(&vdi), empty()])
        .await;
    let copy = copy_to_other_sr(&vdi).await;
    for (what, disk) in [
        ("snapshot of the running guest's disk", live_snapshot),
        ("copy of the running guest's disk to another SR", live_copy),
        ("snapshot", snapshot),
        ("copy to another SR", copy),
    ] {
        let disk = disk.as_str().expect("a VDI ref");
        let (held, _) = first_mib_sha256(host, client, disk).await;
        assert_eq!(held, expected, "the {what} holds the block");
    }

    let imported = new_vdi().await;
    let query = transfer_query(client, &imported, "raw");
    let (status, answer) = import_raw(&host.url(), &host.cert_pem(), &query, image).await;
    assert_eq!(status, 200, "{answer}");
    let (again, _) = first_mib_sha256(host, client, &imported).await;
    assert_eq!(again, expected, "the re-imported VDI holds the block");
}
