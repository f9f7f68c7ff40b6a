//! What the master hands an agent: a VM and its devices as the agent needs them to run it,
//! built from the pool DB at the time of the action. Everything is named by uuid; the agent
//! knows no refs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything an agent needs to run a VM, built by the master from the DB at the time of the
/// action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    pub uuid: String,
    pub name_label: String,
    /// `hvm`, `pv`, `pvh` or `pv_in_pvh`.
    pub domain_type: String,
    pub memory_static_max_bytes: u64,
    pub memory_dynamic_min_bytes: u64,
    pub memory_dynamic_max_bytes: u64,
    pub vcpus_max: u32,
    pub vcpus_at_startup: u32,
    /// `VCPUs_params`: `mask` (the host CPUs the vCPUs may run on, e.g. `0,2-3`), `weight`,
    /// `cap`.
    #[serde(default)]
    pub vcpus_params: BTreeMap<String, String>,
    pub platform: BTreeMap<String, String>,
    pub hvm_boot_params: BTreeMap<String, String>,
    pub pv_kernel: String,
    pub pv_ramdisk: String,
    pub pv_args: String,
    pub pv_bootloader: String,
    /// What the agent does when the guest shuts itself down, reboots or crashes.
    pub on_shutdown: AfterShutdown,
    pub on_reboot: AfterShutdown,
    pub on_crash: AfterCrash,
    /// The disks and CD drives to plug at start, in `device` order.
    pub vbds: Vec<VbdSpec>,
    /// The NICs to plug at start, in `device` order.
    pub vifs: Vec<VifSpec>,
}

/// `actions_after_shutdown` / `actions_after_reboot` (xapi's `on_normal_exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AfterShutdown {
    Destroy,
    Restart,
}

/// `actions_after_crash` (xapi's `on_crash_behaviour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AfterCrash {
    Destroy,
    CoredumpAndDestroy,
    Restart,
    CoredumpAndRestart,
    Preserve,
    RenameRestart,
}

/// A disk or CD drive of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VbdSpec {
    pub uuid: String,
    /// The VBD's `userdevice` ("0", "1", …).
    pub device: String,
    pub kind: VbdKind,
    pub read_only: bool,
    pub bootable: bool,
    /// The disk behind it; `None` for an empty CD drive.
    pub disk: Option<DiskSpec>,
}

/// `vbd_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VbdKind {
    Disk,
    Cd,
    Floppy,
}

/// The storage behind a VBD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSpec {
    pub vdi_uuid: String,
    /// The VDI's SR: its `type` names the agent's storage driver for it, its `location` where
    /// that driver finds the SR on this host (empty in a domain kept before disks named their
    /// SR: the simulator's storage takes any type).
    #[serde(default)]
    pub sr: SrSpec,
    /// Where the storage driver finds the image in its SR (the VDI's `location`).
    pub location: String,
    pub virtual_size_bytes: u64,
}

/// An SR as its host's storage driver needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrSpec {
    pub uuid: String,
    /// The SR's `type`, which names the agent's storage driver for it.
    pub sr_type: String,
    /// Where the SR's VDIs live, in the driver's terms (a directory for a file SR): its PBD's
    /// `device_config` `location` (or `path`) on the host.
    pub location: String,
}

/// How the bytes of a disk image are laid out as it is imported or exported (the HTTP
/// handlers' `format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Every byte of the disk in order.
    Raw,
    /// A qcow2 image with no backing file.
    Qcow2,
}

impl ImageFormat {
    /// The format named as in a `format=` query parameter (`raw`, `qcow2`).
    pub fn parse(name: &str) -> Option<ImageFormat> {
        match name {
            "raw" => Some(ImageFormat::Raw),
            "qcow2" => Some(ImageFormat::Qcow2),
            _ => None,
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// A NIC of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VifSpec {
    pub uuid: String,
    /// The VIF's `device` ("0", "1", …).
    pub device: String,
    pub mac: String,
    pub mtu: u32,
    /// The bridge of the VIF's network on this host.
    pub bridge: String,
}
