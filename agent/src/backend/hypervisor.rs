//! The `Hypervisor` trait: what the agent asks of a hypervisor driver (domains: create, build,
//! devices, device model, pause / unpause, shutdown, save / restore, migration images), and the
//! domains and events it answers with.
//!
//! A driver is shaped for real hypervisors: an operation may take seconds, may fail half-way
//! (the agent then runs the reverse operations of what was done), and the domains outlive the
//! daemon, so after a restart `discover` finds what really runs. A driver keeps, with each
//! domain, the `VmSpec` it was created from and the devices plugged now (as xenopsd keeps its
//! per-VM metadata), so the agent can restart a domain in place after a guest reboot without
//! asking the master.
//!
//! A disk reaches a domain already attached by the storage driver of its SR (`AttachedDisk`:
//! a path and a format, what QEMU's `blockdev-add` opens), and a NIC on the port the network
//! driver made (`NicPort`: a tap on a bridge, what `netdev_add` takes); the hypervisor driver
//! only plugs them.
//!
//! Events only say "this VM needs attention" (as xenstore watches do for xenopsd): the agent
//! then reads the domain and decides from its current state, so a lost or repeated event does
//! no harm.

use std::path::Path;

use host_api::{
    ConsoleInfo, DiskSpec, DomainInfo, DomainState, PowerState, VbdSpec, VifSpec, VmSpec,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use super::network::NicPort;
use super::storage::AttachedDisk;
use super::{BackendOp, Op, cannot};

/// A hypervisor, as the agent drives it. Methods are in the order a start uses them, then the
/// reverses, then the rest. VMs are named by uuid.
pub trait Hypervisor: Send + Sync + 'static {
    /// Makes an empty, paused domain for `spec` and returns its domid. A new domain needs
    /// power-off (see `set_needs_poweroff`) until the agent says it is complete.
    fn create<'a>(&'a self, spec: &'a VmSpec) -> Op<'a, i64>;
    /// Loads the guest (firmware or kernel) and gives it its memory and VCPUs.
    fn build<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Plugs the disk of `vbd` into the domain, opened at `disk`, where the storage driver
    /// attached it (`None`: an empty CD drive).
    fn plug_disk<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a VbdSpec,
        disk: Option<&'a AttachedDisk>,
    ) -> Op<'a>;
    /// Plugs the NIC of `vif` into the domain, on `port`, which the network driver made.
    fn plug_nic<'a>(&'a self, vm: &'a str, vif: &'a VifSpec, port: &'a NicPort) -> Op<'a>;
    /// Starts the device model (emulated devices and the consoles).
    fn start_device_model<'a>(&'a self, vm: &'a str) -> Op<'a>;
    fn unpause<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Marks the domain as one to power off if the agent restarts and finds it (an operation
    /// that builds or tears it down is in progress), or clears the mark. It lives with the
    /// domain, so it survives the agent.
    fn set_needs_poweroff<'a>(&'a self, vm: &'a str, needs_poweroff: bool) -> Op<'a>;
    fn pause<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Asks the guest to power off or reboot; returns once asked, not once done.
    fn request_shutdown<'a>(&'a self, vm: &'a str, reason: ShutdownReason) -> Op<'a>;
    /// Resolves once the domain has shut down, with the reason the guest gave. Dropping the
    /// future changes nothing, so the agent may wrap it in a timeout.
    fn wait_shutdown<'a>(&'a self, vm: &'a str) -> Op<'a, ShutdownReason>;
    fn unplug_nic<'a>(&'a self, vm: &'a str, vif: &'a str, force: bool) -> Op<'a>;
    fn unplug_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, force: bool) -> Op<'a>;
    fn stop_device_model<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Destroys the domain, whatever its state.
    fn destroy<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Writes the domain's memory to the suspend VDI `image`, which storage attached at
    /// `attached`, and leaves the domain paused.
    fn save<'a>(&'a self, vm: &'a str, image: &'a DiskSpec, attached: &'a AttachedDisk) -> Op<'a>;
    /// Fills a created domain (instead of `build`) from the suspend VDI `image`, which storage
    /// attached at `attached`; leaves it paused.
    fn restore<'a>(
        &'a self,
        vm: &'a str,
        image: &'a DiskSpec,
        attached: &'a AttachedDisk,
    ) -> Op<'a>;
    /// Pauses the domain and streams its memory image, for a migration, into `to` (as fast as
    /// `to` takes it: the image is never held whole); leaves the domain paused.
    fn save_image<'a>(&'a self, vm: &'a str, to: &'a mut (dyn AsyncWrite + Send + Unpin))
    -> Op<'a>;
    /// Reads an image `save_image` streamed, on this host or another, from `from` to its end,
    /// checks it and keeps it for `vm` until `restore_received` (a later one replaces it). No
    /// domain is made: the VM runs on its source until that one has let its domain go.
    fn receive_image<'a>(
        &'a self,
        vm: &'a str,
        from: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a>;
    /// Fills a created domain from the image `receive_image` kept for `vm` (instead of
    /// `build`); leaves it paused.
    fn restore_received<'a>(&'a self, vm: &'a str) -> Op<'a>;
    /// Puts `disk`, which the storage driver attached at `attached`, in the CD drive `vbd`.
    fn insert_cd<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a str,
        disk: &'a DiskSpec,
        attached: &'a AttachedDisk,
    ) -> Op<'a>;
    fn eject_cd<'a>(&'a self, vm: &'a str, vbd: &'a str) -> Op<'a>;
    /// Moves the disk of `vbd`, which the guest writes to, onto `overlay`: a new, empty top of
    /// its chain whose backing is what the guest wrote to so far, which it no longer writes
    /// (see `Storage::freeze`). Hypervisors without chains cannot (the default).
    fn switch_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, overlay: &'a Path) -> Op<'a> {
        let _ = (vm, vbd, overlay);
        cannot(
            BackendOp::SnapshotVdi,
            "this hypervisor cannot move a disk onto a new top",
        )
    }
    /// Grows the disk of `vbd`, which the guest has open, to `bytes` (more than it holds):
    /// the top image of its chain grows and the guest is told. Hypervisors that cannot refuse
    /// (the default).
    fn grow_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, bytes: u64) -> Op<'a> {
        let _ = (vm, vbd, bytes);
        cannot(
            BackendOp::ResizeVdi,
            "this hypervisor cannot grow a disk a guest has open",
        )
    }
    fn set_vcpus<'a>(&'a self, vm: &'a str, count: u32) -> Op<'a>;
    fn set_memory_target<'a>(&'a self, vm: &'a str, bytes: u64) -> Op<'a>;
    /// Keeps `spec` as what the domain of `vm` was created from (its `vbds` and `vifs` aside):
    /// what the agent honours when the guest stops by itself, and what a restart in place
    /// builds. The running domain is not changed.
    fn update_spec<'a>(&'a self, vm: &'a str, spec: &'a VmSpec) -> Op<'a>;
    /// The domain of `vm`, if there is one.
    fn domain<'a>(&'a self, vm: &'a str) -> Op<'a, Option<Domain>>;
    /// Every domain that really runs here, as after a restart of the daemon.
    fn discover(&self) -> Op<'_, Vec<Domain>>;
    /// Events from now on: a guest shut down, rebooted or crashed by itself.
    fn events(&self) -> broadcast::Receiver<DomainEvent>;
}

/// Why a guest's domain shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    PowerOff,
    Reboot,
    Crash,
}

/// What a domain is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Paused,
    Running,
    /// The guest has stopped; the domain stays until it is destroyed.
    Shutdown(ShutdownReason),
}

impl RunState {
    /// The power state a client would see.
    pub fn power_state(self) -> PowerState {
        match self {
            RunState::Running => PowerState::Running,
            RunState::Paused | RunState::Shutdown(_) => PowerState::Paused,
        }
    }
}

/// One domain, as the hypervisor keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub domid: i64,
    pub state: RunState,
    /// What the domain was created from; its `vbds` and `vifs` are those asked for at start.
    pub spec: VmSpec,
    /// Whether `build` or `restore` has filled it.
    pub is_built: bool,
    /// Power it off if found after an agent restart: an operation on it was cut short.
    pub needs_poweroff: bool,
    pub memory_actual_bytes: u64,
    pub vcpus: u32,
    /// The disks plugged now, in plug order.
    pub vbds: Vec<VbdSpec>,
    /// The NICs plugged now, in plug order.
    pub vifs: Vec<VifSpec>,
    pub has_device_model: bool,
    pub consoles: Vec<ConsoleInfo>,
}

impl Domain {
    pub fn vm(&self) -> &str {
        &self.spec.uuid
    }

    /// The domain as the master sees it. A shut-down domain not yet destroyed shows as paused,
    /// as a preserved crashed domain does in xapi.
    pub fn info(&self) -> DomainInfo {
        DomainInfo {
            vm: self.spec.uuid.clone(),
            state: match self.state {
                RunState::Running => DomainState::Running,
                RunState::Paused | RunState::Shutdown(_) => DomainState::Paused,
            },
            domid: self.domid,
            memory_actual_bytes: self.memory_actual_bytes,
            vcpus: self.vcpus,
            vbds: self.vbds.iter().map(|vbd| vbd.uuid.clone()).collect(),
            vifs: self.vifs.iter().map(|vif| vif.uuid.clone()).collect(),
            consoles: self.consoles.clone(),
        }
    }

    /// The spec to start this domain again in place: as created, with the devices plugged now.
    pub fn restart_spec(&self) -> VmSpec {
        VmSpec {
            vbds: self.vbds.clone(),
            vifs: self.vifs.clone(),
            ..self.spec.clone()
        }
    }
}

/// "This VM needs attention": its domain changed without the agent asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    pub vm: String,
}
