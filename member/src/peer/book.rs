//! The pool's membership as this host knows it: the pool secret and epoch and every member's
//! node id, host, address and certificate fingerprint; read from the replica, or from
//! `membership.json` before a joiner has the replica.

use std::path::Path;

use api_spec::Value;
use db_schema::Db;
use serde::{Deserialize, Serialize};

use crate::identity::{IdentityError, read_json_if_present, write_atomically};

/// The membership file in a data dir.
pub const MEMBERSHIP_FILE: &str = "membership.json";
/// The internal DB key of the pool secret (64 hex chars).
pub const POOL_SECRET_KEY: &str = "pool_secret";
/// The internal DB key of the pool epoch (a uuid; a new one at emergency transition).
pub const POOL_EPOCH_KEY: &str = "pool_epoch";
/// The prefix of a member's internal DB key; the node id in decimal follows.
pub const MEMBER_KEY_PREFIX: &str = "member/";

/// One pool member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its Raft node id, never 0.
    pub node_id: u64,
    /// Its host ref.
    pub host: String,
    /// Its HTTPS listener, `ip:port`.
    pub address: String,
    /// The lowercase hex SHA-256 of its certificate's DER.
    pub cert_sha256: String,
}

/// The pool's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub pool_secret: String,
    pub pool_epoch: String,
    /// Ordered by node id.
    pub members: Vec<Member>,
}

impl Member {
    /// The internal DB key of member `node_id`.
    pub fn key(node_id: u64) -> String {
        format!("{MEMBER_KEY_PREFIX}{node_id}")
    }

    /// The internal DB value of this member (its node id is in the key).
    pub fn to_value(&self) -> Value {
        Value::Struct(
            [
                ("host", &self.host),
                ("address", &self.address),
                ("cert_sha256", &self.cert_sha256),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::str(value.as_str())))
            .collect(),
        )
    }

    /// The member of DB key `key` and value `value`; `None` for a removed member (`Nil`) or
    /// a malformed record.
    fn from_record(key: &str, value: &Value) -> Option<Member> {
        let node_id: u64 = key.strip_prefix(MEMBER_KEY_PREFIX)?.parse().ok()?;
        let Value::Struct(fields) = value else {
            return None;
        };
        let field = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        (node_id != 0).then_some(())?;
        Some(Member {
            node_id,
            host: field("host")?,
            address: field("address")?,
            cert_sha256: field("cert_sha256")?.to_ascii_lowercase(),
        })
    }
}

impl Membership {
    /// The membership the replica holds; `None` until the pool secret and epoch are in it.
    pub fn from_db(db: &Db) -> Option<Membership> {
        let pool_secret = db.internal(POOL_SECRET_KEY)?.as_str()?.to_owned();
        let pool_epoch = db.internal(POOL_EPOCH_KEY)?.as_str()?.to_owned();
        let members = db
            .internals()
            .range(MEMBER_KEY_PREFIX.to_owned()..)
            .take_while(|(key, _)| key.starts_with(MEMBER_KEY_PREFIX))
            .filter(|(_, value)| **value != Value::Nil)
            .filter_map(|(key, value)| {
                let member = Member::from_record(key, value);
                if member.is_none() {
                    tracing::warn!(key = %key, "malformed member record ignored");
                }
                member
            });
        let mut members: Vec<Member> = members.collect();
        members.sort_by_key(|member| member.node_id);
        Some(Membership {
            pool_secret,
            pool_epoch,
            members,
        })
    }

    /// Reads `<data_dir>/membership.json`; `None` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<Membership>, IdentityError> {
        read_json_if_present(&data_dir.join(MEMBERSHIP_FILE))
    }

    /// Writes `<data_dir>/membership.json` atomically (temp file, fsync, rename, fsync of the
    /// directory); readable by root only, as it holds the pool secret.
    pub fn save(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec_pretty(self).expect("a membership is plain data");
        write_atomically(&data_dir.join(MEMBERSHIP_FILE), &bytes, 0o600)
    }

    /// Member `node_id`, if it is one.
    pub fn member(&self, node_id: u64) -> Option<&Member> {
        self.members.iter().find(|member| member.node_id == node_id)
    }
}

#[cfg(test)]
mod tests {
    use db_schema::{Op, Txn};

    use super::*;

    fn member(node_id: u64) -> Member {
        Member {
            node_id,
            host: format!("OpaqueRef:host-{node_id}"),
            address: format!("127.0.0.{node_id}:4443"),
            cert_sha256: "ab".repeat(32),
        }
    }

    fn put(key: String, value: Value) -> Op {
        Op::PutInternal { key, value }
    }

    /// The replica's membership lists live members in node order and leaves out removed ones
    /// and records of other keys.
    #[test]
    fn membership_from_db_skips_removed_members() {
        let mut db = Db::new();
        assert_eq!(Membership::from_db(&db), None);
        let ops = vec![
            put(POOL_SECRET_KEY.into(), Value::str("secret")),
            put(POOL_EPOCH_KEY.into(), Value::str("epoch")),
            put(Member::key(9), member(9).to_value()),
            put(Member::key(3), member(3).to_value()),
            put(Member::key(5), member(5).to_value()),
            put(Member::key(5), Value::Nil),
            put("members_other".into(), Value::Int(1)),
        ];
        let txn = Txn {
            preconditions: Vec::new(),
            ops,
        };
        db.apply(2, 1, &txn).expect("apply");
        let membership = Membership::from_db(&db).expect("membership");
        assert_eq!(membership.pool_secret, "secret");
        assert_eq!(membership.pool_epoch, "epoch");
        assert_eq!(membership.members, vec![member(3), member(9)]);
        assert_eq!(membership.member(9), Some(&member(9)));
        assert_eq!(membership.member(5), None);
    }

    /// A saved membership loads back the same, and a data dir without one loads as `None`.
    #[test]
    fn saved_membership_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(Membership::load(dir.path()).expect("load").is_none());
        let membership = Membership {
            pool_secret: "s".repeat(64),
            pool_epoch: "e".into(),
            members: vec![member(1), member(2)],
        };
        membership.save(dir.path()).expect("save");
        let loaded = Membership::load(dir.path()).expect("load");
        assert_eq!(loaded, Some(membership));
    }

    /// A damaged membership file is an error, not an absent one.
    #[test]
    fn damaged_membership_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(MEMBERSHIP_FILE), b"{").expect("write");
        assert!(matches!(
            Membership::load(dir.path()),
            Err(IdentityError::Parse { .. })
        ));
    }
}
