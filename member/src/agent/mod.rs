//! The host agent: what happens to a VM on this host goes through here.

use std::sync::Arc;

use api_spec::ApiError;
use master::db::BoxFuture;
use master::host_link::{ActionResult, HostAction, HostLink};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The agent of this host.
pub struct Agent {}

/// The `HostLink` of a one-host pool: every action goes to this host's agent.
pub struct LocalLink {
    /// The ref of this host.
    pub host_ref: String,
    pub agent: Arc<Agent>,
}

impl HostLink for LocalLink {
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, ApiError>> {
        let _ = (
            host,
            term,
            action,
            progress,
            cancel,
            &self.host_ref,
            &self.agent,
        );
        Box::pin(async { todo!() })
    }
}
