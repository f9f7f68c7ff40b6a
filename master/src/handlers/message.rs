//! The custom messages of `message`: alerts about one object. oxapi keeps them in the pool DB
//! (xapi keeps them in files on the master), so they replicate and come through `event.from`
//! like any row; the accessors named as generic messages are answered generically.

use std::collections::BTreeMap;

use api_spec::{Value, errors};
use db_schema::{Db, Op, Txn};

use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::{self, exists};
use crate::error::Error;

/// The class whose uuid a message's `cls` names, where oxapi declares that class.
fn class_of(cls: &str) -> Option<&'static str> {
    Some(match cls {
        "VM" => "VM",
        "Host" => "host",
        "SR" => "SR",
        "Pool" => "pool",
        "VDI" => "VDI",
        _ => return None,
    })
}

/// Creates a message about the object of class `cls` with uuid `obj_uuid`; an object of a
/// class oxapi declares must exist (`UUID_INVALID [cls; uuid]`, as xapi checks).
pub(super) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let cls = args.str("cls")?;
    let obj_uuid = args.str("obj_uuid")?;
    let class = record::class("message")?;
    let fields = BTreeMap::from([
        ("uuid".to_owned(), Value::String(record::new_uuid())),
        ("name".to_owned(), args.get("name")?.clone()),
        ("priority".to_owned(), args.get("priority")?.clone()),
        ("cls".to_owned(), Value::str(cls)),
        ("obj_uuid".to_owned(), Value::str(obj_uuid)),
        (
            "timestamp".to_owned(),
            Value::DateTime(api_spec::datetime::format_unix(ctx.now())),
        ),
        ("body".to_owned(), args.get("body")?.clone()),
    ]);
    let r = record::new_ref();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let mut preconditions = Vec::new();
            if let Some(target) = class_of(cls) {
                let object = db
                    .ref_by_uuid(target, obj_uuid)
                    .ok_or_else(|| errors::uuid_invalid(cls, obj_uuid))?;
                preconditions.push(exists(target, object));
            }
            let txn = Txn {
                preconditions,
                ops: vec![Op::Create {
                    class: class.name.to_owned(),
                    r#ref: r.clone(),
                    fields: record::new_row(class, fields.clone()),
                }],
            };
            Ok((txn, r.clone()))
        })
        .await?;
    Ok(Value::String(r))
}

/// The records of the messages that `keep` selects.
fn messages(db: &Db, keep: impl Fn(&db_schema::Row) -> bool) -> Result<Value, Error> {
    let class = record::class("message")?;
    Ok(Value::Struct(
        db.rows(class.name)
            .filter(|(_, row)| keep(row))
            .map(|(r, row)| (r.to_owned(), record::record(class, row)))
            .collect(),
    ))
}

/// Whether a message's timestamp is after `since` (both in xapi's fixed-width form, so their
/// text orders as their instants do).
fn is_after(row: &db_schema::Row, since: &str) -> bool {
    row.str("timestamp") > since
}

/// The messages about one object created after `since`.
pub(super) async fn get(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (cls, obj_uuid, since) = (args.str("cls")?, args.str("obj_uuid")?, args.str("since")?);
    messages(&ctx.db(), |row| {
        row.str("cls") == cls && row.str("obj_uuid") == obj_uuid && is_after(row, since)
    })
}

/// Every message created after `since`.
pub(super) async fn get_since(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let since = args.str("since")?;
    messages(&ctx.db(), |row| is_after(row, since))
}

/// Destroys several messages at once; an unknown one is `HANDLE_INVALID` and nothing goes.
pub(super) async fn destroy_many(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let refs = args.strings("messages")?;
    ctx.master
        .decide(|db| {
            let mut txn = Txn::default();
            for r in &refs {
                record::row(db, "message", r)?;
                txn.preconditions.push(exists("message", r));
                txn.ops.push(Op::Destroy {
                    class: "message".to_owned(),
                    r#ref: r.clone(),
                });
            }
            Ok((txn, ()))
        })
        .await?;
    Ok(void())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{TestPool, s};

    async fn new_message(pool: &TestPool, session: &str, body: &str) -> String {
        let host_uuid = pool.field("host", &pool.host, "uuid").expect("a uuid");
        let reply = pool
            .call_as(
                session,
                "message.create",
                vec![s("ALERT"), Value::Int(3), s("Host"), host_uuid, s(body)],
            )
            .await;
        reply.expect("created").as_str().expect("a ref").to_owned()
    }

    /// A message about the host is listed by the generic accessors and by `get`/`get_since`.
    #[tokio::test]
    async fn created_message_is_found_by_every_accessor() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let m = new_message(&pool, &session, "disk almost full").await;
        let all = pool
            .call_as(&session, "message.get_all_records", vec![])
            .await
            .expect("records");
        let record = &all.as_struct().expect("a map")[&m];
        assert_eq!(
            record.as_struct().expect("a record")["body"],
            s("disk almost full")
        );
        let host_uuid = pool.field("host", &pool.host, "uuid").expect("a uuid");
        let about_host = pool
            .call_as(
                &session,
                "message.get",
                vec![s("Host"), host_uuid, s(api_spec::NEVER)],
            )
            .await
            .expect("records");
        assert!(about_host.as_struct().expect("a map").contains_key(&m));
        let since = pool
            .call_as(&session, "message.get_since", vec![s("29990101T00:00:00Z")])
            .await
            .expect("records");
        assert_eq!(since, Value::Struct(BTreeMap::new()));
    }

    /// A message about an object that does not exist is `UUID_INVALID [cls; uuid]`.
    #[tokio::test]
    async fn message_about_a_missing_object_is_uuid_invalid() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = pool
            .call_as(
                &session,
                "message.create",
                vec![s("ALERT"), Value::Int(1), s("VM"), s("nope"), s("body")],
            )
            .await;
        assert_eq!(reply, Err(errors::uuid_invalid("VM", "nope")));
    }

    /// `destroy_many` removes every message named, or none when one is unknown.
    #[tokio::test]
    async fn destroy_many_is_all_or_nothing() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let a = new_message(&pool, &session, "a").await;
        let b = new_message(&pool, &session, "b").await;
        let reply = pool
            .call_as(
                &session,
                "message.destroy_many",
                vec![Value::Array(vec![s(&a), s("OpaqueRef:nope")])],
            )
            .await;
        assert_eq!(
            reply,
            Err(errors::handle_invalid("message", "OpaqueRef:nope"))
        );
        assert_eq!(pool.refs("message").len(), 2);
        pool.call_as(
            &session,
            "message.destroy_many",
            vec![Value::Array(vec![s(&a), s(&b)])],
        )
        .await
        .expect("destroyed");
        assert!(pool.refs("message").is_empty());
    }
}
