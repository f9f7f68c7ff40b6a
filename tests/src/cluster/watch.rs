//! What the cluster tests watch a pool for: whether the master counts a host live, and the
//! messages (alerts) it has raised.

use std::time::Duration;

use api_spec::Value;

use crate::client::Client;
use crate::events::EventWait;

/// The `host_metrics` of the host `host` (a host ref).
pub async fn metrics_of(client: &Client, host: &str) -> Value {
    client.ok("host.get_metrics", vec![Value::str(host)]).await
}

/// Whether the master says the host whose metrics are `metrics` is live.
pub async fn is_live(client: &Client, metrics: &Value) -> bool {
    client
        .ok("host_metrics.get_live", vec![metrics.clone()])
        .await
        == Value::Bool(true)
}

/// Waits, with `event.from` on `host_metrics`, until the master reports `live` for the host
/// metrics `metrics`, at most `timeout`.
pub async fn wait_live(client: &Client, metrics: &Value, live: bool, timeout: Duration) {
    let mut events = EventWait::new(client, &["host_metrics"], timeout);
    while is_live(client, metrics).await != live {
        events
            .next(&format!("host_metrics.live never became {live}"))
            .await;
    }
}

/// One message of the pool: the object it is about and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub obj_uuid: String,
    pub body: String,
}

/// The pool's messages named `name`.
pub async fn messages_named(client: &Client, name: &str) -> Vec<Message> {
    let records = client.ok("message.get_all_records", vec![]).await;
    records
        .as_struct()
        .expect("a map of messages")
        .values()
        .filter_map(Value::as_struct)
        .filter(|m| m.get("name").and_then(Value::as_str) == Some(name))
        .map(|m| {
            let text = |field: &str| {
                m.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Message {
                obj_uuid: text("obj_uuid"),
                body: text("body"),
            }
        })
        .collect()
}
