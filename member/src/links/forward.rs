//! The front door's `Answer` on every host of a pool. The leader's `Master` answers calls;
//! another host forwards each call to the leader as `LinkFrame::Call` (or, with
//! `pool.forward_calls` off, answers xapi's `HOST_IS_SLAVE [master address]`), waiting a
//! bounded time for a leader when none is known. The messages api-spec marks `on_every_host`
//! (the event reads, the emergency transition, the slave-local login) and `system.*` are
//! answered on every host from its own replica, by a second `Master` that reads the replica
//! without confirming leadership (`LocalReplica`): event tokens are Raft indexes, the same on
//! every replica, so a client may follow events on any host. So are the calls made with a
//! slave-local session of this host, which only its `reader` knows.

use std::sync::Arc;

use api_spec::{ApiError, Value, errors};
use db_schema::{Applied, Db, Txn};
use master::db::{BoxFuture, ProposeError, ReplicatedDb};
use master::{Call, Clock, Master};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{LinkFrame, Roles, lock};
use crate::front::Answer;
use crate::front::server::internal_error;

fn no_master() -> ApiError {
    internal_error("no pool master is reachable from this host; retry the call later")
}

/// The answer of a host whose Raft store failed: its replica is stale, and it does not follow
/// who leads, so it neither answers nor forwards.
fn store_failed(reason: &str) -> ApiError {
    internal_error(&format!(
        "the pool database store of this host failed ({reason}); it is opened again by \
         itself, and meanwhile this host answers no calls: use another host of the pool"
    ))
}

fn master_lost() -> ApiError {
    internal_error("the pool master went silent during the call; its outcome is unknown")
}

/// The answer of every host: see the module header.
pub struct Forwarder {
    roles: Arc<Roles>,
    master: Arc<Master>,
    /// The same pool as `master`, read from the local replica without a read barrier.
    reader: Arc<Master>,
    /// This host's replica.
    db: Arc<dyn ReplicatedDb>,
    clock: Arc<dyn Clock>,
    /// The master's `session_last_active_interval_secs`: a session older than this on the
    /// local replica is refreshed through the leader before a local read.
    session_refresh_secs: i64,
}

impl Forwarder {
    /// `reader` must be a `Master` over `LocalReplica` of `db`, the DB of `master`.
    pub fn new(
        roles: Arc<Roles>,
        master: Arc<Master>,
        reader: Arc<Master>,
        db: Arc<dyn ReplicatedDb>,
        clock: Arc<dyn Clock>,
        session_refresh_secs: i64,
    ) -> Arc<Forwarder> {
        Arc::new(Forwarder {
            roles,
            master,
            reader,
            db,
            clock,
            session_refresh_secs,
        })
    }

    async fn route(&self, call: Call) -> Result<Value, ApiError> {
        if let Some(reason) = self.roles.store_failure() {
            return Err(store_failed(&reason));
        }
        if api_spec::api().is_on_every_host(&call.method) {
            return self.read_locally(call).await;
        }
        if call
            .params
            .first()
            .and_then(Value::as_str)
            .is_some_and(|session| self.reader.has_local_session(session))
        {
            return self.reader.call(call).await;
        }
        match self.to_master(call.clone()).await {
            Err(NotForwarded::MasterLost) if is_retry_safe(&call.method) => {
                tracing::info!(method = %call.method, "the master was lost during a call that is safe to repeat: sent to the next master");
                self.to_master(call)
                    .await
                    .unwrap_or_else(|failure| Err(failure.into()))
            }
            outcome => outcome.unwrap_or_else(|failure| Err(failure.into())),
        }
    }

    /// The master's answer to `call`: this host's own when it leads, else the leader's, or
    /// xapi's `HOST_IS_SLAVE` when forwarding is off. Waits a bounded time (the leader wait)
    /// for a leader when none is known, and sends again when the known leader did not run the
    /// call: it could not be sent to (a killed master that the others have not yet replaced)
    /// or it no longer leads.
    async fn to_master(&self, call: Call) -> Forwarded {
        let deadline = Instant::now() + self.roles.settings.leader_wait();
        loop {
            if self.roles.is_leader() {
                return Ok(self.master.call(call).await);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(status) = self.roles.wait_for_leader(remaining).await else {
                return Ok(Err(no_master()));
            };
            if status.is_leader {
                return Ok(self.master.call(call).await);
            }
            if !self.roles.settings.forward_calls {
                let refusal = match self.roles.transport.address_of(status.leader_id) {
                    Some(address) => errors::host_is_slave(ip_of(&address)),
                    None => no_master(),
                };
                return Ok(Err(refusal));
            }
            match self.roles.forward(status.leader_id, call.clone()).await {
                Err(NotForwarded::NotRun) if Instant::now() < deadline => {
                    self.roles
                        .wait_for_another_leader(status.leader_id, deadline)
                        .await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Answers an event read from this host's replica. On a host that does not lead, the
    /// session's `last_active` is refreshed through the leader first when the read would
    /// otherwise have to write it (which only the leader can).
    async fn read_locally(&self, call: Call) -> Result<Value, ApiError> {
        if !self.roles.is_leader()
            && let Some(session) = call.params.first().and_then(Value::as_str)
            && self.is_stale(session)
        {
            self.refresh(session).await;
        }
        self.reader.call(call).await
    }

    fn is_stale(&self, session: &str) -> bool {
        let last_active = self
            .db
            .read()
            .get("session", session)
            .and_then(|row| row.get("last_active"))
            .and_then(Value::as_str)
            .and_then(api_spec::datetime::parse_unix);
        // An unknown session is the reader's to refuse.
        last_active.is_some_and(|t| {
            master::is_last_active_stale(t, self.clock.now_unix(), self.session_refresh_secs)
        })
    }

    /// Has the leader check `session` (which writes its `last_active`), then waits, for at
    /// most the leader wait, until this replica has that write. A failure leaves the local
    /// read to fail as it will.
    async fn refresh(&self, session: &str) {
        let wait = self.roles.settings.leader_wait();
        let call = Call {
            method: "session.get_uuid".to_owned(),
            params: vec![Value::str(session), Value::str(session)],
            origin: master::Origin::LocalSocket,
        };
        let Some(status) = self.roles.wait_for_leader(wait).await else {
            return;
        };
        if status.is_leader
            || !matches!(self.roles.forward(status.leader_id, call).await, Ok(Ok(_)))
        {
            return;
        }
        let mut applied = self.db.applied();
        let _ = tokio::time::timeout(wait, async {
            while self.is_stale(session) {
                if applied.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

impl Answer for Arc<Forwarder> {
    fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>> {
        let forwarder = Arc::clone(self);
        Box::pin(async move { forwarder.route(call).await })
    }
}

/// The IP of an `ip:port` address (`[v6]:port` too); the address itself when it has no port.
fn ip_of(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip().to_string(),
        Err(_) => address.to_owned(),
    }
}

/// Whether a call of the wire method `method` may be sent again when the master that had it
/// was lost: it changes nothing (api-spec's reads) or nothing that matters (a login).
fn is_retry_safe(method: &str) -> bool {
    api_spec::api()
        .method(method)
        .is_some_and(api_spec::api::Method::is_retry_safe)
}

/// What a forwarded call comes back with: the master's answer, or why there is none.
pub(super) type Forwarded = Result<Result<Value, ApiError>, NotForwarded>;

/// Why a forwarded call has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotForwarded {
    /// The call was not run: the leader could not be sent to, or the host sent to does not lead.
    NotRun,
    /// Another host became leader, or the leader went silent, after the call left: its outcome
    /// is unknown.
    MasterLost,
}

impl From<NotForwarded> for ApiError {
    fn from(failure: NotForwarded) -> ApiError {
        match failure {
            NotForwarded::NotRun => no_master(),
            NotForwarded::MasterLost => master_lost(),
        }
    }
}

impl Roles {
    /// Forwards `call` to the leader `node` and returns its answer. Fails when the leader
    /// cannot be sent to, when another host becomes leader while the call runs, or when the
    /// leader is not heard from for `dead_after` while it runs.
    pub(super) async fn forward(&self, node: u64, call: Call) -> Forwarded {
        let id = self.next_id();
        let (answer, mut answered) = oneshot::channel();
        lock(&self.calls).insert(id, answer);
        let method = call.method.clone();
        if self.send(node, &LinkFrame::Call { id, call }).is_err() {
            lock(&self.calls).remove(&id);
            return Err(NotForwarded::NotRun);
        }
        tracing::debug!(method = %method, node, "call forwarded to the master");
        let sent = Instant::now();
        let mut checks = tokio::time::interval(self.settings.heartbeat_interval());
        let mut status = self.status.clone();
        loop {
            tokio::select! {
                // An answer that came with a change of leader is still the answer.
                biased;
                answer = &mut answered => return answer.unwrap_or(Err(NotForwarded::MasterLost)),
                changed = status.changed() => {
                    // A closed status is a stopping host: the call's outcome is unknown.
                    let leader = changed.map_or(u64::MAX, |()| status.borrow_and_update().leader_id);
                    if leader != 0 && leader != node {
                        lock(&self.calls).remove(&id);
                        tracing::warn!(method = %method, node, leader, "the master was deposed during a forwarded call");
                        return Err(NotForwarded::MasterLost);
                    }
                }
                _ = checks.tick() => {
                    if !self.heard_within(node, sent, self.settings.dead_after()) {
                        lock(&self.calls).remove(&id);
                        tracing::warn!(method = %method, node, "the master went silent during a forwarded call");
                        return Err(NotForwarded::MasterLost);
                    }
                }
            }
        }
    }
}

/// The pool DB as the local reader sees it: this host's replica, read without confirming
/// leadership (the read barrier passes at once); writes go to the real DB, which refuses them
/// on a host that does not lead.
pub struct LocalReplica(pub Arc<dyn ReplicatedDb>);

impl ReplicatedDb for LocalReplica {
    fn propose(&self, txn: Txn) -> BoxFuture<'_, Result<Applied, ProposeError>> {
        self.0.propose(txn)
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Db> {
        self.0.read()
    }

    fn applied(&self) -> watch::Receiver<u64> {
        self.0.applied()
    }

    fn term(&self) -> u64 {
        self.0.term()
    }
}

#[cfg(test)]
mod tests {
    use master::Origin;
    use master::testing::TestPool;

    use super::*;
    use crate::links::testing::{Net, TestHost, fast_settings, led_by};

    /// A pool of two hosts on one net: node 1 (the pool's first host) and node 2, both
    /// following `leader`.
    async fn two_hosts(
        leader: u64,
        settings: crate::config::PoolSettings,
    ) -> (TestPool, Arc<Net>, TestHost, TestHost) {
        let pool = TestPool::new();
        let second = pool.add_host("second", 64 << 30);
        let net = Arc::new(Net::default());
        let first_host = pool.host.clone();
        let first = TestHost::start(
            &net,
            &pool,
            1,
            &first_host,
            led_by(leader, 1),
            settings.clone(),
        )
        .await;
        let other = TestHost::start(&net, &pool, 2, &second, led_by(leader, 2), settings).await;
        (pool, net, first, other)
    }

    fn login_params(password: &str) -> Vec<Value> {
        vec![Value::str("root"), Value::str(password)]
    }

    /// Logs in as root over the network on `host` while `meanwhile` runs; returns the host the
    /// session was made on.
    async fn login_during(
        pool: &TestPool,
        host: &TestHost,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> String {
        let params = login_params(master::testing::TEST_ROOT_PASSWORD);
        let login = host.call(
            "session.login_with_password",
            params,
            Origin::Network { peer: None },
        );
        let (session, ()) = tokio::join!(login, meanwhile);
        let session = session.expect("the login is answered");
        let session = session.as_str().expect("a session ref");
        pool.text("session", session, "this_host")
    }

    /// A login on a follower's Unix socket is forwarded to the leader with its origin, so the
    /// leader trusts it as root without a password; the same login from the network is refused.
    #[tokio::test]
    async fn a_follower_forwards_calls_with_their_origin() {
        let (pool, _net, leader, follower) = two_hosts(1, fast_settings()).await;
        let session = follower
            .call(
                "session.login_with_password",
                login_params(""),
                Origin::LocalSocket,
            )
            .await
            .expect("a local login is trusted");
        let session = session.as_str().expect("a session ref").to_owned();
        assert_eq!(pool.text("session", &session, "this_host"), leader.host_ref);
        let refused = follower
            .call(
                "session.login_with_password",
                login_params(""),
                Origin::Network { peer: None },
            )
            .await
            .expect_err("an empty password over the network");
        assert_eq!(refused.code, errors::SESSION_AUTHENTICATION_FAILED);
    }

    /// A follower that still names a killed master as leader (node 3, which nothing reaches)
    /// keeps the call and sends it to the next leader once it is known.
    #[tokio::test]
    async fn a_call_the_leader_could_not_be_sent_goes_to_the_next_leader() {
        let (pool, net, leader, follower) = two_hosts(1, fast_settings()).await;
        follower.status.send_replace(led_by(3, 2));
        let elect = async {
            net.refused.notified().await;
            follower.status.send_replace(led_by(1, 2));
        };
        let session_host = login_during(&pool, &follower, elect).await;
        assert_eq!(session_host, leader.host_ref);
    }

    /// A call forwarded to a host elected a moment ago, which has not yet published that it
    /// leads, waits for it instead of being refused.
    #[tokio::test]
    async fn a_forwarded_call_waits_for_the_new_leader_to_know_it_leads() {
        let (pool, _net, leader, follower) = two_hosts(1, fast_settings()).await;
        leader.status.send_replace(led_by(0, 1));
        let idle = leader.status.receiver_count();
        let publish = async {
            // The forwarded call's wait holds one more receiver of the leader's status.
            while leader.status.receiver_count() == idle {
                tokio::task::yield_now().await;
            }
            leader.status.send_replace(led_by(1, 1));
        };
        let session_host = login_during(&pool, &follower, publish).await;
        assert_eq!(session_host, leader.host_ref);
    }

    /// A write forwarded to a host that does not lead is refused unrun, and the follower sends
    /// it again to the leader it learns of next (itself here), which runs it once.
    #[tokio::test]
    async fn a_write_refused_unrun_by_a_host_that_does_not_lead_goes_to_the_next_leader() {
        let settings = crate::config::PoolSettings {
            heartbeat_interval_ms: 300,
            leader_wait_ms: 5000,
            ..fast_settings()
        };
        let (pool, _net, other, follower) = two_hosts(1, settings).await;
        other.status.send_replace(led_by(2, 1));
        let session = pool.login().await;
        let pool_ref = pool.refs("pool").remove(0);
        let params = vec![
            Value::str(&session),
            Value::str(&pool_ref),
            Value::str("renamed"),
        ];
        let call = follower.call("pool.set_name_label", params, Origin::LocalSocket);
        let elect = async {
            let in_flight = || !lock(&follower.roles.calls).is_empty();
            while !in_flight() {
                tokio::task::yield_now().await;
            }
            while in_flight() {
                tokio::task::yield_now().await;
            }
            follower.status.send_replace(led_by(2, 2));
        };
        let (renamed, ()) = tokio::join!(call, elect);
        assert_eq!(renamed, Ok(Value::str("")));
        assert_eq!(pool.text("pool", &pool_ref, "name_label"), "renamed");
    }

    /// With `forward_calls` off, a follower answers `HOST_IS_SLAVE` with the master's IP, and
    /// the master itself answers.
    #[tokio::test]
    async fn without_forwarding_a_follower_names_the_master() {
        let settings = crate::config::PoolSettings {
            forward_calls: false,
            ..fast_settings()
        };
        let (_pool, _net, leader, follower) = two_hosts(1, settings).await;
        let params = || login_params("");
        let refused = follower
            .call("session.login_with_password", params(), Origin::LocalSocket)
            .await;
        assert_eq!(refused, Err(errors::host_is_slave("127.0.0.1")));
        let session = leader
            .call("session.login_with_password", params(), Origin::LocalSocket)
            .await;
        assert!(session.is_ok(), "{session:?}");
    }

    /// With no leader known, root logs in on a follower with `slave_local_login_with_password`
    /// and reads its replica with that session; the session means nothing to another host, and
    /// ends with `local_logout`.
    #[tokio::test]
    async fn without_a_leader_a_slave_local_session_reads_the_local_replica() {
        let (pool, _net, first, follower) = two_hosts(0, fast_settings()).await;
        let network = || Origin::Network { peer: None };
        let login = "session.slave_local_login_with_password";
        let password = master::testing::TEST_ROOT_PASSWORD;
        let session = follower
            .call(login, login_params(password), network())
            .await
            .expect("a local login without a master");
        let session = session.as_str().expect("a session ref").to_owned();
        let hosts = follower
            .call("host.get_all", vec![Value::str(&session)], network())
            .await
            .expect("read from the local replica");
        assert_eq!(hosts.as_array().map(<[_]>::len), Some(2));
        let elsewhere = first
            .call("host.get_all", vec![Value::str(&session)], network())
            .await
            .expect_err("another host does not know the session");
        assert_eq!(elsewhere.code, errors::INTERNAL_ERROR, "{elsewhere:?}");
        assert!(pool.refs("session").is_empty());
        let out = follower
            .call(
                "session.local_logout",
                vec![Value::str(&session)],
                network(),
            )
            .await;
        assert_eq!(out, Ok(Value::str("")));
    }

    /// With no leader known, a call waits the leader wait and fails with a clear error; the
    /// event reads still answer from the local replica.
    #[tokio::test]
    async fn without_a_leader_calls_fail_and_event_reads_answer_locally() {
        let (pool, _net, _first, follower) = two_hosts(0, fast_settings()).await;
        let session = pool.login().await;
        let failed = follower
            .call(
                "VM.get_all",
                vec![Value::str(session.as_str())],
                Origin::LocalSocket,
            )
            .await
            .expect_err("no master");
        assert_eq!(failed.code, errors::INTERNAL_ERROR);
        assert!(failed.params[0].contains("no pool master"), "{failed:?}");
        let id = follower
            .call(
                "event.get_current_id",
                vec![Value::str(session.as_str())],
                Origin::LocalSocket,
            )
            .await;
        let applied = i64::try_from(pool.read().applied_index()).expect("small");
        assert_eq!(id, Ok(Value::Int(applied)));
        let from = follower
            .call(
                "event.from",
                vec![
                    Value::str(session.as_str()),
                    Value::Array(vec![Value::str("host")]),
                    Value::str(""),
                    Value::Float(0.0),
                ],
                Origin::LocalSocket,
            )
            .await
            .expect("event.from answers locally");
        let Value::Struct(reply) = from else {
            panic!("a struct, got {from:?}");
        };
        assert_eq!(
            reply.get("events").and_then(|e| match e {
                Value::Array(events) => Some(events.len()),
                _ => None,
            }),
            Some(2)
        );
    }

    /// A local event read on a follower whose session is due a `last_active` write has the
    /// leader write it first, and then answers.
    #[tokio::test]
    async fn a_stale_session_is_refreshed_through_the_leader_before_a_local_read() {
        let (pool, _net, _leader, follower) = two_hosts(1, fast_settings()).await;
        let session = pool.login().await;
        let interval = master::MasterConfig::default().session_last_active_interval_secs;
        pool.clock.advance(interval + 1);
        let id = follower
            .call(
                "event.get_current_id",
                vec![Value::str(session.as_str())],
                Origin::LocalSocket,
            )
            .await;
        assert!(id.is_ok(), "{id:?}");
        let last_active = pool.field("session", &session, "last_active");
        let expected =
            api_spec::datetime::format_unix(master::testing::TEST_START_UNIX + interval + 1);
        assert_eq!(last_active, Some(Value::DateTime(expected)));
    }
}
