//! Keeping the many ends of one-to-many relations in step with the one ends.
//!
//! The relations are `api_spec::api().relations` (e.g. `VBD.VM` ↔ `VM.VBDs`). The one end is an
//! ordinary ref field; the many end is a ref set that only this module writes:
//! - creating a row adds it to the many end of every live row its one-end fields point at;
//! - setting a one-end field moves the row from the old target's set to the new one's;
//! - destroying a row removes it from those sets. Rows that point at the destroyed row keep their
//!   (now dangling) ref, as in xapi.
//!
//! A ref to a row that is not live is left alone, and the many end is never back-filled: a row
//! created later does not collect the rows that already pointed at it. Refs are never reused, so
//! this only matters for a row created after (even within the same Txn) the rows that point at
//! it; proposers create the many-end row first.

use api_spec::Value;
use api_spec::model::Relation;

use crate::apply::Writer;
use crate::row::Row;

/// The relations whose one end is a field of `class`.
pub(crate) fn one_ends(class: &str) -> impl Iterator<Item = &'static Relation> {
    api_spec::api()
        .relations
        .iter()
        .filter(move |rel| rel.one_class == class)
}

/// The relation whose many end is `class.field`, if it is one.
pub(crate) fn many_end(class: &str, field: &str) -> Option<&'static Relation> {
    api_spec::api()
        .relations
        .iter()
        .find(|rel| rel.many_class == class && rel.many_field == field)
}

/// The rows `row` (of `class`) points at through the one ends of its relations.
pub(crate) fn one_end_targets(class: &str, row: &Row) -> Vec<(&'static Relation, String)> {
    one_ends(class)
        .filter_map(|rel| {
            let target = row.get(rel.one_field)?.as_str()?;
            Some((rel, target.to_owned()))
        })
        .collect()
}

impl Writer<'_> {
    /// Adds `member` to the many end of `target`, if `target` is a live row.
    pub(crate) fn link(&mut self, relation: &Relation, target: &str, member: &str) {
        let Ok(row) = self.edit(relation.many_class, target) else {
            return;
        };
        let many = row
            .fields
            .entry(relation.many_field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        let member = Value::str(member);
        match many {
            Value::Array(items) => {
                if !items.contains(&member) {
                    items.push(member);
                }
            }
            // Only this module writes a many end, and always as a set.
            other => *other = Value::Array(vec![member]),
        }
    }

    /// Removes `member` from the many end of `target`, if `target` is a live row.
    pub(crate) fn unlink(&mut self, relation: &Relation, target: &str, member: &str) {
        let Ok(row) = self.edit(relation.many_class, target) else {
            return;
        };
        if let Some(Value::Array(items)) = row.fields.get_mut(relation.many_field) {
            items.retain(|v| v.as_str() != Some(member));
        }
    }
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use crate::db::Db;
    use crate::testing::{create, db_after, destroy, refs, set, txn, vbd, vm};

    /// The VMs' VBDs sets, as (vm, vbds).
    fn vbds_of<'a>(db: &'a Db, vms: &[&'a str]) -> Vec<(&'a str, Vec<&'a str>)> {
        vms.iter()
            .map(|v| (*v, refs(db, "VM", v, "VBDs")))
            .collect()
    }

    /// Creating a VBD adds it to its VM's VBDs and touches that VM.
    #[test]
    fn creating_a_vbd_adds_it_to_its_vms_vbds() {
        let mut db = db_after([vm("a")]);
        let applied = db
            .apply(2, 1, &txn([vbd("d", "a"), vbd("e", "a")]))
            .expect("applies");
        assert_eq!(refs(&db, "VM", "a", "VBDs"), vec!["d", "e"]);
        assert!(applied.touched.contains(&("VM".into(), "a".into())));
        assert_eq!(db.get("VM", "a").map(|r| r.modified), Some(2));
    }

    /// Moving a VBD to another VM takes it out of the old VM's set and into the new one's,
    /// touching both.
    #[test]
    fn moving_a_vbd_to_another_vm_moves_it_between_the_sets() {
        let mut db = db_after([vm("a"), vm("b"), vbd("d", "a"), vbd("e", "a")]);
        let applied = db
            .apply(5, 1, &txn([set("VBD", "d", "VM", "b")]))
            .expect("applies");
        assert_eq!(
            vbds_of(&db, &["a", "b"]),
            vec![("a", vec!["e"]), ("b", vec!["d"])]
        );
        let touched: Vec<_> = applied
            .touched
            .iter()
            .map(|(c, r)| (c.as_str(), r.as_str()))
            .collect();
        assert_eq!(touched, vec![("VBD", "d"), ("VM", "a"), ("VM", "b")]);
    }

    /// Setting the one end to the ref it already holds changes no set and touches no other row.
    #[test]
    fn setting_the_same_vm_again_touches_only_the_vbd() {
        let mut db = db_after([vm("a"), vbd("d", "a")]);
        let applied = db
            .apply(3, 1, &txn([set("VBD", "d", "VM", "a")]))
            .expect("applies");
        assert_eq!(applied.touched, vec![("VBD".to_owned(), "d".to_owned())]);
        assert_eq!(refs(&db, "VM", "a", "VBDs"), vec!["d"]);
    }

    /// Destroying a VBD takes it out of its VM's VBDs.
    #[test]
    fn destroying_a_vbd_removes_it_from_its_vm() {
        let db = db_after([vm("a"), vbd("d", "a"), vbd("e", "a"), destroy("VBD", "d")]);
        assert_eq!(refs(&db, "VM", "a", "VBDs"), vec!["e"]);
        assert_eq!(db.get("VM", "a").map(|r| r.modified), Some(4));
    }

    /// Destroying a VM leaves its VBDs pointing at it, and later moves of them leave it alone.
    #[test]
    fn destroying_a_vm_leaves_its_vbds_dangling() {
        let db = db_after([
            vm("a"),
            vm("b"),
            vbd("d", "a"),
            destroy("VM", "a"),
            set("VBD", "d", "VM", "b"),
        ]);
        assert_eq!(db.tombstone("VM", "a").map(|t| t.deleted), Some(4));
        assert_eq!(refs(&db, "VM", "b", "VBDs"), vec!["d"]);
        let dangling = db_after([vm("a"), vbd("d", "a"), destroy("VM", "a")]);
        assert_eq!(dangling.get("VBD", "d").map(|r| r.str("VM")), Some("a"));
    }

    /// A VM created after a VBD that points at it does not collect that VBD (no back-fill).
    #[test]
    fn a_vm_created_after_its_vbd_does_not_back_fill() {
        let db = db_after([vbd("d", "a"), vm("a")]);
        assert!(refs(&db, "VM", "a", "VBDs").is_empty());
        assert_eq!(db.get("VBD", "d").map(|r| r.str("VM")), Some("a"));
    }

    /// The many end starts empty whatever the Create gives for it.
    #[test]
    fn a_create_cannot_fill_the_many_end() {
        let op = create(
            "VM",
            "a",
            &[("VBDs", api_spec::Value::Array(vec!["d".into()]))],
        );
        let db = db_after([vbd("d", NULL_REF), op]);
        assert!(refs(&db, "VM", "a", "VBDs").is_empty());
    }

    /// A VBD whose VM is the null ref touches nothing but itself.
    #[test]
    fn a_null_one_end_touches_nothing_else() {
        let mut db = db_after([vm("a")]);
        let applied = db.apply(2, 1, &txn([vbd("d", NULL_REF)])).expect("applies");
        assert_eq!(applied.touched, vec![("VBD".to_owned(), "d".to_owned())]);
    }

    /// A relation within one class (`VM.snapshot_of` ↔ `VM.snapshots`) is kept in step too.
    #[test]
    fn a_relation_within_one_class_is_kept_in_step() {
        let snapshot = |r: &str| create("VM", r, &[("snapshot_of", "a".into())]);
        let db = db_after([vm("a"), snapshot("s1"), snapshot("s2"), destroy("VM", "s1")]);
        assert_eq!(refs(&db, "VM", "a", "snapshots"), vec!["s2"]);
    }
}
