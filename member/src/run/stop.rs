//! The one shutdown path: what start-up has started, stopped last started first.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::front::listen::Listeners;
use crate::links::Duties;
use crate::peer::Peers;
use crate::raft::{RaftNode, StorageError};

/// The parts of this host that must be stopped, in the order they start; each is set as soon
/// as its step has run, so that a failure in a later step stops exactly what runs.
#[derive(Default)]
pub(super) struct Started {
    pub(super) peers: Option<Peers>,
    pub(super) node: Option<RaftNode>,
    /// The tasks of the links layer.
    pub(super) duties: Option<Duties>,
    /// The task raising pool split alerts.
    pub(super) splits: Option<JoinHandle<()>>,
    pub(super) listeners: Option<Listeners>,
}

impl Started {
    /// Stops what runs, last started first: the listeners (calls in flight get `grace`), the
    /// split alerts, the links layer's tasks, then the peer transport and last the Raft node,
    /// which writes its final dump; the node's error, if its loop had failed or the dump
    /// cannot be written. The transport stops before the node it carries, as it always has:
    /// the node's final dump is then taken with nothing more coming in or going out.
    pub(super) async fn stop(self, grace: Duration) -> Result<(), StorageError> {
        // Taken apart field by field, so that a part added to `Started` is stopped here too.
        let Started {
            peers,
            node,
            duties,
            splits,
            listeners,
        } = self;
        if let Some(listeners) = listeners {
            listeners.shutdown(grace).await;
        }
        if let Some(splits) = splits {
            splits.abort();
        }
        drop(duties);
        if let Some(peers) = peers {
            peers.stop();
        }
        match node {
            Some(node) => node.shutdown().await,
            None => Ok(()),
        }
    }
}
