//! A VM's `power_state`, read and written only here as a `VmPowerState`, and the DB writes
//! that make a VM's rows show what its domain is: running or paused as an agent reports it
//! (power state, host, domid, metrics, consoles, attached devices), or gone, the VM halted or
//! suspended (no host, no domain, no consoles, devices detached). Handlers write them at the
//! end of an operation, reconciliation when an agent reports.

use std::collections::BTreeMap;

use crate::storage::volumes::{self, Volume};
use crate::vm::operations::{Draft, Fields, Overlay};
use crate::vm::{memory, vm_spec};
use api_spec::classes::vm::VmPowerState;
use api_spec::{NULL_REF, Value};
use host_api::{DomainInfo, DomainState};

/// `domid` of a VM without a domain.
pub(crate) const NO_DOMID: i64 = -1;

/// The console protocols the API knows.
const CONSOLE_PROTOCOLS: [&str; 3] = ["vt100", "rfb", "rdp"];

fn datetime(now: i64) -> Value {
    Value::DateTime(api_spec::datetime::format_unix(now))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(items.into_iter().map(Value::str).collect())
}

/// Where clients reach a console: on the host the VM runs on, by the console's uuid.
pub(crate) fn console_location(address: &str, uuid: &str) -> String {
    if address.contains(':') {
        format!("https://[{address}]/console?uuid={uuid}")
    } else {
        format!("https://{address}/console?uuid={uuid}")
    }
}

/// A `power_state` as the DB spells it. The DB holds only the enum's values; a VM row without
/// one (or no row) reads as Halted, the field's default.
fn from_db(text: &str) -> VmPowerState {
    VmPowerState::from_wire(text).unwrap_or(VmPowerState::Halted)
}

/// The `power_state` of `vm` in `view`.
pub(crate) fn power_state(view: &Overlay, vm: &str) -> VmPowerState {
    from_db(view.str("VM", vm, "power_state"))
}

/// The `power_state` of a VM row's fields (as the replica holds them, or a copy).
pub(crate) fn power_state_of(fields: &Fields) -> VmPowerState {
    from_db(
        fields
            .get("power_state")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// Writes `state` as the `power_state` of `vm`.
pub(crate) fn set_power_state(draft: &mut Draft, vm: &str, state: VmPowerState) {
    draft.update("VM", vm, "power_state", state.into());
}

/// The `power_state` of a VM with a domain in `state`: the one place an agent's domain state
/// becomes a XenAPI power state.
pub(crate) fn domain_power_state(state: DomainState) -> VmPowerState {
    match state {
        DomainState::Running => VmPowerState::Running,
        DomainState::Paused => VmPowerState::Paused,
    }
}

/// Makes `vm` show the domain `info` on `host`, its `memory_overhead` the host's figure.
/// `is_new_domain` (a start, reboot or resume)
/// sets the start time and the boot-time metrics and gives the VM new consoles; otherwise its
/// consoles are kept, added or removed to match what the domain has.
pub(crate) fn set_running(
    draft: &mut Draft,
    vm: &str,
    host: &str,
    info: &DomainInfo,
    is_new_domain: bool,
    now: i64,
) {
    let power_state = domain_power_state(info.state);
    set_power_state(draft, vm, power_state);
    set_residence(draft, vm, host, info.domid);
    let overhead = memory::overhead_on(draft.view(), vm, host);
    draft.update("VM", vm, "memory_overhead", Value::Int(overhead));
    let metrics = draft.view().str("VM", vm, "metrics").to_owned();
    if draft.view().exists("VM_metrics", &metrics) {
        let memory = i64::try_from(info.memory_actual_bytes).unwrap_or(i64::MAX);
        let state = power_state.wire().to_ascii_lowercase();
        draft.update("VM_metrics", &metrics, "memory_actual", Value::Int(memory));
        draft.update(
            "VM_metrics",
            &metrics,
            "VCPUs_number",
            Value::Int(i64::from(info.vcpus)),
        );
        draft.update("VM_metrics", &metrics, "state", strings([state.as_str()]));
        draft.update("VM_metrics", &metrics, "last_updated", datetime(now));
        if is_new_domain {
            boot_metrics(draft, vm, &metrics, now);
        }
    }
    set_consoles(draft, vm, host, info, is_new_domain);
    for (class, plugged) in [("VBD", &info.vbds), ("VIF", &info.vifs)] {
        for device in draft.view().children(class, "VM", vm) {
            let uuid = draft.view().str(class, &device, "uuid");
            let is_attached = plugged.iter().any(|p| p == uuid);
            draft.update(
                class,
                &device,
                "currently_attached",
                Value::Bool(is_attached),
            );
        }
    }
}

/// The metrics a domain gets when it is created: its start time and what it booted as.
fn boot_metrics(draft: &mut Draft, vm: &str, metrics: &str, now: i64) {
    let domain_type = vm_spec::domain_type(draft.view(), vm);
    let platform = draft.view().string_map("VM", vm, "platform");
    let is_set = |key: &str| {
        platform
            .get(key)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    };
    let (nomigrate, nested_virt) = (is_set("nomigrate"), is_set("nested-virt"));
    draft.update("VM_metrics", metrics, "start_time", datetime(now));
    draft.update(
        "VM_metrics",
        metrics,
        "hvm",
        Value::Bool(domain_type == "hvm"),
    );
    draft.update("VM_metrics", metrics, "nomigrate", Value::Bool(nomigrate));
    draft.update(
        "VM_metrics",
        metrics,
        "nested_virt",
        Value::Bool(nested_virt),
    );
    draft.update(
        "VM_metrics",
        metrics,
        "current_domain_type",
        Value::String(domain_type),
    );
}

/// Gives `vm` one console per protocol its domain offers, each at a location on `host`.
fn set_consoles(draft: &mut Draft, vm: &str, host: &str, info: &DomainInfo, is_new_domain: bool) {
    let mut existing: BTreeMap<String, String> = BTreeMap::new();
    for console in draft.view().children("console", "VM", vm) {
        let protocol = draft.view().str("console", &console, "protocol").to_owned();
        let is_offered = info.consoles.iter().any(|c| c.protocol == protocol);
        if is_new_domain || !is_offered || existing.contains_key(&protocol) {
            draft.destroy("console", &console);
        } else {
            existing.insert(protocol, console);
        }
    }
    let address = draft.view().str("host", host, "address").to_owned();
    // A kept console moves with its domain (a migration): its location names the new host.
    for console in existing.values() {
        let uuid = draft.view().str("console", console, "uuid").to_owned();
        let location = console_location(&address, &uuid);
        draft.update("console", console, "location", Value::String(location));
    }
    for offered in &info.consoles {
        let protocol = offered.protocol.as_str();
        if existing.contains_key(protocol) {
            continue;
        }
        let Some(protocol) = CONSOLE_PROTOCOLS.iter().find(|p| **p == protocol) else {
            tracing::warn!(vm = %vm, protocol = %offered.protocol, "unknown console protocol ignored");
            continue;
        };
        let uuid = crate::db::record::new_uuid();
        let location = console_location(&address, &uuid);
        let console = draft.create(
            "console",
            [
                ("uuid", Value::String(uuid)),
                ("protocol", Value::str(*protocol)),
                ("location", Value::String(location)),
                ("VM", Value::str(vm)),
                ("other_config", Value::Struct(BTreeMap::new())),
            ],
        );
        existing.insert((*protocol).to_owned(), console);
    }
}

/// Makes `vm` resident on `host` with a domain not known yet (no domid), its power state as
/// it was: what a host that may run the domain but did not answer leaves, for its inventory,
/// a power operation or its fencing to settle.
pub(crate) fn set_resident_unknown(draft: &mut Draft, vm: &str, host: &str) {
    set_residence(draft, vm, host, NO_DOMID);
}

/// Where `vm`'s domain is (`host`, `NULL_REF` for nowhere) and its `domid`; the host the VM
/// was scheduled to go to is no longer reserved.
fn set_residence(draft: &mut Draft, vm: &str, host: &str, domid: i64) {
    draft.update("VM", vm, "resident_on", Value::str(host));
    draft.update(
        "VM",
        vm,
        "scheduled_to_be_resident_on",
        Value::str(NULL_REF),
    );
    draft.update("VM", vm, "domid", Value::Int(domid));
}

/// Makes `vm` show no domain: `power_state` (Halted or Suspended), no host, no domid, empty
/// metrics, no consoles, devices detached; a halted VM's devices also lose their operations
/// and its `requires_reboot` flag, as xapi's `force_state_reset` does.
pub(crate) fn set_stopped(draft: &mut Draft, vm: &str, power_state: VmPowerState, now: i64) {
    set_power_state(draft, vm, power_state);
    set_residence(draft, vm, NULL_REF, NO_DOMID);
    let is_halted = power_state == VmPowerState::Halted;
    if is_halted {
        draft.update("VM", vm, "requires_reboot", Value::Bool(false));
    }
    let metrics = draft.view().str("VM", vm, "metrics").to_owned();
    if draft.view().exists("VM_metrics", &metrics) {
        draft.update("VM_metrics", &metrics, "memory_actual", Value::Int(0));
        draft.update("VM_metrics", &metrics, "VCPUs_number", Value::Int(0));
        draft.update("VM_metrics", &metrics, "state", strings([]));
        draft.update("VM_metrics", &metrics, "last_updated", datetime(now));
    }
    for console in draft.view().children("console", "VM", vm) {
        draft.destroy("console", &console);
    }
    for class in ["VBD", "VIF"] {
        for device in draft.view().children(class, "VM", vm) {
            draft.update(class, &device, "currently_attached", Value::Bool(false));
            if is_halted {
                let none = Value::Struct(BTreeMap::new());
                draft.update(class, &device, "current_operations", none);
            }
        }
    }
}

/// Forgets the VM's suspend image: its VDI row goes and `suspend_VDI` is null again. Returns
/// the image's volume (when its SR is attached somewhere), for the caller to delete with
/// `volumes::forget` once the Txn is committed.
pub(crate) fn drop_suspend_image(draft: &mut Draft, vm: &str) -> Option<Volume> {
    let vdi = draft.view().str("VM", vm, "suspend_VDI").to_owned();
    let volume = volumes::volume_of(draft.view(), &vdi).ok();
    draft.destroy("VDI", &vdi);
    draft.update("VM", vm, "suspend_VDI", Value::str(NULL_REF));
    volume
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPool;
    use host_api::ConsoleInfo;

    fn domain(uuid: &str, state: DomainState, domid: i64) -> DomainInfo {
        DomainInfo {
            vm: uuid.to_owned(),
            state,
            domid,
            memory_actual_bytes: 1 << 30,
            vcpus: 2,
            vbds: Vec::new(),
            vifs: Vec::new(),
            consoles: ["rfb", "vt100"]
                .into_iter()
                .map(|p| ConsoleInfo {
                    protocol: p.to_owned(),
                })
                .collect(),
        }
    }

    /// A running domain gives the VM its host, domid, metrics and one console per protocol
    /// with a location on the host; a stopped VM has none of them.
    #[test]
    fn running_and_stopped_vms_show_their_domain_or_none() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let uuid = db.get("VM", &vm).expect("the VM").str("uuid").to_owned();
        let mut draft = Draft::new(&db);
        set_running(
            &mut draft,
            &vm,
            &pool.host,
            &domain(&uuid, DomainState::Running, 7),
            true,
            100,
        );
        let view = draft.view();
        assert_eq!(view.str("VM", &vm, "power_state"), "Running");
        assert_eq!(view.str("VM", &vm, "resident_on"), pool.host);
        assert_eq!(view.int("VM", &vm, "domid"), 7);
        let metrics = view.str("VM", &vm, "metrics");
        assert_eq!(view.int("VM_metrics", metrics, "VCPUs_number"), 2);
        assert_eq!(
            view.field("VM_metrics", metrics, "start_time"),
            Some(&datetime(100))
        );
        let consoles = view.children("console", "VM", &vm);
        assert_eq!(consoles.len(), 2);
        let location = view.str("console", &consoles[0], "location");
        let console_uuid = view.str("console", &consoles[0], "uuid");
        assert_eq!(
            location,
            format!("https://127.0.0.1/console?uuid={console_uuid}")
        );
        set_running(
            &mut draft,
            &vm,
            &pool.host,
            &domain(&uuid, DomainState::Paused, 7),
            false,
            200,
        );
        assert_eq!(draft.view().children("console", "VM", &vm), consoles);
        assert_eq!(draft.view().str("VM", &vm, "power_state"), "Paused");
        set_stopped(&mut draft, &vm, VmPowerState::Halted, 300);
        let view = draft.view();
        assert_eq!(view.str("VM", &vm, "power_state"), "Halted");
        assert_eq!(view.str("VM", &vm, "resident_on"), NULL_REF);
        assert_eq!(view.int("VM", &vm, "domid"), NO_DOMID);
        assert!(view.children("console", "VM", &vm).is_empty());
    }

    /// Console locations put IPv6 addresses in brackets.
    #[test]
    fn console_locations_bracket_ipv6_addresses() {
        assert_eq!(
            console_location("fd00::1", "u"),
            "https://[fd00::1]/console?uuid=u"
        );
    }
}
