//! Raft messages to peers. There is no peer transport yet: a one-voter group sends none, and
//! any message is dropped.

use raft::eraftpb::Message;

/// Sends messages to peers: drops them, with a debug event each.
pub(crate) fn send(messages: Vec<Message>) {
    for message in messages {
        tracing::debug!(
            to = message.to,
            msg_type = ?message.get_msg_type(),
            "no peer transport: raft message dropped"
        );
    }
}
