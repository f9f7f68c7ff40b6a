//! The custom messages of `event`: `from` (read from the DB's generations), `inject`,
//! `get_current_id`, and the legacy `register` / `unregister` / `next`.

use std::collections::BTreeMap;
use std::time::Duration;

use api_spec::{Value, api, errors};
use db_schema::{Op, Txn};
use tokio::sync::watch;

use crate::call::ctx::{Args, Ctx, void};
use crate::call::events::{self, Event, parse_subscriptions, parse_token, token};
use crate::db::ProposeError;
use crate::db::record::exists;
use crate::error::Error;

/// The longest `event.from` waits, and what an invalid timeout means (xapi: 24 h).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn timeout(secs: f64) -> Duration {
    if secs.is_finite() && (0.0..=MAX_TIMEOUT.as_secs_f64()).contains(&secs) {
        Duration::from_secs_f64(secs)
    } else {
        MAX_TIMEOUT
    }
}

/// Waits for the next apply; `Stopped` once the DB is gone.
async fn next_apply(applied: &mut watch::Receiver<u64>) -> Result<(), Error> {
    applied
        .changed()
        .await
        .map_err(|_| Error::Propose(ProposeError::Stopped))
}

/// The events of the subscribed rows changed since `token`: `{events, valid_ref_counts,
/// token}`. With nothing to report it waits for a relevant change until `timeout` seconds
/// have passed, then answers no events and the newest token. The session ending while it
/// waits is `SESSION_INVALID`.
pub(super) async fn from(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let subs = parse_subscriptions(&args.strings("classes")?)?;
    let mut since = parse_token(args.str("token")?)?;
    let deadline = tokio::time::Instant::now() + timeout(args.float("timeout")?);
    let session = ctx.session()?;
    let mut applied = ctx.master.db.applied();
    loop {
        applied.borrow_and_update();
        {
            let db = ctx.db();
            if db.get("session", session).is_none() {
                return Err(errors::session_invalid(session).into());
            }
            let found = events::collect(&db, &subs, since);
            let newest = db.applied_index();
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                let events = found
                    .iter()
                    .map(|e| e.to_value(e.generation.to_string(), "0.0".to_owned()))
                    .collect();
                return Ok(Value::Struct(BTreeMap::from([
                    ("events".to_owned(), Value::Array(events)),
                    ("valid_ref_counts".to_owned(), events::valid_ref_counts(&db)),
                    ("token".to_owned(), Value::String(token(newest))),
                ])));
            }
            // Nothing relevant up to `newest`: the next scan can start there.
            since = newest;
        }
        tokio::select! {
            changed = next_apply(&mut applied) => changed?,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Marks a row modified without changing it; returns the token just before that change, so
/// `event.from` with it reports the row.
pub(super) async fn inject(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (class, r) = (args.str("class")?, args.str("ref")?);
    let class = api()
        .class_ignoring_case(class)
        .filter(|c| c.in_db)
        .ok_or_else(|| errors::handle_invalid(class, r))?;
    let txn = Txn {
        preconditions: vec![exists(class.name, r)],
        ops: vec![Op::Touch {
            class: class.name.to_owned(),
            r#ref: r.to_owned(),
        }],
    };
    let applied = ctx.master.commit(txn).await?;
    Ok(Value::String(token(applied.generation.saturating_sub(1))))
}

/// The current DB generation.
pub(super) async fn get_current_id(ctx: Ctx, _args: Args) -> Result<Value, Error> {
    let generation = ctx.db().applied_index();
    Ok(Value::Int(i64::try_from(generation).unwrap_or(i64::MAX)))
}

/// Registers the session for the events of `classes` (legacy); kept in this master's memory.
pub(super) async fn register(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let subs = parse_subscriptions(&args.strings("classes")?)?;
    let now = ctx.db().applied_index();
    ctx.master.registrations.register(ctx.session()?, subs, now);
    Ok(void())
}

/// Drops some of the session's legacy subscriptions.
pub(super) async fn unregister(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let subs = parse_subscriptions(&args.strings("classes")?)?;
    ctx.master.registrations.unregister(ctx.session()?, &subs);
    Ok(void())
}

/// The session's next events since its last `next` (legacy): waits until there are some.
/// `SESSION_NOT_REGISTERED` without a registration.
pub(super) async fn next(ctx: Ctx, _args: Args) -> Result<Value, Error> {
    let session = ctx.session()?;
    let registrations = &ctx.master.registrations;
    let not_registered = || Error::from(errors::session_not_registered(session));
    let mut applied = ctx.master.db.applied();
    loop {
        applied.borrow_and_update();
        let (found, newest): (Vec<Event>, u64) = {
            let db = ctx.db();
            if db.get("session", session).is_none() {
                return Err(errors::session_invalid(session).into());
            }
            let registration = registrations.get(session).ok_or_else(not_registered)?;
            let found = events::collect(&db, &registration.subs, registration.since);
            (found, db.applied_index())
        };
        let count = u64::try_from(found.len()).unwrap_or(u64::MAX);
        let first_id = registrations
            .advance(session, newest, count)
            .ok_or_else(not_registered)?;
        if !found.is_empty() {
            let timestamp = format!("{}.0", ctx.now());
            let events = (first_id..)
                .zip(&found)
                .map(|(id, e)| e.to_value(id.to_string(), timestamp.clone()))
                .collect();
            return Ok(Value::Array(events));
        }
        next_apply(&mut applied).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{TestPool, s};

    fn strs(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|i| s(i)).collect())
    }

    async fn event_from(
        pool: &TestPool,
        session: &str,
        classes: &[&str],
        token: &str,
        timeout: f64,
    ) -> Result<Value, api_spec::ApiError> {
        let params = vec![strs(classes), s(token), Value::Float(timeout)];
        pool.call_as(session, "event.from", params).await
    }

    /// The events of a reply as (class, operation, ref), and its token.
    fn summary(reply: &Value) -> (Vec<(String, String, String)>, String) {
        let reply = reply.as_struct().expect("a struct");
        let events = reply["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let e = e.as_struct().expect("an event");
                let text = |k: &str| e[k].as_str().expect(k).to_owned();
                (text("class"), text("operation"), text("ref"))
            })
            .collect();
        (events, reply["token"].as_str().expect("a token").to_owned())
    }

    fn vm_named(pool: &TestPool, name: &str) -> String {
        pool.read().refs_by_name_label("VM", name)[0].to_owned()
    }

    /// From the empty token, every live object of the subscribed classes is an `add` with
    /// its record; `valid_ref_counts` counts rows as 32-bit ints.
    #[tokio::test]
    async fn from_the_beginning_every_object_is_an_add() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = event_from(&pool, &session, &["VM", "host"], "", 1.0)
            .await
            .expect("events");
        let (events, token) = summary(&reply);
        assert_eq!(events.len(), pool.refs("VM").len() + 1);
        assert!(
            events
                .iter()
                .all(|(class, op, _)| op == "add" && (class == "vm" || class == "host"))
        );
        assert_eq!(token, events::token(pool.read().applied_index()));
        let reply = reply.as_struct().expect("a struct");
        let counts = reply["valid_ref_counts"].as_struct().expect("counts");
        let vms = i32::try_from(pool.refs("VM").len()).expect("few VMs");
        assert_eq!(counts["vm"], Value::Int32(vms));
        let first = reply["events"].as_array().expect("events")[0]
            .as_struct()
            .expect("an event");
        assert!(
            first["snapshot"]
                .as_struct()
                .is_some_and(|r| r.contains_key("uuid"))
        );
    }

    /// After a token, only what changed is reported, one event per object, dels first.
    #[tokio::test]
    async fn after_a_token_only_changes_are_reported_dels_mods_adds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = event_from(&pool, &session, &["*"], "", 1.0)
            .await
            .expect("events");
        let (_, token) = summary(&reply);
        let template = vm_named(&pool, "Debian Bookworm 12");
        let clone = pool
            .call_as(&session, "VM.clone", vec![s(&template), s("c")])
            .await;
        let clone = clone.expect("cloned").as_str().expect("a ref").to_owned();
        let other = vm_named(&pool, "Other install media");
        for name in ["renamed", "renamed again"] {
            let params = vec![s(&other), s(name)];
            pool.call_as(&session, "VM.set_name_label", params)
                .await
                .expect("renamed");
        }
        let doomed = pool
            .call_as(&session, "VM.clone", vec![s(&template), s("d")])
            .await;
        let doomed = doomed.expect("cloned").as_str().expect("a ref").to_owned();
        let reply = event_from(&pool, &session, &["vm"], &token, 1.0)
            .await
            .expect("events");
        let (events, _) = summary(&reply);
        let ops: Vec<(&str, &str)> = events
            .iter()
            .map(|(_, op, r)| (op.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("mod", other.as_str()),
                ("add", clone.as_str()),
                ("add", doomed.as_str())
            ]
        );
        let (_, token) = summary(&reply);
        pool.call_as(&session, "VM.destroy", vec![s(&doomed)])
            .await
            .expect("destroyed");
        let reply = event_from(&pool, &session, &["vm"], &token, 1.0)
            .await
            .expect("events");
        let first = reply.as_struct().expect("a struct")["events"]
            .as_array()
            .expect("events")[0]
            .clone();
        let first = first.as_struct().expect("an event").clone();
        assert_eq!(first["operation"], s("del"));
        assert!(!first.contains_key("snapshot"));
    }

    /// With nothing to report the call waits until the timeout, then answers no events and
    /// the newest token.
    #[tokio::test]
    async fn from_with_nothing_new_times_out_empty() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let token = events::token(pool.read().applied_index());
        let reply = event_from(&pool, &session, &["vm", "unknown_class"], &token, 0.05).await;
        let (events, newest) = summary(&reply.expect("a reply"));
        assert!(events.is_empty());
        assert_eq!(newest, token);
    }

    /// A blocked call wakes up for a relevant change and reports it; changes to other
    /// classes or objects do not end the wait.
    #[tokio::test]
    async fn a_blocked_from_wakes_up_for_a_relevant_change() {
        let pool = Arc::new(TestPool::new());
        let session = pool.login().await;
        let sr = pool.refs("SR").remove(0);
        let token = events::token(pool.read().applied_index());
        let waiter = {
            let (pool, session, sr, token) = (pool.clone(), session.clone(), sr.clone(), token);
            tokio::spawn(async move {
                let subscription = format!("SR/{sr}");
                event_from(&pool, &session, &[&subscription], &token, 30.0).await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing relevant changed yet");
        let vm = vm_named(&pool, "Other install media");
        pool.call_as(&session, "VM.set_name_label", vec![s(&vm), s("x")])
            .await
            .expect("set");
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "a VM change is not relevant to the SR"
        );
        let params = vec![s(&sr), s("k"), s("v")];
        pool.call_as(&session, "SR.add_to_other_config", params)
            .await
            .expect("added");
        let reply = waiter.await.expect("joined").expect("events");
        let (events, _) = summary(&reply);
        assert_eq!(events, [("sr".to_owned(), "mod".to_owned(), sr)]);
    }

    /// A session that ends while its `event.from` waits makes the call `SESSION_INVALID`.
    #[tokio::test]
    async fn a_session_ending_while_blocked_is_session_invalid() {
        let pool = Arc::new(TestPool::new());
        let session = pool.login().await;
        let token = events::token(pool.read().applied_index());
        let waiter = {
            let (pool, session) = (pool.clone(), session.clone());
            tokio::spawn(async move { event_from(&pool, &session, &["vm"], &token, 30.0).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing relevant changed yet");
        pool.call_as(&session, "session.logout", vec![])
            .await
            .expect("logged out");
        let reply = waiter.await.expect("joined");
        assert_eq!(reply, Err(errors::session_invalid(&session)));
    }

    /// A session that ends while its legacy `event.next` waits makes the call
    /// `SESSION_INVALID`.
    #[tokio::test]
    async fn a_session_ending_while_next_waits_is_session_invalid() {
        let pool = Arc::new(TestPool::new());
        let session = pool.login().await;
        let classes = vec![strs(&["vm"])];
        pool.call_as(&session, "event.register", classes)
            .await
            .expect("registered");
        let waiter = {
            let (pool, session) = (pool.clone(), session.clone());
            tokio::spawn(async move { pool.call_as(&session, "event.next", vec![]).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing relevant changed yet");
        pool.call_as(&session, "session.logout", vec![])
            .await
            .expect("logged out");
        let reply = waiter.await.expect("joined");
        assert_eq!(reply, Err(errors::session_invalid(&session)));
    }

    /// Malformed subscriptions and tokens are refused with their own errors.
    #[tokio::test]
    async fn bad_subscriptions_and_tokens_are_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = event_from(&pool, &session, &["vm/"], "", 1.0).await;
        assert_eq!(reply, Err(errors::event_subscription_parse_failure("vm/")));
        let reply = event_from(&pool, &session, &["vm"], "soon", 1.0).await;
        assert_eq!(reply, Err(errors::event_from_token_parse_failure("soon")));
    }

    /// `inject` touches a row and returns the token just before, so `event.from` with it
    /// reports that row; `get_current_id` follows the generation.
    #[tokio::test]
    async fn inject_returns_a_token_that_reports_the_touched_row() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let pool_ref = pool.refs("pool").remove(0);
        let token = pool
            .call_as(&session, "event.inject", vec![s("Pool"), s(&pool_ref)])
            .await;
        let token = token.expect("a token").as_str().expect("text").to_owned();
        let reply = event_from(&pool, &session, &["pool"], &token, 1.0)
            .await
            .expect("events");
        let (events, _) = summary(&reply);
        assert_eq!(events, [("pool".to_owned(), "mod".to_owned(), pool_ref)]);
        let id = pool.call_as(&session, "event.get_current_id", vec![]).await;
        let generation = i64::try_from(pool.read().applied_index()).expect("small");
        assert_eq!(id, Ok(Value::Int(generation)));
        let reply = pool
            .call_as(&session, "event.inject", vec![s("pool"), s("OpaqueRef:no")])
            .await;
        assert_eq!(reply, Err(errors::handle_invalid("pool", "OpaqueRef:no")));
    }

    /// The legacy interface: `next` needs a registration, then delivers the changes of the
    /// registered classes since, with increasing ids.
    #[tokio::test]
    async fn legacy_next_delivers_registered_changes_with_increasing_ids() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = pool.call_as(&session, "event.next", vec![]).await;
        assert_eq!(reply, Err(errors::session_not_registered(&session)));
        pool.call_as(&session, "event.register", vec![strs(&["vm"])])
            .await
            .expect("registered");
        let vm = vm_named(&pool, "Other install media");
        let sr = pool.refs("SR").remove(0);
        pool.call_as(&session, "SR.add_tags", vec![s(&sr), s("t")])
            .await
            .expect("tagged");
        let ids = |reply: Value| -> Vec<String> {
            reply
                .as_array()
                .expect("events")
                .iter()
                .map(|e| {
                    e.as_struct().expect("an event")["id"]
                        .as_str()
                        .expect("id")
                        .to_owned()
                })
                .collect()
        };
        pool.call_as(&session, "VM.set_name_label", vec![s(&vm), s("a")])
            .await
            .expect("set");
        let first = pool
            .call_as(&session, "event.next", vec![])
            .await
            .expect("events");
        assert_eq!(ids(first), ["1"]);
        pool.call_as(&session, "VM.set_name_label", vec![s(&vm), s("b")])
            .await
            .expect("set");
        let second = pool
            .call_as(&session, "event.next", vec![])
            .await
            .expect("events");
        assert_eq!(ids(second), ["2"]);
        pool.call_as(&session, "event.unregister", vec![strs(&["vm"])])
            .await
            .expect("unregistered");
    }

    /// Invalid, negative and huge timeouts mean a day; sensible ones are kept.
    #[test]
    fn timeouts_are_clamped_to_a_day() {
        assert_eq!(timeout(30.5), Duration::from_secs_f64(30.5));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e12] {
            assert_eq!(timeout(bad), MAX_TIMEOUT, "{bad}");
        }
    }
}
