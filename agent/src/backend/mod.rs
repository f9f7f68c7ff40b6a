//! The drivers the agent acts through, one trait per capability, and the one factory that
//! chooses them from the config:
//!
//! - `hypervisor.rs`: `Hypervisor`, the domains (create, build, devices, device model, pause,
//!   shutdown, save / restore, migration images, events);
//! - `storage.rs`: `Storage`, one driver per SR type (attach / activate a VDI to a path the
//!   hypervisor opens, and back; create, destroy, resize, snapshot, clone, scan);
//! - `network.rs`: `Network`, what a network and a VIF need on this host (a bridge, a tap);
//! - `simulator.rs`: the simulator, which implements all three;
//! - `state_file.rs`: a driver's state kept in a file that a crash never leaves half written.
//! - `qemu.rs`: real domains, one QEMU each; with it, directory SRs are `file_sr.rs`'s, ISO
//!   libraries `iso_sr.rs`'s, and NICs are on `user_network.rs`'s user-mode network.
//!
//! A start goes storage → hypervisor for each disk and network → hypervisor for each NIC
//! (`micro_ops.rs`). Every operation of every driver has a name (`BackendOp`), which the
//! simulator's latency, failure injection and history use; every driver fails with
//! `BackendError`.

pub mod file_sr;
pub mod hypervisor;
pub mod iso_sr;
pub mod network;
pub mod qemu;
pub mod simulator;
pub mod state_file;
pub mod storage;
pub mod user_network;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use host_api::{HypervisorInfo, PowerState, StorageOperation};
use serde::{Deserialize, Serialize};

use self::file_sr::{FileSr, FileSrConfig};
pub use self::hypervisor::{Domain, DomainEvent, Hypervisor, RunState, ShutdownReason};
use self::iso_sr::IsoSr;
pub use self::network::{Network, NicPort};
use self::qemu::{Qemu, QemuConfig};
use self::simulator::{Simulator, SimulatorConfig};
pub use self::storage::{AttachedDisk, DiskFormat, Frozen, Storage};
use self::user_network::UserNetwork;
use crate::BoxFuture;

/// Locks a mutex whose data stays consistent even if a holder panicked (every change is made
/// whole or not at all), as the drivers' mutexes are.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The future of one driver operation.
pub type Op<'a, T = ()> = BoxFuture<'a, Result<T, BackendError>>;

/// An operation a driver cannot do: an `Op` that fails at once with `reason`.
pub(crate) fn cannot<'a, T: Send + 'a>(op: BackendOp, reason: &'static str) -> Op<'a, T> {
    Box::pin(async move {
        Err(BackendError::Failed {
            op,
            reason: reason.to_owned(),
        })
    })
}

/// Which drivers the agent uses, and their settings.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendConfig {
    /// The simulator as hypervisor, as the storage of every SR type, and as network.
    Simulator(SimulatorConfig),
    /// QEMU as hypervisor; the SR types a directory holds are always the `file` driver's
    /// (`StorageChoice` names its settings), and NICs are on QEMU's user-mode network.
    Qemu(QemuConfig),
}

/// Which driver keeps the VDIs of the SR types a directory holds (`ext`, the local SR, and
/// `file`; with the file driver, ISO libraries are the iso driver's); every other type stays
/// with the backend's own storage.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StorageChoice {
    /// The backend's own storage (the simulator's records without data).
    #[default]
    Backend,
    /// qcow2 files in the SR's directory (`file_sr.rs`).
    File(FileSrConfig),
}

/// The SR types whose VDIs are files in a directory.
const DIRECTORY_SR_TYPES: [&str; 2] = ["ext", "file"];

/// The SR type of an ISO library (`iso_sr.rs`), whose driver comes with the file driver.
const ISO_SR_TYPE: &str = "iso";

/// The drivers of this host, as the factory chose them.
pub struct Drivers {
    pub hypervisor: Arc<dyn Hypervisor>,
    /// The storage drivers, by SR type (the SR's `type`).
    storage: BTreeMap<String, Arc<dyn Storage>>,
    /// The storage driver of every SR type `storage` does not name, if there is one.
    any_storage: Option<Arc<dyn Storage>>,
    pub network: Arc<dyn Network>,
    /// The simulator, when it is the driver, for its test-only control.
    pub simulator: Option<Arc<Simulator>>,
    /// The qemu driver, when it is the hypervisor.
    pub qemu: Option<Arc<Qemu>>,
}

impl Drivers {
    /// Opens the drivers `config` and `storage` name, keeping their state under `data_dir`.
    pub fn from_config(
        config: &BackendConfig,
        storage: &StorageChoice,
        data_dir: &Path,
    ) -> Result<Drivers, BackendError> {
        let mut drivers = match config {
            BackendConfig::Simulator(settings) => {
                let simulator = Simulator::open(data_dir, settings.clone())?;
                Drivers {
                    hypervisor: simulator.clone(),
                    storage: BTreeMap::new(),
                    any_storage: Some(simulator.clone()),
                    network: simulator.clone(),
                    simulator: Some(simulator),
                    qemu: None,
                }
            }
            BackendConfig::Qemu(settings) => {
                let qemu = Qemu::new(data_dir, settings.clone());
                Drivers {
                    hypervisor: qemu.clone(),
                    storage: BTreeMap::new(),
                    any_storage: None,
                    network: Arc::new(UserNetwork),
                    simulator: None,
                    qemu: Some(qemu),
                }
            }
        };
        let file_settings = match (config, storage) {
            (_, StorageChoice::File(settings)) => Some(settings.clone()),
            (BackendConfig::Qemu(_), StorageChoice::Backend) => Some(FileSrConfig::default()),
            (BackendConfig::Simulator(_), StorageChoice::Backend) => None,
        };
        if let Some(settings) = file_settings {
            let file: Arc<dyn Storage> = Arc::new(FileSr::open(data_dir, settings)?);
            for sr_type in DIRECTORY_SR_TYPES {
                drivers.storage.insert(sr_type.to_owned(), file.clone());
            }
            drivers
                .storage
                .insert(ISO_SR_TYPE.to_owned(), Arc::new(IsoSr));
        }
        Ok(drivers)
    }

    /// What runs guests here; probes the qemu driver's acceleration if that is not done yet.
    pub async fn hypervisor_info(&self) -> HypervisorInfo {
        match &self.qemu {
            Some(qemu) => {
                let acceleration = qemu.acceleration().await;
                HypervisorInfo {
                    kind: "qemu".to_owned(),
                    accel: acceleration.accel.clone(),
                    cpu_model: acceleration.cpu_model.clone(),
                }
            }
            None => HypervisorInfo {
                kind: "simulator".to_owned(),
                accel: String::new(),
                cpu_model: String::new(),
            },
        }
    }

    /// The storage driver of SRs of type `sr_type`.
    pub fn storage(&self, sr_type: &str) -> Result<&dyn Storage, BackendError> {
        self.storage
            .get(sr_type)
            .or(self.any_storage.as_ref())
            .map(|driver| driver.as_ref())
            .ok_or_else(|| BackendError::NoStorageDriver {
                sr_type: sr_type.to_owned(),
            })
    }
}

/// The kinds of driver operations, named as the traits' methods. The simulator's latency,
/// failure injection and history name operations by these (`"build"`, `"plug_nic"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendOp {
    Create,
    Build,
    PlugDisk,
    PlugNic,
    StartDeviceModel,
    Unpause,
    SetNeedsPoweroff,
    Pause,
    RequestShutdown,
    UnplugNic,
    UnplugDisk,
    StopDeviceModel,
    Destroy,
    Save,
    Restore,
    SaveImage,
    ReceiveImage,
    RestoreReceived,
    InsertCd,
    EjectCd,
    SetVcpus,
    SetMemoryTarget,
    UpdateSpec,
    Attach,
    Activate,
    Deactivate,
    Detach,
    PlugSr,
    CreateVdi,
    DestroyVdi,
    ResizeVdi,
    SnapshotVdi,
    CloneVdi,
    Scan,
    Import,
    Export,
    EnsureNetwork,
    EnsureVif,
    TearDownVif,
    TearDownNetwork,
}

impl BackendOp {
    /// The name used in settings and logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendOp::Create => "create",
            BackendOp::Build => "build",
            BackendOp::PlugDisk => "plug_disk",
            BackendOp::PlugNic => "plug_nic",
            BackendOp::StartDeviceModel => "start_device_model",
            BackendOp::Unpause => "unpause",
            BackendOp::SetNeedsPoweroff => "set_needs_poweroff",
            BackendOp::Pause => "pause",
            BackendOp::RequestShutdown => "request_shutdown",
            BackendOp::UnplugNic => "unplug_nic",
            BackendOp::UnplugDisk => "unplug_disk",
            BackendOp::StopDeviceModel => "stop_device_model",
            BackendOp::Destroy => "destroy",
            BackendOp::Save => "save",
            BackendOp::Restore => "restore",
            BackendOp::SaveImage => "save_image",
            BackendOp::ReceiveImage => "receive_image",
            BackendOp::RestoreReceived => "restore_received",
            BackendOp::InsertCd => "insert_cd",
            BackendOp::EjectCd => "eject_cd",
            BackendOp::SetVcpus => "set_vcpus",
            BackendOp::SetMemoryTarget => "set_memory_target",
            BackendOp::UpdateSpec => "update_spec",
            BackendOp::Attach => "attach",
            BackendOp::Activate => "activate",
            BackendOp::Deactivate => "deactivate",
            BackendOp::Detach => "detach",
            BackendOp::PlugSr => "plug_sr",
            BackendOp::CreateVdi => "create_vdi",
            BackendOp::DestroyVdi => "destroy_vdi",
            BackendOp::ResizeVdi => "resize_vdi",
            BackendOp::SnapshotVdi => "snapshot_vdi",
            BackendOp::CloneVdi => "clone_vdi",
            BackendOp::Scan => "scan",
            BackendOp::Import => "import",
            BackendOp::Export => "export",
            BackendOp::EnsureNetwork => "ensure_network",
            BackendOp::EnsureVif => "ensure_vif",
            BackendOp::TearDownVif => "tear_down_vif",
            BackendOp::TearDownNetwork => "tear_down_network",
        }
    }
}

impl BackendOp {
    /// The storage operation this is, for one of the `Storage` trait's.
    pub fn storage_operation(self) -> Option<StorageOperation> {
        Some(match self {
            BackendOp::Attach | BackendOp::Activate => StorageOperation::Attach,
            BackendOp::Deactivate | BackendOp::Detach => StorageOperation::Detach,
            BackendOp::CreateVdi => StorageOperation::CreateVdi,
            BackendOp::DestroyVdi => StorageOperation::DestroyVdi,
            BackendOp::ResizeVdi => StorageOperation::ResizeVdi,
            BackendOp::SnapshotVdi => StorageOperation::SnapshotVdi,
            BackendOp::CloneVdi => StorageOperation::CloneVdi,
            BackendOp::Scan => StorageOperation::Scan,
            _ => return None,
        })
    }
}

impl fmt::Display for BackendOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a driver operation failed. `agent::error` turns these into XenAPI errors.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("vm {vm} has no domain")]
    NoDomain { vm: String },
    #[error("vm {vm} already has a domain")]
    DomainExists { vm: String },
    #[error("domain of vm {vm} is {actual}, not {expected}")]
    BadState {
        vm: String,
        expected: PowerState,
        actual: PowerState,
    },
    #[error("device {device} is already attached")]
    DeviceAttached { device: String },
    #[error("device {device} is not attached")]
    DeviceDetached { device: String },
    /// The guest did not let the device (a VBD or VIF, by uuid) go.
    #[error("device {device} was not released: {reason}")]
    DetachRejected { device: String, reason: String },
    #[error("drive {vbd} is empty")]
    DriveEmpty { vbd: String },
    #[error("drive {vbd} is not empty")]
    DriveNotEmpty { vbd: String },
    #[error("drive {vbd} has no removable media")]
    NotRemovable { vbd: String },
    #[error("{count} vcpus for vm {vm} is outside 1..={max}")]
    TooManyVcpus { vm: String, count: u32, max: u32 },
    #[error("no storage driver for SRs of type {sr_type:?}")]
    NoStorageDriver { sr_type: String },
    /// The SR `sr` (a uuid) holds no VDI at `location`.
    #[error("no vdi at {location} in sr {sr}")]
    NoVdi { sr: String, location: String },
    /// The VDI at `location` in the SR `sr` is attached here, so `op` cannot touch it.
    #[error("vdi at {location} in sr {sr} is in use")]
    VdiInUse {
        sr: String,
        location: String,
        op: BackendOp,
    },
    /// Something other than a VDI (a bridge, an active disk) is in use.
    #[error("{what} is in use")]
    InUse { what: String },
    /// `qemu-img` failed (`status`: its exit status, or why it did not run to its end).
    #[error("qemu-img for {op} failed ({status}): {stderr}")]
    QemuImg {
        op: BackendOp,
        status: String,
        stderr: String,
    },
    #[error(
        "vdi at {location} is {virtual_size_bytes} bytes and cannot shrink to {requested_bytes}"
    )]
    CannotShrink {
        sr: String,
        location: String,
        virtual_size_bytes: u64,
        requested_bytes: u64,
    },
    /// An image to import holds more than the VDI at `location`: `image_bytes` (a raw
    /// image: at least that many).
    #[error(
        "an image of {image_bytes} bytes does not fit the vdi at {location} ({virtual_size_bytes} bytes)"
    )]
    ImageTooLarge {
        location: String,
        virtual_size_bytes: u64,
        image_bytes: u64,
    },
    /// An image to import is not what its format says, or may not be used as it is.
    #[error("unusable image: {reason}")]
    ImageUnusable { reason: String },
    /// This host does not reach the SR `sr` (a uuid) where its spec says.
    #[error("sr {sr} is not available: {reason}")]
    SrUnavailable { sr: String, reason: String },
    /// The driver of the SR `sr` (a uuid) does not do `op` (an ISO library writes nothing).
    #[error("sr {sr} does not support {op}")]
    NotSupported { sr: String, op: BackendOp },
    #[error("no saved image at {location}")]
    NoImage { location: String },
    #[error("{op} failed: {reason}")]
    Failed { op: BackendOp, reason: String },
    #[error("cannot keep the backend's state in {path}")]
    State {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the backend's state in {path}")]
    Corrupt {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's drivers take any SR type; without a driver for any type, only the SR
    /// types named have one, and another is `NoStorageDriver` naming it.
    #[test]
    fn storage_is_chosen_by_sr_type() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = BackendConfig::Simulator(SimulatorConfig::default());
        let mut drivers = Drivers::from_config(&config, &StorageChoice::Backend, dir.path())
            .expect("the drivers");
        assert!(drivers.storage("ext").is_ok());
        assert!(drivers.storage("iso").is_ok());
        let any = drivers.any_storage.take().expect("a driver for any type");
        drivers.storage.insert("ext".to_owned(), any);
        assert!(drivers.storage("ext").is_ok());
        assert!(matches!(
            drivers.storage("iso"),
            Err(BackendError::NoStorageDriver { sr_type }) if sr_type == "iso"
        ));
    }

    /// With the file driver chosen, the local and file SR types are its and ISO libraries the
    /// iso driver's; others stay the simulator's.
    #[tokio::test]
    async fn the_file_driver_takes_the_directory_sr_types() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = BackendConfig::Simulator(SimulatorConfig::default());
        let choice = StorageChoice::File(FileSrConfig {
            qemu_img_timeout: std::time::Duration::from_secs(30),
        });
        let drivers = Drivers::from_config(&config, &choice, dir.path()).expect("the drivers");
        let sr = host_api::SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "ext".to_owned(),
            location: dir.path().join("missing").to_string_lossy().into_owned(),
        };
        // The file driver reads the directory, which is missing; the simulator does not.
        assert!(
            drivers
                .storage("ext")
                .expect("ext")
                .scan(&sr)
                .await
                .is_err()
        );
        assert!(
            drivers
                .storage("file")
                .expect("file")
                .scan(&sr)
                .await
                .is_err()
        );
        assert!(
            drivers
                .storage("iso")
                .expect("iso")
                .scan(&sr)
                .await
                .is_err()
        );
        assert!(drivers.storage("nfs").expect("nfs").scan(&sr).await.is_ok());
    }
}
