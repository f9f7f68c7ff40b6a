//! Rows and records: the record a row shows to clients, the fields of a new row, fresh refs and
//! uuids, and the refs a value points at.

use std::collections::BTreeMap;

use api_spec::coerce;
use api_spec::model::{Class, Field};
use api_spec::{NULL_REF, Ty, Value, api, errors};
use db_schema::{Db, Precondition, Row};

use crate::error::Error;

/// A fresh ref, `OpaqueRef:<uuid v4>`.
pub(crate) fn new_ref() -> String {
    format!("OpaqueRef:{}", uuid::Uuid::new_v4())
}

/// A fresh uuid.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The value a field takes when nothing else is given: its declared default, else its type's
/// zero.
pub(crate) fn default_value(field: &Field) -> Value {
    field
        .default
        .map(|lit| lit.to_value())
        .unwrap_or_else(|| coerce::zero(&field.ty))
}

/// The value of `field` in `row`; the default when the row predates the field.
pub(crate) fn field_value(row: &Row, field: &Field) -> Value {
    row.get(field.name)
        .cloned()
        .unwrap_or_else(|| default_value(field))
}

/// The record of a row as `get_record` and event snapshots show it: every declared field.
pub(crate) fn record(class: &Class, row: &Row) -> Value {
    Value::Struct(
        class
            .fields
            .iter()
            .map(|f| (f.name.to_owned(), field_value(row, f)))
            .collect(),
    )
}

/// Whether `field` of `class` is the many end of a relation, which the DB keeps in step and
/// nothing else writes.
pub(crate) fn is_many_end(class: &str, field: &str) -> bool {
    api()
        .relations
        .iter()
        .any(|r| r.many_class == class && r.many_field == field)
}

/// The fields of a new row of `class`: those of `given` that the class declares, defaults for
/// the others. The many ends of relations are left to the DB.
pub(crate) fn new_row(
    class: &Class,
    mut given: BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    class
        .fields
        .iter()
        .filter(|f| !is_many_end(class.name, f.name))
        .map(|f| {
            let value = given.remove(f.name).unwrap_or_else(|| default_value(f));
            (f.name.to_owned(), value)
        })
        .collect()
}

/// The live row `r` of `class`, or `HANDLE_INVALID`.
pub(crate) fn row<'a>(db: &'a Db, class: &str, r: &str) -> Result<&'a Row, Error> {
    db.get(class, r)
        .ok_or_else(|| errors::handle_invalid(class, r).into())
}

/// Every non-null ref in `value` (of type `ty`) to a class that has rows, with that class.
pub(crate) fn refs_in(ty: &Ty, value: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    collect_refs(ty, value, &mut out);
    out
}

fn collect_refs(ty: &Ty, value: &Value, out: &mut Vec<(&'static str, String)>) {
    match (ty, value) {
        (Ty::Ref(class), Value::String(r)) => {
            let has_rows = api().class(class).is_some_and(|c| c.in_db);
            if has_rows && r != NULL_REF && !r.is_empty() {
                out.push((class, r.clone()));
            }
        }
        (Ty::Option(inner), v) => collect_refs(inner, v, out),
        (Ty::Set(item), Value::Array(items)) => {
            for v in items {
                collect_refs(item, v, out);
            }
        }
        (Ty::Map(key, val), Value::Struct(pairs)) => {
            for (k, v) in pairs {
                collect_refs(key, &Value::String(k.clone()), out);
                collect_refs(val, v, out);
            }
        }
        _ => {}
    }
}

/// Checks that every ref in `value` names a live row, and returns the preconditions that keep
/// it so until the Txn is applied. A dangling ref is `HANDLE_INVALID [class; ref]`.
pub(crate) fn check_refs(db: &Db, ty: &Ty, value: &Value) -> Result<Vec<Precondition>, Error> {
    refs_in(ty, value)
        .into_iter()
        .map(|(class, r)| {
            row(db, class, &r)?;
            Ok(Precondition::Exists {
                class: class.to_owned(),
                r#ref: r,
            })
        })
        .collect()
}

/// `Exists` for `r` of `class`.
pub(crate) fn exists(class: &str, r: &str) -> Precondition {
    Precondition::Exists {
        class: class.to_owned(),
        r#ref: r.to_owned(),
    }
}

/// The class named `name`, which the caller knows is declared.
pub(crate) fn class(name: &'static str) -> Result<&'static Class, Error> {
    api().class(name).ok_or(Error::Undeclared { class: name })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refs hidden in sets and map values are found; null refs are not.
    #[test]
    fn refs_are_found_in_sets_and_maps_but_not_null() {
        static REF_TY: Ty = Ty::Ref("VM");
        static STR_TY: Ty = Ty::String;
        let set = Value::Array(vec![Value::str("OpaqueRef:a"), Value::str(NULL_REF)]);
        assert_eq!(
            refs_in(&Ty::Set(&REF_TY), &set),
            vec![("VM", "OpaqueRef:a".to_owned())]
        );
        let map = Value::Struct([("k".to_owned(), Value::str("OpaqueRef:b"))].into());
        assert_eq!(
            refs_in(&Ty::Map(&STR_TY, &REF_TY), &map),
            vec![("VM", "OpaqueRef:b".to_owned())]
        );
    }

    /// Fresh refs have xapi's shape and never repeat.
    #[test]
    fn new_refs_are_opaque_refs_and_unique() {
        let (a, b) = (new_ref(), new_ref());
        assert!(a.starts_with("OpaqueRef:") && a.len() == "OpaqueRef:".len() + 36);
        assert_ne!(a, b);
    }
}
