//! VMs for the tests and the benchmark: halted ones cloned from one of the pool's default
//! templates (never a template or snapshot a test made, which may carry devices), with as
//! little memory as the caller asks, so that many fit on a simulated host.

use api_spec::Value;

use crate::client::Client;

/// The pool's default template first by name.
pub async fn default_template(client: &Client) -> String {
    let templates = client
        .ok(
            "VM.get_all_records_where",
            vec![Value::str("field \"is_default_template\"=\"true\"")],
        )
        .await;
    let templates = templates.as_struct().expect("records by ref");
    let name = |r: &String| {
        templates[r]
            .as_struct()
            .and_then(|record| record.get("name_label"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    templates
        .keys()
        .min_by_key(|r| name(r))
        .cloned()
        .expect("a pool has default templates")
}

/// A halted VM named `name`, cloned from `template`, with every memory limit at
/// `memory_bytes`.
pub async fn halted_vm(client: &Client, template: &str, name: &str, memory_bytes: i64) -> String {
    let vm = client
        .ok("VM.clone", vec![Value::str(template), Value::str(name)])
        .await;
    let vm = vm.as_str().expect("a VM ref").to_owned();
    client
        .ok(
            "VM.set_is_a_template",
            vec![Value::str(&vm), Value::Bool(false)],
        )
        .await;
    let size = Value::Int(memory_bytes);
    let limits = vec![
        Value::str(&vm),
        size.clone(),
        size.clone(),
        size.clone(),
        size,
    ];
    client.ok("VM.set_memory_limits", limits).await;
    vm
}
