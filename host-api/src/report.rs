//! What an agent answers and tells the master unasked: domains as the hypervisor sees them,
//! the results of actions, reports, and the health a heartbeat carries.

use serde::{Deserialize, Serialize};

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

/// A VDI as its SR's driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdiInfo {
    /// Where the VDI is in its SR: what the master keeps as its `location`.
    pub location: String,
    pub virtual_size_bytes: u64,
    /// The space it takes in its SR.
    pub physical_utilisation_bytes: u64,
    pub read_only: bool,
}

/// What an SR takes of the place that holds it, as its driver finds it: for a directory,
/// the size of its filesystem and the bytes in use there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrUsage {
    pub physical_size_bytes: u64,
    pub physical_utilisation_bytes: u64,
}

/// The result of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ActionResult {
    /// The action changed what it had to; the domain now looks like this (`None`: gone).
    Domain(Option<DomainInfo>),
    /// The answer to `Inventory`.
    Inventory(Vec<DomainInfo>),
    /// The answer to `StorageAction::Scan`: every VDI the SR holds, and what it takes.
    Scanned { vdis: Vec<VdiInfo>, usage: SrUsage },
    /// The answer to a storage action that makes or changes a VDI (an import included): the
    /// VDI as it is now.
    Vdi(VdiInfo),
    /// The action did what it had to and has nothing to tell.
    Done,
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
    /// What runs guests on this host, sent when the agent starts, before its inventory.
    Hypervisor(HypervisorInfo),
}

/// What runs guests on a host: the host's `capabilities`, `cpu_info` and
/// `software_version` say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HypervisorInfo {
    /// `qemu` or `simulator`.
    pub kind: String,
    /// QEMU's accelerator, `kvm` or `tcg` (empty for the simulator).
    pub accel: String,
    /// QEMU's `-cpu` for guests (empty for the simulator).
    pub cpu_model: String,
}

impl HypervisorInfo {
    /// The name the host's `software_version:hypervisor` gives it (`qemu-kvm`, `qemu-tcg`,
    /// `simulator`), which `overhead::vm_overhead_bytes` takes.
    pub fn name(&self) -> String {
        match self.accel.as_str() {
            "" => self.kind.clone(),
            accel => format!("{}-{accel}", self.kind),
        }
    }

    /// For people: `qemu (kvm, cpu host)` or `simulator`.
    pub fn describe(&self) -> String {
        if self.accel.is_empty() {
            self.kind.clone()
        } else {
            format!("{} ({}, cpu {})", self.kind, self.accel, self.cpu_model)
        }
    }
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
