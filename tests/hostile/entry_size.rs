//! Raft entries about the size of their change: a VM with a large `other_config` renamed many
//! times grows the Raft log by little, and a change larger than `raft.max_entry_bytes` is
//! refused with `DATABASE_ENTRY_TOO_LARGE`, changing nothing.

use std::collections::BTreeMap;

use api_spec::Value;
use oxapi_tests::{Host, Protocol, logged_in, vms};

const RENAMES: usize = 200;

/// A map of `keys` keys, each value `value_bytes` long.
fn big_map(keys: usize, value_bytes: usize) -> Value {
    let map: BTreeMap<String, Value> = (0..keys)
        .map(|i| (format!("key{i:05}"), Value::str("v".repeat(value_bytes))))
        .collect();
    Value::Struct(map)
}

/// 200 renames of a VM whose `other_config` holds 100 KB grow the Raft store by less than
/// 10 KB each (they used to carry the whole `other_config`, 150 KB each).
#[tokio::test]
async fn renames_of_a_vm_with_a_large_other_config_are_small_entries() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let template = vms::default_template(&client).await;
    let vm = vms::halted_vm(&client, &template, "large facts", 256 << 20).await;
    client
        .ok(
            "VM.set_other_config",
            vec![Value::str(&vm), big_map(1000, 100)],
        )
        .await;
    let store = host.data_dir().join("raft.redb");
    let before = std::fs::metadata(&store).expect("the store").len();
    for i in 0..RENAMES {
        let label = Value::String(format!("name {i}"));
        client
            .ok("VM.set_name_label", vec![Value::str(&vm), label])
            .await;
    }
    let grown = std::fs::metadata(&store)
        .expect("the store")
        .len()
        .saturating_sub(before);
    let per_rename = grown / RENAMES as u64;
    assert!(
        per_rename < 10 << 10,
        "the store grew {grown} bytes, {per_rename} a rename"
    );
}

/// A change whose entry would be larger than `raft.max_entry_bytes` (2 MiB) is refused with
/// `DATABASE_ENTRY_TOO_LARGE [size, limit]`, and the VM keeps what it had.
#[tokio::test]
async fn a_change_over_the_entry_limit_is_refused() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let template = vms::default_template(&client).await;
    let vm = vms::halted_vm(&client, &template, "too large", 256 << 20).await;
    let refused = client
        .call(
            "VM.set_other_config",
            vec![Value::str(&vm), big_map(3000, 1000)],
        )
        .await
        .expect_err("refused");
    assert_eq!(refused.code, "DATABASE_ENTRY_TOO_LARGE", "{refused:?}");
    let size: usize = refused.params[0].parse().expect("a size");
    assert_eq!(refused.params[1], (2 << 20).to_string());
    assert!(size > 3_000_000, "{refused:?}");
    let kept = client
        .ok("VM.get_other_config", vec![Value::str(&vm)])
        .await;
    assert!(
        kept.as_struct()
            .is_some_and(|map| !map.contains_key("key00000"))
    );
}
