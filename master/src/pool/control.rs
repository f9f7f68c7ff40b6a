//! `PoolControl`: what the pool handlers need from `member` (Raft membership changes,
//! leadership transfer, talking to other hosts, restarting this one), the messages of a join,
//! and the pool's membership as the DB holds it (`pool_secret`, `pool_epoch`, `member/<node>`).

use std::collections::BTreeSet;

use api_spec::{ApiError, Value};
use db_schema::{Db, Op};
use serde::{Deserialize, Serialize};

use crate::db::BoxFuture;
use crate::pool::bootstrap::HostFacts;

/// The internal DB key of the pool secret: 64 hex characters, made at bootstrap.
pub const POOL_SECRET: &str = "pool_secret";
/// The internal DB key of the pool epoch: a uuid, made at bootstrap and at each emergency
/// transition; hosts of another epoch are of another configuration.
pub const POOL_EPOCH: &str = "pool_epoch";
/// The prefix of a member's internal DB key, followed by its node id in decimal.
pub const MEMBER_PREFIX: &str = "member/";

/// The node ids of the Raft configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMembership {
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
}

/// One host of the pool as the peer transport knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMember {
    pub node_id: u64,
    /// The host's ref.
    pub host: String,
    /// `ip:port` of the host's HTTPS listener.
    pub address: String,
    /// Lowercase hex SHA-256 of the DER of the host's certificate.
    pub cert_sha256: String,
}

/// What a joining host asks the master (`POST /pool/join`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// A session of the master, from the joiner's login with the credentials it was given.
    pub session: String,
    /// `pool.join_force`: skip the homogeneity check.
    pub force: bool,
    /// The joiner as it will be known: its node id, host ref, address and certificate.
    pub member: PoolMember,
    pub host_uuid: String,
    pub api_version_major: i64,
    pub api_version_minor: i64,
    pub facts: HostFacts,
}

/// What the master answers an admitted joiner: what its peer transport needs before it has
/// the pool's DB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub pool_secret: String,
    pub pool_epoch: String,
    /// Every member, the joiner included.
    pub members: Vec<PoolMember>,
}

/// Where `pool.join` goes and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTarget {
    /// `ip`, `ip:port` or `hostname[:port]` as the caller gave it.
    pub master_address: String,
    pub username: String,
    pub password: String,
    pub force: bool,
}

/// Why a join did not get an admission.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JoinFailure {
    /// The master could not be reached, or did not answer as a master does.
    #[error("cannot reach the master: {reason}")]
    Connection { reason: String },
    /// The master refused: the login, or the admission (API version, homogeneity).
    #[error("the master refused the join")]
    Refused(ApiError),
}

/// Why a membership change or a message to another host failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// This host is not the Raft leader (or stopped being it).
    #[error("not the raft leader")]
    NotLeader,
    /// The change did not complete in time (a transfer to a node that never took over).
    #[error("timed out: {what}")]
    TimedOut { what: String },
    /// Another host could not be reached or refused.
    #[error("host {host} did not answer: {reason}")]
    Unreachable { host: String, reason: String },
    /// Something local failed (a file, the Raft node).
    #[error("{what}")]
    Local { what: String },
}

/// What this process does after the current call is answered: stop cleanly, change its store
/// offline, and run again with the same arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// Admitted to a pool: wait for the leader's snapshot with an empty store.
    Join(Admission),
    /// Ejected: a new one-host pool, same identity and root password.
    Reset,
    /// Emergency transition: this node alone is the voter set, under a new epoch.
    SingleVoter { pool_epoch: String },
}

/// What the master's pool handlers need from `member`. `member/src/pool/` implements it;
/// `testing::FakePoolControl` records what it is asked.
pub trait PoolControl: Send + Sync + 'static {
    /// This host's Raft node id.
    fn node_id(&self) -> u64;

    fn membership(&self) -> RaftMembership;

    /// Voters (this one included) heard from within an election timeout.
    fn reachable_voters(&self) -> usize;

    /// Adds `node` as a learner; resolves once the change is applied.
    fn add_learner(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Removes `node` from the configuration; resolves once the change is applied.
    fn remove_node(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Hands leadership to `node`; resolves once it leads.
    fn transfer_leader(&self, node: u64) -> BoxFuture<'_, Result<(), ControlError>>;

    /// The joiner's side: reach the master, log in, and ask it for admission.
    fn join(&self, target: JoinTarget) -> BoxFuture<'_, Result<Admission, JoinFailure>>;

    /// Tells an ejected member to reset itself to a new one-host pool.
    fn reset_member(&self, member: PoolMember) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Tells a member of an older configuration to rejoin this pool as `admission` says.
    fn recover_member(
        &self,
        member: PoolMember,
        admission: Admission,
    ) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Resolves once `member` has applied the entry at `index`.
    fn wait_applied(
        &self,
        member: PoolMember,
        index: u64,
    ) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Restarts this process once the current call has been answered.
    fn restart(&self, restart: Restart) -> Result<(), ControlError>;

    /// Whether the operator has forced the next emergency transition; asking consumes it.
    fn take_emergency_force(&self) -> bool;
}

/// The internal DB key of node `node_id`'s member entry.
pub fn member_key(node_id: u64) -> String {
    format!("{MEMBER_PREFIX}{node_id}")
}

/// The op that writes `member`'s entry.
pub fn put_member(member: &PoolMember) -> Op {
    let field = |s: &str| Value::str(s);
    Op::PutInternal {
        key: member_key(member.node_id),
        value: Value::Struct(
            [
                ("host".to_owned(), field(&member.host)),
                ("address".to_owned(), field(&member.address)),
                ("cert_sha256".to_owned(), field(&member.cert_sha256)),
            ]
            .into(),
        ),
    }
}

/// The op that removes node `node_id`'s member entry (readers treat `Nil` as absent).
pub fn remove_member(node_id: u64) -> Op {
    Op::PutInternal {
        key: member_key(node_id),
        value: Value::Nil,
    }
}

/// Every member entry of the DB, by node id; malformed entries are skipped.
pub fn members(db: &Db) -> Vec<PoolMember> {
    db.internals()
        .range(MEMBER_PREFIX.to_owned()..)
        .take_while(|(key, _)| key.starts_with(MEMBER_PREFIX))
        .filter_map(|(key, value)| {
            let node_id = key.strip_prefix(MEMBER_PREFIX)?.parse().ok()?;
            let entry = value.as_struct()?;
            let text = |name: &str| entry.get(name)?.as_str().map(str::to_owned);
            Some(PoolMember {
                node_id,
                host: text("host")?,
                address: text("address")?,
                cert_sha256: text("cert_sha256")?,
            })
        })
        .collect()
}

/// The member entry of `host`, if it has one.
pub fn member_of_host(db: &Db, host: &str) -> Option<PoolMember> {
    members(db).into_iter().find(|m| m.host == host)
}

/// A string internal value (`pool_secret`, `pool_epoch`).
pub fn internal_text(db: &Db, key: &str) -> Option<String> {
    db.internal(key).and_then(Value::as_str).map(str::to_owned)
}

/// The admission the DB describes: its secret, epoch and members.
pub fn admission(db: &Db) -> Option<Admission> {
    Some(Admission {
        pool_secret: internal_text(db, POOL_SECRET)?,
        pool_epoch: internal_text(db, POOL_EPOCH)?,
        members: members(db),
    })
}

#[cfg(test)]
mod tests {
    use db_schema::Txn;

    use super::*;

    fn member(node_id: u64, host: &str) -> PoolMember {
        PoolMember {
            node_id,
            host: host.to_owned(),
            address: "127.0.0.1:4443".to_owned(),
            cert_sha256: "ab".repeat(32),
        }
    }

    fn apply(db: &mut Db, ops: Vec<Op>) {
        let index = db.applied_index() + 1;
        let txn = Txn {
            preconditions: Vec::new(),
            ops,
        };
        db.apply(index, 1, &txn).expect("internal writes apply");
    }

    /// Member entries written are read back by node id; a removed one is gone.
    #[test]
    fn member_entries_round_trip_and_removal_hides_them() {
        let mut db = Db::new();
        let (a, b) = (member(7, "OpaqueRef:a"), member(12, "OpaqueRef:b"));
        apply(&mut db, vec![put_member(&a), put_member(&b)]);
        assert_eq!(members(&db), vec![b.clone(), a.clone()]);
        assert_eq!(member_of_host(&db, "OpaqueRef:a"), Some(a.clone()));
        apply(&mut db, vec![remove_member(12)]);
        assert_eq!(members(&db), vec![a]);
        assert_eq!(member_of_host(&db, "OpaqueRef:b"), None);
    }

    /// The admission needs both the secret and the epoch.
    #[test]
    fn admission_needs_secret_and_epoch() {
        let mut db = Db::new();
        apply(&mut db, vec![put_member(&member(3, "OpaqueRef:a"))]);
        assert_eq!(admission(&db), None);
        let put = |key: &str, value: &str| Op::PutInternal {
            key: key.to_owned(),
            value: Value::str(value),
        };
        apply(&mut db, vec![put(POOL_SECRET, "s"), put(POOL_EPOCH, "e")]);
        let admission = admission(&db).expect("an admission");
        assert_eq!(
            (
                admission.pool_secret.as_str(),
                admission.pool_epoch.as_str()
            ),
            ("s", "e")
        );
        assert_eq!(admission.members.len(), 1);
    }
}
