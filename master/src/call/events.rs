//! What `event.from` and the legacy `event.next` read: subscriptions, tokens, and the events of
//! the DB rows changed since a generation (`Db::changes_since`), plus the in-memory legacy
//! registrations.
//!
//! A token is the DB generation (the Raft index applied) as 20 zero-padded digits, so newer
//! tokens compare greater as strings, and a client that comes back with its last token misses
//! nothing, even across a restart or a change of master.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use api_spec::model::Class;
use api_spec::{Value, api, errors};
use db_schema::{ChangeKind, Db};

use crate::db::record;
use crate::error::Error;

/// One entry of the `classes` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// `*`
    All,
    /// A class, named in any case; unknown classes select nothing.
    Class(String),
    /// `class/OpaqueRef:…`: one object.
    Object(String, String),
}

impl Subscription {
    /// Parses one entry; an empty class or ref is `EVENT_SUBSCRIPTION_PARSE_FAILURE [entry]`.
    pub fn parse(text: &str) -> Result<Subscription, Error> {
        if text == "*" {
            return Ok(Subscription::All);
        }
        let malformed = || errors::event_subscription_parse_failure(text).into();
        match text.split_once('/') {
            None if !text.is_empty() => Ok(Subscription::Class(text.to_ascii_lowercase())),
            Some((class, r)) if !class.is_empty() && !r.is_empty() => Ok(Subscription::Object(
                class.to_ascii_lowercase(),
                r.to_owned(),
            )),
            _ => Err(malformed()),
        }
    }

    fn selects_class(&self, class: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(c) | Subscription::Object(c, _) => c.eq_ignore_ascii_case(class),
        }
    }

    fn selects(&self, class: &str, r: &str) -> bool {
        match self {
            Subscription::Object(c, o) => c.eq_ignore_ascii_case(class) && o == r,
            _ => self.selects_class(class),
        }
    }
}

/// Parses every entry of `classes`.
pub(crate) fn parse_subscriptions(classes: &[String]) -> Result<Vec<Subscription>, Error> {
    classes.iter().map(|c| Subscription::parse(c)).collect()
}

/// The token of a generation.
pub(crate) fn token(generation: u64) -> String {
    format!("{generation:020}")
}

/// The generation of a token: `""` is the beginning. xapi's own `gen,msg_gen` form is read
/// too, for a client that kept a token from xapi; anything else is
/// `EVENT_FROM_TOKEN_PARSE_FAILURE [token]`.
pub(crate) fn parse_token(text: &str) -> Result<u64, Error> {
    if text.is_empty() {
        return Ok(0);
    }
    let generation = text.split_once(',').map_or(text, |(g, _)| g);
    generation
        .parse()
        .map_err(|_| errors::event_from_token_parse_failure(text).into())
}

/// The classes whose changes are events.
fn event_classes() -> impl Iterator<Item = &'static Class> {
    api()
        .classes
        .iter()
        .copied()
        .filter(|c| c.in_db && c.gen_events)
}

/// One event, as `event.from` and `event.next` send it.
pub(crate) struct Event {
    pub generation: u64,
    pub class: &'static str,
    pub kind: ChangeKind,
    pub r#ref: String,
    /// The record now; `None` for a deletion.
    pub snapshot: Option<Value>,
}

impl Event {
    /// The wire struct; `id` and `timestamp` differ between `event.from` and `event.next`.
    pub fn to_value(&self, id: String, timestamp: String) -> Value {
        let operation = match self.kind {
            ChangeKind::Add => "add",
            ChangeKind::Mod => "mod",
            ChangeKind::Del => "del",
        };
        let mut fields = BTreeMap::from([
            ("id".to_owned(), Value::String(id)),
            ("timestamp".to_owned(), Value::String(timestamp)),
            (
                "class".to_owned(),
                Value::String(self.class.to_ascii_lowercase()),
            ),
            ("operation".to_owned(), Value::str(operation)),
            ("ref".to_owned(), Value::String(self.r#ref.clone())),
        ]);
        if let Some(snapshot) = &self.snapshot {
            fields.insert("snapshot".to_owned(), snapshot.clone());
        }
        Value::Struct(fields)
    }
}

/// The events of the rows `subs` selects changed after generation `since`, one per object:
/// dels, then mods, then adds, each by generation.
pub(crate) fn collect(db: &Db, subs: &[Subscription], since: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for class in event_classes() {
        if !subs.iter().any(|s| s.selects_class(class.name)) {
            continue;
        }
        for change in db.changes_since(class.name, since) {
            if !subs.iter().any(|s| s.selects(class.name, change.r#ref)) {
                continue;
            }
            events.push(Event {
                generation: change.generation,
                class: class.name,
                kind: change.kind,
                r#ref: change.r#ref.to_owned(),
                snapshot: change.row.map(|row| record::record(class, row)),
            });
        }
    }
    let rank = |kind: ChangeKind| match kind {
        ChangeKind::Del => 0,
        ChangeKind::Mod => 1,
        ChangeKind::Add => 2,
    };
    events.sort_by_key(|e| (rank(e.kind), e.generation));
    events
}

/// `valid_ref_counts`: the live rows of every class whose changes are events, by lowercase
/// class name, as 32-bit ints (`<i4>` in XML-RPC).
pub(crate) fn valid_ref_counts(db: &Db) -> Value {
    Value::Struct(
        event_classes()
            .map(|c| {
                let count = i32::try_from(db.count(c.name)).unwrap_or(i32::MAX);
                (c.name.to_ascii_lowercase(), Value::Int32(count))
            })
            .collect(),
    )
}

/// The legacy `event.register` registrations, by session ref.
///
/// They live in this master's memory only, as xapi keeps its queues: when mastership moves
/// they are lost, and the client's next `event.next` answers `SESSION_NOT_REGISTERED` (it
/// registers again and refreshes its state, as after `EVENTS_LOST` on xapi).
#[derive(Default)]
pub(crate) struct Registrations {
    by_session: Mutex<HashMap<String, Registration>>,
}

/// One session's legacy registration.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub subs: Vec<Subscription>,
    /// Events after this generation are still to be delivered.
    pub since: u64,
    /// The `id` of the next event delivered.
    pub next_id: u64,
}

impl Registrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Registration>> {
        self.by_session
            .lock()
            .expect("no panic while holding the registrations lock")
    }

    /// Adds subscriptions; a first registration starts at generation `now`.
    pub fn register(&self, session: &str, subs: Vec<Subscription>, now: u64) {
        let mut all = self.lock();
        let registration = all.entry(session.to_owned()).or_insert(Registration {
            subs: Vec::new(),
            since: now,
            next_id: 1,
        });
        for sub in subs {
            if !registration.subs.contains(&sub) {
                registration.subs.push(sub);
            }
        }
    }

    /// Removes subscriptions; the session stays registered, as on xapi.
    pub fn unregister(&self, session: &str, subs: &[Subscription]) {
        if let Some(registration) = self.lock().get_mut(session) {
            registration.subs.retain(|s| !subs.contains(s));
        }
    }

    pub fn get(&self, session: &str) -> Option<Registration> {
        self.lock().get(session).cloned()
    }

    /// Records that the events up to `generation` were delivered; returns the first id of
    /// the `count` delivered, or `None` if the session is no longer registered.
    pub fn advance(&self, session: &str, generation: u64, count: u64) -> Option<u64> {
        let mut all = self.lock();
        let registration = all.get_mut(session)?;
        registration.since = registration.since.max(generation);
        let first = registration.next_id;
        registration.next_id += count;
        Some(first)
    }

    pub fn forget(&self, session: &str) {
        self.lock().remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subscriptions parse case-insensitively; empty parts are parse failures.
    #[test]
    fn subscriptions_parse_and_reject_empty_parts() {
        assert_eq!(Subscription::parse("*").ok(), Some(Subscription::All));
        assert_eq!(
            Subscription::parse("VM").ok(),
            Some(Subscription::Class("vm".into()))
        );
        assert_eq!(
            Subscription::parse("vm/OpaqueRef:a").ok(),
            Some(Subscription::Object("vm".into(), "OpaqueRef:a".into()))
        );
        for bad in ["", "/OpaqueRef:a", "vm/"] {
            let Err(Error::Api(e)) = Subscription::parse(bad) else {
                panic!("{bad:?} should not parse");
            };
            assert_eq!(e, errors::event_subscription_parse_failure(bad));
        }
    }

    /// Tokens of newer generations compare greater as strings, and parse back.
    #[test]
    fn tokens_order_as_strings_and_round_trip() {
        assert!(token(10) > token(9));
        assert_eq!(parse_token(&token(12345)).ok(), Some(12345));
        assert_eq!(parse_token("").ok(), Some(0));
        assert_eq!(
            parse_token("00000000000000000042,00000000000000000000").ok(),
            Some(42)
        );
        assert!(parse_token("yesterday").is_err());
    }

    /// A registration keeps its subscriptions apart from the ones unregistered, and ids grow.
    #[test]
    fn registrations_track_subscriptions_and_ids() {
        let regs = Registrations::default();
        regs.register(
            "s",
            vec![Subscription::Class("vm".into()), Subscription::All],
            7,
        );
        regs.unregister("s", &[Subscription::All]);
        let reg = regs.get("s").expect("registered");
        assert_eq!(reg.subs, [Subscription::Class("vm".into())]);
        assert_eq!(reg.since, 7);
        assert_eq!(regs.advance("s", 9, 3), Some(1));
        assert_eq!(regs.advance("s", 10, 1), Some(4));
        assert!(regs.get("other").is_none());
    }
}
