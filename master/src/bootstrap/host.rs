//! This host's rows in a new pool: the host itself, its control domain, and the management
//! network with the host's PIF.

use std::net::IpAddr;

use api_spec::api::{API_VERSION_MAJOR, API_VERSION_MINOR, API_VERSION_VENDOR};
use api_spec::{NULL_REF, Value};

use super::{CpuFacts, FirstHost, HostFacts, PoolTxn, first_cpu, int, string_set, strings};

/// The name of the default network's bridge.
const DEFAULT_BRIDGE: &str = "xenbr0";

/// The host row.
pub(super) fn host_fields(
    facts: &HostFacts,
    first: &FirstHost,
    metrics: &str,
    sr: &str,
    now_unix: i64,
) -> Vec<(&'static str, Value)> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let cpu = |get: fn(&CpuFacts) -> String| first_cpu(facts, get);
    let boot_time = now_unix.to_string();
    vec![
        ("uuid", Value::str(first.host_uuid.as_str())),
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
pub(super) fn control_domain(
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
            ("power_state", Value::str("Running")),
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

/// The default network and this host's management PIF on it. The address is configured
/// statically as far as the pool knows (`member` reports the address in use, not how it was
/// obtained); an address that is not an IP literal leaves the PIF unconfigured.
pub(super) fn management_network(pool: &mut PoolTxn, facts: &HostFacts, host: &str) {
    let device = facts.management_device.as_str();
    let network = pool.create(
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
    );
    let (mode, ip, ipv6_mode, ipv6, primary) = match facts.address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => ("Static", facts.address.as_str(), "None", vec![], "IPv4"),
        Ok(IpAddr::V6(_)) => ("None", "", "Static", vec![facts.address.as_str()], "IPv6"),
        Err(_) => ("None", "", "None", vec![], "IPv4"),
    };
    pool.create(
        "PIF",
        [
            ("device", Value::str(device)),
            ("network", Value::String(network)),
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
