//! What the master asks an agent to do, grouped by the capability it needs on the host.

use serde::{Deserialize, Serialize};

use crate::spec::{DiskSpec, ImageFormat, SrSpec, VbdSpec, VifSpec, VmSpec};

/// What the master asks an agent to do, by the capability it needs on the host: a VM action
/// drives the hypervisor (and reaches the storage and network drivers through its micro-ops:
/// plugging a disk attaches its VDI, plugging a NIC sets up its network); a storage action
/// drives the storage driver of one SR type; a network action the network driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "an action lives from the master's decision to the agent's queue, one at a time"
)]
pub enum HostAction {
    /// An action on one VM's domain, run on that VM's queue.
    Vm(VmAction),
    /// An action on an SR as this host reaches it.
    Storage(StorageAction),
    /// An action on this host's networking.
    Network(NetworkAction),
    /// Report every domain this host runs.
    Inventory,
}

/// An action on an SR, run by the storage driver of its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StorageAction {
    /// List every VDI the SR holds, and what the SR takes (`SR.scan`). Answers
    /// `ActionResult::Scanned`.
    Scan { sr: SrSpec },
    /// Check that this host reaches the SR where its spec says (`PBD.plug`); with `create`,
    /// make that place first if the SR's type can (`SR.create`: a file SR's directory).
    /// Answers `ActionResult::Done`.
    Plug { sr: SrSpec, create: bool },
    /// Expect the transfer `token` on the data plane and write the image it brings, laid out
    /// as `format`, into the VDI `disk` of `sr` (`PUT /import_raw_vdi`); a failure leaves the
    /// VDI as it was. Answers `ActionResult::Vdi`, the VDI as it is now.
    Import {
        sr: SrSpec,
        disk: DiskSpec,
        format: ImageFormat,
        token: TransferToken,
    },
    /// Stream the VDI `disk` of `sr`, laid out as `format`, over the data plane to `to_host`
    /// (a host ref), which expects the transfer `token` (`GET /export_raw_vdi`). Answers
    /// `ActionResult::Done`.
    Export {
        sr: SrSpec,
        disk: DiskSpec,
        format: ImageFormat,
        to_host: String,
        token: TransferToken,
    },
    /// Make an empty VDI of `virtual_size_bytes` in the SR (`VDI.create`). Answers
    /// `ActionResult::Vdi`.
    CreateVdi { sr: SrSpec, virtual_size_bytes: u64 },
    /// Delete the VDI at `location` (`VDI.destroy`); it must not be attached. Answers
    /// `ActionResult::Done`.
    DestroyVdi { sr: SrSpec, location: String },
    /// Grow the VDI at `location` to `virtual_size_bytes` (`VDI.resize`); a smaller size is
    /// refused. Answers `ActionResult::Vdi`.
    ResizeVdi {
        sr: SrSpec,
        location: String,
        virtual_size_bytes: u64,
    },
    /// Make a read-only VDI holding what the VDI at `location` holds now (`VDI.snapshot`).
    /// Answers `ActionResult::Vdi`, the new VDI.
    SnapshotVdi { sr: SrSpec, location: String },
    /// Make a writable VDI holding what the VDI at `location` holds now (`VDI.clone`).
    /// Answers `ActionResult::Vdi`, the new VDI.
    CloneVdi { sr: SrSpec, location: String },
}

impl StorageAction {
    /// The SR the action is on.
    pub fn sr(&self) -> &SrSpec {
        match self {
            StorageAction::Scan { sr }
            | StorageAction::Plug { sr, .. }
            | StorageAction::CreateVdi { sr, .. }
            | StorageAction::DestroyVdi { sr, .. }
            | StorageAction::ResizeVdi { sr, .. }
            | StorageAction::SnapshotVdi { sr, .. }
            | StorageAction::CloneVdi { sr, .. }
            | StorageAction::Import { sr, .. }
            | StorageAction::Export { sr, .. } => sr,
        }
    }
}

/// An action on this host's networking, run by its network driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NetworkAction {
    /// Make sure the bridge of a network exists on this host with `mtu` (`PIF.plug`).
    /// Answers `ActionResult::Done`.
    Attach { bridge: String, mtu: u32 },
    /// Remove the bridge of a network from this host (`PIF.unplug`). Answers
    /// `ActionResult::Done`.
    Detach { bridge: String },
}

/// An action on one VM's domain. VMs are named by uuid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VmAction {
    /// Build and start a domain; leave it paused when `paused`.
    Start {
        vm: VmSpec,
        paused: bool,
    },
    /// Stop the domain: ask the guest (`clean`) or pull the plug.
    Shutdown {
        vm: String,
        clean: bool,
    },
    /// Restart the domain: ask the guest (`clean`) or destroy and start again with `spec`.
    Reboot {
        vm: VmSpec,
        clean: bool,
    },
    /// Save the domain's memory to `image` (a VDI location) and destroy it.
    Suspend {
        vm: String,
        image: DiskSpec,
    },
    /// Restore a domain from `image`; leave it paused when `paused`.
    Resume {
        vm: VmSpec,
        image: DiskSpec,
        paused: bool,
    },
    Pause {
        vm: String,
    },
    Unpause {
        vm: String,
    },
    PlugVbd {
        vm: String,
        vbd: VbdSpec,
    },
    UnplugVbd {
        vm: String,
        vbd: String,
        force: bool,
    },
    PlugVif {
        vm: String,
        vif: VifSpec,
    },
    UnplugVif {
        vm: String,
        vif: String,
        force: bool,
    },
    /// Put a disk in an empty CD drive.
    InsertCd {
        vm: String,
        vbd: String,
        disk: DiskSpec,
    },
    /// Empty a CD drive.
    EjectCd {
        vm: String,
        vbd: String,
    },
    /// Change the number of running VCPUs (hotplug).
    SetVcpus {
        vm: String,
        count: u32,
    },
    /// Move the balloon target within the dynamic range.
    SetMemoryTarget {
        vm: String,
        bytes: u64,
    },
    /// Keep `vm` as the spec of the running domain of `vm.uuid`: what the agent acts on unasked
    /// from now on (the `actions_after_*`, and the spec a guest reboot restarts the domain
    /// with), as xapi pushes a VM's metadata to xenopsd. The domain itself is not changed.
    UpdateSpec {
        vm: VmSpec,
    },
    /// The outgoing half of a migration (stop-and-copy): pause the domain and stream its
    /// memory over the data plane to the agent of `to_host` (a host ref), which expects the
    /// transfer `token`; destroy the domain once that agent has checked and kept every byte.
    /// If the transfer fails the domain runs on here, unpaused.
    MigrateOut {
        vm: String,
        to_host: String,
        token: TransferToken,
    },
    /// The incoming half of a migration: expect the transfer `token` on the data plane, check
    /// the memory image it brings and keep it for `MigrateFinish`. No domain is built yet, so
    /// the VM never has a domain on two hosts.
    MigrateIn {
        vm: String,
        token: TransferToken,
    },
    /// The last step of a migration, once the source has destroyed its domain: build the
    /// domain from the image `MigrateIn` kept and plug its devices. Leave it paused when
    /// `paused`.
    MigrateFinish {
        vm: VmSpec,
        paused: bool,
    },
}

/// The one-use name of a bulk transfer between two agents, which the master draws and hands to
/// both ends: 32 lowercase hex characters (128 bits). Whoever holds it may send the transfer's
/// bytes, so `Debug` shows only its first characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferToken(pub String);

impl std::fmt::Debug for TransferToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.get(..8).unwrap_or_default();
        write!(f, "TransferToken({shown}…)")
    }
}

impl VmAction {
    /// The uuid of the VM the action is for.
    pub fn vm(&self) -> &str {
        match self {
            VmAction::Start { vm, .. }
            | VmAction::Reboot { vm, .. }
            | VmAction::Resume { vm, .. }
            | VmAction::MigrateFinish { vm, .. }
            | VmAction::UpdateSpec { vm } => &vm.uuid,
            VmAction::Shutdown { vm, .. }
            | VmAction::Suspend { vm, .. }
            | VmAction::Pause { vm }
            | VmAction::Unpause { vm }
            | VmAction::PlugVbd { vm, .. }
            | VmAction::UnplugVbd { vm, .. }
            | VmAction::PlugVif { vm, .. }
            | VmAction::UnplugVif { vm, .. }
            | VmAction::InsertCd { vm, .. }
            | VmAction::EjectCd { vm, .. }
            | VmAction::SetVcpus { vm, .. }
            | VmAction::SetMemoryTarget { vm, .. }
            | VmAction::MigrateOut { vm, .. }
            | VmAction::MigrateIn { vm, .. } => vm,
        }
    }

    /// The action's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            VmAction::Start { .. } => "start",
            VmAction::Shutdown { clean: true, .. } => "clean_shutdown",
            VmAction::Shutdown { clean: false, .. } => "hard_shutdown",
            VmAction::Reboot { clean: true, .. } => "clean_reboot",
            VmAction::Reboot { clean: false, .. } => "hard_reboot",
            VmAction::Suspend { .. } => "suspend",
            VmAction::Resume { .. } => "resume",
            VmAction::Pause { .. } => "pause",
            VmAction::Unpause { .. } => "unpause",
            VmAction::PlugVbd { .. } => "plug_vbd",
            VmAction::UnplugVbd { .. } => "unplug_vbd",
            VmAction::PlugVif { .. } => "plug_vif",
            VmAction::UnplugVif { .. } => "unplug_vif",
            VmAction::InsertCd { .. } => "insert_cd",
            VmAction::EjectCd { .. } => "eject_cd",
            VmAction::SetVcpus { .. } => "set_vcpus",
            VmAction::SetMemoryTarget { .. } => "set_memory_target",
            VmAction::UpdateSpec { .. } => "update_spec",
            VmAction::MigrateOut { .. } => "migrate_out",
            VmAction::MigrateIn { .. } => "migrate_in",
            VmAction::MigrateFinish { .. } => "migrate_finish",
        }
    }
}
