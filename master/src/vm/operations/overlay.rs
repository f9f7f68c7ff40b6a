//! `Overlay`: the DB as a Txn being decided will leave it (its ops applied to copies of the rows
//! they touch, over the replica), and `Draft`, the Txn being decided together with that view.

use std::collections::{BTreeMap, BTreeSet};

use api_spec::{NULL_REF, Value};
use db_schema::row::debug_assert_declared;
use db_schema::{Db, Op, Precondition, Txn};

use crate::db::record;

/// The fields of a row, by name.
pub(crate) type Fields = BTreeMap<String, Value>;

/// The replica with some ops applied on top, without touching it.
pub(crate) struct Overlay<'a> {
    db: &'a Db,
    /// The rows the ops touched, as they are after them; `None` once destroyed.
    rows: BTreeMap<(String, String), Option<Fields>>,
}

impl<'a> Overlay<'a> {
    pub fn new(db: &'a Db) -> Overlay<'a> {
        Overlay {
            db,
            rows: BTreeMap::new(),
        }
    }

    /// The fields of a live row.
    pub fn row(&self, class: &str, r: &str) -> Option<&Fields> {
        match self.rows.get(&(class.to_owned(), r.to_owned())) {
            Some(row) => row.as_ref(),
            None => self.db.get(class, r).map(|row| &row.fields),
        }
    }

    /// A field of a live row; the field must be one `class` declares (checked in debug builds).
    #[track_caller]
    pub fn field(&self, class: &str, r: &str, field: &str) -> Option<&Value> {
        debug_assert_declared(class, field);
        self.row(class, r)?.get(field)
    }

    /// The text of a string field, `""` when the row or field is missing.
    #[track_caller]
    pub fn str(&self, class: &str, r: &str, field: &str) -> &str {
        self.field(class, r, field)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    #[track_caller]
    pub fn int(&self, class: &str, r: &str, field: &str) -> i64 {
        self.field(class, r, field)
            .and_then(Value::as_int)
            .unwrap_or(0)
    }

    #[track_caller]
    pub fn bool(&self, class: &str, r: &str, field: &str) -> bool {
        self.field(class, r, field).and_then(Value::as_bool) == Some(true)
    }

    /// A `string -> string` map field, values that are not strings left out.
    #[track_caller]
    pub fn string_map(&self, class: &str, r: &str, field: &str) -> BTreeMap<String, String> {
        self.field(class, r, field)
            .and_then(Value::as_struct)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `r` names a live row of `class` (the null ref never does).
    pub fn exists(&self, class: &str, r: &str) -> bool {
        r != NULL_REF && self.row(class, r).is_some()
    }

    /// The live rows of `class` whose field `link` points at `target`: the many end of a
    /// relation as it will be, including rows created and excluding rows destroyed by the ops.
    pub fn children(&self, class: &str, link: &str, target: &str) -> Vec<String> {
        let relation = api_spec::api()
            .relations
            .iter()
            .find(|r| r.one_class == class && r.one_field == link);
        // The replica keeps the many end of a relation: read it rather than every row.
        let mut found: BTreeSet<String> = match relation {
            Some(relation) => self
                .db
                .get(relation.many_class, target)
                .and_then(|row| row.get(relation.many_field))
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            None => self
                .db
                .rows(class)
                .filter(|(_, row)| row.str(link) == target)
                .map(|(r, _)| r.to_owned())
                .collect(),
        };
        for ((c, r), row) in &self.rows {
            if c != class {
                continue;
            }
            let points_here = row
                .as_ref()
                .and_then(|fields| fields.get(link))
                .and_then(Value::as_str)
                == Some(target);
            if points_here {
                found.insert(r.clone());
            } else {
                found.remove(r);
            }
        }
        found.into_iter().collect()
    }

    /// The refs of the live rows of `class`, in order.
    pub fn refs(&self, class: &str) -> Vec<String> {
        let mut refs: BTreeSet<String> = self.db.rows(class).map(|(r, _)| r.to_owned()).collect();
        for ((c, r), row) in &self.rows {
            if c == class {
                if row.is_some() {
                    refs.insert(r.clone());
                } else {
                    refs.remove(r);
                }
            }
        }
        refs.into_iter().collect()
    }

    /// The replica the view starts from, as it is before the ops.
    pub fn replica(&self) -> &'a Db {
        self.db
    }

    /// The rows the applied ops touched (created, changed or destroyed), by class and ref.
    pub fn touched(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rows.keys().map(|(c, r)| (c.as_str(), r.as_str()))
    }

    /// Applies `op` to the view, as `Db::apply` would (relations aside: see `children`).
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Create {
                class,
                r#ref,
                fields,
            } => {
                self.rows
                    .insert((class.clone(), r#ref.clone()), Some(fields.clone()));
            }
            Op::Destroy { class, r#ref } => {
                self.rows.insert((class.clone(), r#ref.clone()), None);
            }
            Op::Set {
                class,
                r#ref,
                field,
                value,
            } => {
                if let Some(row) = self.row_mut(class, r#ref) {
                    row.insert(field.clone(), value.clone());
                }
            }
            Op::MapAdd {
                class,
                r#ref,
                field,
                key,
                value,
            }
            | Op::MapPut {
                class,
                r#ref,
                field,
                key,
                value,
            } => {
                if let Some(Value::Struct(map)) = self.field_mut(class, r#ref, field) {
                    map.insert(key.clone(), value.clone());
                }
            }
            Op::MapRemove {
                class,
                r#ref,
                field,
                key,
            } => {
                if let Some(Value::Struct(map)) = self.field_mut(class, r#ref, field) {
                    map.remove(key);
                }
            }
            Op::SetAdd {
                class,
                r#ref,
                field,
                value,
            } => {
                if let Some(Value::Array(items)) = self.field_mut(class, r#ref, field)
                    && !items.contains(value)
                {
                    items.push(value.clone());
                }
            }
            Op::SetRemove {
                class,
                r#ref,
                field,
                value,
            } => {
                if let Some(Value::Array(items)) = self.field_mut(class, r#ref, field) {
                    items.retain(|v| v != value);
                }
            }
            Op::Touch { .. } | Op::PutInternal { .. } => {}
        }
    }

    /// The row `r` of `class`, copied into the overlay on first change.
    fn row_mut(&mut self, class: &str, r: &str) -> Option<&mut Fields> {
        let key = (class.to_owned(), r.to_owned());
        if !self.rows.contains_key(&key) {
            let fields = self.db.get(class, r)?.fields.clone();
            self.rows.insert(key.clone(), Some(fields));
        }
        self.rows.get_mut(&key)?.as_mut()
    }

    fn field_mut(&mut self, class: &str, r: &str, field: &str) -> Option<&mut Value> {
        self.row_mut(class, r)?.get_mut(field)
    }
}

/// A Txn being decided, and the view of the DB it will leave. Every op is applied to the view
/// as it is added, so later decisions of the same Txn see earlier ones.
pub(crate) struct Draft<'a> {
    view: Overlay<'a>,
    txn: Txn,
}

impl<'a> Draft<'a> {
    pub fn new(db: &'a Db) -> Draft<'a> {
        Draft {
            view: Overlay::new(db),
            txn: Txn::default(),
        }
    }

    /// The DB as the ops so far leave it.
    pub fn view(&self) -> &Overlay<'a> {
        &self.view
    }

    #[track_caller]
    pub fn push(&mut self, op: Op) {
        debug_assert_op_declared(&op);
        self.view.apply(&op);
        self.txn.ops.push(op);
    }

    #[track_caller]
    pub fn precondition(&mut self, precondition: Precondition) {
        if let Precondition::FieldEquals { class, field, .. }
        | Precondition::FieldDigest { class, field, .. }
        | Precondition::MapKeyAbsent { class, field, .. } = &precondition
        {
            debug_assert_declared(class, field);
        }
        if !self.txn.preconditions.contains(&precondition) {
            self.txn.preconditions.push(precondition);
        }
    }

    /// Requires the row to exist when the Txn is applied (a row the Txn creates needs no
    /// precondition: it will).
    pub fn require_exists(&mut self, class: &str, r: &str) {
        let key = (class.to_owned(), r.to_owned());
        let is_created = self.view.db.get(class, r).is_none()
            && matches!(self.view.rows.get(&key), Some(Some(_)));
        if !is_created {
            self.precondition(record::exists(class, r));
        }
    }

    /// Requires a field to hold, when the Txn is applied, what the replica holds now.
    #[track_caller]
    pub fn require_unchanged(&mut self, class: &str, r: &str, field: &str) {
        if let Some(value) = self.view.db.get(class, r).and_then(|row| row.get(field)) {
            self.precondition(Precondition::unchanged(class, r, field, value));
        }
    }

    #[track_caller]
    pub fn set(&mut self, class: &str, r: &str, field: &str, value: Value) {
        self.push(Op::Set {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            field: field.to_owned(),
            value,
        });
    }

    /// Sets a field only when its value would change, so that no event is raised for nothing.
    #[track_caller]
    pub fn update(&mut self, class: &str, r: &str, field: &str, value: Value) {
        if self.view.field(class, r, field) != Some(&value) {
            self.set(class, r, field, value);
        }
    }

    #[track_caller]
    pub fn map_put(&mut self, class: &str, r: &str, field: &str, key: &str, value: Value) {
        self.push(Op::MapPut {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            field: field.to_owned(),
            key: key.to_owned(),
            value,
        });
    }

    /// Removes a key from a map field when it is there.
    #[track_caller]
    pub fn map_remove(&mut self, class: &str, r: &str, field: &str, key: &str) {
        let is_there = self
            .view
            .field(class, r, field)
            .and_then(Value::as_struct)
            .is_some_and(|map| map.contains_key(key));
        if is_there {
            self.push(Op::MapRemove {
                class: class.to_owned(),
                r#ref: r.to_owned(),
                field: field.to_owned(),
                key: key.to_owned(),
            });
        }
    }

    /// Creates a row with every declared field (defaults for those not given) and a fresh
    /// uuid unless given; returns its ref.
    pub fn create(
        &mut self,
        class: &'static str,
        given: impl IntoIterator<Item = (&'static str, Value)>,
    ) -> String {
        let mut fields: Fields = given
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        fields
            .entry("uuid".to_owned())
            .or_insert_with(|| Value::String(record::new_uuid()));
        let fields = match api_spec::api().class(class) {
            Some(declared) => record::new_row(declared, fields),
            None => fields,
        };
        let r = record::new_ref();
        self.push(Op::Create {
            class: class.to_owned(),
            r#ref: r.clone(),
            fields,
        });
        r
    }

    /// Destroys a live row (one of the replica must still exist when the Txn is applied).
    pub fn destroy(&mut self, class: &str, r: &str) {
        if self.view.exists(class, r) {
            if self.view.db.get(class, r).is_some() {
                self.require_exists(class, r);
            }
            self.push(Op::Destroy {
                class: class.to_owned(),
                r#ref: r.to_owned(),
            });
        }
    }

    pub fn into_txn(self) -> Txn {
        self.txn
    }
}

/// Checks, in debug builds, that every field `op` writes is declared by its class; apply refuses
/// such an op in every build, but only once the Txn is proposed.
#[track_caller]
fn debug_assert_op_declared(op: &Op) {
    match op {
        Op::Create { class, fields, .. } => {
            for field in fields.keys() {
                debug_assert_declared(class, field);
            }
        }
        Op::Set { class, field, .. }
        | Op::MapAdd { class, field, .. }
        | Op::MapPut { class, field, .. }
        | Op::MapRemove { class, field, .. }
        | Op::SetAdd { class, field, .. }
        | Op::SetRemove { class, field, .. } => debug_assert_declared(class, field),
        Op::Destroy { .. } | Op::Touch { .. } | Op::PutInternal { .. } => {}
    }
}

/// `FieldEquals` for a field of `r`.
pub(crate) fn field_equals(class: &str, r: &str, field: &str, value: Value) -> Precondition {
    Precondition::FieldEquals {
        class: class.to_owned(),
        r#ref: r.to_owned(),
        field: field.to_owned(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPool;

    /// A draft that writes a field its class does not declare fails in a debug build, before
    /// anything is proposed.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "class VM does not declare a field power_sate")]
    fn write_of_an_undeclared_field_fails_in_debug_builds() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        Draft::new(&db).set("VM", &vm, "power_sate", Value::str("Running"));
    }

    /// A read through the view of a field its class does not declare fails in a debug build.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "class VBD does not declare a field emtpy")]
    fn read_of_an_undeclared_field_fails_in_debug_builds() {
        let pool = TestPool::new();
        let db = pool.read();
        Draft::new(&db)
            .view()
            .bool("VBD", "OpaqueRef:none", "emtpy");
    }

    /// Ops applied to the overlay show in it and leave the replica alone; a created child is
    /// found through its link, a destroyed one is not.
    #[test]
    fn overlay_shows_the_ops_but_leaves_the_replica() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let mut draft = Draft::new(&db);
        draft.set("VM", &vm, "name_label", Value::str("renamed"));
        draft.map_put("VM", &vm, "other_config", "k", Value::str("v"));
        let vbd = draft.create("VBD", [("VM", Value::str(vm.as_str()))]);
        assert_eq!(draft.view().str("VM", &vm, "name_label"), "renamed");
        assert_eq!(
            draft.view().string_map("VM", &vm, "other_config").get("k"),
            Some(&"v".to_owned())
        );
        assert_eq!(
            draft.view().children("VBD", "VM", &vm),
            std::slice::from_ref(&vbd)
        );
        draft.destroy("VBD", &vbd);
        assert!(draft.view().children("VBD", "VM", &vm).is_empty());
        assert_eq!(
            db.get("VM", &vm).expect("the VM").str("name_label"),
            "Other install media"
        );
        assert_eq!(draft.into_txn().ops.len(), 4);
    }
}
