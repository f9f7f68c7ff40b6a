//! Waiting for a condition the way a XenAPI client does: look, then wait on `event.from` for the
//! next change of the classes it depends on, until a deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_spec::Value;

use crate::client::Client;

/// How long one `event.from` may wait for a change, in seconds.
const EVENT_WAIT_SECS: f64 = 5.0;

/// A follower of `event.from` on some classes, with a deadline.
pub struct EventWait<'a> {
    client: &'a Client,
    classes: Value,
    token: Value,
    deadline: Instant,
}

impl<'a> EventWait<'a> {
    /// Follows `classes` (`"vm"`, `"task/OpaqueRef:…"`) through `client` for at most `timeout`.
    pub fn new(client: &'a Client, classes: &[&str], timeout: Duration) -> EventWait<'a> {
        EventWait {
            client,
            classes: Value::Array(classes.iter().map(|c| Value::str(*c)).collect()),
            token: Value::str(""),
            deadline: Instant::now() + timeout,
        }
    }

    /// Waits for the next change (or `EVENT_WAIT_SECS`); fails the test, saying `what` did not
    /// happen, once the deadline has passed.
    pub async fn next(&mut self, what: &str) {
        assert!(Instant::now() < self.deadline, "{what}");
        let params = vec![
            self.classes.clone(),
            self.token.clone(),
            Value::Float(EVENT_WAIT_SECS),
        ];
        let batch = self.client.ok("event.from", params).await;
        self.token = batch.as_struct().expect("an event batch")["token"].clone();
    }
}

/// Waits, with `event.from` on the task, until `done(record)` holds; returns the record.
pub async fn wait_task(
    client: &Client,
    task: &Value,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let task_ref = task.as_str().expect("a task ref");
    let class = format!("task/{task_ref}");
    let mut events = EventWait::new(client, &[class.as_str()], Duration::from_secs(60));
    loop {
        let record = client.ok("task.get_record", vec![task.clone()]).await;
        let record = record.as_struct().expect("a task record").clone();
        if done(&record) {
            return record;
        }
        events
            .next(&format!("task never got there: {record:?}"))
            .await;
    }
}
