//! `event-wait class= [<field>=<value> | <field>=/=<value> …] [timeout=]`: blocks until an
//! object of the class has those field values, following `event.from` from the current state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_spec::Value;

use super::GLOBAL_SWITCHES;
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::render::Lookup;
use crate::select::{self, Filter};
use crate::views::{self, CliField};

/// The longest one `event.from` call blocks, in seconds.
const EVENT_TIMEOUT_SECONDS: f64 = 30.0;

/// Waits for a matching object; fails with `TimedOut` after `timeout=` seconds.
pub async fn wait(session: &Session, params: &Params) -> Result<(), XeError> {
    let class = params.get("class").unwrap_or_default();
    let view = views::view(class)
        .or_else(|| {
            views::views()
                .iter()
                .find(|v| v.class.name.eq_ignore_ascii_case(class))
        })
        .ok_or_else(|| XeError::InvalidValue {
            name: "class".to_owned(),
            reason: format!("'{class}' is not a class xe knows (`xe help --all` lists them)"),
        })?;
    let mut reserved = vec!["class", "timeout"];
    reserved.extend(GLOBAL_SWITCHES);
    let filters = select::filters(view, params, &reserved)?;
    let timeout = match params.get("timeout") {
        Some(text) => Some(
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| XeError::InvalidValue {
                    name: "timeout".to_owned(),
                    reason: format!("'{text}' is not a number of seconds"),
                })?,
        ),
        None => None,
    };
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t));
    let subscription = Value::Array(vec![Value::String(view.class.name.to_ascii_lowercase())]);
    let fields: Vec<&CliField> = filters.iter().map(|f| f.field).collect();
    let mut objects: BTreeMap<String, Value> = BTreeMap::new();
    let mut token = String::new();
    loop {
        let wait_seconds = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() && !token.is_empty() {
                    return Err(XeError::TimedOut {
                        seconds: timeout.unwrap_or_default(),
                    });
                }
                left.as_secs_f64().min(EVENT_TIMEOUT_SECONDS)
            }
            None => EVENT_TIMEOUT_SECONDS,
        };
        let reply = session
            .call(
                "event.from",
                vec![
                    subscription.clone(),
                    Value::String(token.clone()),
                    Value::Float(wait_seconds),
                ],
            )
            .await?;
        token = apply_events(&reply, &mut objects).unwrap_or(token);
        let mut lookup = Lookup::default();
        lookup.prepare(session, &fields, objects.values()).await?;
        if objects.values().any(|o| matches_all(&filters, o, &lookup)) {
            return Ok(());
        }
    }
}

fn matches_all(filters: &[Filter], object: &Value, lookup: &Lookup) -> bool {
    filters.iter().all(|f| f.matches(object, lookup))
}

/// Applies a batch of events to the objects known; returns the batch's token.
fn apply_events(reply: &Value, objects: &mut BTreeMap<String, Value>) -> Option<String> {
    let reply = reply.as_struct()?;
    for event in reply
        .get("events")
        .and_then(Value::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_struct)
    {
        let Some(r) = event.get("ref").and_then(Value::as_str) else {
            continue;
        };
        match (
            event.get("operation").and_then(Value::as_str),
            event.get("snapshot"),
        ) {
            (Some("del"), _) | (_, None) => {
                objects.remove(r);
            }
            (_, Some(snapshot)) => {
                objects.insert(r.to_owned(), snapshot.clone());
            }
        }
    }
    reply
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(operation: &str, r: &str, snapshot: Option<Value>) -> Value {
        let mut fields = BTreeMap::from([
            ("operation".to_owned(), Value::str(operation)),
            ("ref".to_owned(), Value::str(r)),
        ]);
        if let Some(s) = snapshot {
            fields.insert("snapshot".to_owned(), s);
        }
        Value::Struct(fields)
    }

    /// Adds and mods keep the latest snapshot, dels forget the object, the token moves on.
    #[test]
    fn events_update_the_objects_known() {
        let mut objects = BTreeMap::new();
        let batch = Value::Struct(BTreeMap::from([
            (
                "events".to_owned(),
                Value::Array(vec![
                    event("add", "a", Some(Value::str("a1"))),
                    event("add", "b", Some(Value::str("b1"))),
                    event("mod", "a", Some(Value::str("a2"))),
                    event("del", "b", None),
                ]),
            ),
            ("token".to_owned(), Value::str("7")),
        ]));
        assert_eq!(apply_events(&batch, &mut objects).as_deref(), Some("7"));
        assert_eq!(objects.get("a"), Some(&Value::str("a2")));
        assert!(!objects.contains_key("b"));
    }
}
