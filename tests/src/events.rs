//! Waiting for a condition the way a XenAPI client does: look, then wait on `event.from` for the
//! next change of the classes it depends on, until a deadline.

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
