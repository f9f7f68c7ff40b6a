//! `AgentFailure`: why an action failed on a host, as typed data. The agent names VMs and
//! devices by uuid; the master turns a failure into a XenAPI error with refs in one place
//! (`master/src/vm/agent_failures.rs`).

use serde::{Deserialize, Serialize};

/// A VM's power state as a failure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    Halted,
    Paused,
    Running,
    Suspended,
}

impl PowerState {
    /// xapi's lowercase word for the state, as `VM_BAD_POWER_STATE` carries it.
    pub fn word(self) -> &'static str {
        match self {
            PowerState::Halted => "halted",
            PowerState::Paused => "paused",
            PowerState::Running => "running",
            PowerState::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// A storage driver's operation, as a storage failure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageOperation {
    Attach,
    Detach,
    CreateVdi,
    DestroyVdi,
    ResizeVdi,
    SnapshotVdi,
    CloneVdi,
    Scan,
}

impl StorageOperation {
    /// The word for the operation: xapi's `vdi_operations` word where it has one (`destroy`,
    /// `resize`, `snapshot`, `clone`), as `VDI_IN_USE` carries it.
    pub fn word(self) -> &'static str {
        match self {
            StorageOperation::Attach => "attach",
            StorageOperation::Detach => "detach",
            StorageOperation::CreateVdi => "create",
            StorageOperation::DestroyVdi => "destroy",
            StorageOperation::ResizeVdi => "resize",
            StorageOperation::SnapshotVdi => "snapshot",
            StorageOperation::CloneVdi => "clone",
            StorageOperation::Scan => "scan",
        }
    }
}

impl std::fmt::Display for StorageOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// Why an action failed on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AgentFailure {
    /// The action carries an older Raft term than one this agent has seen: it comes from a
    /// deposed master.
    #[error("stale term: newest seen {newest_seen}, got {got}")]
    StaleTerm { newest_seen: u64, got: u64 },
    /// Cancelled at a micro-op boundary (or while waiting for a guest); what was done has been
    /// undone.
    #[error("cancelled")]
    Cancelled,
    #[error("vm {vm} is {actual}, not {expected}")]
    BadPowerState {
        vm: String,
        expected: PowerState,
        actual: PowerState,
    },
    #[error("vm {vm} did not shut down within {timeout_secs} s")]
    ShutdownTimeout { vm: String, timeout_secs: f64 },
    /// A hook script refused or failed: the hook's path under the hooks dir, xapi's reason
    /// word, what it printed and its exit code.
    #[error("hook {hook} failed ({reason}, exit code {exit_code})")]
    HookFailed {
        hook: String,
        reason: String,
        stdout: String,
        exit_code: String,
    },
    /// A VBD or VIF (by uuid) is plugged already.
    #[error("device {device} is already attached")]
    DeviceAlreadyAttached { device: String },
    /// A VBD or VIF (by uuid) is not plugged.
    #[error("device {device} is not attached")]
    DeviceAlreadyDetached { device: String },
    /// The guest did not let a VBD or VIF (by uuid) go; `reason` says how.
    #[error("device {device} was not released: {reason}")]
    DetachRejected { device: String, reason: String },
    #[error("drive {vbd} is empty")]
    DriveEmpty { vbd: String },
    #[error("drive {vbd} is not empty")]
    DriveNotEmpty { vbd: String },
    #[error("drive {vbd} has no removable media")]
    NotRemovable { vbd: String },
    #[error("too many vcpus for vm {vm}")]
    TooManyVcpus { vm: String },
    /// A disk is on an SR whose type (`sr_type`) no storage driver of this host handles.
    #[error("no storage driver for SRs of type {sr_type:?}")]
    UnknownSrDriver { sr_type: String },
    /// An image to import into the VDI at `location` holds more than its
    /// `virtual_size_bytes`: `image_bytes` (of a raw image, at least that many).
    #[error(
        "an image of {image_bytes} bytes does not fit the vdi at {location} ({virtual_size_bytes} bytes)"
    )]
    ImageTooLarge {
        location: String,
        virtual_size_bytes: u64,
        image_bytes: u64,
    },
    /// An image to import is not what its format says (a corrupt qcow2, one with a backing
    /// file), or a VDI's data cannot be read or written; `reason` says what the driver found.
    #[error("vdi data: {reason}")]
    ImageUnusable { reason: String },
    /// The VDI at `location` in the SR `sr` (a uuid) is attached on this host, so `operation`
    /// cannot touch it.
    #[error("vdi at {location} in sr {sr} is in use: no {operation}")]
    VdiInUse {
        sr: String,
        location: String,
        operation: StorageOperation,
    },
    /// The SR `sr` (a uuid) holds no VDI at `location`.
    #[error("sr {sr} holds no vdi at {location}")]
    VdiMissing { sr: String, location: String },
    /// A resize asked the VDI at `location` in the SR `sr` to shrink, which no storage driver
    /// does (nor do xapi's).
    #[error(
        "vdi at {location} is {virtual_size_bytes} bytes and cannot shrink to {requested_bytes}"
    )]
    VdiCannotShrink {
        sr: String,
        location: String,
        virtual_size_bytes: u64,
        requested_bytes: u64,
    },
    /// The storage driver failed at `operation`: `status` says how its tool ended (its exit
    /// status, or why it did not run to its end), `stderr` what it printed.
    #[error("storage {operation} failed ({status}): {stderr}")]
    StorageBackend {
        operation: StorageOperation,
        status: String,
        stderr: String,
    },
    /// This host does not reach the SR `sr` (a uuid) where its spec says: `reason` says why
    /// (a missing directory, one that cannot be made).
    #[error("sr {sr} is not available: {reason}")]
    SrUnavailable { sr: String, reason: String },
    /// The driver of the SR `sr` (a uuid) does not do what was asked of it (an ISO library
    /// writes nothing).
    #[error("sr {sr} does not support this operation")]
    SrOperationNotSupported { sr: String },
    /// Anything else, with the chain of its causes, for an operator to read.
    #[error("host agent: {message}")]
    Internal { message: String },
}
