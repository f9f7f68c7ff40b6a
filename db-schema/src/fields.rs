//! Ops that write one field of a live row: `Set`, and the map and set ops.
//!
//! A field is written only if its class declares it. The many end of a relation is refused
//! (`FieldDerived`): `relations.rs` alone writes it.

use std::collections::BTreeMap;

use api_spec::coerce::zero;
use api_spec::model::Class;
use api_spec::{Ty, Value};

use crate::apply::Writer;
use crate::error::ApplyError;
use crate::relations;

impl Writer<'_> {
    /// Adds `key` to a map field; fails with `MapDuplicateKey` if it is there already.
    pub(crate) fn map_add(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), ApplyError> {
        let map = self.map_mut(class, r, field)?;
        if map.contains_key(key) {
            return Err(ApplyError::MapDuplicateKey {
                class: class.to_owned(),
                r#ref: r.to_owned(),
                field: field.to_owned(),
                key: key.to_owned(),
            });
        }
        map.insert(key.to_owned(), value.clone());
        Ok(())
    }

    /// Sets `key` of a map field, whether or not it is there.
    pub(crate) fn map_put(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), ApplyError> {
        self.map_mut(class, r, field)?
            .insert(key.to_owned(), value.clone());
        Ok(())
    }

    /// Removes `key` from a map field, if it is there.
    pub(crate) fn map_remove(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        key: &str,
    ) -> Result<(), ApplyError> {
        self.map_mut(class, r, field)?.remove(key);
        Ok(())
    }

    /// Adds `value` to a set field unless it is there already.
    pub(crate) fn set_add(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), ApplyError> {
        let set = self.set_mut(class, r, field)?;
        if !set.contains(value) {
            set.push(value.clone());
        }
        Ok(())
    }

    /// Removes `value` from a set field, if it is there.
    pub(crate) fn set_remove(
        &mut self,
        class: &str,
        r: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), ApplyError> {
        self.set_mut(class, r, field)?.retain(|v| v != value);
        Ok(())
    }

    /// Replaces a field; a one end of a relation moves the row between the many ends.
    pub(crate) fn set(
        &mut self,
        class_name: &str,
        r: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), ApplyError> {
        let class = self.class(class_name)?;
        if class.field(field).is_none() {
            return Err(ApplyError::FieldUnknown {
                class: class.name.to_owned(),
                field: field.to_owned(),
            });
        }
        self.check_derived(class, field)?;
        self.edit(class.name, r)?;
        if field == "uuid" {
            self.check_uuid_free(class.name, r, value.as_str())?;
        }
        let old = self
            .table_mut(class.name)
            .set_field(r, field, value.clone());
        let old_target = old.as_ref().and_then(Value::as_str).unwrap_or("");
        let new_target = value.as_str().unwrap_or("");
        if old_target != new_target {
            for relation in relations::one_ends(class.name).filter(|rel| rel.one_field == field) {
                self.unlink(relation, old_target, r);
                self.link(relation, new_target, r);
            }
        }
        Ok(())
    }

    /// Fails if `field` of `class` is the many end of a relation.
    fn check_derived(&self, class: &Class, field: &str) -> Result<(), ApplyError> {
        match relations::many_end(class.name, field) {
            Some(_) => Err(ApplyError::FieldDerived {
                class: class.name.to_owned(),
                field: field.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The map field `field` of the live row, to change in place.
    fn map_mut(
        &mut self,
        class_name: &str,
        r: &str,
        field: &str,
    ) -> Result<&mut BTreeMap<String, Value>, ApplyError> {
        let value = self.collection_mut(class_name, r, field, |ty| matches!(ty, Ty::Map(..)))?;
        match value {
            Value::Struct(map) => Ok(map),
            _ => Err(not_collection(class_name, field)),
        }
    }

    /// The set field `field` of the live row, to change in place.
    fn set_mut(
        &mut self,
        class_name: &str,
        r: &str,
        field: &str,
    ) -> Result<&mut Vec<Value>, ApplyError> {
        let class = self.class(class_name)?;
        self.check_derived(class, field)?;
        let value = self.collection_mut(class_name, r, field, |ty| matches!(ty, Ty::Set(_)))?;
        match value {
            Value::Array(items) => Ok(items),
            _ => Err(not_collection(class_name, field)),
        }
    }

    /// The value of a field declared with a type that `is_kind` accepts; a row that lacks the
    /// field gets the type's zero value first.
    fn collection_mut(
        &mut self,
        class_name: &str,
        r: &str,
        field: &str,
        is_kind: fn(&Ty) -> bool,
    ) -> Result<&mut Value, ApplyError> {
        let class = self.class(class_name)?;
        let declared = class.field(field).ok_or_else(|| ApplyError::FieldUnknown {
            class: class.name.to_owned(),
            field: field.to_owned(),
        })?;
        if !is_kind(&declared.ty) {
            return Err(not_collection(class_name, field));
        }
        let row = self.edit(class.name, r)?;
        Ok(row
            .fields
            .entry(field.to_owned())
            .or_insert_with(|| zero(&declared.ty)))
    }
}

fn not_collection(class: &str, field: &str) -> ApplyError {
    ApplyError::FieldNotCollection {
        class: class.to_owned(),
        field: field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use crate::apply::Applied;
    use crate::error::ApplyError;
    use crate::testing::{apply_next, db_after, refs, set, vm};
    use crate::txn::Op;

    fn map_op(kind: &str, r: &str, field: &str, key: &str) -> Op {
        let (class, r#ref, field, key) = (
            "VM".to_owned(),
            r.to_owned(),
            field.to_owned(),
            key.to_owned(),
        );
        let value = Value::str("v");
        match kind {
            "add" => Op::MapAdd {
                class,
                r#ref,
                field,
                key,
                value,
            },
            "put" => Op::MapPut {
                class,
                r#ref,
                field,
                key,
                value,
            },
            _ => Op::MapRemove {
                class,
                r#ref,
                field,
                key,
            },
        }
    }

    fn set_op(is_add: bool, class: &str, r: &str, field: &str, value: &str) -> Op {
        let (class, r#ref, field, value) = (
            class.to_owned(),
            r.to_owned(),
            field.to_owned(),
            Value::str(value),
        );
        if is_add {
            Op::SetAdd {
                class,
                r#ref,
                field,
                value,
            }
        } else {
            Op::SetRemove {
                class,
                r#ref,
                field,
                value,
            }
        }
    }

    /// Set replaces the field's value and stamps only that row.
    #[test]
    fn set_replaces_the_field_and_stamps_the_row() {
        let mut db = db_after([vm("a"), vm("b")]);
        let applied =
            apply_next(&mut db, set("VM", "a", "name_description", "web")).expect("applies");
        assert_eq!(
            applied,
            Applied {
                generation: 3,
                touched: vec![("VM".into(), "a".into())]
            }
        );
        let a = db.get("VM", "a").expect("live");
        assert_eq!(
            (a.str("name_description"), a.created, a.modified),
            ("web", 1, 3)
        );
        assert_eq!(db.get("VM", "b").expect("live").modified, 2);
    }

    /// Ops on a missing row or an undeclared field fail with RowMissing or FieldUnknown.
    #[test]
    fn set_on_a_missing_row_or_field_fails() {
        let mut db = db_after([vm("a")]);
        let error = apply_next(&mut db, set("VM", "ghost", "name_label", "x")).expect_err("no row");
        assert!(matches!(error, ApplyError::RowMissing { .. }), "{error:?}");
        let error = apply_next(&mut db, set("VM", "a", "warp_factor", "x")).expect_err("no field");
        assert!(
            matches!(error, ApplyError::FieldUnknown { .. }),
            "{error:?}"
        );
    }

    /// The many end of a relation is written by the DB alone: Set, SetAdd and SetRemove on it fail.
    #[test]
    fn writes_to_a_many_end_fail_with_field_derived() {
        let mut db = db_after([vm("a")]);
        let ops = [
            set("VM", "a", "VBDs", Value::Array(vec![Value::str("x")])),
            set_op(true, "VM", "a", "VBDs", "x"),
            set_op(false, "VM", "a", "VBDs", "x"),
        ];
        for op in ops {
            let error = apply_next(&mut db, op).expect_err("derived");
            assert_eq!(
                error,
                ApplyError::FieldDerived {
                    class: "VM".into(),
                    field: "VBDs".into()
                }
            );
        }
    }

    /// MapAdd refuses a key that is there; MapPut overwrites; MapRemove of a missing key is fine.
    #[test]
    fn map_ops_add_put_and_remove_keys() {
        let mut db = db_after([vm("a"), map_op("add", "a", "other_config", "k")]);
        let error = apply_next(&mut db, map_op("add", "a", "other_config", "k")).expect_err("dup");
        assert!(
            matches!(error, ApplyError::MapDuplicateKey { ref key, .. } if key == "k"),
            "{error:?}"
        );
        apply_next(&mut db, map_op("put", "a", "other_config", "k")).expect("put over");
        apply_next(&mut db, map_op("put", "a", "other_config", "j")).expect("put new");
        apply_next(&mut db, map_op("remove", "a", "other_config", "k")).expect("remove");
        apply_next(&mut db, map_op("remove", "a", "other_config", "absent"))
            .expect("remove missing");
        let map = db
            .get("VM", "a")
            .and_then(|r| r.get("other_config"))
            .and_then(Value::as_struct);
        assert_eq!(
            map.map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["j".to_owned()])
        );
    }

    /// SetAdd never adds a value twice; SetRemove of a missing value is fine.
    #[test]
    fn set_ops_add_once_and_remove_quietly() {
        let mut db = db_after([vm("a")]);
        for op in [
            set_op(true, "VM", "a", "tags", "x"),
            set_op(true, "VM", "a", "tags", "y"),
            set_op(true, "VM", "a", "tags", "x"),
            set_op(false, "VM", "a", "tags", "y"),
            set_op(false, "VM", "a", "tags", "absent"),
        ] {
            apply_next(&mut db, op).expect("applies");
        }
        assert_eq!(refs(&db, "VM", "a", "tags"), vec!["x"]);
    }

    /// Map and set ops on a field of another type fail with FieldNotCollection.
    #[test]
    fn collection_ops_on_other_fields_fail_with_field_not_collection() {
        let mut db = db_after([vm("a")]);
        for op in [
            map_op("put", "a", "name_label", "k"),
            map_op("add", "a", "tags", "k"),
            set_op(true, "VM", "a", "other_config", "x"),
        ] {
            let error = apply_next(&mut db, op).expect_err("not a collection");
            assert!(
                matches!(error, ApplyError::FieldNotCollection { .. }),
                "{error:?}"
            );
        }
    }
}
