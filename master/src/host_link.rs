//! `HostLink`: how the master reaches the agent of a host, and what travels between them: the
//! actions the master sends (start this VM, plug that disk), their results, and the reports an
//! agent sends unasked (a guest powered itself off; what runs here after a restart).
//!
//! Everything here is plain data with serde, so the same actions can later cross the peer link
//! to a remote host. `member` implements `HostLink`; `testing.rs` has an in-memory double.

use std::collections::BTreeMap;

use api_spec::ApiError;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::db::BoxFuture;

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
    /// Where the backend finds the image (the VDI's `location` in its SR).
    pub location: String,
    pub virtual_size_bytes: u64,
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

/// What the master asks an agent to do. VMs are named by uuid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HostAction {
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
    /// Save the domain's memory to an image held in memory, then destroy the domain: the
    /// outgoing half of a migration (stop-and-copy). Answers `ActionResult::Image`.
    MigrateOut {
        vm: String,
    },
    /// Build a domain from an `image` that `MigrateOut` made (here or on another host): the
    /// incoming half of a migration, or the way back when the other half failed. Leave it
    /// paused when `paused`.
    MigrateIn {
        vm: VmSpec,
        image: Vec<u8>,
        paused: bool,
    },
    /// Report every domain this host runs.
    Inventory,
}

/// What a domain is doing, as the hypervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainState {
    Running,
    Paused,
}

/// A console of a running domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleInfo {
    /// `rfb` or `vt100`.
    pub protocol: String,
}

/// One domain as the agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainInfo {
    pub vm: String,
    pub state: DomainState,
    pub domid: i64,
    pub memory_actual_bytes: u64,
    pub vcpus: u32,
    /// The VBDs (uuids) plugged now.
    pub vbds: Vec<String>,
    /// The VIFs (uuids) plugged now.
    pub vifs: Vec<String>,
    pub consoles: Vec<ConsoleInfo>,
}

/// The result of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ActionResult {
    /// The action changed what it had to; the domain now looks like this (`None`: gone).
    Domain(Option<DomainInfo>),
    /// The answer to `Inventory`.
    Inventory(Vec<DomainInfo>),
    /// The answer to `MigrateOut`: the memory image of the domain, which is gone.
    Image(Vec<u8>),
}

/// Why a guest's domain changed without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestEvent {
    PoweredOff,
    Rebooted,
    Crashed,
}

/// What an agent tells the master unasked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentReport {
    /// A guest shut down, rebooted or crashed, and the agent did what the VM's
    /// `actions_after_*` say; the domain now looks like `now` (`None`: destroyed).
    GuestChanged {
        vm: String,
        event: GuestEvent,
        now: Option<DomainInfo>,
    },
    /// Every domain this host runs, sent when the agent starts (after a restart, say).
    Inventory(Vec<DomainInfo>),
}

/// What a host's heartbeat says about the host itself, besides that it is alive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostHealth {
    /// Why this host's pool DB store failed, while it has (its replica is stale and it answers
    /// no calls; its agent goes on).
    pub store_failure: Option<String>,
    /// Why this host is short of room for the pool DB (below its disk reserve, or its store
    /// over its quota), while it is: the pool refuses API writes meanwhile.
    pub low_space: Option<String>,
}

/// How the master reaches the agent of a host.
pub trait HostLink: Send + Sync + 'static {
    /// Runs `action` on the agent of `host` (a host ref), stamped with the Raft `term` of this
    /// master: an agent refuses a term older than the newest it has seen, so a deposed master
    /// can no longer act. The agent reports progress (0 to 1) through `progress`; cancelling
    /// `cancel` asks it to stop at its next cancellation point and leave the domain consistent
    /// (the action then fails with `TASK_CANCELLED`). `HOST_OFFLINE [host]` when the host cannot
    /// be reached.
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, ApiError>>;
}
