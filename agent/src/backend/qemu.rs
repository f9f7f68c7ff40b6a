//! The `qemu` hypervisor driver: one `qemu-system-x86_64` per domain, a direct child of
//! `oxapi`, driven over QMP on a socket in the VM's own directory under `<data dir>/qemu/`.
//!
//! - `accel.rs`: KVM when a probe shows it works, TCG otherwise;
//! - `command_line.rs`: the machine, started paused (`-S`) with its stops kept
//!   (`-action shutdown=pause,…`), disks and NICs left to QMP;
//! - `qmp.rs`: the QMP client;
//! - `runtime.rs`: the process (spawn, pidfile, kill) and the domain record kept beside it;
//! - `events.rs`: QMP events and QEMU's exit, recorded in the domain;
//! - `suspend.rs`: suspend images as qcow2 internal snapshots;
//! - `affinity.rs`: `VCPUs_params:mask`;
//! - `cpu_group.rs`: `VCPUs_params:weight` and `cap`, as a cpu cgroup per guest.
//!
//! A domain is created by starting its QEMU paused; disks go in with `blockdev-add` +
//! `device_add` on a root port of their own, NICs with `netdev_add` + `device_add`, and `cont`
//! runs the guest. The guest's power-off, reboot and panic leave QEMU stopped (never gone), so
//! the agent reads the reason from the QMP event, or after its own restart from
//! `query-status`. A QEMU that disappears without being destroyed is a crashed domain.
//!
//! After an `oxapi` restart, `discover` reads every VM directory: a QEMU still running (its
//! pidfile names a live process whose command line carries the VM's uuid) is dialled again
//! over QMP; a QEMU that cannot be reached is kept as a domain that needs power-off, so the
//! agent stops it instead of starting a second one.
//!
//! Suspend writes the guest's state into the suspend VDI (a qcow2) as its internal snapshot
//! (`snapshot-save` after `stop`, which flushes the disks); resume loads it (`snapshot-load`)
//! into a new QEMU whose devices are plugged. NICs use QEMU's user-mode network until the
//! network driver makes taps (issue 12); migration images are not streamed by this driver yet.

mod accel;
mod affinity;
mod command_line;
mod cpu_group;
mod events;
mod layers;
mod qmp;
mod runtime;
mod suspend;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use host_api::{ConsoleInfo, DiskSpec, VbdKind, VbdSpec, VifSpec, VmSpec};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OnceCell, broadcast, watch};

pub use self::accel::{AccelChoice, Acceleration};
use self::command_line::{VmPaths, root_port};
use self::cpu_group::{CGROUP_ROOT, CpuHierarchy};
use self::events::{Signals, state_of};
use self::qmp::{Qmp, QmpError};
use super::{
    AttachedDisk, BackendError, BackendOp, DiskFormat, Domain, DomainEvent, Hypervisor, NicPort,
    Op, RunState, ShutdownReason, lock,
};

/// The `qemu` driver's settings (`agent.qemu` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct QemuConfig {
    /// The emulator to run (a name is looked up in `PATH`).
    pub binary: PathBuf,
    pub accel: AccelChoice,
    /// The `-cpu` argument, instead of the one the probe picks.
    pub cpu_model: Option<String>,
    /// How long one QMP command may take (and QEMU to open its monitor).
    pub qmp_timeout: Duration,
    /// How long a guest has to release a disk or NIC being unplugged.
    pub unplug_timeout: Duration,
    /// How long writing or loading a suspend image may take.
    pub image_timeout: Duration,
    /// The UEFI firmware (OVMF's code) that guests with `HVM_boot_params:firmware=uefi` boot.
    pub ovmf_code: PathBuf,
    /// The empty EFI variable store each such VM's own store is first copied from.
    pub ovmf_vars: PathBuf,
}

impl Default for QemuConfig {
    fn default() -> QemuConfig {
        QemuConfig {
            binary: PathBuf::from(QEMU_BINARY),
            accel: AccelChoice::Auto,
            cpu_model: None,
            qmp_timeout: Duration::from_secs(10),
            unplug_timeout: Duration::from_secs(10),
            image_timeout: Duration::from_secs(600),
            ovmf_code: PathBuf::from(OVMF_CODE),
            ovmf_vars: PathBuf::from(OVMF_VARS),
        }
    }
}

/// Where Debian's `ovmf` package puts the UEFI firmware, and its empty variable store.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The emulator this driver runs.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Whether `binary` can be run here (a path, or a name found in `PATH`).
pub fn is_installed(binary: &Path) -> bool {
    if binary.components().count() > 1 {
        return binary.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
}

/// The driver: the domains of this host, each with its QEMU.
pub struct Qemu {
    config: QemuConfig,
    /// `<data dir>/qemu`: one directory per domain.
    root: PathBuf,
    acceleration: OnceCell<Acceleration>,
    /// Set once the directories left by an earlier run have been read.
    loaded: OnceCell<()>,
    vms: Mutex<BTreeMap<String, Arc<Vm>>>,
    /// The domid given last (at first, the largest of the earlier run's domains): each new
    /// QEMU gets a larger one, as Xen numbers its domains, so a VM restarted shows a new domain.
    last_domid: Mutex<i64>,
    signals: Arc<Signals>,
    /// The cgroup hierarchy with the host's cpu controller, for `weight` and `cap`.
    cpu_hierarchy: Option<CpuHierarchy>,
}

/// One domain: its QEMU and the record kept beside it.
struct Vm {
    paths: VmPaths,
    pid: u32,
    /// `None` when QEMU runs but its monitor could not be reached.
    qmp: Option<Qmp>,
    domain: Mutex<Domain>,
    /// The guest was asked to reboot: its next power-off is a reboot.
    is_reboot_requested: AtomicBool,
    /// True once QEMU is gone.
    exited: watch::Receiver<bool>,
    is_destroying: AtomicBool,
}

impl Vm {
    fn domain(&self) -> MutexGuard<'_, Domain> {
        lock(&self.domain)
    }

    fn qmp(&self, op: BackendOp) -> Result<&Qmp, BackendError> {
        self.qmp.as_ref().ok_or_else(|| BackendError::Failed {
            op,
            reason: format!(
                "the QEMU of vm {} (pid {}) does not answer on its monitor",
                self.domain().vm(),
                self.pid
            ),
        })
    }

    /// Changes the record and keeps it on disk.
    fn update<T>(&self, change: impl FnOnce(&mut Domain) -> T) -> Result<T, BackendError> {
        let mut domain = self.domain();
        let result = change(&mut domain);
        runtime::save_record(&self.paths, &domain)?;
        Ok(result)
    }
}

/// How near its target a balloon counts as there.
const BALLOON_SLACK_BYTES: u64 = 1 << 20;
/// How long QEMU has to quit when asked, before it is killed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to try QEMU's monitor socket while QEMU starts.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

impl Qemu {
    /// The driver keeping its domains under `data_dir`.
    pub fn new(data_dir: &Path, config: QemuConfig) -> Arc<Qemu> {
        let (events, _) = broadcast::channel(256);
        let (changed, _) = watch::channel(0);
        Arc::new(Qemu {
            config,
            root: data_dir.join("qemu"),
            acceleration: OnceCell::new(),
            loaded: OnceCell::new(),
            vms: Mutex::new(BTreeMap::new()),
            last_domid: Mutex::new(0),
            signals: Arc::new(Signals { events, changed }),
            cpu_hierarchy: CpuHierarchy::find(Path::new(CGROUP_ROOT)),
        })
    }

    /// The accelerator and CPU model guests run with here, probed once.
    pub async fn acceleration(&self) -> &Acceleration {
        self.acceleration
            .get_or_init(|| async {
                let chosen = accel::choose(
                    &self.config.binary,
                    self.config.accel,
                    self.config.cpu_model.as_deref(),
                )
                .await;
                tracing::info!(accel = %chosen.accel, cpu_model = %chosen.cpu_model, "QEMU acceleration");
                chosen
            })
            .await
    }

    fn vm(&self, vm: &str) -> Result<Arc<Vm>, BackendError> {
        lock(&self.vms)
            .get(vm)
            .cloned()
            .ok_or_else(|| BackendError::NoDomain { vm: vm.to_owned() })
    }

    /// The domains of an earlier run, read once.
    async fn load(&self) -> Result<(), BackendError> {
        self.loaded
            .get_or_try_init(|| async {
                std::fs::create_dir_all(&self.root).map_err(|source| BackendError::State {
                    path: self.root.clone(),
                    source,
                })?;
                let entries =
                    std::fs::read_dir(&self.root).map_err(|source| BackendError::State {
                        path: self.root.clone(),
                        source,
                    })?;
                let dirs = entries
                    .flatten()
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()));
                for entry in dirs {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let paths = VmPaths::new(&self.root, &name);
                    match self.reattach(&name, paths).await {
                        Ok(vm) => {
                            lock(&self.vms).insert(name, vm);
                        }
                        Err(err) => tracing::error!(
                            vm = %name,
                            error = &err as &dyn std::error::Error,
                            "cannot take over a domain of an earlier run"
                        ),
                    }
                }
                // New domids go on from the earlier run's, those of QEMUs that died included.
                let last = lock(&self.vms).values().map(|vm| vm.domain().domid).max();
                let mut last_domid = lock(&self.last_domid);
                *last_domid = last.unwrap_or(0).max(*last_domid);
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The domain kept in `paths`, with its QEMU if that still runs.
    async fn reattach(&self, vm: &str, paths: VmPaths) -> Result<Arc<Vm>, BackendError> {
        let mut domain = runtime::load_record(&paths)?;
        let Some(pid) = runtime::running_pid(&paths, vm) else {
            // QEMU never exits by itself (its stops are kept): it died or was killed.
            if !matches!(domain.state, RunState::Shutdown(_)) {
                domain.state = RunState::Shutdown(ShutdownReason::Crash);
            }
            tracing::warn!(vm, "the QEMU of a domain is gone: a crash");
            let (_, exited) = watch::channel(true);
            return Ok(Arc::new(Vm {
                paths,
                pid: 0,
                qmp: None,
                domain: Mutex::new(domain),
                is_reboot_requested: AtomicBool::new(false),
                exited,
                is_destroying: AtomicBool::new(false),
            }));
        };
        let qmp = match Qmp::connect(&paths.qmp, self.config.qmp_timeout).await {
            Ok(qmp) => {
                let status = qmp
                    .execute("query-status", json!({}), self.config.qmp_timeout)
                    .await;
                match status {
                    Ok(status) => {
                        domain.state = state_of(&status, domain.state);
                        Some(qmp)
                    }
                    Err(err) => {
                        tracing::error!(
                            vm,
                            pid,
                            error = &err as &dyn std::error::Error,
                            "QEMU does not answer"
                        );
                        None
                    }
                }
            }
            Err(err) => {
                tracing::error!(
                    vm,
                    pid,
                    error = &err as &dyn std::error::Error,
                    "cannot reach QEMU's monitor"
                );
                None
            }
        };
        if qmp.is_none() {
            // Stop it rather than ever run a second QEMU for the VM.
            domain.needs_poweroff = true;
        }
        let (exited_tx, exited) = watch::channel(false);
        let vm = Arc::new(Vm {
            paths,
            pid,
            qmp,
            domain: Mutex::new(domain),
            is_reboot_requested: AtomicBool::new(false),
            exited,
            is_destroying: AtomicBool::new(false),
        });
        runtime::save_record(&vm.paths, &vm.domain())?;
        tracing::info!(vm = %vm.domain().vm(), pid, "took over a running QEMU");
        // Not a child of this process: its monitor closing is its exit.
        let watched = vm.clone();
        tokio::spawn(async move {
            if let Some(qmp) = &watched.qmp {
                qmp.closed().await;
                let _ = exited_tx.send(true);
            } else {
                // Unreachable: only destroy (which kills it) ends it.
                std::future::pending::<()>().await;
            }
        });
        self.watch(vm.clone());
        Ok(vm)
    }

    /// The UEFI firmware of the VM of `paths`: OVMF's code, and the VM's own variable store,
    /// kept beside the VM directories across its starts (copied from OVMF's empty one at the
    /// first, durably).
    fn uefi_firmware(&self, paths: &VmPaths) -> Result<command_line::Uefi, BackendError> {
        let missing = |path: &Path| BackendError::Failed {
            op: BackendOp::Build,
            reason: format!(
                "firmware=uefi needs OVMF's {} (Debian's ovmf package; qemu.ovmf_code and \
                 qemu.ovmf_vars name other files)",
                path.display()
            ),
        };
        for path in [&self.config.ovmf_code, &self.config.ovmf_vars] {
            if !path.is_file() {
                return Err(missing(path));
            }
        }
        if !paths.nvram.exists() {
            let state = |source| BackendError::State {
                path: paths.nvram.clone(),
                source,
            };
            let partial = paths.nvram.with_extension("partial");
            std::fs::copy(&self.config.ovmf_vars, &partial).map_err(state)?;
            std::fs::File::open(&partial)
                .and_then(|file| file.sync_all())
                .map_err(state)?;
            std::fs::rename(&partial, &paths.nvram).map_err(state)?;
            std::fs::File::open(&self.root)
                .and_then(|dir| dir.sync_all())
                .map_err(state)?;
        }
        Ok(command_line::Uefi {
            code: self.config.ovmf_code.clone(),
            vars: paths.nvram.clone(),
        })
    }

    /// Starts the QEMU of `spec` (paused) and dials its monitor.
    async fn start_qemu(&self, spec: &VmSpec) -> Result<Arc<Vm>, BackendError> {
        let acceleration = self.acceleration().await.clone();
        let paths = VmPaths::new(&self.root, &spec.uuid);
        let state = |source| BackendError::State {
            path: paths.dir.clone(),
            source,
        };
        if paths.dir.exists() {
            std::fs::remove_dir_all(&paths.dir).map_err(state)?;
        }
        std::fs::create_dir_all(&paths.dir).map_err(state)?;
        let domid = {
            let vms = lock(&self.vms);
            let running = vms.values().map(|vm| vm.domain().domid).max();
            let mut last = lock(&self.last_domid);
            *last = running.unwrap_or(0).max(*last) + 1;
            *last
        };
        let domain = Domain {
            domid,
            state: RunState::Paused,
            spec: spec.clone(),
            is_built: false,
            needs_poweroff: true,
            memory_actual_bytes: spec.memory_static_max_bytes,
            vcpus: spec.vcpus_at_startup.clamp(1, spec.vcpus_max.max(1)),
            vbds: Vec::new(),
            vifs: Vec::new(),
            has_device_model: false,
            consoles: Vec::new(),
        };
        runtime::save_record(&paths, &domain)?;
        let firmware = match command_line::boots_uefi(spec) {
            true => Some(self.uefi_firmware(&paths)?),
            false => None,
        };
        let args = command_line::arguments(spec, &paths, &acceleration, firmware.as_ref());
        let (pid, exited) = runtime::spawn(&self.config.binary, &args, &paths)?;
        let qmp = match self.dial(&paths, exited.clone()).await {
            Ok(qmp) => qmp,
            Err(err) => {
                runtime::kill(pid, &spec.uuid);
                let log = std::fs::read_to_string(&paths.qemu_log).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&paths.dir);
                return Err(BackendError::Failed {
                    op: BackendOp::Create,
                    reason: format!("{err}; QEMU said: {}", log.trim()),
                });
            }
        };
        tracing::info!(vm = %spec.uuid, pid, domid, accel = %acceleration.accel, "QEMU started");
        let vm = Arc::new(Vm {
            paths,
            pid,
            qmp: Some(qmp),
            domain: Mutex::new(domain),
            is_reboot_requested: AtomicBool::new(false),
            exited,
            is_destroying: AtomicBool::new(false),
        });
        let placed = match self.pin_vcpus(&vm, BackendOp::Create).await {
            Ok(()) => self.share_cpus(&vm, BackendOp::Create),
            Err(err) => Err(err),
        };
        if let Err(err) = placed {
            runtime::kill(pid, &spec.uuid);
            let mut exited = vm.exited.clone();
            let _ = tokio::time::timeout(QUIT_TIMEOUT, exited.wait_for(|gone| *gone)).await;
            self.release_cpus(&spec.uuid);
            let _ = std::fs::remove_dir_all(&vm.paths.dir);
            return Err(err);
        }
        Ok(vm)
    }

    /// Connects to the monitor of a QEMU just started, as soon as it listens.
    async fn dial(&self, paths: &VmPaths, exited: watch::Receiver<bool>) -> Result<Qmp, QmpError> {
        let deadline = tokio::time::Instant::now() + self.config.qmp_timeout;
        loop {
            match Qmp::connect(&paths.qmp, self.config.qmp_timeout).await {
                Ok(qmp) => return Ok(qmp),
                Err(err @ QmpError::Connect { .. }) => {
                    if *exited.borrow() || tokio::time::Instant::now() >= deadline {
                        return Err(err);
                    }
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn command(
        &self,
        vm: &Vm,
        op: BackendOp,
        command: &str,
        arguments: Value,
    ) -> Result<Value, BackendError> {
        vm.qmp(op)?
            .execute(command, arguments, self.config.qmp_timeout)
            .await
            .map_err(|err| failed(op, err))
    }

    /// Runs `device_del` on the device of `kind` (`vbd` or `vif`) `uuid` and waits until the
    /// guest has released it: `DetachRejected` if it has not within the unplug timeout.
    async fn unplug_device(
        &self,
        vm: &Vm,
        op: BackendOp,
        kind: &str,
        uuid: &str,
    ) -> Result<(), BackendError> {
        let id = &format!("{kind}-{uuid}");
        let mut events = vm.qmp(op)?.events();
        self.command(vm, op, "device_del", json!({"id": id}))
            .await?;
        let released = events.next_matching(|event| event.is("DEVICE_DELETED", &[("device", id)]));
        match tokio::time::timeout(self.config.unplug_timeout, released).await {
            Ok(result) => result.map(drop).map_err(|err| failed(op, err)),
            Err(_) => Err(BackendError::DetachRejected {
                device: uuid.to_owned(),
                reason: format!(
                    "the guest did not release it within {} s",
                    self.config.unplug_timeout.as_secs_f64()
                ),
            }),
        }
    }

    /// Stops the guest's vCPUs (QMP `stop`); a running domain is paused from then on.
    async fn stop_guest(&self, vm: &Vm, op: BackendOp) -> Result<(), BackendError> {
        self.command(vm, op, "stop", json!({})).await?;
        vm.update(|domain| {
            if domain.state == RunState::Running {
                domain.state = RunState::Paused;
            }
        })
    }

    /// Whether the guest runs now, so that a device going away must be released by it.
    fn is_guest_running(vm: &Vm) -> bool {
        vm.domain().state == RunState::Running
    }
}

fn failed(op: BackendOp, err: QmpError) -> BackendError {
    BackendError::Failed {
        op,
        reason: err.to_string(),
    }
}

/// Node and device names of a VBD or VIF: QEMU's node names are at most 31 characters.
fn short(uuid: &str) -> String {
    uuid.chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect()
}

impl Hypervisor for Qemu {
    fn create<'a>(&'a self, spec: &'a VmSpec) -> Op<'a, i64> {
        Box::pin(async move {
            self.load().await?;
            if lock(&self.vms).contains_key(&spec.uuid) {
                return Err(BackendError::DomainExists {
                    vm: spec.uuid.clone(),
                });
            }
            let vm = self.start_qemu(spec).await?;
            let domid = vm.domain().domid;
            lock(&self.vms).insert(spec.uuid.clone(), vm.clone());
            self.watch(vm);
            self.signals.changed(&spec.uuid, false);
            Ok(domid)
        })
    }

    /// QEMU loads the firmware or kernel itself when it runs: nothing is left to build.
    fn build<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move { self.vm(vm)?.update(|domain| domain.is_built = true) })
    }

    fn plug_disk<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a VbdSpec,
        disk: Option<&'a AttachedDisk>,
    ) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::PlugDisk;
            let running = self.vm(vm)?;
            if running
                .domain()
                .vbds
                .iter()
                .any(|plugged| plugged.uuid == vbd.uuid)
            {
                return Err(BackendError::DeviceAttached {
                    device: vbd.uuid.clone(),
                });
            }
            let key = short(&vbd.uuid);
            let (file_node, format_node) = (format!("f{key}"), format!("d{key}"));
            let is_cd = vbd.kind == VbdKind::Cd;
            if let Some(disk) = disk {
                let read_only = disk.read_only || vbd.read_only || is_cd;
                let file = json!({
                    "driver": "file",
                    "filename": disk.path,
                    "node-name": file_node,
                    "read-only": read_only,
                });
                self.command(&running, op, "blockdev-add", file).await?;
                let driver = match disk.format {
                    DiskFormat::Qcow2 => "qcow2",
                    DiskFormat::Raw => "raw",
                };
                let format = json!({
                    "driver": driver,
                    "node-name": format_node,
                    "file": file_node,
                    "read-only": read_only,
                });
                if let Err(err) = self.command(&running, op, "blockdev-add", format).await {
                    let _ = self
                        .command(
                            &running,
                            op,
                            "blockdev-del",
                            json!({"node-name": file_node}),
                        )
                        .await;
                    return Err(err);
                }
            } else if !is_cd {
                return Err(BackendError::DriveEmpty {
                    vbd: vbd.uuid.clone(),
                });
            }
            let mut device = if is_cd {
                json!({"driver": "scsi-cd", "bus": "scsi0.0"})
            } else {
                let port = root_port(&vbd.device, false).ok_or_else(|| BackendError::Failed {
                    op,
                    reason: format!("no slot for a disk at userdevice {}", vbd.device),
                })?;
                json!({"driver": "virtio-blk-pci", "bus": port})
            };
            device["id"] = json!(format!("vbd-{}", vbd.uuid));
            if disk.is_some() {
                device["drive"] = json!(format_node);
            }
            if let Err(err) = self.command(&running, op, "device_add", device).await {
                if disk.is_some() {
                    for node in [&format_node, &file_node] {
                        let _ = self
                            .command(&running, op, "blockdev-del", json!({"node-name": node}))
                            .await;
                    }
                }
                return Err(err);
            }
            running.update(|domain| domain.vbds.push(vbd.clone()))
        })
    }

    /// The NIC is on QEMU's user-mode network: the port is not used until taps exist.
    fn plug_nic<'a>(&'a self, vm: &'a str, vif: &'a VifSpec, _port: &'a NicPort) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::PlugNic;
            let running = self.vm(vm)?;
            if running
                .domain()
                .vifs
                .iter()
                .any(|plugged| plugged.uuid == vif.uuid)
            {
                return Err(BackendError::DeviceAttached {
                    device: vif.uuid.clone(),
                });
            }
            let port = root_port(&vif.device, true).ok_or_else(|| BackendError::Failed {
                op,
                reason: format!("no slot for a NIC at device {}", vif.device),
            })?;
            let netdev = format!("n{}", short(&vif.uuid));
            let arguments = json!({"type": "user", "id": netdev});
            self.command(&running, op, "netdev_add", arguments).await?;
            let mut device = json!({
                "driver": "virtio-net-pci",
                "id": format!("vif-{}", vif.uuid),
                "netdev": netdev,
                "bus": port,
            });
            if !vif.mac.is_empty() {
                device["mac"] = json!(vif.mac);
            }
            if let Err(err) = self.command(&running, op, "device_add", device).await {
                let _ = self
                    .command(&running, op, "netdev_del", json!({"id": netdev}))
                    .await;
                return Err(err);
            }
            running.update(|domain| domain.vifs.push(vif.clone()))
        })
    }

    /// QEMU's device model runs from the start: this records its serial console.
    fn start_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            self.vm(vm)?.update(|domain| {
                domain.has_device_model = true;
                domain.consoles = vec![ConsoleInfo {
                    protocol: "vt100".to_owned(),
                }];
            })
        })
    }

    fn unpause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            self.command(&running, BackendOp::Unpause, "cont", json!({}))
                .await?;
            running.update(|domain| domain.state = RunState::Running)?;
            self.signals.changed(vm, false);
            Ok(())
        })
    }

    fn set_needs_poweroff<'a>(&'a self, vm: &'a str, needs_poweroff: bool) -> Op<'a> {
        Box::pin(async move {
            self.vm(vm)?
                .update(|domain| domain.needs_poweroff = needs_poweroff)
        })
    }

    fn pause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            self.stop_guest(&running, BackendOp::Pause).await?;
            self.signals.changed(vm, false);
            Ok(())
        })
    }

    /// Presses the ACPI power button; a reboot asked for is a power-off the agent restarts.
    fn request_shutdown<'a>(&'a self, vm: &'a str, reason: ShutdownReason) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::RequestShutdown;
            let running = self.vm(vm)?;
            if reason == ShutdownReason::Crash {
                return Err(BackendError::Failed {
                    op,
                    reason: "a guest cannot be asked to crash".to_owned(),
                });
            }
            running
                .is_reboot_requested
                .store(reason == ShutdownReason::Reboot, Ordering::SeqCst);
            self.command(&running, op, "system_powerdown", json!({}))
                .await?;
            Ok(())
        })
    }

    fn wait_shutdown<'a>(&'a self, vm: &'a str) -> Op<'a, ShutdownReason> {
        Box::pin(async move {
            let mut changes = self.signals.changed.subscribe();
            loop {
                let running = self.vm(vm)?;
                if let RunState::Shutdown(reason) = running.domain().state {
                    return Ok(reason);
                }
                drop(running);
                if changes.changed().await.is_err() {
                    return Err(BackendError::NoDomain { vm: vm.to_owned() });
                }
            }
        })
    }

    fn unplug_nic<'a>(&'a self, vm: &'a str, vif: &'a str, _force: bool) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::UnplugNic;
            let running = self.vm(vm)?;
            if !running
                .domain()
                .vifs
                .iter()
                .any(|plugged| plugged.uuid == vif)
            {
                return Err(BackendError::DeviceDetached {
                    device: vif.to_owned(),
                });
            }
            if Self::is_guest_running(&running) {
                self.unplug_device(&running, op, "vif", vif).await?;
                let netdev = format!("n{}", short(vif));
                self.command(&running, op, "netdev_del", json!({"id": netdev}))
                    .await?;
            }
            running.update(|domain| domain.vifs.retain(|plugged| plugged.uuid != vif))
        })
    }

    /// A running guest must release the disk (xapi's unplug and unplug_force alike: QEMU
    /// cannot take a PCI device from a guest); a stopped one loses it with its QEMU.
    fn unplug_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, _force: bool) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::UnplugDisk;
            let running = self.vm(vm)?;
            let plugged = running
                .domain()
                .vbds
                .iter()
                .find(|plugged| plugged.uuid == vbd)
                .cloned();
            let Some(plugged) = plugged else {
                return Err(BackendError::DeviceDetached {
                    device: vbd.to_owned(),
                });
            };
            if Self::is_guest_running(&running) {
                self.unplug_device(&running, op, "vbd", vbd).await?;
                if plugged.disk.is_some() {
                    for node in layers::nodes_of(self, &running, op, vbd).await? {
                        self.command(&running, op, "blockdev-del", json!({"node-name": node}))
                            .await?;
                    }
                }
            }
            running.update(|domain| domain.vbds.retain(|plugged| plugged.uuid != vbd))
        })
    }

    fn stop_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            self.vm(vm)?.update(|domain| {
                domain.has_device_model = false;
                domain.consoles.clear();
            })
        })
    }

    /// Asks QEMU to quit, kills it if it does not, and removes its directory (the serial log
    /// of the run stays as `<vm>.serial.log` beside it).
    fn destroy<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            self.load().await?;
            let running = self.vm(vm)?;
            running.is_destroying.store(true, Ordering::SeqCst);
            let mut exited = running.exited.clone();
            if !*exited.borrow() {
                if let Some(qmp) = &running.qmp {
                    let _ = qmp.execute("quit", json!({}), QUIT_TIMEOUT).await;
                }
                let quit = tokio::time::timeout(QUIT_TIMEOUT, exited.wait_for(|gone| *gone));
                if quit.await.is_err() {
                    runtime::kill(running.pid, vm);
                    let killed = tokio::time::timeout(QUIT_TIMEOUT, exited.wait_for(|gone| *gone));
                    if killed.await.is_err() && runtime::is_qemu_of(running.pid, vm) {
                        running.is_destroying.store(false, Ordering::SeqCst);
                        return Err(BackendError::Failed {
                            op: BackendOp::Destroy,
                            reason: format!("QEMU pid {} does not exit", running.pid),
                        });
                    }
                }
            }
            lock(&self.vms).remove(vm);
            self.release_cpus(vm);
            // The guest's console output of this run stays, beside the directory.
            let _ = std::fs::rename(&running.paths.serial_log, &running.paths.last_serial_log);
            if let Err(err) = std::fs::remove_dir_all(&running.paths.dir) {
                tracing::warn!(
                    vm,
                    error = &err as &dyn std::error::Error,
                    "QEMU's directory stays"
                );
            }
            tracing::info!(vm, pid = running.pid, "domain destroyed");
            self.signals.changed(vm, false);
            Ok(())
        })
    }

    /// Stops the guest (QEMU drains and flushes its disks), then writes its memory and device
    /// state into the suspend VDI as that qcow2's internal snapshot (`snapshot-save`).
    fn save<'a>(&'a self, vm: &'a str, image: &'a DiskSpec, at: &'a AttachedDisk) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::Save;
            let running = self.vm(vm)?;
            self.stop_guest(&running, op).await?;
            self.with_image(&running, op, &image.vdi_uuid, at, "snapshot-save")
                .await
        })
    }

    /// Loads the state `save` wrote (`snapshot-load`) into the paused QEMU, whose devices are
    /// plugged already.
    fn restore<'a>(&'a self, vm: &'a str, image: &'a DiskSpec, at: &'a AttachedDisk) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::Restore;
            let running = self.vm(vm)?;
            self.with_image(&running, op, &image.vdi_uuid, at, "snapshot-load")
                .await?;
            running.update(|domain| domain.is_built = true)
        })
    }

    /// Stops the guest, writes its state into a migration image beside its QEMU (as a
    /// suspend does) and streams that image into `to`.
    fn save_image<'a>(
        &'a self,
        vm: &'a str,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            self.send_migration_image(&running, to).await
        })
    }

    fn receive_image<'a>(
        &'a self,
        vm: &'a str,
        from: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(self.keep_migration_image(vm, from))
    }

    /// Loads the image `receive_image` kept into the paused QEMU, whose devices are plugged.
    fn restore_received<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            self.load_migration_image(&running).await
        })
    }

    fn insert_cd<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a str,
        disk: &'a DiskSpec,
        attached: &'a AttachedDisk,
    ) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            let format = match attached.format {
                DiskFormat::Qcow2 => "qcow2",
                DiskFormat::Raw => "raw",
            };
            let arguments = json!({
                "id": format!("vbd-{vbd}"),
                "filename": attached.path,
                "format": format,
                "read-only-mode": "read-only",
            });
            self.command(
                &running,
                BackendOp::InsertCd,
                "blockdev-change-medium",
                arguments,
            )
            .await?;
            running.update(|domain| {
                for plugged in domain.vbds.iter_mut().filter(|plugged| plugged.uuid == vbd) {
                    plugged.disk = Some(disk.clone());
                }
            })
        })
    }

    fn switch_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, overlay: &'a Path) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            self.switch_to_overlay(&running, vbd, overlay).await
        })
    }

    /// `block_resize` of the top of the disk's chain; virtio-blk tells the guest.
    fn grow_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, bytes: u64) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::ResizeVdi;
            let running = self.vm(vm)?;
            let nodes = layers::nodes_of(self, &running, op, vbd).await?;
            let top = nodes.first().cloned().unwrap_or_default();
            let arguments = json!({"node-name": top, "size": bytes});
            self.command(&running, op, "block_resize", arguments)
                .await?;
            tracing::info!(vm, vbd, node = %top, bytes, "disk grown under its guest");
            Ok(())
        })
    }

    fn eject_cd<'a>(&'a self, vm: &'a str, vbd: &'a str) -> Op<'a> {
        Box::pin(async move {
            let running = self.vm(vm)?;
            let arguments = json!({"id": format!("vbd-{vbd}"), "force": true});
            self.command(&running, BackendOp::EjectCd, "eject", arguments)
                .await?;
            running.update(|domain| {
                for plugged in domain.vbds.iter_mut().filter(|plugged| plugged.uuid == vbd) {
                    plugged.disk = None;
                }
            })
        })
    }

    /// Hot-adds CPUs into QEMU's free slots, or removes the ones added before (the boot CPUs
    /// stay).
    fn set_vcpus<'a>(&'a self, vm: &'a str, count: u32) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::SetVcpus;
            let running = self.vm(vm)?;
            let max = running.domain().spec.vcpus_max.max(1);
            if count == 0 || count > max {
                return Err(BackendError::TooManyVcpus {
                    vm: vm.to_owned(),
                    count,
                    max,
                });
            }
            let slots = self
                .command(&running, op, "query-hotpluggable-cpus", json!({}))
                .await?;
            let slots = slots.as_array().cloned().unwrap_or_default();
            let plugged = slots
                .iter()
                .filter(|slot| slot.get("qom-path").is_some())
                .count();
            let plugged = u32::try_from(plugged).unwrap_or(u32::MAX);
            let free = slots.iter().filter(|slot| slot.get("qom-path").is_none());
            for (index, slot) in free
                .take(count.saturating_sub(plugged) as usize)
                .enumerate()
            {
                let mut device = slot.get("props").cloned().unwrap_or_else(|| json!({}));
                device["driver"] = slot.get("type").cloned().unwrap_or_default();
                device["id"] = json!(format!("cpu{}", plugged as usize + index));
                self.command(&running, op, "device_add", device).await?;
            }
            for index in (count..plugged).rev() {
                let id = format!("cpu{index}");
                self.command(&running, op, "device_del", json!({"id": id}))
                    .await?;
            }
            self.pin_vcpus(&running, op).await?;
            running.update(|domain| domain.vcpus = count)
        })
    }

    /// Moves the balloon and waits, at most `qmp_timeout`, for the guest to reach the target
    /// (as xenopsd waits for a balloon); `memory_actual` is what the guest holds then. A guest
    /// without a balloon driver never moves: its target is set all the same.
    fn set_memory_target<'a>(&'a self, vm: &'a str, bytes: u64) -> Op<'a> {
        Box::pin(async move {
            let op = BackendOp::SetMemoryTarget;
            let running = self.vm(vm)?;
            let mut events = running.qmp(op)?.events();
            self.command(&running, op, "balloon", json!({"value": bytes}))
                .await?;
            let reached = |actual: u64| actual.abs_diff(bytes) < BALLOON_SLACK_BYTES;
            let balloon = self
                .command(&running, op, "query-balloon", json!({}))
                .await?;
            let mut actual = balloon.get("actual").and_then(Value::as_u64).unwrap_or(0);
            if !reached(actual) {
                let there = events.next_matching(|event| {
                    if let Some(now) = event.data.get("actual").and_then(Value::as_u64)
                        && event.name == "BALLOON_CHANGE"
                    {
                        actual = now;
                    }
                    reached(actual)
                });
                let waited = tokio::time::timeout(self.config.qmp_timeout, there).await;
                if waited.is_err() {
                    tracing::info!(
                        vm,
                        target = bytes,
                        actual,
                        "the guest has not reached its memory target"
                    );
                }
            }
            running.update(|domain| domain.memory_actual_bytes = actual)
        })
    }

    fn update_spec<'a>(&'a self, vm: &'a str, spec: &'a VmSpec) -> Op<'a> {
        Box::pin(async move {
            self.vm(vm)?.update(|domain| {
                domain.spec = VmSpec {
                    vbds: std::mem::take(&mut domain.spec.vbds),
                    vifs: std::mem::take(&mut domain.spec.vifs),
                    ..spec.clone()
                };
            })
        })
    }

    fn domain<'a>(&'a self, vm: &'a str) -> Op<'a, Option<Domain>> {
        Box::pin(async move {
            self.load().await?;
            Ok(lock(&self.vms)
                .get(vm)
                .map(|running| running.domain().clone()))
        })
    }

    fn discover(&self) -> Op<'_, Vec<Domain>> {
        Box::pin(async move {
            self.load().await?;
            Ok(lock(&self.vms)
                .values()
                .map(|running| running.domain().clone())
                .collect())
        })
    }

    fn events(&self) -> broadcast::Receiver<DomainEvent> {
        self.signals.events.subscribe()
    }
}
