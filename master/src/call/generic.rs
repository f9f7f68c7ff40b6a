//! The implicit messages of every class (`get_record`, `get_by_uuid`, `get_X`, `set_X`,
//! `add_to_X`, `create`, `destroy`, …), driven by `api_spec::implicit::Implicit`: nothing here is
//! written per class. This file answers the reads; `generic/write.rs` the writes, and its Txn
//! builders serve the handlers that extend a generic message (`VM.create`).

mod where_expr;
mod write;

use api_spec::implicit::Implicit;
use api_spec::model::Class;
use api_spec::{Value, errors};
use db_schema::{Db, Row};

use crate::call::ctx::{Args, Ctx};
use crate::db::record::{self, field_value, row};
use crate::error::Error;

pub(crate) use write::{create_txn, created_fields};

/// Answers an implicit message.
pub(crate) async fn handle(ctx: Ctx, kind: Implicit, args: Args) -> Result<Value, Error> {
    let class = args.class();
    match kind {
        Implicit::GetRecord => {
            let db = ctx.db();
            Ok(record::record(
                class,
                row(&db, class.name, args.str("self")?)?,
            ))
        }
        Implicit::GetByUuid => get_by_uuid(&ctx.db(), class, args.str("uuid")?),
        Implicit::GetByNameLabel => Ok(refs(
            ctx.db().refs_by_name_label(class.name, args.str("label")?),
        )),
        Implicit::GetAll => Ok(refs(ctx.db().rows(class.name).map(|(r, _)| r))),
        Implicit::GetAllRecords => Ok(records(&ctx.db(), class, |_| true)),
        Implicit::GetAllRecordsWhere => {
            let text = args.str("expr")?;
            let expr = parse_where(class, text)?;
            let db = ctx.db();
            Ok(records(&db, class, |row: &Row| {
                expr.eval(&|f| field_text(class, row, f))
            }))
        }
        Implicit::Get(field) => {
            let db = ctx.db();
            Ok(field_value(row(&db, class.name, args.str("self")?)?, field))
        }
        Implicit::Create => write::create(ctx, class, args).await,
        Implicit::Destroy => write::destroy(ctx, class, args).await,
        Implicit::Set(field) => write::set(ctx, class, field, args).await,
        Implicit::AddToMap(field) => write::add_to_map(ctx, class, field, args).await,
        Implicit::RemoveFromMap(field) => write::remove_from_map(ctx, class, field, args).await,
        Implicit::AddToSet(field) => write::add_or_remove(ctx, class, field, args, true).await,
        Implicit::RemoveFromSet(field) => {
            write::add_or_remove(ctx, class, field, args, false).await
        }
    }
}

fn refs<'a>(refs: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(refs.into_iter().map(Value::str).collect())
}

fn records(db: &Db, class: &Class, keep: impl Fn(&Row) -> bool) -> Value {
    Value::Struct(
        db.rows(class.name)
            .filter(|(_, row)| keep(row))
            .map(|(r, row)| (r.to_owned(), record::record(class, row)))
            .collect(),
    )
}

fn get_by_uuid(db: &Db, class: &Class, uuid: &str) -> Result<Value, Error> {
    db.ref_by_uuid(class.name, uuid)
        .map(Value::str)
        .ok_or_else(|| errors::uuid_invalid(class.name, uuid).into())
}

/// Parses a `_where` expression; bad syntax and unknown fields are `INVALID_VALUE [expr; why]`
/// (xapi answers a parse failure that way).
fn parse_where(class: &Class, text: &str) -> Result<where_expr::Expr, Error> {
    let expr = where_expr::parse(text).map_err(|e| errors::invalid_value(text, e))?;
    if let Some(unknown) = expr.fields().into_iter().find(|f| class.field(f).is_none()) {
        return Err(
            errors::invalid_value(text, format!("no field {unknown} in {}", class.name)).into(),
        );
    }
    Ok(expr)
}

/// The text of a field as xapi's DB stores it, which `_where` comparisons read.
fn field_text(class: &Class, row: &Row, name: &str) -> String {
    class
        .field(name)
        .map(|f| value_text(&field_value(row, f)))
        .unwrap_or_default()
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| format!("'{}'", value_text(v)))
                .collect();
            format!("({})", items.join(" "))
        }
        Value::Struct(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("('{k}' '{}')", value_text(v)))
                .collect();
            format!("({})", pairs.join(" "))
        }
        Value::Nil => String::new(),
        scalar => scalar.to_key(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::testing::{TestPool, s};

    async fn pool_and_session() -> (TestPool, String) {
        let pool = TestPool::new();
        let session = pool.login().await;
        (pool, session)
    }

    /// The default SR, a row with a uuid and a name.
    fn sr(pool: &TestPool) -> String {
        pool.refs("SR").remove(0)
    }

    /// `get_record` of an unknown ref is `HANDLE_INVALID [class; ref]`; of a known one, the
    /// full record.
    #[tokio::test]
    async fn get_record_shows_every_field_or_handle_invalid() {
        let (pool, session) = pool_and_session().await;
        let reply = pool
            .call_as(&session, "SR.get_record", vec![s("OpaqueRef:nope")])
            .await;
        assert_eq!(reply, Err(errors::handle_invalid("SR", "OpaqueRef:nope")));
        let record = pool
            .call_as(&session, "SR.get_record", vec![s(&sr(&pool))])
            .await;
        let record = record.expect("a record");
        let fields = record.as_struct().expect("a struct");
        assert_eq!(
            fields.len(),
            api_spec::api().class("SR").expect("SR").fields.len()
        );
        assert_eq!(fields["name_label"], s("Local storage"));
    }

    /// `get_by_uuid` finds a row; an unknown uuid is `UUID_INVALID [class; uuid]`.
    #[tokio::test]
    async fn get_by_uuid_finds_the_row_or_is_uuid_invalid() {
        let (pool, session) = pool_and_session().await;
        let sr = sr(&pool);
        let uuid = pool.field("SR", &sr, "uuid").expect("a uuid");
        let reply = pool.call_as(&session, "SR.get_by_uuid", vec![uuid]).await;
        assert_eq!(reply, Ok(s(&sr)));
        let reply = pool
            .call_as(&session, "SR.get_by_uuid", vec![s("nope")])
            .await;
        assert_eq!(reply, Err(errors::uuid_invalid("SR", "nope")));
    }

    /// `get_by_name_label`, `get_all` and `get_all_records` agree with the DB.
    #[tokio::test]
    async fn get_all_forms_and_get_by_name_label_list_the_rows() {
        let (pool, session) = pool_and_session().await;
        let sr = sr(&pool);
        let reply = pool
            .call_as(&session, "SR.get_by_name_label", vec![s("Local storage")])
            .await;
        assert_eq!(reply, Ok(Value::Array(vec![s(&sr)])));
        let all = pool
            .call_as(&session, "VM.get_all", vec![])
            .await
            .expect("refs");
        let records = pool
            .call_as(&session, "VM.get_all_records", vec![])
            .await
            .expect("records");
        let mut from_records: Vec<&String> = records.as_struct().expect("a map").keys().collect();
        let mut from_all: Vec<&str> = all
            .as_array()
            .expect("refs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        from_records.sort();
        from_all.sort();
        assert_eq!(from_records, from_all);
        assert_eq!(from_all.len(), pool.refs("VM").len());
    }

    /// `get_all_records_where` selects rows by field text, with either quote style.
    #[tokio::test]
    async fn get_all_where_selects_matching_rows() {
        let (pool, session) = pool_and_session().await;
        let expr =
            r#"field "is_control_domain"="true" or field 'name_label'='Other install media'"#;
        let reply = pool
            .call_as(&session, "VM.get_all_records_where", vec![s(expr)])
            .await;
        let records = reply.expect("records");
        let mut names: Vec<&str> = records
            .as_struct()
            .expect("a map")
            .values()
            .map(|r| {
                r.as_struct().expect("a record")["name_label"]
                    .as_str()
                    .expect("a name")
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["Control domain on host: host1", "Other install media"]
        );
        let reply = pool
            .call_as(&session, "VM.get_all_records_where", vec![s("false")])
            .await;
        assert_eq!(reply, Ok(Value::Struct(BTreeMap::new())));
    }

    /// A malformed `_where` expression, or one naming an unknown field, is `INVALID_VALUE`.
    #[tokio::test]
    async fn bad_where_expressions_are_invalid_value() {
        let (pool, session) = pool_and_session().await;
        for expr in [r#"field "name_label"="#, r#"field "colour"="red""#] {
            let reply = pool
                .call_as(&session, "VM.get_all_records_where", vec![s(expr)])
                .await;
            let error = reply.expect_err("refused");
            assert_eq!(error.code, api_spec::errors::INVALID_VALUE);
            assert_eq!(error.params[0], expr);
        }
    }

    /// Field getters read one field; the session class has no `get_all`.
    #[tokio::test]
    async fn getters_read_fields_and_sessions_cannot_be_listed() {
        let (pool, session) = pool_and_session().await;
        let reply = pool
            .call_as(&session, "session.get_this_host", vec![s(&session)])
            .await;
        assert_eq!(reply, Ok(s(&pool.host)));
        let reply = pool.call_as(&session, "session.get_all", vec![]).await;
        assert_eq!(
            reply,
            Err(errors::message_method_unknown("session.get_all"))
        );
    }
}
