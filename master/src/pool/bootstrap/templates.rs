//! The default templates of a new pool: halted HVM VMs marked `is_a_template` and
//! `is_default_template`, which clients clone to make VMs.

use api_spec::classes::vm::VmPowerState;
use api_spec::{NULL_REF, Value};

use super::{int, strings};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What differs between the default templates.
pub(super) struct Template {
    name: &'static str,
    description: &'static str,
    /// xapi's `reference_label`, a stable name for tools.
    reference_label: &'static str,
    memory_static_min_bytes: u64,
    /// Dynamic min and max and static max.
    memory_bytes: u64,
    vcpus: i64,
    /// `other_config:install-methods`.
    install_methods: &'static str,
    /// The size of the system disk clients create when installing, in bytes.
    disk_bytes: u64,
    is_uefi: bool,
    is_linux: bool,
}

pub(super) const DEFAULT_TEMPLATES: [Template; 4] = [
    Template {
        name: "Debian Bookworm 12",
        description: "Clones of this template will automatically provision their storage when \
                      first booted and then reconfigure themselves with the optimal settings",
        reference_label: "debian-12",
        memory_static_min_bytes: 512 * MIB,
        memory_bytes: GIB,
        vcpus: 1,
        install_methods: "cdrom,nfs,http,ftp",
        disk_bytes: 10 * GIB,
        is_uefi: false,
        is_linux: true,
    },
    Template {
        name: "Ubuntu Noble Numbat 24.04",
        description: "Clones of this template will automatically provision their storage when \
                      first booted and then reconfigure themselves with the optimal settings",
        reference_label: "ubuntu-24.04",
        memory_static_min_bytes: GIB,
        memory_bytes: 2 * GIB,
        vcpus: 2,
        install_methods: "cdrom,nfs,http,ftp",
        disk_bytes: 20 * GIB,
        is_uefi: false,
        is_linux: true,
    },
    Template {
        name: "Other install media",
        description: "Template which allows VM installation from install media",
        reference_label: "other-install-media",
        memory_static_min_bytes: 256 * MIB,
        memory_bytes: GIB,
        vcpus: 1,
        install_methods: "cdrom",
        disk_bytes: 10 * GIB,
        is_uefi: false,
        is_linux: false,
    },
    Template {
        name: "Generic Linux UEFI",
        description: "Template for Linux distributions that boot with UEFI firmware",
        reference_label: "generic-linux-uefi",
        memory_static_min_bytes: 512 * MIB,
        memory_bytes: 2 * GIB,
        vcpus: 2,
        install_methods: "cdrom,nfs,http,ftp",
        disk_bytes: 20 * GIB,
        is_uefi: true,
        is_linux: true,
    },
];

/// What clients may configure a clone with, in xapi's `recommendations` XML.
const RECOMMENDATIONS: &str = concat!(
    r#"<restrictions><restriction field="memory-static-max" max="137438953472" />"#,
    r#"<restriction field="vcpus-max" max="32" />"#,
    r#"<restriction property="number-of-vbds" max="255" />"#,
    r#"<restriction property="number-of-vifs" max="7" /></restrictions>"#,
);

impl Template {
    /// The VM row of the template, with `metrics` as its metrics row.
    pub(super) fn fields(&self, metrics: String) -> Vec<(&'static str, Value)> {
        let firmware = if self.is_uefi { "uefi" } else { "bios" };
        let disks = format!(
            r#"<provision><disk device="0" size="{}" sr="" bootable="true" type="system"/></provision>"#,
            self.disk_bytes
        );
        let mut other_config = vec![
            ("install-methods", self.install_methods.to_owned()),
            ("default_template", "true".to_owned()),
            ("disks", disks),
        ];
        if self.is_linux {
            other_config.push(("linux_template", "true".to_owned()));
        }
        let other_config = Value::Struct(
            other_config
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect(),
        );
        vec![
            ("name_label", Value::str(self.name)),
            ("name_description", Value::str(self.description)),
            ("reference_label", Value::str(self.reference_label)),
            ("power_state", Value::from(VmPowerState::Halted)),
            ("user_version", Value::Int(1)),
            ("is_a_template", Value::Bool(true)),
            ("is_default_template", Value::Bool(true)),
            ("affinity", Value::str(NULL_REF)),
            ("memory_static_min", int(self.memory_static_min_bytes)),
            ("memory_dynamic_min", int(self.memory_bytes)),
            ("memory_dynamic_max", int(self.memory_bytes)),
            ("memory_static_max", int(self.memory_bytes)),
            ("VCPUs_max", Value::Int(self.vcpus)),
            ("VCPUs_at_startup", Value::Int(self.vcpus)),
            ("actions_after_shutdown", Value::str("destroy")),
            ("actions_after_reboot", Value::str("restart")),
            ("actions_after_crash", Value::str("restart")),
            ("HVM_boot_policy", Value::str("BIOS order")),
            (
                "HVM_boot_params",
                strings([
                    ("order", "cd".to_owned()),
                    ("firmware", firmware.to_owned()),
                ]),
            ),
            (
                "platform",
                strings([
                    ("acpi", "1".to_owned()),
                    ("apic", "true".to_owned()),
                    ("pae", "true".to_owned()),
                    ("nx", "true".to_owned()),
                    ("viridian", "false".to_owned()),
                    ("device-model", "qemu-upstream-compat".to_owned()),
                    ("secureboot", "false".to_owned()),
                ]),
            ),
            ("other_config", other_config),
            ("recommendations", Value::str(RECOMMENDATIONS)),
            ("domain_type", Value::str("hvm")),
            ("domid", Value::Int(-1)),
            ("metrics", Value::String(metrics)),
            ("HVM_shadow_multiplier", Value::Float(1.0)),
        ]
    }
}
