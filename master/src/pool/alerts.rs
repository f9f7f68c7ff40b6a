//! Alerts the master raises about the pool itself, as `message` objects: a split pool, and a
//! host whose clock differs from the master's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use api_spec::Value;
use db_schema::Db;

use crate::Master;
use crate::error::Error;
use crate::pool::control::{POOL_EPOCH, internal_text, members};
use crate::vm::operations::Draft;

/// The `message` name raised when a host of another configuration of this pool (another
/// `pool_epoch`: one side went through an emergency transition) tries to talk to it.
pub const POOL_SPLIT_MESSAGE: &str = "POOL_SPLIT_DETECTED";
/// Highest priority: an operator must decide which side is the pool.
const POOL_SPLIT_PRIORITY: i64 = 1;
/// The `message` name raised when a host's pool DB store fails (a full or read-only disk):
/// the host is not live until its store opens again. An oxapi addition.
pub const STORE_FAILED_MESSAGE: &str = "HOST_DATABASE_STORE_FAILED";
/// High priority: the host runs its VMs but cannot take new ones or answer calls.
const STORE_FAILED_PRIORITY: i64 = 2;
/// High priority: the pool refuses writes.
const SPACE_LOW_PRIORITY: i64 = 2;

/// A new `message` about the object `obj_uuid` of class `cls` (xapi's `cls` names: `Pool`,
/// `Host`, `VM`, …), raised at `now`.
fn raise(
    draft: &mut Draft,
    now: i64,
    (name, priority): (&str, i64),
    (cls, obj_uuid): (&str, &str),
    body: String,
) {
    draft.create(
        "message",
        [
            ("name", Value::str(name)),
            ("priority", Value::Int(priority)),
            ("cls", Value::str(cls)),
            ("obj_uuid", Value::str(obj_uuid)),
            (
                "timestamp",
                Value::DateTime(api_spec::datetime::format_unix(now)),
            ),
            ("body", Value::String(body)),
        ],
    );
}

impl Master {
    /// Raises `POOL_SPLIT_DETECTED` on the pool for the member `node`, which is on
    /// `their_epoch`: that host is refused until an operator recovers it (`pool.recover_slaves`)
    /// or ejects it.
    pub async fn split_detected(&self, node: u64, their_epoch: &str) -> Result<(), Error> {
        let now = self.now();
        self.decide(|db| {
            let mut draft = Draft::new(db);
            let view = draft.view();
            let pool = view.refs("pool").into_iter().next().unwrap_or_default();
            let pool_uuid = view.str("pool", &pool, "uuid").to_owned();
            let host = members(db)
                .into_iter()
                .find(|member| member.node_id == node)
                .map(|member| view.str("host", &member.host, "name_label").to_owned())
                .unwrap_or_else(|| format!("node {node}"));
            let ours = internal_text(db, POOL_EPOCH).unwrap_or_default();
            let body = format!(
                "host {host} is on another configuration of this pool (epoch {their_epoch}, \
                 this side is on {ours}); it is refused and does not rejoin until recovered"
            );
            let message = (POOL_SPLIT_MESSAGE, POOL_SPLIT_PRIORITY);
            raise(&mut draft, now, message, ("Pool", &pool_uuid), body);
            Ok((draft.into_txn(), ()))
        })
        .await?;
        tracing::warn!(node, their_epoch, "pool split detected: alert raised");
        Ok(())
    }

    /// Raises `HOST_DATABASE_STORE_FAILED` on `host`, whose store failed for `reason`.
    pub(crate) async fn store_failed(&self, host: &str, reason: &str) -> Result<(), Error> {
        self.raise_on_host(
            host,
            (STORE_FAILED_MESSAGE, STORE_FAILED_PRIORITY),
            |_, name| {
                format!(
                    "the pool database store of host {name} failed ({reason}); the host runs its \
                 VMs on but is not live, takes no new ones and answers no calls until its \
                 store opens again, which it tries by itself"
                )
            },
        )
        .await
    }

    /// Raises `DATABASE_SPACE_LOW` on `host`, short of room for the pool DB (`why`).
    pub(crate) async fn space_low(&self, host: &str, why: &str) -> Result<(), Error> {
        let message = (crate::call::no_space::SPACE_LOW_MESSAGE, SPACE_LOW_PRIORITY);
        self.raise_on_host(host, message, |_, name| {
            format!(
                "host {name} is short of room for the pool database ({why}); the pool refuses \
                 writes (DATABASE_SPACE_LOW) until it has room again"
            )
        })
        .await
    }

    /// Raises the message `(name, priority)` on `host`, its body made from the DB and the
    /// host's name; nothing when the pool no longer has the host.
    async fn raise_on_host(
        &self,
        host: &str,
        message: (&str, i64),
        body: impl Fn(&Db, &str) -> String,
    ) -> Result<(), Error> {
        let now = self.now();
        self.decide(|db| {
            let mut draft = Draft::new(db);
            let Some(row) = db.get("host", host) else {
                return Ok((draft.into_txn(), ()));
            };
            let text = body(db, row.str("name_label"));
            raise(&mut draft, now, message, ("Host", row.str("uuid")), text);
            Ok((draft.into_txn(), ()))
        })
        .await?;
        Ok(())
    }
}

/// The `message` name raised when a host's wall clock differs from the master's by more than
/// `clock_skew_limit_secs`: xapi's name for it, which XenCenter shows on the host.
pub const CLOCK_SKEW_MESSAGE: &str = "HOST_CLOCK_SKEW_DETECTED";
/// xapi's priority for it.
const CLOCK_SKEW_PRIORITY: i64 = 3;
/// How long (on the master's monotonic clock) a host's clock must stay beyond the limit
/// before the alert is raised: heartbeats held up in a stalled stream arrive late, in a burst,
/// and look like a clock running behind.
const CLOCK_SKEW_CONFIRM: Duration = Duration::from_secs(3);

/// The hosts whose clock was beyond the limit at their last heartbeat: since when (monotonic)
/// and whether the alert was raised for that stretch. A host back within the limit leaves.
#[derive(Default)]
pub(crate) struct ClockSkews(Mutex<HashMap<String, SkewStretch>>);

#[derive(Debug, Clone, Copy)]
struct SkewStretch {
    since: Duration,
    is_raised: bool,
}

impl ClockSkews {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SkewStretch>> {
        self.0.lock().expect("no panic under the clock skews lock")
    }

    /// Notes that the clock of `host` was `skew_secs` ahead of the master's (behind when
    /// negative) at `now` (monotonic); whether the alert is due: the clock has been beyond
    /// `limit_secs` for `CLOCK_SKEW_CONFIRM` and the alert was not raised for this stretch.
    fn note(&self, host: &str, skew_secs: i64, limit_secs: i64, now: Duration) -> bool {
        let mut skews = self.lock();
        if skew_secs.unsigned_abs() <= limit_secs.unsigned_abs() {
            skews.remove(host);
            return false;
        }
        let stretch = skews.entry(host.to_owned()).or_insert(SkewStretch {
            since: now,
            is_raised: false,
        });
        if stretch.is_raised || now.saturating_sub(stretch.since) < CLOCK_SKEW_CONFIRM {
            return false;
        }
        stretch.is_raised = true;
        true
    }

    /// Makes the alert for `host` due again (its commit failed).
    fn not_raised(&self, host: &str) {
        if let Some(stretch) = self.lock().get_mut(host) {
            stretch.is_raised = false;
        }
    }
}

impl Master {
    /// Compares the wall clock of `host` (a host ref), `their_now_unix` as its heartbeat
    /// carried it, with this master's. Once it has differed by more than
    /// `clock_skew_limit_secs` for a few seconds, raises `HOST_CLOCK_SKEW_DETECTED` on the
    /// host; again only after the clock came back within the limit and left it anew. A failed
    /// commit is logged and retried on the next heartbeat.
    pub async fn compare_clock(&self, host: &str, their_now_unix: i64) {
        let skew = their_now_unix - self.now();
        let limit = self.config.clock_skew_limit_secs;
        if !self
            .clock_skews
            .note(host, skew, limit, self.clock.monotonic())
        {
            return;
        }
        match self.raise_clock_skew(host, skew, limit).await {
            Ok(()) => {
                tracing::warn!(host = %host, skew_secs = skew, limit_secs = limit, "host clock skew: alert raised");
            }
            Err(e) => {
                self.clock_skews.not_raised(host);
                let code = crate::error::to_api_error(e).code;
                tracing::warn!(host = %host, code = %code, "host clock skew alert not raised yet");
            }
        }
    }

    async fn raise_clock_skew(&self, host: &str, skew: i64, limit: i64) -> Result<(), Error> {
        let (amount, direction) = (
            skew.unsigned_abs(),
            if skew > 0 { "ahead of" } else { "behind" },
        );
        let message = (CLOCK_SKEW_MESSAGE, CLOCK_SKEW_PRIORITY);
        self.raise_on_host(host, message, |db, name| {
            let master_name = db
                .get("host", &self.this_host)
                .map(|row| row.str("name_label").to_owned())
                .unwrap_or_default();
            format!(
                "the clock of host {name} is {amount} s {direction} the clock of the pool \
                 master {master_name}, more than the {limit} s allowed \
                 (master.clock_skew_limit_secs): synchronise the hosts' clocks (NTP)"
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::Clock;
    use crate::testing::TestPool;

    use super::*;

    /// A split raises one high-priority message on the pool that names the other epoch.
    #[tokio::test]
    async fn split_raises_a_pool_message_naming_the_other_epoch() {
        let pool = TestPool::new();
        pool.master
            .split_detected(42, "old-epoch")
            .await
            .expect("alert");
        let db = pool.read();
        let messages: Vec<_> = db
            .rows("message")
            .filter(|(_, row)| row.get("name") == Some(&Value::str(POOL_SPLIT_MESSAGE)))
            .map(|(_, row)| row.clone())
            .collect();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.get("cls"), Some(&Value::str("Pool")));
        assert_eq!(message.get("priority"), Some(&Value::Int(1)));
        let Some(Value::String(body)) = message.get("body") else {
            panic!("message without a body");
        };
        assert!(body.contains("old-epoch"), "{body}");
    }

    /// The bodies of the clock skew messages raised so far.
    fn skew_messages(pool: &TestPool) -> Vec<(Value, String)> {
        pool.read()
            .rows("message")
            .filter(|(_, row)| row.get("name") == Some(&Value::str(CLOCK_SKEW_MESSAGE)))
            .map(|(_, row)| {
                let obj = row.get("obj_uuid").cloned().unwrap_or(Value::Nil);
                (obj, row.str("body").to_owned())
            })
            .collect()
    }

    /// A host whose clock stays more than the limit away from the master's gets one
    /// `HOST_CLOCK_SKEW_DETECTED` message, after the confirmation time, that says by how much
    /// and which way; a clock within the limit raises nothing.
    #[tokio::test]
    async fn a_lasting_clock_skew_raises_one_message_on_the_host() {
        let pool = TestPool::new();
        let other = pool.add_host("host2", 64 << 30);
        let limit = pool.master.config.clock_skew_limit_secs;
        let now = pool.clock.now_unix();
        pool.master.compare_clock(&other, now + limit).await;
        pool.master.compare_clock(&other, now + 7200).await;
        assert!(skew_messages(&pool).is_empty(), "raised before it lasted");
        pool.clock.advance(3);
        let now = pool.clock.now_unix();
        pool.master.compare_clock(&other, now + 7200).await;
        pool.clock.advance(1);
        pool.master.compare_clock(&other, now + 7201).await;
        let messages = skew_messages(&pool);
        assert_eq!(messages.len(), 1, "{messages:?}");
        let uuid = pool.field("host", &other, "uuid").expect("a uuid");
        assert_eq!(messages[0].0, uuid);
        assert!(
            messages[0].1.contains("7200 s ahead of"),
            "{}",
            messages[0].1
        );
    }

    /// A skew that goes away before the confirmation time raises nothing; one that comes
    /// back after the clock was right again is raised again.
    #[test]
    fn a_skew_is_raised_once_per_stretch_beyond_the_limit() {
        let skews = ClockSkews::default();
        let at = Duration::from_secs;
        assert!(!skews.note("h", -10, 5, at(0)));
        assert!(!skews.note("h", 0, 5, at(2)));
        assert!(!skews.note("h", -10, 5, at(4)));
        assert!(skews.note("h", -10, 5, at(7)));
        assert!(!skews.note("h", -10, 5, at(100)));
        assert!(!skews.note("h", 5, 5, at(101)));
        assert!(!skews.note("h", 6, 5, at(102)));
        assert!(skews.note("h", 6, 5, at(105)));
    }
}
