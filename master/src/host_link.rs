//! `HostLink`: how the master reaches the agent of a host. What travels is `host-api`'s
//! contract; `member` implements the link over the peer streams, `testing.rs` in memory.

use host_api::{ActionResult, AgentFailure, HostAction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::db::BoxFuture;

/// Why an action sent to a host did not succeed. `vm/agent_failures.rs` turns it into the
/// XenAPI error a client gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkFailure {
    /// The agent ran the action and it failed.
    #[error(transparent)]
    Agent(#[from] AgentFailure),
    /// The host is no member, could not be sent the action, or went silent while it ran (its
    /// outcome is then unknown; the host's inventory settles it when it is back).
    #[error("host offline")]
    HostOffline,
    /// The host speaks version `theirs` of the host protocol, not this master's.
    #[error("host speaks host protocol {theirs}")]
    Incompatible { theirs: u32 },
}

/// How the master reaches the agent of a host.
pub trait HostLink: Send + Sync + 'static {
    /// Runs `action` on the agent of `host` (a host ref), stamped with the Raft `term` of this
    /// master: an agent refuses a term older than the newest it has seen, so a deposed master
    /// can no longer act. The agent reports progress (0 to 1) through `progress`; cancelling
    /// `cancel` asks it to stop at its next cancellation point and leave the domain consistent
    /// (the action then fails with `AgentFailure::Cancelled`).
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, LinkFailure>>;
}
