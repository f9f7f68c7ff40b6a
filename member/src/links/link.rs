//! `PoolLink`, the master's `HostLink` in a pool: an action for this host goes to its own
//! agent; one for another host goes to that host's node as `LinkFrame::Action`, its progress
//! and result come back, a cancel follows it as `Cancel`. And the other end: running the
//! actions another host's master sends here.

use std::sync::Arc;
use std::time::Duration;

use host_api::{ActionResult, HostAction};
use master::db::BoxFuture;
use master::host_link::{HostLink, LinkFailure};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{LinkFrame, OutgoingAction, Roles, lock};

/// The `HostLink` of this host's master.
pub struct PoolLink(pub Arc<Roles>);

impl HostLink for PoolLink {
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, LinkFailure>> {
        let host = host.to_owned();
        Box::pin(async move {
            let roles = &self.0;
            if host == roles.host_ref {
                return roles
                    .agent
                    .run(term, action, progress, cancel)
                    .await
                    .map_err(LinkFailure::Agent);
            }
            roles
                .run_remote(&host, term, action, progress, cancel)
                .await
        })
    }
}

impl Roles {
    /// Runs `action` on the agent of another host: `HostOffline` when the host is no member,
    /// cannot be sent to, or has not been heard from for `dead_after` while the action runs
    /// (its outcome is then unknown; the host's inventory settles it when it is back);
    /// `Incompatible` when it speaks another host protocol version.
    async fn run_remote(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> Result<ActionResult, LinkFailure> {
        let offline = || LinkFailure::HostOffline;
        let node = self.transport.node_of_host(host).ok_or_else(offline)?;
        match self.transport.protocol_of(node) {
            Some(theirs) if theirs != host_api::PROTOCOL_VERSION => {
                return Err(LinkFailure::Incompatible { theirs });
            }
            _ => {}
        }
        let id = self.next_id();
        let (result, mut answered) = oneshot::channel();
        lock(&self.actions).insert(id, OutgoingAction { progress, result });
        let frame = LinkFrame::Action {
            id,
            host: host.to_owned(),
            term,
            action,
        };
        if self.send(node, &frame).is_err() {
            lock(&self.actions).remove(&id);
            return Err(offline());
        }
        let sent = Instant::now();
        let mut checks = tokio::time::interval(self.settings.heartbeat_interval());
        let mut is_cancel_sent = false;
        loop {
            tokio::select! {
                answer = &mut answered => {
                    return answer.unwrap_or_else(|_| Err(offline()));
                }
                () = cancel.cancelled(), if !is_cancel_sent => {
                    is_cancel_sent = true;
                    let _ = self.send(node, &LinkFrame::Cancel { id });
                }
                _ = checks.tick() => {
                    if !self.heard_within(node, sent, self.settings.dead_after()) {
                        lock(&self.actions).remove(&id);
                        tracing::warn!(host = %host, node, "host went silent during an action");
                        return Err(offline());
                    }
                }
            }
        }
    }

    /// Runs an action the master on node `from` sent for `host`, streaming its progress back,
    /// then its result. The agent refuses a stale term itself.
    pub(super) async fn run_for(
        self: Arc<Self>,
        from: u64,
        id: u64,
        host: String,
        term: u64,
        action: HostAction,
    ) {
        if host != self.host_ref {
            let _ = self.send(from, &LinkFrame::ActionRefused { id });
            return;
        }
        let cancel = CancellationToken::new();
        lock(&self.serving).insert((from, id), cancel.clone());
        let (progress, mut progressed) = watch::channel(0.0);
        let roles = Arc::clone(&self);
        let relay = tokio::spawn(async move {
            while progressed.changed().await.is_ok() {
                let value = *progressed.borrow_and_update();
                let _ = roles.send(from, &LinkFrame::Progress { id, value });
            }
        });
        let result = self.agent.run(term, action, progress, cancel).await;
        // The relay ends once the agent has dropped the progress sender; its last value goes
        // before the result.
        let _ = tokio::time::timeout(Duration::from_secs(1), relay).await;
        lock(&self.serving).remove(&(from, id));
        let _ = self.send(from, &LinkFrame::ActionResult { id, result });
    }
}

#[cfg(test)]
mod tests {
    use host_api::VmAction;
    use master::testing::TestPool;

    use super::*;
    use crate::links::testing::{Net, PROMPTLY, TestHost, fast_settings, led_by};
    use agent::testing::vm_spec;

    async fn two_hosts() -> (TestPool, Arc<Net>, TestHost, TestHost) {
        let pool = TestPool::new();
        let second = pool.add_host("second", 64 << 30);
        let net = Arc::new(Net::default());
        let first_host = pool.host.clone();
        let leader =
            TestHost::start(&net, &pool, 1, &first_host, led_by(1, 1), fast_settings()).await;
        let follower =
            TestHost::start(&net, &pool, 2, &second, led_by(1, 2), fast_settings()).await;
        (pool, net, leader, follower)
    }

    async fn run(
        link: &PoolLink,
        host: &str,
        term: u64,
        action: HostAction,
    ) -> (Result<ActionResult, LinkFailure>, f64) {
        let (progress, progressed) = watch::channel(0.0);
        let run = link.run(host, term, action, progress, CancellationToken::new());
        let result = tokio::time::timeout(PROMPTLY, run).await.expect("answered");
        let last = *progressed.borrow();
        (result, last)
    }

    /// An action for another host runs on that host's agent, its progress streamed back;
    /// the inventory of that host then lists the domain, this host's does not.
    #[tokio::test]
    async fn actions_for_another_host_run_on_its_agent() {
        let (_pool, _net, leader, follower) = two_hosts().await;
        let link = PoolLink(Arc::clone(&leader.roles));
        let spec = vm_spec("web", 1, 1);
        let start = HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        });
        let (started, progress) = run(&link, &follower.host_ref, 1, start).await;
        assert!(
            matches!(&started, Ok(ActionResult::Domain(Some(info))) if info.vm == spec.uuid),
            "{started:?}"
        );
        assert_eq!(progress, 1.0);
        let (there, _) = run(&link, &follower.host_ref, 1, HostAction::Inventory).await;
        let Ok(ActionResult::Inventory(domains)) = there else {
            panic!("an inventory, got {there:?}");
        };
        assert_eq!(
            domains.iter().map(|d| d.vm.as_str()).collect::<Vec<_>>(),
            [spec.uuid.as_str()]
        );
        let (here, _) = run(&link, &leader.host_ref, 1, HostAction::Inventory).await;
        assert_eq!(here, Ok(ActionResult::Inventory(Vec::new())));
    }

    /// The remote agent refuses a stale term, as a local one does.
    #[tokio::test]
    async fn a_remote_agent_refuses_a_stale_term() {
        let (_pool, _net, leader, follower) = two_hosts().await;
        let link = PoolLink(Arc::clone(&leader.roles));
        let (raised, _) = run(&link, &follower.host_ref, 4, HostAction::Inventory).await;
        assert!(raised.is_ok(), "{raised:?}");
        let (refused, _) = run(&link, &follower.host_ref, 3, HostAction::Inventory).await;
        let refused = refused.expect_err("a stale term");
        assert_eq!(
            refused,
            LinkFailure::Agent(host_api::AgentFailure::StaleTerm {
                newest_seen: 4,
                got: 3
            })
        );
    }

    /// A host that is no member, or that frames cannot reach, is `HOST_OFFLINE [host]`.
    #[tokio::test]
    async fn an_unreachable_host_is_offline() {
        let (_pool, net, leader, follower) = two_hosts().await;
        let link = PoolLink(Arc::clone(&leader.roles));
        let nobody = "OpaqueRef:nobody";
        let (unknown, _) = run(&link, nobody, 1, HostAction::Inventory).await;
        assert_eq!(unknown, Err(LinkFailure::HostOffline));
        net.cut(2);
        let (cut, _) = run(&link, &follower.host_ref, 1, HostAction::Inventory).await;
        assert_eq!(cut, Err(LinkFailure::HostOffline));
    }

    /// A host that speaks another host protocol version is sent no action: the link answers
    /// `Incompatible` with its version, and the action does not run there.
    #[tokio::test]
    async fn a_host_of_another_protocol_version_is_sent_no_action() {
        let (_pool, net, leader, follower) = two_hosts().await;
        let link = PoolLink(Arc::clone(&leader.roles));
        let theirs = host_api::PROTOCOL_VERSION + 1;
        net.protocols.lock().expect("net lock").insert(2, theirs);
        let spec = vm_spec("web", 0, 0);
        let start = HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        });
        let (refused, _) = run(&link, &follower.host_ref, 1, start).await;
        assert_eq!(refused, Err(LinkFailure::Incompatible { theirs }));
        net.protocols.lock().expect("net lock").clear();
        let (there, _) = run(&link, &follower.host_ref, 1, HostAction::Inventory).await;
        assert_eq!(there, Ok(ActionResult::Inventory(Vec::new())));
    }
}
