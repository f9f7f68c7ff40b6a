//! The pool split alerts: each split the peer transport detects, raised by this host while
//! it is master.

use std::sync::Arc;
use std::time::Duration;

use master::Master;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::peer::{Peers, SplitDetected};
use crate::raft::{RaftDb, RaftStatus};

/// How soon a master tries again to raise a split alert whose commit failed (e.g. while it
/// takes over).
const SPLIT_ALERT_RETRY: Duration = Duration::from_secs(1);

/// Starts the task that raises the splits `peers` detect, those detected already first, while
/// this host is master (`db`'s status says when).
pub(super) fn start(peers: &Peers, master: &Arc<Master>, db: &RaftDb) -> JoinHandle<()> {
    let (earlier_splits, splits) = peers.splits();
    tokio::spawn(raise_split_alerts(
        Arc::clone(master),
        earlier_splits,
        splits,
        db.status(),
    ))
}

/// Turns each split the peer transport detects (a member on another `pool_epoch`) into a
/// `POOL_SPLIT_DETECTED` message when this host is the master, starting with `pending`, those
/// detected before. A split seen while a follower is kept and raised if this host becomes
/// master: the transport reports each split once, and the hosts of an old configuration may see
/// it before they have elected a master.
async fn raise_split_alerts(
    master: Arc<Master>,
    mut pending: Vec<SplitDetected>,
    mut splits: broadcast::Receiver<SplitDetected>,
    mut status: watch::Receiver<RaftStatus>,
) {
    let mut retry = !pending.is_empty();
    loop {
        tokio::select! {
            split = splits.recv() => match split {
                Ok(split) => {
                    if !status.borrow().is_leader {
                        tracing::warn!(node = split.node, their_epoch = %split.their_epoch, "pool split detected by a follower: raised if it becomes master");
                    }
                    pending.push(split);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "pool split alerts missed");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(SPLIT_ALERT_RETRY), if retry => {}
        }
        if pending.is_empty() || !status.borrow_and_update().is_leader {
            continue;
        }
        for split in std::mem::take(&mut pending) {
            if let Err(e) = master.split_detected(split.node, &split.their_epoch).await {
                let code = master::error::to_api_error(e).code;
                tracing::warn!(node = split.node, code = %code, "pool split alert not raised yet");
                pending.push(split);
            }
        }
        retry = !pending.is_empty();
    }
}
