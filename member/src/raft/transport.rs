//! Raft messages to peers, through `peer::Peers`; without peers (a node opened alone) they are
//! dropped. The peers a message could not be queued for are collected and reported to raft-rs
//! after the Ready (`report_undelivered`); what the transport receives becomes an `Input`.

use std::collections::BTreeSet;

use raft::SnapshotStatus;
use raft::eraftpb::{Message, MessageType};

use crate::peer::{Peers, RaftInbound};
use crate::raft::node::{Input, Node};

/// Where the node's messages go.
pub(crate) struct Transport {
    peers: Option<Peers>,
}

/// What could not be sent during one Ready: reported to raft-rs once it is advanced.
#[derive(Debug, Default)]
pub(crate) struct Undelivered {
    /// Peers whose stream is down or full.
    pub unreachable: BTreeSet<u64>,
    /// Peers a snapshot message was lost for.
    pub snapshots: BTreeSet<u64>,
}

impl Transport {
    /// No peers: every message is dropped.
    pub(crate) fn none() -> Transport {
        Transport { peers: None }
    }

    pub(crate) fn new(peers: Peers) -> Transport {
        Transport { peers: Some(peers) }
    }

    /// Queues `messages` on their peers' streams; those that cannot be are noted in
    /// `undelivered`.
    pub(crate) fn send(&self, messages: Vec<Message>, undelivered: &mut Undelivered) {
        for message in messages {
            let is_sent = self
                .peers
                .as_ref()
                .is_some_and(|peers| peers.send_raft(&message));
            if is_sent {
                continue;
            }
            tracing::debug!(
                to = message.to,
                msg_type = ?message.get_msg_type(),
                "raft message not delivered"
            );
            undelivered.unreachable.insert(message.to);
            if message.get_msg_type() == MessageType::MsgSnapshot {
                undelivered.snapshots.insert(message.to);
            }
        }
    }
}

impl From<RaftInbound> for Input {
    fn from(inbound: RaftInbound) -> Input {
        match inbound {
            RaftInbound::Message(message) => Input::Step(message),
            RaftInbound::SnapshotSent { to, finished } => Input::SnapshotSent { to, finished },
        }
    }
}

impl Node {
    /// Tells raft-rs which peers the last Ready's messages could not reach.
    pub(super) fn report_undelivered(&mut self) {
        let undelivered = std::mem::take(&mut self.undelivered);
        for node in undelivered.unreachable {
            self.raw.report_unreachable(node);
        }
        for node in undelivered.snapshots {
            self.raw.report_snapshot(node, SnapshotStatus::Failure);
        }
    }
}
