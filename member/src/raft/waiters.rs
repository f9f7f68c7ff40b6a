//! Proposals and read barriers waiting for their answer, from the request to the apply that
//! answers it. Only the Raft thread touches them.

use std::collections::HashMap;

use db_schema::Applied;
use master::db::ProposeError;
use raft::ReadState;
use raft::eraftpb::Entry;
use tokio::sync::oneshot;

/// The reply to a proposal.
pub(crate) type ProposeReply = oneshot::Sender<Result<Applied, ProposeError>>;
/// The reply to a read barrier.
pub(crate) type ReadReply = oneshot::Sender<Result<(), ProposeError>>;

/// The context raft-rs carries for the proposal or read request `id`: its 8 bytes.
pub(crate) fn context(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// The id a context of 8 bytes carries.
fn context_id(context: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(context.try_into().ok()?))
}

/// Proposals waiting for their entry to be applied.
#[derive(Default)]
pub(crate) struct Proposals {
    last_id: u64,
    waiting: HashMap<u64, Waiter>,
}

struct Waiter {
    /// The term the entry was proposed in: an entry with the same id from another term (an
    /// earlier run of this node, or another leader) is not this proposal.
    term: u64,
    reply: ProposeReply,
}

impl Proposals {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    pub(crate) fn wait(&mut self, id: u64, term: u64, reply: ProposeReply) {
        self.waiting.insert(id, Waiter { term, reply });
    }

    /// The waiter of `entry`, if this node proposed it.
    pub(crate) fn take(&mut self, entry: &Entry) -> Option<ProposeReply> {
        let id = context_id(&entry.context)?;
        match self.waiting.get(&id) {
            Some(waiter) if waiter.term == entry.term => {
                self.waiting.remove(&id).map(|waiter| waiter.reply)
            }
            _ => None,
        }
    }

    /// Answers every waiting proposal with `error`.
    pub(crate) fn fail(&mut self, error: &ProposeError) {
        for (_, waiter) in self.waiting.drain() {
            let _ = waiter.reply.send(Err(error.clone()));
        }
    }
}

/// Read barriers, from queued to answered.
#[derive(Default)]
pub(crate) struct Reads {
    next_ctx: u64,
    /// Waiting for this leader to commit an entry of its term.
    queued: Vec<ReadReply>,
    /// ReadIndex requests raft-rs has, by context.
    in_flight: HashMap<u64, Vec<ReadReply>>,
    /// Read index known, waiting for the apply to reach it.
    confirmed: Vec<(u64, Vec<ReadReply>)>,
}

impl Reads {
    pub(crate) fn queue(&mut self, reply: ReadReply) {
        self.queued.push(reply);
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Puts the queued barriers in flight under one new ReadIndex request; returns its id.
    pub(crate) fn issue(&mut self) -> u64 {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let waiting = std::mem::take(&mut self.queued);
        self.in_flight.insert(ctx, waiting);
        ctx
    }

    /// Moves the barriers whose read index `states` tell to wait for the apply to reach it,
    /// and answers those `applied` reaches already.
    pub(crate) fn confirm(&mut self, states: Vec<ReadState>, applied: u64) {
        for state in states {
            let Some(ctx) = context_id(&state.request_ctx) else {
                continue;
            };
            if let Some(waiting) = self.in_flight.remove(&ctx) {
                self.confirmed.push((state.index, waiting));
            }
        }
        self.answer_applied(applied);
    }

    /// Answers the barriers whose read index is applied.
    pub(crate) fn answer_applied(&mut self, applied: u64) {
        self.confirmed.retain_mut(|(index, waiting)| {
            if *index > applied {
                return true;
            }
            for reply in waiting.drain(..) {
                let _ = reply.send(Ok(()));
            }
            false
        });
    }

    /// Answers every barrier not answered yet with `error`.
    pub(crate) fn fail(&mut self, error: &ProposeError) {
        let in_flight = self.in_flight.drain().flat_map(|(_, waiting)| waiting);
        let confirmed = self.confirmed.drain(..).flat_map(|(_, waiting)| waiting);
        for reply in self.queued.drain(..).chain(in_flight).chain(confirmed) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_with_context(id: u64, term: u64) -> Entry {
        Entry {
            term,
            context: context(id).into(),
            ..Entry::default()
        }
    }

    /// An applied entry answers the proposal with its id only if the terms match too.
    #[test]
    fn proposal_is_matched_by_id_and_term() {
        let mut proposals = Proposals::default();
        let id = proposals.next_id();
        let (reply, _outcome) = oneshot::channel();
        proposals.wait(id, 5, reply);
        assert!(proposals.take(&entry_with_context(id, 4)).is_none());
        assert!(proposals.take(&entry_with_context(id + 1, 5)).is_none());
        assert!(proposals.take(&entry_with_context(id, 5)).is_some());
        assert!(proposals.waiting.is_empty());
    }

    /// A confirmed read barrier is answered once the apply reaches its index, not before.
    #[test]
    fn read_barrier_waits_for_its_index_to_be_applied() {
        let mut reads = Reads::default();
        let (reply, mut outcome) = oneshot::channel();
        reads.confirmed.push((10, vec![reply]));
        reads.answer_applied(9);
        assert!(outcome.try_recv().is_err());
        reads.answer_applied(10);
        assert_eq!(outcome.try_recv().expect("answered"), Ok(()));
        assert!(reads.confirmed.is_empty());
    }

    /// Barriers queued together share one ReadIndex request and its read state confirms them;
    /// a barrier queued after it waits for another request, and fails with the given error.
    #[test]
    fn barriers_of_one_request_are_confirmed_by_its_read_state() {
        let mut reads = Reads::default();
        let (first, mut first_outcome) = oneshot::channel();
        let (second, mut second_outcome) = oneshot::channel();
        reads.queue(first);
        reads.queue(second);
        let ctx = reads.issue();
        assert!(!reads.has_queued());
        let (late, mut late_outcome) = oneshot::channel();
        reads.queue(late);
        let state = ReadState {
            index: 7,
            request_ctx: context(ctx),
        };
        reads.confirm(vec![state], 6);
        assert!(first_outcome.try_recv().is_err());
        reads.answer_applied(7);
        assert_eq!(first_outcome.try_recv(), Ok(Ok(())));
        assert_eq!(second_outcome.try_recv(), Ok(Ok(())));
        assert!(late_outcome.try_recv().is_err());
        reads.fail(&ProposeError::NotLeader);
        assert_eq!(late_outcome.try_recv(), Ok(Err(ProposeError::NotLeader)));
    }
}
