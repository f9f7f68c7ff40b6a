//! The simulator as the network driver: bridges and ports are entries in its state; a port is
//! named as a tap would be, after the VM's domain and the VIF's device.

use std::collections::BTreeMap;

use host_api::VifSpec;
use serde::{Deserialize, Serialize};

use super::{Simulator, quiet};
use crate::backend::{BackendError, BackendOp, Network, NicPort, Op};

/// What the simulated host network holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SimNetwork {
    /// The bridges, with their MTU.
    pub bridges: BTreeMap<String, u32>,
    /// The VIFs' ports, by VIF uuid.
    pub ports: BTreeMap<String, NicPort>,
}

impl SimNetwork {
    pub fn ensure_network(&mut self, bridge: &str, mtu: u32) {
        self.bridges.insert(bridge.to_owned(), mtu);
    }

    /// The port of `vif`, made on its bridge (which it ensures) unless it exists.
    pub fn ensure_vif(&mut self, vm: &str, vif: &VifSpec) -> NicPort {
        self.bridges.entry(vif.bridge.clone()).or_insert(vif.mtu);
        let port = NicPort {
            device: format!("tap-{}.{}", short(vm), vif.device),
            bridge: vif.bridge.clone(),
        };
        self.ports.entry(vif.uuid.clone()).or_insert(port).clone()
    }

    pub fn tear_down_vif(&mut self, vif: &VifSpec) {
        self.ports.remove(&vif.uuid);
    }

    pub fn tear_down_network(&mut self, bridge: &str) -> Result<(), BackendError> {
        if self.ports.values().any(|port| port.bridge == bridge) {
            return Err(BackendError::InUse {
                what: format!("bridge {bridge}"),
            });
        }
        self.bridges.remove(bridge);
        Ok(())
    }
}

/// The start of a uuid, as short as a device name needs.
fn short(uuid: &str) -> &str {
    uuid.get(..8).unwrap_or(uuid)
}

impl Network for Simulator {
    fn ensure_network<'a>(&'a self, bridge: &'a str, mtu: u32) -> Op<'a> {
        Box::pin(self.run(BackendOp::EnsureNetwork, bridge, move |m| {
            m.network.ensure_network(bridge, mtu);
            quiet(Ok(()))
        }))
    }

    fn ensure_vif<'a>(&'a self, vm: &'a str, vif: &'a VifSpec) -> Op<'a, NicPort> {
        Box::pin(self.run(BackendOp::EnsureVif, &vif.uuid, |m| {
            quiet(Ok(m.network.ensure_vif(vm, vif)))
        }))
    }

    fn tear_down_vif<'a>(&'a self, vif: &'a VifSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::TearDownVif, &vif.uuid, |m| {
            m.network.tear_down_vif(vif);
            quiet(Ok(()))
        }))
    }

    fn port<'a>(&'a self, vif: &'a VifSpec) -> Op<'a, Option<NicPort>> {
        Box::pin(
            async move { Ok(self.with_state(|state| state.network.ports.get(&vif.uuid).cloned())) },
        )
    }

    fn tear_down_network<'a>(&'a self, bridge: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::TearDownNetwork, bridge, |m| {
            quiet(m.network.tear_down_network(bridge))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::nic;

    /// A VIF's port is made on its bridge once, however often it is ensured; the bridge stays
    /// until no port is on it.
    #[test]
    fn ports_are_ensured_once_and_bridges_outlive_them() {
        let mut network = SimNetwork::default();
        let vif = nic(0);
        let port = network.ensure_vif("vm-a", &vif);
        assert_eq!(network.ensure_vif("vm-a", &vif), port);
        assert_eq!(port.bridge, vif.bridge);
        assert!(matches!(
            network.tear_down_network(&vif.bridge),
            Err(BackendError::InUse { .. })
        ));
        network.tear_down_vif(&vif);
        assert!(network.ports.is_empty());
        assert!(network.bridges.contains_key(&vif.bridge));
        network
            .tear_down_network(&vif.bridge)
            .expect("tear down the bridge");
        assert!(network.bridges.is_empty());
    }
}
