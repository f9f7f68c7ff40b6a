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

impl Master {
    /// Raises `POOL_SPLIT_DETECTED` on the pool for the member `node`, which is on
    /// `their_epoch`: that host is refused until an operator recovers it (`pool.recover_slaves`)
    /// or ejects it.
    pub async fn split_detected(&self, node: u64, their_epoch: &str) -> Result<(), Error> {
        let now = Value::DateTime(api_spec::datetime::format_unix(self.now()));
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
            draft.create(
                "message",
                [
                    ("name", Value::str(POOL_SPLIT_MESSAGE)),
                    ("priority", Value::Int(POOL_SPLIT_PRIORITY)),
                    ("cls", Value::str("Pool")),
                    ("obj_uuid", Value::String(pool_uuid)),
                    ("timestamp", now.clone()),
                    ("body", Value::String(body)),
                ],
            );
            Ok((draft.into_txn(), ()))
        })
        .await?;
        tracing::warn!(node, their_epoch, "pool split detected: alert raised");
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
