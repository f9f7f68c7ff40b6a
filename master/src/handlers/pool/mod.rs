//! The custom messages of `pool` that change its membership: `join.rs` (on the joining host:
//! `join`, `join_force`), `admit.rs` (on the master: `Master::admit`, the other half of a
//! join), `eject.rs`, `mastership.rs` (`designate_new_master`, `emergency_transition_to_master`,
//! `recover_slaves`), `sync.rs` (`sync_database`). What they need from `member` goes through
//! `PoolControl`; a failure of `PoolControl` becomes a XenAPI error in `errors.rs`.

mod admit;
mod eject;
mod errors;
mod join;
mod mastership;
mod sync;

pub(super) use eject::eject;
pub(super) use join::{join, join_force};
pub(super) use mastership::{designate_new_master, emergency_transition_to_master, recover_slaves};
pub(super) use sync::sync_database;

use api_spec::Value;
use db_schema::Db;

/// Whether the pool has HA enabled.
fn is_ha_enabled(db: &Db) -> bool {
    db.rows("pool")
        .next()
        .is_some_and(|(_, pool)| pool.get("ha_enabled") == Some(&Value::Bool(true)))
}

/// The pool's master host, `""` when the DB has no pool row.
fn pool_master(db: &Db) -> String {
    db.rows("pool")
        .next()
        .map(|(_, pool)| pool.str("master").to_owned())
        .unwrap_or_default()
}

/// Whether the host of `host` is live, as `host_metrics.live` says.
fn is_live(db: &Db, host: &str) -> bool {
    db.get("host", host)
        .and_then(|row| db.get("host_metrics", row.str("metrics")))
        .and_then(|metrics| metrics.get("live"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
