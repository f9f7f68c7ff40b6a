//! The long-running tasks of the links layer: taking frames from the other hosts, handing
//! agent reports to the leader in order, heartbeats to the leader and fencing when none
//! answers, and the master role (takeover, liveness checks, housekeeping) while this host
//! leads.

use std::sync::Arc;
use std::time::Duration;

use host_api::AgentReport;
use master::{Clock, Master};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{LinkFrame, Roles};
use crate::run::SystemClock;

/// Reports of other hosts' agents waiting for the master.
const REMOTE_REPORT_QUEUE: usize = 1024;

/// Whether this host's first inventory has reached a master (this host's own when it leads;
/// sent to the leader otherwise).
#[derive(Clone)]
pub struct FirstInventory(watch::Receiver<bool>);

impl FirstInventory {
    /// Waits for the first inventory, at most `bound`; whether it arrived.
    pub async fn wait(mut self, bound: Duration) -> bool {
        let passed = tokio::time::timeout(bound, self.0.wait_for(|passed| *passed)).await;
        matches!(passed, Ok(Ok(_)))
    }
}

/// The running tasks of the links layer; dropping it stops them.
pub struct Duties {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Duties {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Roles {
    /// Starts every task of the links layer: frames from `inbound`, this host's agent's
    /// reports from `reported`, heartbeats and fencing, and the master role of `master`
    /// (housekeeping every `housekeeping_interval` while this host leads).
    pub fn start(
        self: &Arc<Self>,
        master: &Arc<Master>,
        inbound: mpsc::Receiver<(u64, Vec<u8>)>,
        reported: mpsc::Receiver<AgentReport>,
        housekeeping_interval: Duration,
    ) -> (Duties, FirstInventory) {
        let (remote_reports, remote_reported) = mpsc::channel(REMOTE_REPORT_QUEUE);
        let (first, first_inventory) = watch::channel(false);
        let first_inventory = FirstInventory(first_inventory);
        let tasks = vec![
            tokio::spawn(Arc::clone(self).take_frames(Arc::clone(master), inbound, remote_reports)),
            tokio::spawn(take_remote_reports(Arc::clone(master), remote_reported)),
            tokio::spawn(Arc::clone(self).pass_reports(Arc::clone(master), reported, first)),
            tokio::spawn(Arc::clone(self).beat(Arc::clone(master))),
            tokio::spawn(Arc::clone(self).lead(
                Arc::clone(master),
                housekeeping_interval,
                first_inventory.clone(),
            )),
        ];
        (Duties { tasks }, first_inventory)
    }

    /// Hands this host's agent's reports to the leader, in order: to this host's master while
    /// it leads, else as `Report` frames; a report waits while no leader can be sent to.
    async fn pass_reports(
        self: Arc<Self>,
        master: Arc<Master>,
        mut reported: mpsc::Receiver<AgentReport>,
        first: watch::Sender<bool>,
    ) {
        while let Some(report) = reported.recv().await {
            let is_inventory = matches!(report, AgentReport::Inventory(_));
            self.pass_report(&master, report).await;
            if is_inventory {
                first.send_replace(true);
            }
        }
    }

    async fn pass_report(&self, master: &Arc<Master>, report: AgentReport) {
        let mut status = self.status.clone();
        loop {
            let now = *status.borrow_and_update();
            if now.is_leader {
                take_report(master, self.host_ref.clone(), report).await;
                return;
            }
            if now.leader_id != 0 {
                let frame = LinkFrame::Report {
                    host: self.host_ref.clone(),
                    report: report.clone(),
                };
                if self.send(now.leader_id, &frame).is_ok() {
                    return;
                }
            }
            // Retried when the leader changes, or after a heartbeat interval (a link coming up).
            let _ =
                tokio::time::timeout(self.settings.heartbeat_interval(), status.changed()).await;
        }
    }

    /// Every heartbeat interval: contact while this host leads, else a heartbeat to the
    /// leader (whose ack is the contact; to every member while the store failed); fences the
    /// agent once when contact has been lost for `fence_after`, or when a contact came after
    /// such a silence.
    async fn beat(self: Arc<Self>, master: Arc<Master>) {
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut is_fenced = false;
        loop {
            ticker.tick().await;
            let status = self.status();
            let health = self.health.now();
            if status.is_leader {
                self.note_contact();
                master.heartbeat(&self.host_ref, &health).await;
            } else {
                // A host whose store failed does not learn who leads now: it tells every
                // member, and the leader among them answers.
                let to = if health.store_failure.is_some() {
                    self.transport.others()
                } else {
                    Vec::from_iter((status.leader_id != 0).then_some(status.leader_id))
                };
                let heartbeat = LinkFrame::Heartbeat {
                    host: self.host_ref.clone(),
                    now_unix: SystemClock.now_unix(),
                    health,
                };
                for node in to {
                    let _ = self.send(node, &heartbeat);
                }
            }
            let silent = self.since_contact();
            let silence_ended = self.take_fence_due();
            if silent < self.settings.fence_after() && !silence_ended {
                is_fenced = false;
            } else if !is_fenced || silence_ended {
                is_fenced = true;
                tracing::warn!(silent_secs = silent.as_secs(), "no contact with a master");
                let agent = Arc::clone(&self.agent);
                tokio::spawn(async move {
                    let stopped = agent.fence().await;
                    tracing::warn!(stopped, "host fenced");
                });
            }
        }
    }

    /// The master role: each time this host becomes the leader (or leads in a new term), the
    /// master takes over; while it leads, liveness is checked every heartbeat interval and
    /// housekeeping runs every `housekeeping_interval`. The first takeover waits (bounded) for
    /// this host's first inventory, so that it does not reconcile this host from a list of
    /// domains taken before the agent checked them.
    async fn lead(
        self: Arc<Self>,
        master: Arc<Master>,
        housekeeping_interval: Duration,
        first_inventory: FirstInventory,
    ) {
        first_inventory
            .wait(self.settings.first_inventory_wait())
            .await;
        let mut status = self.status.clone();
        let dead_after_secs = i64::try_from(self.settings.dead_after_secs).unwrap_or(i64::MAX);
        let check_interval = self.settings.heartbeat_interval();
        loop {
            let term = match status.wait_for(|s| s.is_leader).await {
                Ok(now) => now.term,
                Err(_) => return,
            };
            tracing::info!(term, "this host leads: master role on");
            let takeover = tokio::spawn({
                let master = Arc::clone(&master);
                async move { master.on_elected().await }
            });
            let mut checks =
                tokio::time::interval_at(Instant::now() + check_interval, check_interval);
            checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut housekeeping = tokio::time::interval_at(
                Instant::now() + housekeeping_interval,
                housekeeping_interval,
            );
            housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    changed = status.changed() => {
                        if changed.is_err() {
                            takeover.abort();
                            return;
                        }
                        let now = *status.borrow_and_update();
                        if !now.is_leader || now.term != term {
                            break;
                        }
                    }
                    _ = checks.tick() => {
                        let master = Arc::clone(&master);
                        let checked = tokio::spawn(async move {
                            master.check_liveness(dead_after_secs).await
                        });
                        if let Err(err) = checked.await {
                            tracing::error!(error = %err, "liveness check failed");
                        }
                    }
                    _ = housekeeping.tick() => {
                        let master = Arc::clone(&master);
                        if let Err(err) = tokio::spawn(async move { master.housekeeping().await }).await {
                            tracing::error!(error = %err, "housekeeping failed");
                        }
                    }
                }
            }
            takeover.abort();
            tracing::info!(term, "this host no longer leads: master role off");
        }
    }
}

/// Hands other hosts' reports to the master, in arrival order.
async fn take_remote_reports(
    master: Arc<Master>,
    mut reported: mpsc::Receiver<(String, AgentReport)>,
) {
    while let Some((host, report)) = reported.recv().await {
        take_report(&master, host, report).await;
    }
}

/// `Master::report` in a task of its own: a report whose handling panics is logged, and the
/// next one still goes through.
async fn take_report(master: &Arc<Master>, host: String, report: AgentReport) {
    let master = Arc::clone(master);
    if let Err(err) = tokio::spawn(async move { master.report(&host, report).await }).await {
        tracing::error!(error = %err, "taking in an agent report failed");
    }
}

#[cfg(test)]
mod tests {
    use api_spec::Value;
    use host_api::{HostAction, VmAction};
    use master::testing::TestPool;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::PoolSettings;
    use crate::links::testing::{Net, PROMPTLY, TestHost, fast_settings, led_by};
    use agent::testing::vm_spec;

    /// Polls `done` until it holds, failing after `PROMPTLY`.
    async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + PROMPTLY;
        while !done().await {
            assert!(Instant::now() < deadline, "{what} did not happen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn is_live(pool: &TestPool, host: &str) -> bool {
        let metrics = pool.text("host", host, "metrics");
        pool.field("host_metrics", &metrics, "live") == Some(Value::Bool(true))
    }

    /// A follower's heartbeats reach the leader's master, which makes a host marked dead live
    /// again, and the leader's acks keep the follower in contact.
    #[tokio::test]
    async fn heartbeats_reach_the_leader_and_their_acks_keep_contact() {
        let pool = TestPool::new();
        let second = pool.add_host("second", 64 << 30);
        let metrics = pool.text("host", &second, "metrics");
        pool.write("host_metrics", &metrics, &[("live", Value::Bool(false))]);
        let net = Arc::new(Net::default());
        let first = pool.host.clone();
        let _leader = TestHost::start(&net, &pool, 1, &first, led_by(1, 1), fast_settings()).await;
        let follower =
            TestHost::start(&net, &pool, 2, &second, led_by(1, 2), fast_settings()).await;
        eventually("the follower live", async || is_live(&pool, &second)).await;
        let heartbeat = follower.roles.settings.heartbeat_interval();
        eventually("a fresh contact", async || {
            follower.roles.since_contact() < heartbeat
        })
        .await;
    }

    /// Host 2 of a pool, with `status`, fencing after 1 s, running one domain; the pool and
    /// the network are returned to keep them alive.
    async fn host_running_a_domain(
        status: crate::raft::RaftStatus,
    ) -> (TestPool, Arc<Net>, TestHost) {
        let pool = TestPool::new();
        let second = pool.add_host("second", 64 << 30);
        let net = Arc::new(Net::default());
        let settings = PoolSettings {
            fence_after_secs: 1,
            dead_after_secs: 2,
            ..fast_settings()
        };
        let host = TestHost::start(&net, &pool, 2, &second, status, settings).await;
        let start = HostAction::Vm(VmAction::Start {
            vm: vm_spec("web", 0, 0),
            paused: false,
        });
        let (progress, _) = tokio::sync::watch::channel(0.0);
        host.agent
            .run(1, start, progress, CancellationToken::new())
            .await
            .expect("started");
        (pool, net, host)
    }

    /// Waits until `host`'s agent runs no domain.
    async fn wait_fenced(host: &TestHost) {
        eventually("the domain fenced", async || {
            let (progress, _) = tokio::sync::watch::channel(0.0);
            let inventory = host
                .agent
                .run(1, HostAction::Inventory, progress, CancellationToken::new())
                .await;
            matches!(inventory, Ok(host_api::ActionResult::Inventory(d)) if d.is_empty())
        })
        .await;
    }

    /// A host that hears from no master for `fence_after` hard-stops its domains.
    #[tokio::test]
    async fn a_host_without_a_master_fences_its_domains() {
        let (_pool, _net, lonely) = host_running_a_domain(led_by(0, 2)).await;
        wait_fenced(&lonely).await;
    }

    /// A host whose contact resumes after a silence of `fence_after` (a leader paused by
    /// SIGSTOP wakes up still leading, say) fences its domains all the same.
    #[tokio::test]
    async fn a_contact_after_a_long_silence_still_fences() {
        let (_pool, _net, woken) = host_running_a_domain(led_by(2, 2)).await;
        let long_ago = tokio::time::Instant::now() - std::time::Duration::from_secs(5);
        *super::super::lock(&woken.roles.contact) = long_ago;
        wait_fenced(&woken).await;
    }

    /// A host whose store failed while it still names an old leader (gone since) keeps its
    /// guests: its heartbeats reach the member that leads now, whose master marks it not live
    /// and raises an alert; calls to it say why it answers none.
    #[tokio::test]
    async fn a_host_whose_store_failed_keeps_contact_with_the_new_leader_and_its_guests() {
        let (pool, net, failed) = host_running_a_domain(led_by(1, 2)).await;
        let leader_host = pool.host.clone();
        let _leader =
            TestHost::start(&net, &pool, 3, &leader_host, led_by(3, 3), fast_settings()).await;
        failed.health.send_replace(crate::raft::NodeHealth::Failed {
            reason: "disk full".to_owned(),
        });
        let second = failed.host_ref.clone();
        eventually("the host not live", async || !is_live(&pool, &second)).await;
        let alert = pool.read().rows("message").any(|(_, row)| {
            row.str("name") == "HOST_DATABASE_STORE_FAILED" && row.str("body").contains("disk full")
        });
        assert!(alert, "an alert names the failure");
        // Longer than fence_after (1 s): the domain still runs.
        let fence_after = failed.roles.settings.fence_after();
        let until = Instant::now() + fence_after * 3;
        while Instant::now() < until {
            assert!(failed.roles.since_contact() < fence_after, "contact lost");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (progress, _) = tokio::sync::watch::channel(0.0);
        let inventory = failed
            .agent
            .run(1, HostAction::Inventory, progress, CancellationToken::new())
            .await;
        assert!(
            matches!(inventory, Ok(host_api::ActionResult::Inventory(d)) if d.len() == 1),
            "the domain still runs"
        );
        let refused = failed
            .call(
                "VM.get_all",
                vec![Value::str("OpaqueRef:x")],
                master::Origin::LocalSocket,
            )
            .await
            .expect_err("refused");
        assert!(refused.params[0].contains("disk full"), "{refused:?}");
    }

    /// A host that becomes the leader takes over as master: a task pending with no worker
    /// fails.
    #[tokio::test]
    async fn becoming_the_leader_takes_over_as_master() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let label = vec![Value::str("work"), Value::str("")];
        let task = pool
            .call_as(&session, "task.create", label)
            .await
            .expect("a task");
        let task = task.as_str().expect("a task ref").to_owned();
        let net = Arc::new(Net::default());
        let first = pool.host.clone();
        let host = TestHost::start(&net, &pool, 1, &first, led_by(0, 1), fast_settings()).await;
        assert_eq!(pool.text("task", &task, "status"), "pending");
        host.status.send_replace(led_by(1, 1));
        eventually("the orphan task failed", async || {
            pool.text("task", &task, "status") == "failure"
        })
        .await;
    }
}
