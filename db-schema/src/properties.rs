//! Properties of apply over random Txns on a few VMs and VBDs: determinism, dump round trips,
//! failed Txns that change nothing, and relations that stay in step.

use api_spec::{NULL_REF, Value};
use proptest::prelude::*;

use crate::db::Db;
use crate::dump;
use crate::testing::{create, destroy, refs, set};
use crate::txn::{Op, Precondition, Txn};

fn vm_ref() -> impl Strategy<Value = String> {
    (0..3u8).prop_map(|i| format!("vm{i}"))
}

fn vbd_ref() -> impl Strategy<Value = String> {
    (0..3u8).prop_map(|i| format!("vbd{i}"))
}

/// A small pool of values, so that names and keys repeat.
fn word() -> impl Strategy<Value = String> {
    (0..3u8).prop_map(|i| format!("w{i}"))
}

/// A pool of uuids, a few more than rows, so that they sometimes collide.
fn uuid() -> impl Strategy<Value = String> {
    (0..5u8).prop_map(|i| format!("uuid-{i}"))
}

fn row() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        vm_ref().prop_map(|r| ("VM".to_owned(), r)),
        vbd_ref().prop_map(|r| ("VBD".to_owned(), r)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let vm_target = prop_oneof![vm_ref(), Just(NULL_REF.to_owned())];
    prop_oneof![
        6 => (vm_ref(), uuid(), word()).prop_map(|(r, uuid, name)| create(
            "VM",
            &r,
            &[("uuid", Value::str(uuid)), ("name_label", Value::str(name))]
        )),
        6 => (vbd_ref(), vm_target.clone()).prop_map(|(r, vm)| create(
            "VBD",
            &r,
            &[("VM", Value::str(vm))]
        )),
        1 => (vm_ref(), word()).prop_map(|(r, name)| set("VM", &r, "name_label", name)),
        1 => (vm_ref(), uuid()).prop_map(|(r, uuid)| set("VM", &r, "uuid", uuid)),
        1 => (vbd_ref(), vm_target).prop_map(|(r, vm)| set("VBD", &r, "VM", vm)),
        1 => vm_ref().prop_map(|r| set("VM", &r, "VBDs", Value::Array(Vec::new()))),
        1 => (vm_ref(), word(), word()).prop_map(|(r, key, v)| Op::MapAdd {
            class: "VM".into(),
            r#ref: r,
            field: "other_config".into(),
            key,
            value: Value::str(v),
        }),
        1 => (vm_ref(), word(), word()).prop_map(|(r, key, v)| Op::MapPut {
            class: "VM".into(),
            r#ref: r,
            field: "other_config".into(),
            key,
            value: Value::str(v),
        }),
        1 => (vm_ref(), word()).prop_map(|(r, key)| Op::MapRemove {
            class: "VM".into(),
            r#ref: r,
            field: "other_config".into(),
            key,
        }),
        1 => (vm_ref(), word()).prop_map(|(r, tag)| Op::SetAdd {
            class: "VM".into(),
            r#ref: r,
            field: "tags".into(),
            value: Value::str(tag),
        }),
        1 => (vm_ref(), word()).prop_map(|(r, tag)| Op::SetRemove {
            class: "VM".into(),
            r#ref: r,
            field: "tags".into(),
            value: Value::str(tag),
        }),
        1 => row().prop_map(|(class, r)| destroy(&class, &r)),
        1 => row().prop_map(|(class, r#ref)| Op::Touch { class, r#ref }),
        1 => (word(), word()).prop_map(|(key, v)| Op::PutInternal {
            key,
            value: Value::str(v)
        }),
    ]
}

fn precondition() -> impl Strategy<Value = Precondition> {
    prop_oneof![
        row().prop_map(|(class, r#ref)| Precondition::Exists { class, r#ref }),
        row().prop_map(|(class, r#ref)| Precondition::Absent { class, r#ref }),
        (vm_ref(), word()).prop_map(|(r, name)| Precondition::FieldEquals {
            class: "VM".into(),
            r#ref: r,
            field: "name_label".into(),
            value: Value::str(name),
        }),
        (vm_ref(), word()).prop_map(|(r, key)| Precondition::MapKeyAbsent {
            class: "VM".into(),
            r#ref: r,
            field: "other_config".into(),
            key,
        }),
    ]
}

fn txns() -> impl Strategy<Value = Vec<Txn>> {
    let txn = (
        prop::option::weighted(0.2, precondition()),
        prop::collection::vec(op(), 1..4),
    )
        .prop_map(|(precondition, ops)| Txn {
            preconditions: precondition.into_iter().collect(),
            ops,
        });
    prop::collection::vec(txn, 1..40)
}

/// Every VM's VBDs are live VBDs that point back at it, each once.
fn relations_in_step(db: &Db) -> bool {
    db.rows("VM").all(|(vm, _)| {
        let vbds = refs(db, "VM", vm, "VBDs");
        let mut unique = vbds.clone();
        unique.sort_unstable();
        unique.dedup();
        unique.len() == vbds.len()
            && vbds
                .iter()
                .all(|vbd| db.get("VBD", vbd).is_some_and(|row| row.str("VM") == vm))
    })
}

proptest! {
    /// The same Txns applied to two DBs give equal DBs, equal outcomes and equal dump bytes.
    #[test]
    fn same_txns_give_identical_dbs(txns in txns()) {
        let (mut one, mut two) = (Db::new(), Db::new());
        for (i, txn) in txns.iter().enumerate() {
            let index = i as u64 + 1;
            prop_assert_eq!(one.apply(index, 1, txn), two.apply(index, 1, txn));
            prop_assert_eq!(&one, &two);
        }
        let bytes = dump::to_bytes(&one).expect("encodes");
        prop_assert_eq!(bytes, dump::to_bytes(&two).expect("encodes"));
    }

    /// After every Txn, a dump of the DB loads back as an equal DB, indexes included.
    #[test]
    fn dump_then_load_gives_an_equal_db_at_every_step(txns in txns()) {
        let mut db = Db::new();
        for (i, txn) in txns.iter().enumerate() {
            let outcome = db.apply(i as u64 + 1, 1, txn);
            let loaded = dump::from_bytes(&dump::to_bytes(&db).expect("encodes")).expect("decodes");
            prop_assert_eq!(&loaded, &db, "after {:?}", outcome);
        }
    }

    /// A Txn that fails changes nothing but the applied position; relations stay in step.
    #[test]
    fn failed_txn_never_changes_the_db(txns in txns()) {
        let mut db = Db::new();
        for (i, txn) in txns.iter().enumerate() {
            let index = i as u64 + 1;
            let mut before = db.clone();
            if db.apply(index, 1, txn).is_err() {
                before.advance(index, 1);
                prop_assert_eq!(&db, &before);
            }
            prop_assert!(relations_in_step(&db));
        }
    }
}
