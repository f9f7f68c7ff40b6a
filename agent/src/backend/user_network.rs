//! The network of a host whose NICs go on QEMU's user-mode network (no bridge, no tap): what
//! the `qemu` driver uses until the bridge driver exists (issue 12), and where a host cannot
//! make bridges. A network needs nothing on the host; a VIF's port names the user network.

use host_api::VifSpec;

use super::{Network, NicPort, Op};

/// The port name every VIF gets: QEMU's user-mode network.
pub const USER_PORT: &str = "user";

/// User-mode networking: nothing to set up or tear down.
pub struct UserNetwork;

impl Network for UserNetwork {
    fn ensure_network<'a>(&'a self, _bridge: &'a str, _mtu: u32) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    fn ensure_vif<'a>(&'a self, _vm: &'a str, vif: &'a VifSpec) -> Op<'a, NicPort> {
        Box::pin(async move { Ok(port(vif)) })
    }

    fn tear_down_vif<'a>(&'a self, _vif: &'a VifSpec) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }

    fn port<'a>(&'a self, vif: &'a VifSpec) -> Op<'a, Option<NicPort>> {
        Box::pin(async move { Ok(Some(port(vif))) })
    }

    fn tear_down_network<'a>(&'a self, _bridge: &'a str) -> Op<'a> {
        Box::pin(async { Ok(()) })
    }
}

fn port(vif: &VifSpec) -> NicPort {
    NicPort {
        device: USER_PORT.to_owned(),
        bridge: vif.bridge.clone(),
    }
}
