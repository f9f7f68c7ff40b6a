//! Applying a `Txn`: preconditions first, then ops in order, all or nothing.
//!
//! Every op that names a row touches it: the row gets `modified = index` even when the op leaves
//! its fields as they were (removing a missing map key, `Touch`). Rows whose many end of a
//! relation changes are touched too, so `event.from` reports them.

use std::collections::BTreeMap;

use api_spec::Value;
use api_spec::coerce::zero;
use api_spec::model::Class;

use crate::db::{Db, Table};
use crate::error::ApplyError;
use crate::index::uuid_of;
use crate::relations;
use crate::row::{Row, Tombstone};
use crate::txn::{Op, Txn};
use crate::undo::Undo;

/// What an applied Txn did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The generation every touched row now carries: the Raft index of the Txn.
    pub generation: u64,
    /// Every row created, changed, touched or deleted, as (class, ref), including the many ends
    /// of relations that changed; each once, in the order the Txn first touched it.
    pub touched: Vec<(String, String)>,
}

impl Db {
    /// Applies the Txn committed at Raft `index` in `term`. On error nothing changes except the
    /// applied position, which moves to `index` either way: a refused Txn is still a committed
    /// log entry.
    pub fn apply(&mut self, index: u64, term: u64, txn: &Txn) -> Result<Applied, ApplyError> {
        debug_assert!(
            index > self.applied_index,
            "entries are applied in log order"
        );
        let outcome = self.apply_txn(index, txn);
        self.applied_index = index;
        self.applied_term = term;
        outcome
    }

    fn apply_txn(&mut self, index: u64, txn: &Txn) -> Result<Applied, ApplyError> {
        if let Some(failed) = txn.preconditions.iter().find(|p| !p.holds(self)) {
            return Err(ApplyError::PreconditionFailed {
                precondition: Box::new(failed.clone()),
            });
        }
        let mut writer = Writer {
            db: self,
            index,
            undo: Undo::default(),
        };
        for op in &txn.ops {
            if let Err(error) = writer.op(op) {
                writer.undo.roll_back(writer.db);
                return Err(error);
            }
        }
        Ok(Applied {
            generation: index,
            touched: writer.undo.touched(),
        })
    }
}

/// Applies the ops of one Txn to the DB, saving what it overwrites in the undo log first.
pub(crate) struct Writer<'a> {
    db: &'a mut Db,
    /// The generation this Txn stamps on every row it touches.
    index: u64,
    undo: Undo,
}

impl Writer<'_> {
    fn op(&mut self, op: &Op) -> Result<(), ApplyError> {
        match op {
            Op::Create {
                class,
                r#ref,
                fields,
            } => self.create(class, r#ref, fields),
            Op::Set {
                class,
                r#ref,
                field,
                value,
            } => self.set(class, r#ref, field, value),
            Op::MapAdd {
                class,
                r#ref,
                field,
                key,
                value,
            } => self.map_add(class, r#ref, field, key, value),
            Op::MapPut {
                class,
                r#ref,
                field,
                key,
                value,
            } => self.map_put(class, r#ref, field, key, value),
            Op::MapRemove {
                class,
                r#ref,
                field,
                key,
            } => self.map_remove(class, r#ref, field, key),
            Op::SetAdd {
                class,
                r#ref,
                field,
                value,
            } => self.set_add(class, r#ref, field, value),
            Op::SetRemove {
                class,
                r#ref,
                field,
                value,
            } => self.set_remove(class, r#ref, field, value),
            Op::Destroy { class, r#ref } => self.destroy(class, r#ref),
            Op::Touch { class, r#ref } => {
                self.class(class)?;
                self.edit(class, r#ref).map(|_| ())
            }
            Op::PutInternal { key, value } => {
                self.undo.save_internal(key, self.db);
                self.db.internals.insert(key.clone(), value.clone());
                Ok(())
            }
        }
    }

    /// The declaration of a class that has a table.
    pub(crate) fn class(&self, name: &str) -> Result<&'static Class, ApplyError> {
        api_spec::api()
            .class(name)
            .filter(|c| c.in_db && self.db.tables.contains_key(name))
            .ok_or_else(|| ApplyError::ClassUnknown {
                class: name.to_owned(),
            })
    }

    pub(crate) fn table_mut(&mut self, class: &str) -> &mut Table {
        self.db
            .tables
            .get_mut(class)
            .expect("every class that passed `class` has a table")
    }

    /// The live row `r` of `class`, saved in the undo log and stamped with this Txn's generation.
    pub(crate) fn edit(&mut self, class: &str, r: &str) -> Result<&mut Row, ApplyError> {
        let missing = || ApplyError::RowMissing {
            class: class.to_owned(),
            r#ref: r.to_owned(),
        };
        let table = self.db.tables.get_mut(class).ok_or_else(missing)?;
        if !table.rows.contains_key(r) {
            return Err(missing());
        }
        self.undo.save_row(class, r, table);
        let row = table.rows.get_mut(r).ok_or_else(missing)?;
        row.modified = self.index;
        Ok(row)
    }

    /// Fails if `uuid` belongs to a live row of `class` other than `r`.
    pub(crate) fn check_uuid_free(
        &self,
        class: &str,
        r: &str,
        uuid: Option<&str>,
    ) -> Result<(), ApplyError> {
        let Some(uuid) = uuid.filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        match self.db.ref_by_uuid(class, uuid) {
            Some(other) if other != r => Err(ApplyError::UuidExists {
                class: class.to_owned(),
                uuid: uuid.to_owned(),
                other: other.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn create(
        &mut self,
        class_name: &str,
        r: &str,
        given: &BTreeMap<String, Value>,
    ) -> Result<(), ApplyError> {
        let class = self.class(class_name)?;
        if self.db.get(class.name, r).is_some() || self.db.tombstone(class.name, r).is_some() {
            return Err(ApplyError::RowExists {
                class: class.name.to_owned(),
                r#ref: r.to_owned(),
            });
        }
        if let Some(unknown) = given.keys().find(|f| class.field(f).is_none()) {
            return Err(ApplyError::FieldUnknown {
                class: class.name.to_owned(),
                field: unknown.clone(),
            });
        }
        let fields = class
            .fields
            .iter()
            .map(|f| {
                let value = if relations::many_end(class.name, f.name).is_some() {
                    zero(&f.ty)
                } else if let Some(value) = given.get(f.name) {
                    value.clone()
                } else {
                    f.default.map_or_else(|| zero(&f.ty), |d| d.to_value())
                };
                (f.name.to_owned(), value)
            })
            .collect();
        let row = Row {
            class: class.name,
            fields,
            created: self.index,
            modified: self.index,
        };
        self.check_uuid_free(class.name, r, uuid_of(&row))?;
        let targets = relations::one_end_targets(class.name, &row);
        let table = self
            .db
            .tables
            .get_mut(class.name)
            .expect("every class that passed `class` has a table");
        self.undo.save_row(class.name, r, table);
        table.insert_row(r, row);
        for (relation, target) in targets {
            self.link(relation, &target, r);
        }
        Ok(())
    }

    fn destroy(&mut self, class_name: &str, r: &str) -> Result<(), ApplyError> {
        let class = self.class(class_name)?;
        self.edit(class.name, r)?;
        let index = self.index;
        let table = self.table_mut(class.name);
        let row = table.remove_row(r).expect("`edit` found the row live");
        table.tombstones.insert(
            r.to_owned(),
            Tombstone {
                created: row.created,
                deleted: index,
            },
        );
        for (relation, target) in relations::one_end_targets(class.name, &row) {
            self.unlink(relation, &target, r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use api_spec::{NULL_REF, Value};

    use super::*;
    use crate::testing::{apply_next, create, db_after, destroy, set, txn, vbd, vm};

    /// Fields left out of a Create take their declared default, else their type's zero value.
    #[test]
    fn create_fills_missing_fields_from_defaults_then_zero_values() {
        let db = db_after([vm("vm"), vbd("vbd", "vm")]);
        let row = db.get("VBD", "vbd").expect("created");
        assert_eq!(row.get("unpluggable"), Some(&Value::Bool(true)));
        assert_eq!(row.get("userdevice"), Some(&Value::str("")));
        assert_eq!(row.get("VDI"), Some(&Value::str(NULL_REF)));
        assert_eq!(
            row.get("other_config"),
            Some(&Value::Struct(Default::default()))
        );
        let class = api_spec::api().class("VBD").expect("VBD is declared");
        assert_eq!(row.fields.len(), class.fields.len());
    }

    /// A created row carries the Txn's index as both its created and modified generation.
    #[test]
    fn create_stamps_created_and_modified_with_the_index() {
        let mut db = Db::new();
        db.apply(7, 2, &txn([vm("vm")])).expect("applies");
        let row = db.get("VM", "vm").expect("created");
        assert_eq!((row.created, row.modified), (7, 7));
    }

    /// A ref that is live, or was used by a destroyed row, cannot be created again.
    #[test]
    fn create_of_a_live_or_tombstoned_ref_fails_with_row_exists() {
        let mut db = db_after([vm("a"), vm("b"), destroy("VM", "b")]);
        for r in ["a", "b"] {
            let error = apply_next(&mut db, create("VM", r, &[])).expect_err("ref in use");
            assert!(matches!(error, ApplyError::RowExists { .. }), "{error:?}");
        }
    }

    /// Creating a row of a class the API does not declare fails with ClassUnknown.
    #[test]
    fn create_of_an_unknown_class_fails_with_class_unknown() {
        let error =
            apply_next(&mut Db::new(), create("spaceship", "s", &[])).expect_err("no class");
        assert_eq!(
            error,
            ApplyError::ClassUnknown {
                class: "spaceship".into()
            }
        );
    }

    /// A Create naming a field its class does not declare fails with FieldUnknown.
    #[test]
    fn create_with_an_unknown_field_fails_with_field_unknown() {
        let op = create("VM", "vm", &[("warp_factor", Value::Int(9))]);
        let error = apply_next(&mut Db::new(), op).expect_err("no field");
        assert_eq!(
            error,
            ApplyError::FieldUnknown {
                class: "VM".into(),
                field: "warp_factor".into()
            }
        );
    }

    /// Two live rows of a class never share a uuid, whether by Create or by Set.
    #[test]
    fn a_uuid_in_use_fails_with_uuid_exists() {
        let mut db = db_after([vm("a"), vm("b")]);
        let op = create("VM", "c", &[("uuid", Value::str("uuid-a"))]);
        let error = apply_next(&mut db, op).expect_err("uuid taken");
        assert!(
            matches!(error, ApplyError::UuidExists { ref other, .. } if other == "a"),
            "{error:?}"
        );
        let error = apply_next(&mut db, set("VM", "b", "uuid", "uuid-a")).expect_err("uuid taken");
        assert!(matches!(error, ApplyError::UuidExists { .. }), "{error:?}");
    }

    /// Destroy leaves a tombstone carrying the row's creation and the deleting Txn's index.
    #[test]
    fn destroy_leaves_a_tombstone_with_both_generations() {
        let db = db_after([
            vm("a"),
            set("VM", "a", "name_label", "x"),
            destroy("VM", "a"),
        ]);
        assert!(db.get("VM", "a").is_none());
        assert_eq!(
            db.tombstone("VM", "a"),
            Some(&Tombstone {
                created: 1,
                deleted: 3
            })
        );
        assert_eq!(db.count("VM"), 0);
    }

    /// Touch moves `modified` and nothing else (what event.inject relies on).
    #[test]
    fn touch_bumps_modified_only() {
        let mut db = db_after([vm("a")]);
        let before = db.get("VM", "a").cloned().expect("live");
        let op = Op::Touch {
            class: "VM".into(),
            r#ref: "a".into(),
        };
        apply_next(&mut db, op).expect("applies");
        let after = db.get("VM", "a").expect("live");
        assert_eq!(
            (&after.fields, after.created, after.modified),
            (&before.fields, 1, 2)
        );
    }

    /// PutInternal sets an internal value and touches no row.
    #[test]
    fn put_internal_sets_a_value_and_touches_no_row() {
        let mut db = Db::new();
        let op = Op::PutInternal {
            key: "root_password".into(),
            value: Value::str("$argon2id$x"),
        };
        let applied = apply_next(&mut db, op).expect("applies");
        assert!(applied.touched.is_empty());
        assert_eq!(
            db.internal("root_password"),
            Some(&Value::str("$argon2id$x"))
        );
    }

    /// The applied position moves to the entry's index and term whether its Txn applies or not.
    #[test]
    fn applied_position_moves_on_success_and_on_failure() {
        let mut db = Db::new();
        db.apply(3, 2, &txn([vm("a")])).expect("applies");
        assert_eq!((db.applied_index(), db.applied_term()), (3, 2));
        db.apply(4, 5, &txn([vm("a")])).expect_err("row exists");
        assert_eq!((db.applied_index(), db.applied_term()), (4, 5));
    }

    /// `touched` names each row once, in the order the Txn first touched it.
    #[test]
    fn touched_lists_each_row_once_in_first_touch_order() {
        let mut db = db_after([vm("a")]);
        let ops = [
            set("VM", "a", "name_label", "x"),
            vbd("d", "a"),
            set("VM", "a", "name_label", "y"),
        ];
        let applied = db.apply(2, 1, &txn(ops)).expect("applies");
        let expected = vec![
            ("VM".to_owned(), "a".to_owned()),
            ("VBD".to_owned(), "d".to_owned()),
        ];
        assert_eq!(applied.touched, expected);
    }
}
