//! One host's rows, for a new pool's first host and for a joiner alike: the host with its
//! metrics and CPUs, its control domain, its management PIF and its local SR with its PBD; and
//! the management network of a new pool.

use std::net::IpAddr;

use api_spec::api::{API_VERSION_MAJOR, API_VERSION_MINOR, API_VERSION_VENDOR};
use api_spec::classes::vm::VmPowerState;
use api_spec::{NULL_REF, Value};
use db_schema::Op;

use super::{CpuFacts, HostFacts, PoolTxn, first_cpu, int, string_set, strings};

/// The name of the default network's bridge.
const DEFAULT_BRIDGE: &str = "xenbr0";

/// The memory the control domain is given, in bytes (less on a smaller host).
const CONTROL_DOMAIN_MEMORY_BYTES: u64 = 1 << 30;

/// The local SR's type: xapi's `ext` is a local filesystem holding one file per disk, which is
/// what the local SR here is.
const LOCAL_SR_TYPE: &str = "ext";

/// The rows of host `host` (uuid `host_uuid`) described by `facts`, its management PIF on
/// `network`; returns the ref of its local SR.
pub(super) fn host_rows(
    pool: &mut PoolTxn,
    facts: &HostFacts,
    host: &str,
    host_uuid: &str,
    network: &str,
    now_unix: i64,
) -> String {
    let now = Value::DateTime(api_spec::datetime::format_unix(now_unix));
    let cpu_count = facts.cpus.len().max(1);
    let dom0_memory = CONTROL_DOMAIN_MEMORY_BYTES.min(facts.memory_total_bytes);
    let host_metrics = pool.create(
        "host_metrics",
        [
            ("memory_total", int(facts.memory_total_bytes)),
            ("live", Value::Bool(true)),
            ("last_updated", now.clone()),
        ],
    );
    let sr = pool.create(
        "SR",
        [
            ("name_label", Value::str("Local storage")),
            ("type", Value::str(LOCAL_SR_TYPE)),
            ("content_type", Value::str("user")),
            ("shared", Value::Bool(false)),
            ("physical_size", int(facts.local_sr_size_bytes)),
            ("physical_utilisation", int(facts.local_sr_used_bytes)),
            ("virtual_allocation", Value::Int(0)),
            (
                "other_config",
                strings([("i18n-key", "local-storage".to_owned())]),
            ),
        ],
    );
    let host_row = host_fields(facts, host_uuid, &host_metrics, &sr, now_unix);
    pool.create_as("host", host, host_row);
    for cpu in &facts.cpus {
        pool.create(
            "host_cpu",
            [
                ("host", Value::str(host)),
                ("number", Value::Int(i64::from(cpu.number))),
                ("vendor", Value::str(cpu.vendor.as_str())),
                ("speed", int(cpu.speed_mhz)),
                ("modelname", Value::str(cpu.model_name.as_str())),
                ("family", Value::Int(i64::from(cpu.family))),
                ("model", Value::Int(i64::from(cpu.model))),
                ("stepping", Value::str(cpu.stepping.as_str())),
                ("flags", Value::str(cpu.flags.as_str())),
                ("utilisation", Value::Float(0.0)),
            ],
        );
    }
    let dom0 = control_domain(pool, facts, host, cpu_count, dom0_memory, &now);
    pool.txn.ops.push(Op::Set {
        class: "host".to_owned(),
        r#ref: host.to_owned(),
        field: "control_domain".to_owned(),
        value: Value::String(dom0),
    });
    management_pif(pool, facts, host, network);
    pool.create(
        "PBD",
        [
            ("host", Value::str(host)),
            ("SR", Value::str(sr.as_str())),
            // `location` names the directory as a file SR's PBD does, which is what the
            // storage driver reads; `path` stays for those that read it.
            (
                "device_config",
                strings([
                    ("location", facts.local_sr_path.clone()),
                    ("path", facts.local_sr_path.clone()),
                ]),
            ),
            ("currently_attached", Value::Bool(true)),
        ],
    );
    sr
}

/// The host row.
fn host_fields(
    facts: &HostFacts,
    host_uuid: &str,
    metrics: &str,
    sr: &str,
    now_unix: i64,
) -> Vec<(&'static str, Value)> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let cpu = |get: fn(&CpuFacts) -> String| first_cpu(facts, get);
    let boot_time = now_unix.to_string();
    vec![
        ("uuid", Value::str(host_uuid)),
        ("name_label", Value::str(facts.hostname.as_str())),
        ("name_description", Value::str("Default install")),
        ("hostname", Value::str(facts.hostname.as_str())),
        ("address", Value::str(facts.address.as_str())),
        ("API_version_major", Value::Int(API_VERSION_MAJOR)),
        ("API_version_minor", Value::Int(API_VERSION_MINOR)),
        ("API_version_vendor", Value::str(API_VERSION_VENDOR)),
        ("enabled", Value::Bool(true)),
        (
            "software_version",
            strings([
                ("product_brand", "oxapi".to_owned()),
                ("product_version", version.clone()),
                ("product_version_text", version.clone()),
                ("product_version_text_short", version.clone()),
                ("platform_name", "oxapi".to_owned()),
                ("platform_version", version.clone()),
                ("xapi", format!("{API_VERSION_MAJOR}.{API_VERSION_MINOR}")),
                ("xapi_build", version),
                ("hostname", facts.hostname.clone()),
                ("network_backend", "bridge".to_owned()),
            ]),
        ),
        (
            "cpu_info",
            strings([
                ("cpu_count", facts.cpus.len().to_string()),
                ("socket_count", "1".to_owned()),
                ("vendor", cpu(|c| c.vendor.clone())),
                ("speed", cpu(|c| format!("{}.000", c.speed_mhz))),
                ("modelname", cpu(|c| c.model_name.clone())),
                ("family", cpu(|c| c.family.to_string())),
                ("model", cpu(|c| c.model.to_string())),
                ("stepping", cpu(|c| c.stepping.clone())),
                ("flags", cpu(|c| c.flags.clone())),
                ("features", String::new()),
                ("features_pv", String::new()),
                ("features_hvm", String::new()),
                ("features_pv_host", String::new()),
                ("features_hvm_host", String::new()),
            ]),
        ),
        (
            "capabilities",
            string_set(&[
                "xen-3.0-x86_64",
                "hvm-3.0-x86_32",
                "hvm-3.0-x86_32p",
                "hvm-3.0-x86_64",
            ]),
        ),
        ("sched_policy", Value::str("credit")),
        (
            "supported_bootloaders",
            string_set(&["pygrub", "eliloader"]),
        ),
        ("metrics", Value::str(metrics)),
        ("suspend_image_sr", Value::str(sr)),
        ("crash_dump_sr", Value::str(sr)),
        ("control_domain", Value::str(NULL_REF)),
        ("memory_overhead", Value::Int(0)),
        (
            "other_config",
            strings([
                ("boot_time", boot_time.clone()),
                ("agent_start_time", boot_time),
            ]),
        ),
    ]
}

/// The control domain (dom0) and its metrics; returns its ref.
fn control_domain(
    pool: &mut PoolTxn,
    facts: &HostFacts,
    host: &str,
    cpu_count: usize,
    memory: u64,
    now: &Value,
) -> String {
    let cpus = i64::try_from(cpu_count).unwrap_or(i64::MAX);
    let metrics = pool.create(
        "VM_metrics",
        [
            ("memory_actual", int(memory)),
            ("VCPUs_number", Value::Int(cpus)),
            ("start_time", now.clone()),
            ("install_time", now.clone()),
            ("last_updated", now.clone()),
            ("current_domain_type", Value::str("pv")),
        ],
    );
    let name = format!("Control domain on host: {}", facts.hostname);
    pool.create(
        "VM",
        [
            ("name_label", Value::String(name)),
            (
                "name_description",
                Value::str("The domain which manages physical devices and manages other domains"),
            ),
            ("power_state", Value::from(VmPowerState::Running)),
            ("user_version", Value::Int(1)),
            ("is_a_template", Value::Bool(false)),
            ("is_control_domain", Value::Bool(true)),
            ("resident_on", Value::str(host)),
            ("affinity", Value::str(host)),
            ("domid", Value::Int(0)),
            ("domarch", Value::str("x64")),
            ("memory_static_min", int(memory)),
            ("memory_dynamic_min", int(memory)),
            ("memory_dynamic_max", int(memory)),
            ("memory_static_max", int(memory)),
            ("memory_target", int(memory)),
            ("VCPUs_max", Value::Int(cpus)),
            ("VCPUs_at_startup", Value::Int(cpus)),
            ("actions_after_shutdown", Value::str("destroy")),
            ("actions_after_reboot", Value::str("restart")),
            ("actions_after_crash", Value::str("restart")),
            ("domain_type", Value::str("pv")),
            ("metrics", Value::String(metrics)),
            (
                "other_config",
                strings([("is_system_domain", "true".to_owned())]),
            ),
        ],
    )
}

/// The default network of a new pool, named after the first host's management interface;
/// returns its ref.
pub(super) fn management_network(pool: &mut PoolTxn, facts: &HostFacts) -> String {
    let device = facts.management_device.as_str();
    pool.create(
        "network",
        [
            (
                "name_label",
                Value::String(format!("Pool-wide network associated with {device}")),
            ),
            ("bridge", Value::str(DEFAULT_BRIDGE)),
            ("MTU", Value::Int(1500)),
            ("managed", Value::Bool(true)),
        ],
    )
}

/// The host's management PIF on `network`. The address is configured statically as far as the
/// pool knows (`member` reports the address in use, not how it was obtained); an address that
/// is not an IP literal leaves the PIF unconfigured.
fn management_pif(pool: &mut PoolTxn, facts: &HostFacts, host: &str, network: &str) {
    let device = facts.management_device.as_str();
    let (mode, ip, ipv6_mode, ipv6, primary) = match facts.address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => ("Static", facts.address.as_str(), "None", vec![], "IPv4"),
        Ok(IpAddr::V6(_)) => ("None", "", "Static", vec![facts.address.as_str()], "IPv6"),
        Err(_) => ("None", "", "None", vec![], "IPv4"),
    };
    pool.create(
        "PIF",
        [
            ("device", Value::str(device)),
            ("network", Value::str(network)),
            ("host", Value::str(host)),
            ("MAC", Value::str(facts.management_mac.as_str())),
            ("MTU", Value::Int(1500)),
            ("VLAN", Value::Int(-1)),
            ("physical", Value::Bool(true)),
            ("currently_attached", Value::Bool(true)),
            ("management", Value::Bool(true)),
            ("ip_configuration_mode", Value::str(mode)),
            ("IP", Value::str(ip)),
            ("ipv6_configuration_mode", Value::str(ipv6_mode)),
            ("IPv6", string_set(&ipv6)),
            ("primary_address_type", Value::str(primary)),
            ("managed", Value::Bool(true)),
        ],
    );
}
