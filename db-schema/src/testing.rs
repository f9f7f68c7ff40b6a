//! Helpers for this crate's tests: ops, Txns and DBs written in a line, over the real classes.

use api_spec::Value;

use crate::apply::Applied;
use crate::db::Db;
use crate::error::ApplyError;
use crate::txn::{Op, Txn};

pub(crate) fn create(class: &str, r: &str, fields: &[(&str, Value)]) -> Op {
    Op::Create {
        class: class.to_owned(),
        r#ref: r.to_owned(),
        fields: fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    }
}

/// A VM named `r`, with uuid `uuid-<r>`.
pub(crate) fn vm(r: &str) -> Op {
    create(
        "VM",
        r,
        &[
            ("uuid", Value::str(format!("uuid-{r}"))),
            ("name_label", Value::str(r)),
        ],
    )
}

/// A VBD of VM `vm`, with uuid `uuid-<r>`.
pub(crate) fn vbd(r: &str, vm: &str) -> Op {
    create(
        "VBD",
        r,
        &[
            ("uuid", Value::str(format!("uuid-{r}"))),
            ("VM", Value::str(vm)),
        ],
    )
}

pub(crate) fn set(class: &str, r: &str, field: &str, value: impl Into<Value>) -> Op {
    Op::Set {
        class: class.to_owned(),
        r#ref: r.to_owned(),
        field: field.to_owned(),
        value: value.into(),
    }
}

pub(crate) fn destroy(class: &str, r: &str) -> Op {
    Op::Destroy {
        class: class.to_owned(),
        r#ref: r.to_owned(),
    }
}

pub(crate) fn txn(ops: impl IntoIterator<Item = Op>) -> Txn {
    Txn {
        preconditions: Vec::new(),
        ops: ops.into_iter().collect(),
    }
}

/// A DB after applying each op as its own Txn, at indexes 1, 2, … in term 1.
pub(crate) fn db_after(ops: impl IntoIterator<Item = Op>) -> Db {
    let mut db = Db::new();
    for op in ops {
        let index = db.applied_index() + 1;
        db.apply(index, 1, &txn([op]))
            .expect("the setup of a test applies");
    }
    db
}

/// Applies `op` alone as the next entry, in term 1.
pub(crate) fn apply_next(db: &mut Db, op: Op) -> Result<Applied, ApplyError> {
    let index = db.applied_index() + 1;
    db.apply(index, 1, &txn([op]))
}

/// The refs in set field `field` of row `r`.
pub(crate) fn refs<'a>(db: &'a Db, class: &str, r: &str, field: &str) -> Vec<&'a str> {
    db.get(class, r)
        .and_then(|row| row.get(field))
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
