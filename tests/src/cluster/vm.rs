//! VMs for the cluster tests: small ones cloned from a template, started where the test says
//! or where the pool places them.

use std::collections::BTreeSet;

use api_spec::{ApiError, Value};

use crate::client::Client;
use crate::vms;

/// Memory of a test VM: small, so that many fit on a simulated host.
const VM_BYTES: i64 = 256 << 20;

/// A halted VM named `name`, cloned from a default template.
pub async fn new_vm(client: &Client, name: &str) -> String {
    let template = vms::default_template(client).await;
    vms::halted_vm(client, &template, name, VM_BYTES).await
}

/// `VM.start(vm, false, false)`: the pool picks the host.
pub async fn start(client: &Client, vm: &str) -> Result<Value, ApiError> {
    client
        .call(
            "VM.start",
            vec![Value::str(vm), Value::Bool(false), Value::Bool(false)],
        )
        .await
}

/// `VM.start_on(vm, host, false, false)`.
pub async fn start_on(client: &Client, vm: &str, host: &str) -> Result<Value, ApiError> {
    client
        .call(
            "VM.start_on",
            vec![
                Value::str(vm),
                Value::str(host),
                Value::Bool(false),
                Value::Bool(false),
            ],
        )
        .await
}

/// A new VM named `name`, started on `host` (a host ref); its ref.
pub async fn running_on(client: &Client, name: &str, host: &str) -> String {
    let vm = new_vm(client, name).await;
    start_on(client, &vm, host)
        .await
        .expect("the VM starts on the host");
    vm
}

/// A string field of the VM's record (`power_state`, `resident_on`, `uuid`).
pub async fn field(client: &Client, vm: &str, name: &str) -> String {
    let value = client
        .ok(&format!("VM.get_{name}"), vec![Value::str(vm)])
        .await;
    value.as_str().expect("a string field").to_owned()
}

/// Whether the simulator state file at `path` holds a live domain of the VM `uuid`.
pub fn has_domain(path: &std::path::Path, uuid: &str) -> bool {
    live_domains(path).contains(uuid)
}

/// The VMs (uuids) with a live domain, running or paused, in the simulator state file at
/// `path`; none before the simulator first wrote it.
pub fn live_domains(path: &std::path::Path) -> BTreeSet<String> {
    let Some(state) = crate::host::read_simulator_state(path) else {
        return BTreeSet::new();
    };
    let Some(domains) = state["domains"].as_object() else {
        return BTreeSet::new();
    };
    domains
        .iter()
        .filter(|(_, d)| matches!(d["domain"]["state"].as_str(), Some("running" | "paused")))
        .map(|(vm, _)| vm.clone())
        .collect()
}
