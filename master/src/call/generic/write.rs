//! The generic writes: setters, map and set updates, constructors and destructors, each a
//! Txn whose preconditions state what the decision read.

use std::collections::BTreeMap;

use api_spec::Qualifier;
use api_spec::model::{Class, Field};
use api_spec::{Ty, Value, errors};
use db_schema::{Db, Op, Precondition, Txn};

use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::{self, check_refs, exists, field_value, row};
use crate::error::Error;

/// `create`: a new row from the constructor record; answers its ref.
pub(super) async fn create(ctx: Ctx, class: &Class, args: Args) -> Result<Value, Error> {
    let given = args.fields("args")?.clone();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let (r, txn) = create_txn(db, class, given.clone(), BTreeMap::new())?;
            Ok((txn, r))
        })
        .await?;
    Ok(Value::String(r))
}

/// `destroy`: removes the row.
pub(super) async fn destroy(ctx: Ctx, class: &Class, args: Args) -> Result<Value, Error> {
    let r = args.str("self")?;
    write(&ctx, |db| {
        row(db, class.name, r)?;
        Ok(one_op(class, r, |class, r| Op::Destroy { class, r#ref: r }))
    })
    .await
}

/// `set_X`.
pub(super) async fn set(
    ctx: Ctx,
    class: &Class,
    field: &Field,
    args: Args,
) -> Result<Value, Error> {
    let (r, value) = (args.str("self")?, args.get("value")?);
    write(&ctx, |db| set_txn(db, class, r, field, value.clone())).await
}

/// `add_to_X` of a map field.
pub(super) async fn add_to_map(
    ctx: Ctx,
    class: &Class,
    field: &Field,
    args: Args,
) -> Result<Value, Error> {
    let (r, key, value) = (args.str("self")?, args.get("key")?, args.get("value")?);
    write(&ctx, |db| {
        map_add_txn(db, class, r, field, key.to_key(), value.clone())
    })
    .await
}

/// `remove_from_X` of a map field: a missing key is not an error.
pub(super) async fn remove_from_map(
    ctx: Ctx,
    class: &Class,
    field: &Field,
    args: Args,
) -> Result<Value, Error> {
    let (r, key) = (args.str("self")?, args.get("key")?.to_key());
    write(&ctx, |db| {
        row(db, class.name, r)?;
        Ok(one_op(class, r, |class, r| Op::MapRemove {
            class,
            r#ref: r,
            field: field.name.to_owned(),
            key: key.clone(),
        }))
    })
    .await
}

/// `add_X` (`is_add`) or `remove_X` of a set field: adding a value there already, or removing
/// one that is not, changes nothing.
pub(super) async fn add_or_remove(
    ctx: Ctx,
    class: &Class,
    field: &Field,
    args: Args,
    is_add: bool,
) -> Result<Value, Error> {
    let (r, value) = (args.str("self")?, args.get("value")?);
    write(&ctx, |db| {
        row(db, class.name, r)?;
        let (class_name, r, field_name) =
            (class.name.to_owned(), r.to_owned(), field.name.to_owned());
        let value = value.clone();
        let op = if is_add {
            Op::SetAdd {
                class: class_name,
                r#ref: r.clone(),
                field: field_name,
                value: value.clone(),
            }
        } else {
            Op::SetRemove {
                class: class_name,
                r#ref: r.clone(),
                field: field_name,
                value: value.clone(),
            }
        };
        let mut txn = Txn {
            preconditions: vec![exists(class.name, &r)],
            ops: vec![op],
        };
        if is_add && let Ty::Set(item) = field.ty {
            txn.preconditions.extend(check_refs(db, item, &value)?);
        }
        Ok(txn)
    })
    .await
}

/// Commits a void write decided by `decide`.
async fn write(
    ctx: &Ctx,
    mut decide: impl FnMut(&Db) -> Result<Txn, Error>,
) -> Result<Value, Error> {
    ctx.master.decide(|db| Ok((decide(db)?, ()))).await?;
    Ok(void())
}

/// A Txn of one op on an existing row.
fn one_op(class: &Class, r: &str, op: impl FnOnce(String, String) -> Op) -> Txn {
    Txn {
        preconditions: vec![exists(class.name, r)],
        ops: vec![op(class.name.to_owned(), r.to_owned())],
    }
}

/// The Txn that creates a row of `class` from a constructor record, and its ref. RW and
/// StaticRO fields come from the record or their defaults (a missing one without default is
/// `FIELD_TYPE_ERROR [field]`); DynamicRO fields get `runtime`'s value or their default,
/// whatever the record says; the uuid is fresh; refs in the record must name live rows.
pub(crate) fn create_txn(
    db: &Db,
    class: &Class,
    mut given: BTreeMap<String, Value>,
    runtime: BTreeMap<String, Value>,
) -> Result<(String, Txn), Error> {
    let mut fields = BTreeMap::new();
    let mut preconditions = Vec::new();
    for field in class.fields {
        let value = match field.qualifier {
            Qualifier::DynamicRO => continue,
            Qualifier::RW | Qualifier::StaticRO => match given.remove(field.name) {
                Some(v) => v,
                None if field.default.is_some() => continue,
                None => return Err(errors::field_type_error(field.name).into()),
            },
        };
        preconditions.extend(check_refs(db, &field.ty, &value)?);
        fields.insert(field.name.to_owned(), value);
    }
    fields.extend(runtime);
    fields.insert("uuid".to_owned(), Value::String(record::new_uuid()));
    let r = record::new_ref();
    let txn = Txn {
        preconditions,
        ops: vec![Op::Create {
            class: class.name.to_owned(),
            r#ref: r.clone(),
            fields: record::new_row(class, fields),
        }],
    };
    Ok((r, txn))
}

/// The fields of the row a `create_txn` Txn creates, for a handler to check or complete.
pub(crate) fn created_fields(txn: &mut Txn) -> Option<&mut BTreeMap<String, Value>> {
    txn.ops.iter_mut().find_map(|op| match op {
        Op::Create { fields, .. } => Some(fields),
        _ => None,
    })
}

/// The Txn that sets one field of an existing row; refs must name live rows.
fn set_txn(db: &Db, class: &Class, r: &str, field: &Field, value: Value) -> Result<Txn, Error> {
    row(db, class.name, r)?;
    let mut txn = one_op(class, r, |class, r| Op::Set {
        class,
        r#ref: r,
        field: field.name.to_owned(),
        value: value.clone(),
    });
    txn.preconditions.extend(check_refs(db, &field.ty, &value)?);
    Ok(txn)
}

/// The Txn that adds a key to a map field: `MAP_DUPLICATE_KEY [class; field; uuid; key]` when
/// the key is there already. The key's absence is a precondition, so of two racing adds one
/// fails the same way.
fn map_add_txn(
    db: &Db,
    class: &Class,
    r: &str,
    field: &Field,
    key: String,
    value: Value,
) -> Result<Txn, Error> {
    let row = row(db, class.name, r)?;
    let map = field_value(row, field);
    if map.as_struct().is_some_and(|m| m.contains_key(&key)) {
        let uuid = row.str("uuid");
        return Err(errors::map_duplicate_key(class.name, field.name, uuid, &key).into());
    }
    let mut txn = one_op(class, r, |class, r| Op::MapPut {
        class,
        r#ref: r,
        field: field.name.to_owned(),
        key: key.clone(),
        value: value.clone(),
    });
    txn.preconditions.push(Precondition::MapKeyAbsent {
        class: class.name.to_owned(),
        r#ref: r.to_owned(),
        field: field.name.to_owned(),
        key,
    });
    if let Ty::Map(_, val_ty) = field.ty {
        txn.preconditions.extend(check_refs(db, val_ty, &value)?);
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {

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

    /// A setter writes an RW field; a setter pointing a ref at a missing row is
    /// `HANDLE_INVALID` and changes nothing.
    #[tokio::test]
    async fn setters_write_rw_fields_and_check_refs() {
        let (pool, session) = pool_and_session().await;
        let vm = pool.read().refs_by_name_label("VM", "Other install media")[0].to_owned();
        let reply = pool
            .call_as(
                &session,
                "VM.set_name_description",
                vec![s(&vm), s("described")],
            )
            .await;
        assert_eq!(reply, Ok(s("")));
        assert_eq!(
            pool.field("VM", &vm, "name_description"),
            Some(s("described"))
        );
        let reply = pool
            .call_as(
                &session,
                "VM.set_affinity",
                vec![s(&vm), s("OpaqueRef:gone")],
            )
            .await;
        assert_eq!(reply, Err(errors::handle_invalid("host", "OpaqueRef:gone")));
        assert_eq!(
            pool.field("VM", &vm, "affinity"),
            Some(s(api_spec::NULL_REF))
        );
        let reply = pool
            .call_as(&session, "VM.set_affinity", vec![s(&vm), s(&pool.host)])
            .await;
        assert_eq!(reply, Ok(s("")));
    }

    /// `add_to_` refuses a key that is there (`MAP_DUPLICATE_KEY [class; field; uuid; key]`);
    /// `remove_from_` of a missing key is a no-op.
    #[tokio::test]
    async fn map_adds_refuse_duplicates_and_removes_tolerate_missing_keys() {
        let (pool, session) = pool_and_session().await;
        let sr = sr(&pool);
        let uuid = pool.field("SR", &sr, "uuid").expect("uuid");
        let add = |key: &str| vec![s(&sr), s(key), s("v")];
        let reply = pool
            .call_as(&session, "SR.add_to_other_config", add("k"))
            .await;
        assert_eq!(reply, Ok(s("")));
        let reply = pool
            .call_as(&session, "SR.add_to_other_config", add("k"))
            .await;
        let uuid = uuid.as_str().expect("a uuid");
        assert_eq!(
            reply,
            Err(errors::map_duplicate_key("SR", "other_config", uuid, "k"))
        );
        for _ in 0..2 {
            let reply = pool
                .call_as(
                    &session,
                    "SR.remove_from_other_config",
                    vec![s(&sr), s("k")],
                )
                .await;
            assert_eq!(reply, Ok(s("")));
        }
        let other_config = pool.field("SR", &sr, "other_config").expect("other_config");
        assert!(!other_config.as_struct().expect("a map").contains_key("k"));
    }

    /// Of two racing adds of one key, the loser is re-decided on the winner's state and gets
    /// `MAP_DUPLICATE_KEY`; the winner's value stays.
    #[tokio::test]
    async fn racing_map_adds_cannot_both_win() {
        let (pool, session) = pool_and_session().await;
        let sr = sr(&pool);
        pool.db.race_next_proposal(Txn {
            preconditions: Vec::new(),
            ops: vec![Op::MapAdd {
                class: "SR".to_owned(),
                r#ref: sr.clone(),
                field: "other_config".to_owned(),
                key: "k".to_owned(),
                value: s("winner"),
            }],
        });
        let reply = pool
            .call_as(
                &session,
                "SR.add_to_other_config",
                vec![s(&sr), s("k"), s("loser")],
            )
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(api_spec::errors::MAP_DUPLICATE_KEY.to_owned())
        );
        let other_config = pool.field("SR", &sr, "other_config").expect("other_config");
        assert_eq!(other_config.as_struct().expect("a map")["k"], s("winner"));
    }

    /// `add_` and `remove_` change a set field.
    #[tokio::test]
    async fn set_adds_and_removes_change_the_set() {
        let (pool, session) = pool_and_session().await;
        let sr = sr(&pool);
        pool.call_as(&session, "SR.add_tags", vec![s(&sr), s("fast")])
            .await
            .expect("added");
        pool.call_as(&session, "SR.add_tags", vec![s(&sr), s("fast")])
            .await
            .expect("added");
        assert_eq!(
            pool.field("SR", &sr, "tags"),
            Some(Value::Array(vec![s("fast")]))
        );
        pool.call_as(&session, "SR.remove_tags", vec![s(&sr), s("fast")])
            .await
            .expect("removed");
        assert_eq!(pool.field("SR", &sr, "tags"), Some(Value::Array(vec![])));
    }

    /// `create` takes the RW and StaticRO fields (defaulted ones may be left out), ignores
    /// DynamicRO ones, makes a fresh uuid, and `destroy` removes the row.
    #[tokio::test]
    async fn create_fills_defaults_ignores_dynamic_fields_and_destroy_removes() {
        let (pool, session) = pool_and_session().await;
        let record = Value::Struct(
            [
                ("name_label".to_owned(), s("net2")),
                ("other_config".to_owned(), Value::Struct(BTreeMap::new())),
                ("uuid".to_owned(), s("chosen-by-client")),
                ("MTU".to_owned(), Value::Int(9000)),
            ]
            .into(),
        );
        let network = pool.call_as(&session, "network.create", vec![record]).await;
        let network = network
            .expect("created")
            .as_str()
            .expect("a ref")
            .to_owned();
        assert_eq!(
            pool.field("network", &network, "MTU"),
            Some(Value::Int(9000))
        );
        assert_eq!(
            pool.field("network", &network, "managed"),
            Some(Value::Bool(true))
        );
        assert_ne!(
            pool.field("network", &network, "uuid"),
            Some(s("chosen-by-client"))
        );
        let reply = pool
            .call_as(&session, "network.destroy", vec![s(&network)])
            .await;
        assert_eq!(reply, Ok(s("")));
        let reply = pool
            .call_as(&session, "network.destroy", vec![s(&network)])
            .await;
        assert_eq!(reply, Err(errors::handle_invalid("network", &network)));
    }

    /// `create` without a required field is `FIELD_TYPE_ERROR [field]`; with a ref to a
    /// missing row, `HANDLE_INVALID [class; ref]`.
    #[tokio::test]
    async fn create_checks_required_fields_and_refs() {
        let (pool, session) = pool_and_session().await;
        let reply = pool
            .call_as(
                &session,
                "network.create",
                vec![Value::Struct(BTreeMap::new())],
            )
            .await;
        assert_eq!(reply, Err(errors::field_type_error("other_config")));
        let record = Value::Struct(
            [
                ("host".to_owned(), s("OpaqueRef:gone")),
                ("SR".to_owned(), s(&sr(&pool))),
                ("device_config".to_owned(), Value::Struct(BTreeMap::new())),
            ]
            .into(),
        );
        let reply = pool.call_as(&session, "PBD.create", vec![record]).await;
        assert_eq!(reply, Err(errors::handle_invalid("host", "OpaqueRef:gone")));
    }
}
