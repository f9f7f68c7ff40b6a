//! Pool operations on this host: `Control` (the master's `PoolControl`: Raft membership
//! through `RaftDb`, other hosts through api-client's `Client`, restarts through a channel `run`
//! watches), the joiner's side of `pool.join` (`join.rs`), the pool routes other hosts call
//! (`routes.rs`), and what a restart does to the stopped store before this process runs again
//! (`restart.rs`, with the bootstrap of a new one-host pool).

mod join;
pub mod restart;
mod routes;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api_client::{Client, ClientError, Trust};

use master::db::{BoxFuture, ProposeError, ReplicatedDb};
use master::pool::control::{
    Admission, ControlError, JoinFailure, JoinTarget, PoolControl, PoolMember, RaftMembership,
    Restart,
};
use tokio::sync::mpsc;

pub use self::restart::{RestartPlan, bootstrap_pool, carry_out};
pub use self::routes::routes;
use crate::config::SimulatedCpu;
use crate::identity::Identity;
use crate::peer::{Member, Membership, SECRET_HEADER};
use crate::raft::RaftDb;

/// The file an operator creates in the data dir to force the next emergency transition while
/// a majority of voters is reachable; the transition removes it.
pub const FORCE_EMERGENCY_FILE: &str = "force-emergency-transition";

/// How long one request to another host may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting to another host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the host at `address` for the pool's requests: its certificate checked by
/// `trust`, no reply read beyond `max_reply_bytes`, so that a host (or whatever answers at a
/// join's address) cannot fill this one's memory.
fn host_client(address: &str, trust: Trust, max_reply_bytes: usize) -> Result<Client, ClientError> {
    Client::https(address, trust)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .max_reply_bytes(max_reply_bytes)
        .build()
}

/// Who this host is, as the pool operations need it.
#[derive(Debug, Clone)]
pub struct ThisHost {
    pub identity: Identity,
    pub data_dir: PathBuf,
    /// The XenAPI's listen address (`0.0.0.0` allowed): facts are read for it.
    pub listen_ip: IpAddr,
    /// `ip:port` other hosts reach this host's HTTPS listener at.
    pub address: SocketAddr,
    /// Lowercase hex SHA-256 of this host's certificate.
    pub cert_sha256: String,
    /// The CPU the backend presents instead of the machine's (`Config::presented_cpu`).
    pub presented_cpu: Option<SimulatedCpu>,
}

/// `PoolControl` for the master on this host.
pub struct Control {
    raft: Arc<RaftDb>,
    this: ThisHost,
    restarts: mpsc::Sender<RestartPlan>,
    /// The longest reply read from another host, in bytes (`limits.max_reply_bytes`).
    max_reply_bytes: usize,
}

impl Control {
    /// The control and the receiver of the restart it may ask for: `run` stops this host
    /// cleanly when one arrives, then calls `restart::carry_out`.
    pub fn new(
        raft: Arc<RaftDb>,
        this: ThisHost,
        max_reply_bytes: usize,
    ) -> (Arc<Control>, mpsc::Receiver<RestartPlan>) {
        let (restarts, receiver) = mpsc::channel(1);
        (
            Arc::new(Control {
                raft,
                this,
                restarts,
                max_reply_bytes,
            }),
            receiver,
        )
    }

    /// POSTs `body` to `path` on `member`, its certificate pinned, with the pool secret
    /// `secret`; `Ok` once it answers `Done`.
    async fn post_to<B: serde::Serialize>(
        &self,
        member: &PoolMember,
        path: &str,
        body: &B,
        secret: &str,
    ) -> Result<(), ControlError> {
        let trust = Trust::fingerprint(&member.cert_sha256);
        let client = host_client(&member.address, trust, self.max_reply_bytes)
            .map_err(|e| unreachable(member, e))?;
        client
            .post_json::<_, routes::Done>(path, body, &[(SECRET_HEADER, secret)])
            .await
            .map(|_| ())
            .map_err(|e| unreachable(member, e))
    }

    /// This host as a member entry.
    fn as_member(&self) -> PoolMember {
        PoolMember {
            node_id: self.this.identity.raft_node_id,
            host: self.this.identity.host_ref.clone(),
            address: self.this.address.to_string(),
            cert_sha256: self.this.cert_sha256.clone(),
        }
    }

    /// The pool secret: the local replica's, or before a joiner has the replica, the one
    /// its membership file holds.
    fn pool_secret(&self) -> Option<String> {
        let from_replica = {
            let db = self.raft.read();
            master::pool::control::internal_text(&db, master::pool::control::POOL_SECRET)
        };
        from_replica.or_else(|| {
            Membership::load(&self.this.data_dir)
                .ok()
                .flatten()
                .map(|membership| membership.pool_secret)
        })
    }

    fn plan(&self, restart: Restart) -> Result<RestartPlan, ControlError> {
        let local = |what: String| ControlError::Local { what };
        Ok(match restart {
            Restart::Join(admission) => {
                membership_of(&admission)
                    .save(&self.this.data_dir)
                    .map_err(|e| local(format!("cannot save the membership: {e}")))?;
                RestartPlan::Join
            }
            Restart::Reset => {
                let db = self.raft.read();
                let hash = master::pool::bootstrap::root_password_hash(&db)
                    .ok_or_else(|| local("the pool has no root password".to_owned()))?;
                RestartPlan::Reset {
                    root_password_hash: hash,
                }
            }
            Restart::SingleVoter { pool_epoch } => RestartPlan::SingleVoter { pool_epoch },
        })
    }
}

/// The membership file's form of an admission.
fn membership_of(admission: &Admission) -> Membership {
    let mut members: Vec<Member> = admission
        .members
        .iter()
        .map(|m| Member {
            node_id: m.node_id,
            host: m.host.clone(),
            address: m.address.clone(),
            cert_sha256: m.cert_sha256.clone(),
        })
        .collect();
    members.sort_by_key(|m| m.node_id);
    Membership {
        pool_secret: admission.pool_secret.clone(),
        pool_epoch: admission.pool_epoch.clone(),
        members,
    }
}

fn control_error(error: ProposeError) -> ControlError {
    match error {
        ProposeError::NotLeader => ControlError::NotLeader,
        other => ControlError::Local {
            what: other.to_string(),
        },
    }
}

fn unreachable(member: &PoolMember, error: impl std::fmt::Display) -> ControlError {
    ControlError::Unreachable {
        host: member.host.clone(),
        reason: error.to_string(),
    }
}

impl PoolControl for Control {
    fn node_id(&self) -> u64 {
        self.this.identity.raft_node_id
    }

    fn membership(&self) -> RaftMembership {
        let membership = self.raft.membership().borrow().clone();
        RaftMembership {
            voters: membership.voters.into_iter().collect(),
            learners: membership.learners.into_iter().collect(),
        }
    }

    fn reachable_voters(&self) -> usize {
        self.raft.reachable_voters()
    }

    fn add_learner(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move { self.raft.add_learner(node).await.map_err(control_error) })
    }

    fn remove_node(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move { self.raft.remove_node(node).await.map_err(control_error) })
    }

    fn transfer_leader(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.raft.transfer_leader(node).await.map_err(|e| match e {
                ProposeError::NotLeader => ControlError::TimedOut {
                    what: format!("node {node} taking over"),
                },
                other => control_error(other),
            })
        })
    }

    fn join(&self, target: JoinTarget) -> BoxFuture<'_, Result<Admission, JoinFailure>> {
        Box::pin(async move {
            join::join(&self.this, self.as_member(), target, self.max_reply_bytes).await
        })
    }

    fn reset_member(&self, member: PoolMember) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let secret = self.pool_secret().unwrap_or_default();
            self.post_to(&member, routes::RESET, &routes::Done {}, &secret)
                .await
        })
    }

    fn recover_member(
        &self,
        member: PoolMember,
        admission: Admission,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let secret = admission.pool_secret.clone();
            self.post_to(&member, routes::RECOVER, &admission, &secret)
                .await
        })
    }

    fn wait_applied(
        &self,
        member: PoolMember,
        index: u64,
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            let secret = self.pool_secret().unwrap_or_default();
            let request = routes::AppliedRequest { index };
            self.post_to(&member, routes::APPLIED, &request, &secret)
                .await
        })
    }

    fn restart(&self, restart: Restart) -> Result<(), ControlError> {
        let plan = self.plan(restart)?;
        tracing::info!(plan = plan.kind(), "restart requested");
        self.restarts
            .try_send(plan)
            .map_err(|_| ControlError::Local {
                what: "a restart is already under way".to_owned(),
            })
    }

    fn take_emergency_force(&self) -> bool {
        // Removing the file is what consumes the flag: only one caller can succeed.
        std::fs::remove_file(self.this.data_dir.join(FORCE_EMERGENCY_FILE)).is_ok()
    }
}
