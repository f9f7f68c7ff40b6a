//! The `Network` trait: what the agent asks of the host's network driver. It makes sure what a
//! network needs on this host exists (its bridge) and what a VIF needs (a port on that bridge,
//! e.g. a tap), and tears them down again. The hypervisor then plugs the NIC on that port.
//!
//! Ensuring is idempotent: a network ensured twice is one bridge. A bridge outlives the VIFs on
//! it; only `tear_down_network` removes it.

use host_api::VifSpec;
use serde::{Deserialize, Serialize};

use super::Op;

/// The host's network driver. Methods are in the order a start uses them, then the reverses.
pub trait Network: Send + Sync + 'static {
    /// Makes sure the bridge `bridge` exists on this host, with `mtu`.
    fn ensure_network<'a>(&'a self, bridge: &'a str, mtu: u32) -> Op<'a>;
    /// Makes sure the port the NIC of `vif` (of VM `vm`) plugs into exists, on its network's
    /// bridge, and returns it.
    fn ensure_vif<'a>(&'a self, vm: &'a str, vif: &'a VifSpec) -> Op<'a, NicPort>;
    /// Removes the port of `vif`, if it exists.
    fn tear_down_vif<'a>(&'a self, vif: &'a VifSpec) -> Op<'a>;
    /// The port of `vif`, if it exists: how a later run (a teardown undoing its unplug) finds
    /// the port to plug again.
    fn port<'a>(&'a self, vif: &'a VifSpec) -> Op<'a, Option<NicPort>>;
    /// Removes the bridge `bridge`; it must carry no VIF.
    fn tear_down_network<'a>(&'a self, bridge: &'a str) -> Op<'a>;
}

/// Where the hypervisor plugs a NIC: a port (a tap device) on a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicPort {
    /// The port's device name, e.g. a tap's.
    pub device: String,
    pub bridge: String,
}
