//! The peer transport (`peer::Peers`) as the links layer's `Transport`.

use super::{Transport, Unreachable};
use crate::peer::Peers;

impl Transport for Peers {
    fn send(&self, node: u64, payload: Vec<u8>) -> Result<(), Unreachable> {
        self.send_link(node, payload)
            .map_err(|_| Unreachable { node })
    }

    fn node_of_host(&self, host: &str) -> Option<u64> {
        Peers::node_of_host(self, host)
    }

    fn protocol_of(&self, node: u64) -> Option<u32> {
        Peers::protocol_of(self, node)
    }

    fn address_of(&self, node: u64) -> Option<String> {
        self.member(node).map(|member| member.address)
    }

    fn others(&self) -> Vec<u64> {
        let me = self.node_id();
        self.membership()
            .map(|membership| {
                membership
                    .members
                    .iter()
                    .map(|m| m.node_id)
                    .filter(|id| *id != me)
                    .collect()
            })
            .unwrap_or_default()
    }
}
