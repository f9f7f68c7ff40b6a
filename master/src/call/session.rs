//! Sessions: the root password (argon2 PHC strings), checking a caller's session, and the
//! housekeeping that destroys idle sessions (idle on the monotonic clock: `aging.rs`). A session
//! is a row of the `session` table, so it survives a restart and a change of master. Session
//! refs are secrets: never log them.

use std::collections::BTreeMap;
use std::time::Duration;

use api_spec::{Value, errors};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use db_schema::{Db, Op, Txn};

use crate::call::aging::{Ages, secs};
use crate::call::password_checks::verdict;
use crate::db::record::exists;
use crate::error::Error;
use crate::{Master, Origin};

/// The internal DB key of the root password's argon2 PHC string.
pub(crate) const ROOT_PASSWORD_HASH: &str = "root_password_hash";

/// At most this many sessions per originator, and per user name for sessions without one.
const MAX_SESSIONS_PER_ORIGINATOR: usize = 500;
/// At most this many sessions without originator or user name.
const MAX_ANONYMOUS_SESSIONS: usize = 400;

/// The argon2 PHC string of `password` (Argon2id, default parameters, a fresh random salt).
pub(crate) fn hash_password(password: &str) -> Result<String, Error> {
    let salt = uuid::Uuid::new_v4();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), salt.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::PasswordHash {
            reason: e.to_string(),
        })
}

/// Whether `password` matches the PHC string `hash`. A malformed hash matches nothing. Costs
/// tens of milliseconds and ~19 MiB: call it through `PasswordChecks`.
pub(crate) fn password_matches(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Whether `uname` and `password`, from a caller at `origin`, are root's credentials, checked
/// against the hash in the DB within the bounds of `password_checks.rs` (the pool, the
/// source's turn and failure delay; the same argon2 work for any user name).
pub(crate) async fn authenticate(
    master: &Master,
    origin: Origin,
    uname: &str,
    password: &str,
) -> Result<bool, Error> {
    let hash = master
        .db
        .read()
        .internal(ROOT_PASSWORD_HASH)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (uname, password) = (uname.to_owned(), password.to_owned());
    master
        .passwords
        .check(origin, move || {
            verdict(&uname, &password, hash.as_deref(), password_matches)
        })
        .await
}

/// The argon2 PHC string of `password`, hashed within the bounds of `password_checks.rs`.
pub(crate) async fn hash_in_pool(master: &Master, password: &str) -> Result<String, Error> {
    let password = password.to_owned();
    master
        .passwords
        .run(move || hash_password(&password))
        .await?
}

/// At most this many slave-local sessions at once; a new one ends the oldest.
const MAX_LOCAL_SESSIONS: usize = 100;

/// The sessions of `session.slave_local_login_with_password`: root's, kept in this process only
/// (never in the pool DB, which may have no master to write it), valid on the host whose
/// replica answers them. They end with `session.local_logout`, or with the process.
#[derive(Default)]
pub(crate) struct LocalSessions(std::sync::Mutex<std::collections::VecDeque<String>>);

impl LocalSessions {
    fn sessions(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<String>> {
        self.0
            .lock()
            .expect("no panics under the local sessions lock")
    }

    /// A new session's ref.
    pub(crate) fn create(&self) -> String {
        let session = crate::db::record::new_ref();
        let mut sessions = self.sessions();
        if sessions.len() == MAX_LOCAL_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        session
    }

    pub(crate) fn contains(&self, session: &str) -> bool {
        self.sessions().iter().any(|s| s == session)
    }

    /// Ends `session`; whether it was one.
    pub(crate) fn remove(&self, session: &str) -> bool {
        let mut sessions = self.sessions();
        let before = sessions.len();
        sessions.retain(|s| s != session);
        sessions.len() != before
    }
}

/// Whether a session's `last_active` (`last_active_unix`) is due a write at `now_unix`: it is
/// `interval_secs` or more away from the wall clock, in the past or, after the clock was set
/// back, in the future (else a clock set back would leave a busy session's `last_active`
/// unchanged, and housekeeping would take the session for idle).
pub fn is_last_active_stale(last_active_unix: i64, now_unix: i64, interval_secs: i64) -> bool {
    now_unix.abs_diff(last_active_unix) >= interval_secs.unsigned_abs()
}

/// Checks the caller's session: `SESSION_INVALID [ref]` unless it is a live row or a
/// slave-local session of this process. Writes `last_active` only when it is stale
/// (`is_last_active_stale`), so a busy client does not turn every call into a DB write.
pub(crate) async fn check(master: &Master, session: &str) -> Result<(), Error> {
    if master.local_sessions.contains(session) {
        return Ok(());
    }
    let now = master.now();
    let last_active = {
        let db = master.db.read();
        let row = db
            .get("session", session)
            .ok_or_else(|| errors::session_invalid(session))?;
        row.get("last_active")
            .and_then(Value::as_str)
            .and_then(api_spec::datetime::parse_unix)
            .unwrap_or(0)
    };
    if !is_last_active_stale(
        last_active,
        now,
        master.config.session_last_active_interval_secs,
    ) {
        return Ok(());
    }
    let txn = Txn {
        preconditions: vec![exists("session", session)],
        ops: vec![Op::Set {
            class: "session".to_owned(),
            r#ref: session.to_owned(),
            field: "last_active".to_owned(),
            value: Value::DateTime(api_spec::datetime::format_unix(now)),
        }],
    };
    match master.commit(txn).await {
        Ok(_) => Ok(()),
        Err(Error::Propose(crate::db::ProposeError::Apply(_))) => {
            Err(errors::session_invalid(session).into())
        }
        Err(e) => Err(e),
    }
}

/// The fields of a new root session.
pub(crate) fn new_session_fields(master: &Master, originator: &str) -> BTreeMap<String, Value> {
    let now = Value::DateTime(api_spec::datetime::format_unix(master.now()));
    BTreeMap::from([
        (
            "uuid".to_owned(),
            Value::String(crate::db::record::new_uuid()),
        ),
        (
            "this_host".to_owned(),
            Value::str(master.this_host.as_str()),
        ),
        ("last_active".to_owned(), now.clone()),
        ("pool".to_owned(), Value::Bool(false)),
        ("is_local_superuser".to_owned(), Value::Bool(true)),
        ("validation_time".to_owned(), now),
        ("auth_user_name".to_owned(), Value::str("root")),
        ("originator".to_owned(), Value::str(originator)),
    ])
}

/// Destroys the sessions idle beyond the configured timeout (on the monotonic clock:
/// `aging.rs`), and, beyond xapi's caps (500 per originator, 500 per user name for sessions
/// without one, 400 anonymous), the least recently active ones.
pub(crate) async fn collect_garbage(master: &Master) -> Result<(), Error> {
    let now = master.clock.monotonic();
    let idle_timeout = secs(master.config.session_idle_timeout_secs);
    let (doomed, _) = master
        .decide(|db| {
            let doomed = sessions_to_destroy(db, &master.session_ages, now, idle_timeout);
            let txn = Txn {
                preconditions: doomed.iter().map(|r| exists("session", r)).collect(),
                ops: doomed
                    .iter()
                    .map(|r| Op::Destroy {
                        class: "session".to_owned(),
                        r#ref: r.clone(),
                    })
                    .collect(),
            };
            Ok((txn, doomed.len()))
        })
        .await?;
    if doomed > 0 {
        tracing::info!(count = doomed, "idle sessions destroyed");
    }
    Ok(())
}

/// Which sessions housekeeping destroys at `now` (monotonic), as refs.
fn sessions_to_destroy(db: &Db, ages: &Ages, now: Duration, idle_timeout: Duration) -> Vec<String> {
    let sessions: Vec<(&str, &db_schema::Row, &str)> = db
        .rows("session")
        .filter(|(_, row)| row.get("pool").and_then(Value::as_bool) != Some(true))
        .map(|(r, row)| {
            let last_active = row.get("last_active").and_then(Value::as_str);
            (r, row, last_active.unwrap_or_default())
        })
        .collect();
    let values: Vec<(&str, &str)> = sessions.iter().map(|&(r, _, v)| (r, v)).collect();
    let idle = ages.of(&values, now);
    let mut doomed = Vec::new();
    let mut buckets: BTreeMap<(u8, &str), Vec<(i64, &str)>> = BTreeMap::new();
    for ((r, row, last_active), idle) in sessions.into_iter().zip(idle) {
        if idle > idle_timeout {
            doomed.push(r.to_owned());
            continue;
        }
        let last_active = api_spec::datetime::parse_unix(last_active).unwrap_or(0);
        let bucket = match (row.str("originator"), row.str("auth_user_name")) {
            ("", "") => (2, ""),
            ("", user) => (1, user),
            (originator, _) => (0, originator),
        };
        buckets.entry(bucket).or_default().push((last_active, r));
    }
    for ((kind, _), mut sessions) in buckets {
        let cap = if kind == 2 {
            MAX_ANONYMOUS_SESSIONS
        } else {
            MAX_SESSIONS_PER_ORIGINATOR
        };
        if sessions.len() > cap {
            sessions.sort();
            let excess = sessions.len() - cap;
            doomed.extend(sessions[..excess].iter().map(|(_, r)| (*r).to_owned()));
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use crate::testing::TestPool;

    /// A hash verifies its own password and no other, and a malformed hash matches nothing.
    #[test]
    fn hashed_password_verifies_only_itself() {
        let hash = hash_password("secret").expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches("secret", &hash));
        assert!(!password_matches("Secret", &hash));
        assert!(!password_matches("secret", "not a hash"));
    }

    fn last_active(pool: &TestPool, session: &str) -> Option<i64> {
        let value = pool.field("session", session, "last_active")?;
        api_spec::datetime::parse_unix(value.as_str()?)
    }

    /// `last_active` is written only once it is older than the configured interval.
    #[tokio::test]
    async fn last_active_is_written_only_when_stale() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let start = crate::testing::TEST_START_UNIX;
        assert_eq!(last_active(&pool, &session), Some(start));
        pool.clock.advance(10);
        let applied = pool.read().applied_index();
        pool.call_as(&session, "VM.get_all", vec![])
            .await
            .expect("listed");
        assert_eq!(
            pool.read().applied_index(),
            applied,
            "no write for a fresh session"
        );
        pool.clock.advance(600);
        pool.call_as(&session, "VM.get_all", vec![])
            .await
            .expect("listed");
        assert_eq!(last_active(&pool, &session), Some(start + 610));
    }

    /// Housekeeping destroys sessions idle beyond the timeout since it first saw them and
    /// keeps the others.
    #[tokio::test]
    async fn housekeeping_destroys_idle_sessions() {
        let pool = TestPool::new();
        let old = pool.login().await;
        pool.master.housekeeping().await;
        pool.clock.advance(24 * 3600);
        let fresh = pool.login().await;
        pool.clock.advance(1);
        pool.master.housekeeping().await;
        assert_eq!(pool.refs("session"), [fresh]);
        assert!(pool.read().get("session", &old).is_none());
    }

    /// A session outlives a jump of the wall clock by two days either way; one used twice a
    /// day after the clock was set back has its `last_active` written again (else it would
    /// keep a value from the future and look idle for good).
    #[tokio::test]
    async fn sessions_survive_jumps_of_the_wall_clock() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.master.housekeeping().await;
        pool.clock.jump(2 * 24 * 3600);
        pool.clock.advance(60);
        pool.master.housekeeping().await;
        assert_eq!(pool.refs("session"), std::slice::from_ref(&session));
        pool.clock.jump(-4 * 24 * 3600);
        for _ in 0..2 {
            pool.clock.advance(12 * 3600);
            pool.call_as(&session, "VM.get_all", vec![])
                .await
                .expect("listed");
            let now = pool.clock.now_unix();
            assert_eq!(last_active(&pool, &session), Some(now));
            pool.master.housekeeping().await;
        }
        assert_eq!(pool.refs("session"), [session]);
    }

    /// A master that first looks at a session with a clock two days ahead of the one that
    /// wrote its `last_active` (a new master after a failover) keeps it.
    #[tokio::test]
    async fn a_master_whose_clock_runs_ahead_keeps_the_sessions_it_finds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.clock.jump(2 * 24 * 3600);
        pool.master.housekeeping().await;
        assert_eq!(pool.refs("session"), [session]);
    }

    /// A stale `last_active` is one the interval away from the clock, behind or ahead.
    #[test]
    fn last_active_is_stale_once_the_interval_away_either_way() {
        assert!(!is_last_active_stale(1000, 1599, 600));
        assert!(is_last_active_stale(1000, 1600, 600));
        assert!(!is_last_active_stale(1000, 401, 600));
        assert!(is_last_active_stale(1000, 400, 600));
    }

    /// Beyond 500 sessions of one originator, housekeeping destroys the least recently
    /// active ones.
    #[tokio::test]
    async fn housekeeping_caps_sessions_per_originator() {
        let pool = TestPool::new();
        let mut sessions = Vec::new();
        for _ in 0..MAX_SESSIONS_PER_ORIGINATOR + 2 {
            let params = ["root", "", "1.0", "xo"].map(Value::str).to_vec();
            let reply = pool
                .master
                .call(crate::Call {
                    method: "session.login_with_password".to_owned(),
                    params,
                    origin: crate::Origin::LocalSocket,
                })
                .await;
            sessions.push(
                reply
                    .expect("logged in")
                    .as_str()
                    .expect("a ref")
                    .to_owned(),
            );
            pool.clock.advance(1);
        }
        let other = pool.login().await;
        pool.master.housekeeping().await;
        let live = pool.refs("session");
        assert_eq!(live.len(), MAX_SESSIONS_PER_ORIGINATOR + 1);
        assert!(!live.contains(&sessions[0]) && !live.contains(&sessions[1]));
        assert!(live.contains(&sessions[2]) && live.contains(&other));
    }
}
