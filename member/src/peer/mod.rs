//! The peer transport: one ordered stream of frames from this host to every other pool member,
//! over the HTTPS port.
//!
//! A host dials each member it knows (`dial.rs`: the member's certificate pinned by its
//! fingerprint, `GET /peer` upgraded to a byte stream, redialled after a back-off that starts
//! at tens of milliseconds, at once when the member dials us) and writes its frames on that
//! stream; it reads the streams other members dialed to it (`route.rs`: the secret, node id
//! and epoch headers checked, the frames dispatched: Raft messages to the Raft node, link
//! frames to the links layer). Each stream has its own liveness (`liveness.rs`): both ends
//! ping when they have written nothing for `peer.ping_interval_ms`, and an end that hears
//! nothing for `peer.read_timeout_ms` declares the stream dead, so that a peer cut off or
//! frozen is noticed in seconds, not when TCP gives up. `frame.rs` is the framing, `book.rs`
//! the membership: from the replica once it holds the pool secret, else from
//! `membership.json`. A peer on another pool epoch is refused (409) and reported as a split.

pub mod book;
mod dial;
pub mod frame;
mod liveness;
mod route;
pub(crate) mod trust;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use db_schema::Db;
use raft::eraftpb::Message;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use self::book::{Member, Membership};
use self::frame::Frame;
use crate::config::PeerSettings;

/// The header carrying the pool secret.
pub const SECRET_HEADER: &str = "x-oxapi-pool-secret";
/// The header carrying the dialing node's id.
pub const NODE_HEADER: &str = "x-oxapi-node-id";
/// The header carrying the pool epoch (in both directions).
pub const EPOCH_HEADER: &str = "x-oxapi-pool-epoch";
/// The header carrying the sender's version of the master↔agent frames (`host_api`), in both
/// directions. A host built before it was sent speaks version 0.
pub const PROTOCOL_HEADER: &str = "x-oxapi-host-protocol";
/// The path of the peer stream.
pub const PEER_PATH: &str = "/peer";
/// The protocol named in the `Upgrade` header.
const UPGRADE_PROTOCOL: &str = "oxapi-peer";
/// Frames queued on one outgoing stream before senders are refused.
const QUEUE_FRAMES: usize = 4096;
/// Link frames received and not yet taken by the links layer before readers wait.
const LINK_INBOUND_FRAMES: usize = 1024;

/// Why a frame could not be queued, or the transport not started.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("node {node} is not a known pool member")]
    UnknownPeer { node: u64 },
    #[error("no stream to node {node}")]
    NotConnected { node: u64 },
    #[error("peer transport node id must not be zero")]
    NodeIdZero,
    #[error("cannot read the membership")]
    Book(#[from] crate::identity::IdentityError),
}

/// A member that answered on another pool epoch, or dialed this host with one: the pool is
/// split (an emergency transition happened on one side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitDetected {
    pub node: u64,
    pub their_epoch: String,
}

/// What the transport hands to the Raft node.
pub(crate) enum RaftInbound {
    /// A message from a peer.
    Message(Message),
    /// A snapshot message to `to` left on its stream (`finished`) or was lost.
    SnapshotSent { to: u64, finished: bool },
}

/// Where the transport hands Raft messages; set once, by the Raft node.
pub(crate) type RaftSink = Box<dyn Fn(RaftInbound) + Send + Sync>;

/// Link frames from other nodes: (from node, payload).
pub type LinkInbound = mpsc::Receiver<(u64, Vec<u8>)>;

/// The handle of the transport; clones share it.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: u64,
    settings: PeerSettings,
    membership: RwLock<Option<Membership>>,
    dialers: Mutex<HashMap<u64, Dialer>>,
    raft_sink: OnceLock<RaftSink>,
    link_tx: mpsc::Sender<(u64, Vec<u8>)>,
    link_rx: Mutex<Option<LinkInbound>>,
    splits: broadcast::Sender<SplitDetected>,
    /// (node, epoch) pairs reported as splits already: each is reported once.
    reported: Mutex<HashSet<(u64, String)>>,
    /// The host protocol version each member last said it speaks, on either stream.
    protocols: Mutex<HashMap<u64, u32>>,
}

/// The outgoing stream to one member.
struct Dialer {
    member: Member,
    queue: mpsc::Sender<Outbound>,
    connected: Arc<AtomicBool>,
    /// Cuts a back-off or a dial under way short: the member has just dialed us, so it is up
    /// and a fresh dial reaches it. Wakes only a dialer that waits (no permit is kept): a
    /// stream that is up has nothing to redial.
    redial: Arc<Notify>,
    task: JoinHandle<()>,
}

/// A frame queued for a peer; `snapshot` when it carries a Raft snapshot (its fate is reported
/// to the Raft node).
struct Outbound {
    frame: Frame,
    snapshot: bool,
}

impl Drop for Dialer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peers {
    /// Starts the transport of node `node_id` with the membership of `<data_dir>/membership.json`
    /// if there is one; `follow` switches it to the replica's. Must run inside the tokio
    /// runtime. The streams other members dial arrive through `router`.
    pub fn start(
        node_id: u64,
        data_dir: &Path,
        settings: PeerSettings,
    ) -> Result<Peers, PeerError> {
        if node_id == 0 {
            return Err(PeerError::NodeIdZero);
        }
        let (link_tx, link_rx) = mpsc::channel(LINK_INBOUND_FRAMES);
        let (splits, _) = broadcast::channel(16);
        let peers = Peers {
            inner: Arc::new(Inner {
                node_id,
                settings,
                membership: RwLock::new(None),
                dialers: Mutex::new(HashMap::new()),
                raft_sink: OnceLock::new(),
                link_tx,
                link_rx: Mutex::new(Some(link_rx)),
                splits,
                reported: Mutex::new(HashSet::new()),
                protocols: Mutex::new(HashMap::new()),
            }),
        };
        if let Some(membership) = Membership::load(data_dir)? {
            peers.set_membership(membership);
        }
        Ok(peers)
    }

    /// The `GET /peer` route, for `Front::with_pool_routes`.
    pub fn router(&self) -> axum::Router {
        route::router(self.clone())
    }

    /// Follows the replica: after each applied index that changes the membership it holds, the
    /// streams follow it. Stops when `applied` closes.
    pub fn follow(&self, db: Arc<RwLock<Db>>, mut applied: watch::Receiver<u64>) {
        let peers = self.clone();
        tokio::spawn(async move {
            loop {
                let membership = Membership::from_db(
                    &db.read()
                        .expect("the raft thread never panics while holding the db lock"),
                );
                if let Some(membership) = membership {
                    peers.set_membership(membership);
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// The membership in use now.
    pub fn membership(&self) -> Option<Membership> {
        self.inner.membership().clone()
    }

    /// Queues `payload` (an rmp-serde encoded link frame, opaque to the transport) on the
    /// stream to `node`.
    pub fn send_link(&self, node: u64, payload: Vec<u8>) -> Result<(), PeerError> {
        self.queue(node, Frame::Link(frame::Bytes(payload)), false)
    }

    /// Frames of other nodes' links layer: (from node, payload). Taken once.
    pub fn take_link_inbound(&self) -> Option<LinkInbound> {
        self.inner
            .link_rx
            .lock()
            .expect("no panics under the link lock")
            .take()
    }

    /// The node id of the member whose host is `host_ref`.
    pub fn node_of_host(&self, host_ref: &str) -> Option<u64> {
        let membership = self.inner.membership();
        let members = &membership.as_ref()?.members;
        members
            .iter()
            .find(|member| member.host == host_ref)
            .map(|member| member.node_id)
    }

    /// The version of the master↔agent frames `node` last said it speaks, once a stream to or
    /// from it has opened.
    pub fn protocol_of(&self, node: u64) -> Option<u32> {
        self.inner
            .protocols
            .lock()
            .expect("no panics under the protocols lock")
            .get(&node)
            .copied()
    }

    /// Notes the version `header` (a `PROTOCOL_HEADER` value, absent from hosts built before
    /// it) that `node` speaks, and says so in the log when it differs from this host's.
    fn note_protocol(&self, node: u64, header: Option<&str>) {
        let theirs = header.and_then(|v| v.parse().ok()).unwrap_or(0);
        let previous = self
            .inner
            .protocols
            .lock()
            .expect("no panics under the protocols lock")
            .insert(node, theirs);
        let ours = host_api::PROTOCOL_VERSION;
        if theirs != ours && previous != Some(theirs) {
            tracing::warn!(
                node,
                ours,
                theirs,
                "this member speaks another host protocol version: no host action goes to it \
                 (calls that need one fail with VM_HOST_INCOMPATIBLE_VERSION) until both run \
                 the same oxapi version"
            );
        }
    }

    pub fn member(&self, node: u64) -> Option<Member> {
        self.inner.membership().as_ref()?.member(node).cloned()
    }

    /// Whether the outgoing stream to `node` is up.
    pub fn is_connected(&self, node: u64) -> bool {
        self.inner
            .dialers()
            .get(&node)
            .is_some_and(|dialer| dialer.connected.load(Ordering::Relaxed))
    }

    /// The splits detected so far, and a receiver of those detected from now on (none is in
    /// both, none is missed: the transport may detect one before anyone listens).
    pub fn splits(&self) -> (Vec<SplitDetected>, broadcast::Receiver<SplitDetected>) {
        let reported = self
            .inner
            .reported
            .lock()
            .expect("no panics under the split lock");
        let receiver = self.inner.splits.subscribe();
        let so_far = reported
            .iter()
            .map(|(node, their_epoch)| SplitDetected {
                node: *node,
                their_epoch: their_epoch.clone(),
            })
            .collect();
        (so_far, receiver)
    }

    /// Stops every outgoing stream; inbound ones end with the listener.
    pub fn stop(&self) {
        self.inner.dialers().clear();
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Where inbound Raft messages go; the first sink set stays.
    pub(crate) fn set_raft_sink(&self, sink: RaftSink) {
        let _ = self.inner.raft_sink.set(sink);
    }

    /// Queues a Raft message on the stream to its destination; false when it could not be.
    pub(crate) fn send_raft(&self, message: &Message) -> bool {
        use protobuf::Message as _;
        let snapshot = message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
        let bytes = message
            .write_to_bytes()
            .expect("eraftpb messages are proto3 and always encode");
        self.queue(message.to, Frame::Raft(frame::Bytes(bytes)), snapshot)
            .is_ok()
    }

    fn queue(&self, node: u64, frame: Frame, snapshot: bool) -> Result<(), PeerError> {
        let dialers = self.inner.dialers();
        let dialer = dialers.get(&node).ok_or(PeerError::UnknownPeer { node })?;
        if !dialer.connected.load(Ordering::Relaxed) {
            return Err(PeerError::NotConnected { node });
        }
        dialer
            .queue
            .try_send(Outbound { frame, snapshot })
            .map_err(|_| PeerError::NotConnected { node })
    }

    /// Puts `membership` in use: starts streams to new members, stops those to members gone,
    /// restarts those whose address or certificate changed.
    fn set_membership(&self, membership: Membership) {
        let mut current = self
            .inner
            .membership
            .write()
            .expect("no panics under the membership lock");
        if current.as_ref() == Some(&membership) {
            return;
        }
        let mut dialers = self.inner.dialers();
        dialers.retain(|node, dialer| membership.member(*node) == Some(&dialer.member));
        for member in &membership.members {
            if member.node_id == self.inner.node_id || dialers.contains_key(&member.node_id) {
                continue;
            }
            dialers.insert(member.node_id, dial::start(self.clone(), member.clone()));
        }
        tracing::info!(
            members = ?membership.members.iter().map(|m| m.node_id).collect::<Vec<_>>(),
            epoch = %membership.pool_epoch,
            "peer membership updated"
        );
        *current = Some(membership);
    }

    /// The member `node` has just opened a stream to us: if ours to it is down, dial again now
    /// instead of at the end of the back-off or of a dial that may have been sent into a cut
    /// (a joiner that has restarted gets its snapshot at once; after a partition heals, the
    /// first stream through brings the other direction back).
    fn redial(&self, node: u64) {
        if let Some(dialer) = self.inner.dialers().get(&node) {
            dialer.redial.notify_waiters();
        }
    }

    /// The address this host dials from: the IP of its own member entry, unless unspecified,
    /// so that traffic between two members is between their own addresses.
    fn local_ip(&self) -> Option<std::net::IpAddr> {
        let membership = self.inner.membership();
        let own = membership.as_ref()?.member(self.inner.node_id)?;
        let address: std::net::SocketAddr = own.address.parse().ok()?;
        (!address.ip().is_unspecified()).then_some(address.ip())
    }

    /// Reports a split once per (node, epoch).
    fn report_split(&self, node: u64, their_epoch: &str) {
        let mut reported = self
            .inner
            .reported
            .lock()
            .expect("no panics under the split lock");
        if reported.insert((node, their_epoch.to_owned())) {
            tracing::error!(
                node,
                their_epoch,
                "pool split: a member is on another pool epoch"
            );
            // Sent under the lock, so that `splits` sees each split exactly once.
            let _ = self.inner.splits.send(SplitDetected {
                node,
                their_epoch: their_epoch.to_owned(),
            });
        }
    }

    /// Hands an inbound Raft message or snapshot outcome to the Raft node, if one listens.
    fn to_raft(&self, inbound: RaftInbound) {
        if let Some(sink) = self.inner.raft_sink.get() {
            sink(inbound);
        }
    }
}

impl Inner {
    fn membership(&self) -> std::sync::RwLockReadGuard<'_, Option<Membership>> {
        self.membership
            .read()
            .expect("no panics under the membership lock")
    }

    fn dialers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Dialer>> {
        self.dialers
            .lock()
            .expect("no panics under the dialers lock")
    }
}

/// The lowercase hex SHA-256 of `der`, as `member/…` records hold certificate fingerprints.
pub fn cert_sha256(der: &[u8]) -> String {
    api_client::Fingerprint::of(der).to_hex()
}

/// Whether `given` is the pool secret `ours`, compared in time independent of where they
/// differ: the check of every route between pool members.
pub(crate) fn same_secret(given: &[u8], ours: &[u8]) -> bool {
    given.len() == ours.len()
        && given
            .iter()
            .zip(ours)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets are equal only when every byte and the length are.
    #[test]
    fn secrets_compare_by_every_byte() {
        assert!(same_secret(b"abcd", b"abcd"));
        assert!(!same_secret(b"abcd", b"abce"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
