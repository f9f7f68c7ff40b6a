//! Alerts the master raises about the pool itself, as `message` objects.

use api_spec::Value;

use crate::Master;
use crate::error::Error;
use crate::operations::Draft;
use crate::pool_control::{POOL_EPOCH, internal_text, members};

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
            |name| {
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
        let message = (crate::no_space::SPACE_LOW_MESSAGE, SPACE_LOW_PRIORITY);
        self.raise_on_host(host, message, |name| {
            format!(
                "host {name} is short of room for the pool database ({why}); the pool refuses \
                 writes (DATABASE_SPACE_LOW) until it has room again"
            )
        })
        .await
    }

    /// Raises the message `(name, priority)` on `host`, its body made from the host's name.
    async fn raise_on_host(
        &self,
        host: &str,
        message: (&str, i64),
        body: impl Fn(&str) -> String,
    ) -> Result<(), Error> {
        let now = self.now();
        self.decide(|db| {
            let mut draft = Draft::new(db);
            let view = draft.view();
            let uuid = view.str("host", host, "uuid").to_owned();
            let text = body(view.str("host", host, "name_label"));
            raise(&mut draft, now, message, ("Host", &uuid), text);
            Ok((draft.into_txn(), ()))
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
}
