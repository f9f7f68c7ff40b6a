//! `host`: a physical server of the pool, its software and its management interface.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{HOST_NAME_INVALID, LICENSE_PROCESSING_ERROR};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, NEVER, Ty};

const HOST_REF: Ty = Ty::Ref("host");

pub static HOST_ALLOWED_OPERATIONS: EnumDecl = EnumDecl {
    name: "host_allowed_operations",
    values: &[
        "provision",
        "evacuate",
        "shutdown",
        "reboot",
        "power_on",
        "vm_start",
        "vm_resume",
        "vm_migrate",
        "apply_updates",
        "enable",
    ],
};

pub static HOST_DISPLAY: EnumDecl = EnumDecl {
    name: "host_display",
    values: &[
        "enabled",
        "disable_on_reboot",
        "disabled",
        "enable_on_reboot",
    ],
};

pub static UPDATE_GUIDANCES: EnumDecl = EnumDecl {
    name: "update_guidances",
    values: &[
        "reboot_host",
        "reboot_host_on_livepatch_failure",
        "reboot_host_on_kernel_livepatch_failure",
        "reboot_host_on_xen_livepatch_failure",
        "restart_toolstack",
        "restart_device_model",
        "restart_vm",
    ],
};

pub static LATEST_SYNCED_UPDATES_APPLIED_STATE: EnumDecl = EnumDecl {
    name: "latest_synced_updates_applied_state",
    values: &["yes", "no", "unknown"],
};

pub static HOST_NUMA_AFFINITY_POLICY: EnumDecl = EnumDecl {
    name: "host_numa_affinity_policy",
    values: &["any", "best_effort", "default_policy"],
};

pub static HOST_SCHED_GRAN: EnumDecl = EnumDecl {
    name: "host_sched_gran",
    values: &["core", "cpu", "socket"],
};

pub static HOST_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::rw("name_label", Ty::String).default(Lit::Str("")),
    Field::rw("name_description", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("memory_overhead", Ty::Int).default(Lit::Int(0)),
    Field::dynamic_ro(
        "allowed_operations",
        Ty::Set(&Ty::Enum(&HOST_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&HOST_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("API_version_major", Ty::Int),
    Field::dynamic_ro("API_version_minor", Ty::Int),
    Field::dynamic_ro("API_version_vendor", Ty::String),
    Field::dynamic_ro("API_version_vendor_implementation", STRING_MAP),
    Field::dynamic_ro("enabled", Ty::Bool),
    Field::static_ro("software_version", STRING_MAP),
    Field::rw("other_config", STRING_MAP),
    Field::static_ro("capabilities", STRING_SET),
    Field::dynamic_ro("cpu_configuration", STRING_MAP),
    Field::dynamic_ro("sched_policy", Ty::String),
    Field::dynamic_ro("supported_bootloaders", STRING_SET),
    Field::dynamic_ro("resident_VMs", Ty::Set(&Ty::Ref("VM"))),
    Field::rw("logging", STRING_MAP),
    Field::dynamic_ro("PIFs", Ty::Set(&Ty::Ref("PIF"))),
    Field::rw("suspend_image_sr", Ty::Ref("SR")),
    Field::rw("crash_dump_sr", Ty::Ref("SR")),
    Field::dynamic_ro("crashdumps", Ty::Set(&Ty::Ref("host_crashdump"))),
    Field::dynamic_ro("patches", Ty::Set(&Ty::Ref("host_patch"))).lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("updates", Ty::Set(&Ty::Ref("pool_update"))),
    Field::dynamic_ro("PBDs", Ty::Set(&Ty::Ref("PBD"))),
    Field::dynamic_ro("host_CPUs", Ty::Set(&Ty::Ref("host_cpu"))),
    Field::dynamic_ro("cpu_info", STRING_MAP).default(Lit::Map(&[])),
    Field::rw("hostname", Ty::String),
    Field::rw("address", Ty::String),
    Field::dynamic_ro("metrics", Ty::Ref("host_metrics")),
    Field::dynamic_ro("license_params", STRING_MAP),
    Field::dynamic_ro("ha_statefiles", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("ha_network_peers", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("blobs", Ty::Map(&Ty::String, &Ty::Ref("blob"))).default(Lit::Map(&[])),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("external_auth_type", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("external_auth_service_name", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("external_auth_configuration", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("edition", Ty::String).default(Lit::Str("")),
    Field::rw("license_server", STRING_MAP).default(Lit::Map(&[
        (Lit::Str("address"), Lit::Str("localhost")),
        (Lit::Str("port"), Lit::Str("27000")),
    ])),
    Field::dynamic_ro("bios_strings", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("power_on_mode", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("power_on_config", STRING_MAP).default(Lit::Map(&[])),
    Field::static_ro("local_cache_sr", Ty::Ref("SR")).default(Lit::NullRef),
    Field::dynamic_ro("chipset_info", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("PCIs", Ty::Set(&Ty::Ref("PCI"))),
    Field::dynamic_ro("PGPUs", Ty::Set(&Ty::Ref("PGPU"))),
    Field::dynamic_ro("PUSBs", Ty::Set(&Ty::Ref("PUSB"))),
    Field::static_ro("ssl_legacy", Ty::Bool)
        .default(Lit::Bool(true))
        .lifecycle(Lifecycle::Deprecated),
    Field::rw("guest_VCPUs_params", STRING_MAP).default(Lit::Map(&[])),
    Field::rw("display", Ty::Enum(&HOST_DISPLAY)).default(Lit::Enum("enabled")),
    Field::dynamic_ro("virtual_hardware_platform_versions", Ty::Set(&Ty::Int))
        .default(Lit::Set(&[Lit::Int(0)])),
    Field::dynamic_ro("control_domain", Ty::Ref("VM")).default(Lit::NullRef),
    Field::dynamic_ro("updates_requiring_reboot", Ty::Set(&Ty::Ref("pool_update"))),
    Field::dynamic_ro("features", Ty::Set(&Ty::Ref("Feature"))),
    Field::static_ro("iscsi_iqn", Ty::String).default(Lit::Str("")),
    Field::static_ro("multipathing", Ty::Bool).default(Lit::Bool(false)),
    Field::static_ro("uefi_certificates", Ty::String)
        .default(Lit::Str(""))
        .lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("certificates", Ty::Set(&Ty::Ref("Certificate"))),
    Field::dynamic_ro("editions", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("pending_guidances", Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)))
        .default(Lit::Set(&[])),
    Field::dynamic_ro("tls_verification_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("last_software_update", Ty::DateTime)
        .default(Lit::DateTime(NEVER))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("https_only", Ty::Bool)
        .default(Lit::Bool(false))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro(
        "latest_synced_updates_applied",
        Ty::Enum(&LATEST_SYNCED_UPDATES_APPLIED_STATE),
    )
    .default(Lit::Enum("unknown"))
    .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("numa_affinity_policy", Ty::Enum(&HOST_NUMA_AFFINITY_POLICY))
        .default(Lit::Enum("default_policy"))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro(
        "pending_guidances_recommended",
        Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)),
    )
    .default(Lit::Set(&[]))
    .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro(
        "pending_guidances_full",
        Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)),
    )
    .default(Lit::Set(&[]))
    .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("last_update_hash", Ty::String)
        .default(Lit::Str(""))
        .lifecycle(Lifecycle::Prototyped),
];

pub static HOST_MESSAGES: &[Message] = &[
    Message::new("disable", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("enable", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("shutdown", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("reboot", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("dmesg", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::String),
    Message::new("dmesg_clear", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::String),
    Message::new("get_log", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::String),
    Message::new("send_debug_keys", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF), Param::new("keys", Ty::String)]),
    Message::new("bugreport_upload", Role::PoolOperator).params(&[
        Param::new("host", HOST_REF),
        Param::new("url", Ty::String),
        Param::new("options", STRING_MAP),
    ]),
    Message::new("list_methods", Role::ReadOnly)
        .returns(STRING_SET)
        .sync_only(),
    Message::new("license_apply", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("contents", Ty::String),
        ])
        .errors(&[LICENSE_PROCESSING_ERROR])
        .lifecycle(Lifecycle::Removed),
    Message::new("license_add", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("contents", Ty::String),
        ])
        .errors(&[LICENSE_PROCESSING_ERROR]),
    Message::new("license_remove", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("destroy", Role::PoolOperator).params(&[Param::new("self", HOST_REF)]),
    Message::new("power_on", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("emergency_ha_disable", Role::PoolOperator)
        .params(&[Param::new("soft", Ty::Bool).default(Lit::Bool(false))])
        .sync_only(),
    Message::new("get_data_sources", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Set(&Ty::Record("data_source")))
        .sync_only(),
    Message::new("record_data_source", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
    Message::new("query_data_source", Role::ReadOnly)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("data_source", Ty::String),
        ])
        .returns(Ty::Float)
        .sync_only(),
    Message::new("forget_data_source_archives", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
    Message::new("assert_can_evacuate", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("get_vms_which_prevent_evacuation", Role::ReadOnly)
        .params(&[Param::new("self", HOST_REF)])
        .returns(Ty::Map(&Ty::Ref("VM"), &STRING_SET)),
    Message::new("get_uncooperative_resident_VMs", Role::ReadOnly)
        .params(&[Param::new("self", HOST_REF)])
        .returns(Ty::Set(&Ty::Ref("VM")))
        .lifecycle(Lifecycle::Deprecated),
    Message::new("evacuate", Role::PoolOperator).params(&[
        Param::new("host", HOST_REF),
        Param::new("network", Ty::Ref("network")).default(Lit::NullRef),
        Param::new("evacuate_batch_size", Ty::Int).default(Lit::Int(0)),
    ]),
    Message::new("syslog_reconfigure", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("management_reconfigure", Role::PoolOperator)
        .params(&[Param::new("pif", Ty::Ref("PIF"))]),
    Message::new("local_management_reconfigure", Role::PoolOperator)
        .params(&[Param::new("interface", Ty::String)])
        .sync_only(),
    Message::new("management_disable", Role::PoolOperator).sync_only(),
    Message::new("get_management_interface", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Ref("PIF")),
    Message::new("get_system_status_capabilities", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::String)
        .sync_only(),
    Message::new("restart_agent", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("shutdown_agent", Role::PoolOperator).sync_only(),
    Message::new("set_hostname_live", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("hostname", Ty::String),
        ])
        .errors(&[HOST_NAME_INVALID])
        .sync_only(),
    Message::new("compute_free_memory", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Int),
    Message::new("compute_memory_overhead", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Int),
    Message::new("sync_data", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF)])
        .sync_only(),
    Message::new("backup_rrds", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF), Param::new("delay", Ty::Float)])
        .sync_only(),
    Message::new("create_new_blob", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("name", Ty::String),
            Param::new("mime_type", Ty::String),
            Param::new("public", Ty::Bool).default(Lit::Bool(false)),
        ])
        .returns(Ty::Ref("blob")),
    Message::new("call_plugin", Role::PoolAdmin)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("plugin", Ty::String),
            Param::new("fn", Ty::String),
            Param::new("args", STRING_MAP),
        ])
        .returns(Ty::String),
    Message::new("has_extension", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF), Param::new("name", Ty::String)])
        .returns(Ty::Bool),
    Message::new("call_extension", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF), Param::new("call", Ty::String)])
        .returns(Ty::String)
        .sync_only(),
    Message::new("get_servertime", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::DateTime)
        .sync_only(),
    Message::new("get_server_localtime", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::DateTime)
        .sync_only(),
    Message::new("enable_external_auth", Role::PoolAdmin)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("config", STRING_MAP),
            Param::new("service_name", Ty::String),
            Param::new("auth_type", Ty::String),
        ])
        .sync_only(),
    Message::new("disable_external_auth", Role::PoolAdmin)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .sync_only(),
    Message::new("retrieve_wlb_evacuate_recommendations", Role::ReadOnly)
        .params(&[Param::new("self", HOST_REF)])
        .returns(Ty::Map(&Ty::Ref("VM"), &STRING_SET)),
    Message::new("get_server_certificate", Role::ReadOnly)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::String),
    Message::new("refresh_server_certificate", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF)]),
    Message::new("install_server_certificate", Role::PoolAdmin).params(&[
        Param::new("host", HOST_REF),
        Param::new("certificate", Ty::String),
        Param::new("private_key", Ty::String),
        Param::new("certificate_chain", Ty::String).default(Lit::Str("")),
    ]),
    Message::new("emergency_reset_server_certificate", Role::PoolAdmin).sync_only(),
    Message::new("reset_server_certificate", Role::PoolAdmin)
        .params(&[Param::new("host", HOST_REF)]),
    Message::new("apply_edition", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("edition", Ty::String),
            Param::new("force", Ty::Bool).default(Lit::Bool(false)),
        ])
        .sync_only(),
    Message::new("refresh_pack_info", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("set_power_on_mode", Role::PoolOperator).params(&[
        Param::new("self", HOST_REF),
        Param::new("power_on_mode", Ty::String),
        Param::new("power_on_config", STRING_MAP),
    ]),
    Message::new("set_cpu_features", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("features", Ty::String),
        ])
        .sync_only()
        .lifecycle(Lifecycle::Removed),
    Message::new("reset_cpu_features", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .sync_only()
        .lifecycle(Lifecycle::Removed),
    Message::new("enable_local_storage_caching", Role::PoolOperator)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("sr", Ty::Ref("SR")),
        ])
        .sync_only(),
    Message::new("disable_local_storage_caching", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .sync_only(),
    Message::new("migrate_receive", Role::VmPowerAdmin)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("network", Ty::Ref("network")),
            Param::new("options", STRING_MAP),
        ])
        .returns(STRING_MAP),
    Message::new("declare_dead", Role::PoolOperator).params(&[Param::new("host", HOST_REF)]),
    Message::new("enable_display", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Enum(&HOST_DISPLAY)),
    Message::new("disable_display", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF)])
        .returns(Ty::Enum(&HOST_DISPLAY)),
    Message::new("set_ssl_legacy", Role::PoolOperator)
        .params(&[Param::new("self", HOST_REF), Param::new("value", Ty::Bool)]),
    Message::new("set_iscsi_iqn", Role::PoolOperator).params(&[
        Param::new("host", HOST_REF),
        Param::new("value", Ty::String),
    ]),
    Message::new("set_multipathing", Role::PoolOperator)
        .params(&[Param::new("host", HOST_REF), Param::new("value", Ty::Bool)]),
    Message::new("set_uefi_certificates", Role::PoolAdmin)
        .params(&[
            Param::new("host", HOST_REF),
            Param::new("value", Ty::String),
        ])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("set_sched_gran", Role::PoolAdmin).params(&[
        Param::new("self", HOST_REF),
        Param::new("value", Ty::Enum(&HOST_SCHED_GRAN)),
    ]),
    Message::new("get_sched_gran", Role::PoolAdmin)
        .params(&[Param::new("self", HOST_REF)])
        .returns(Ty::Enum(&HOST_SCHED_GRAN)),
    Message::new("set_numa_affinity_policy", Role::PoolAdmin)
        .params(&[
            Param::new("self", HOST_REF),
            Param::new("value", Ty::Enum(&HOST_NUMA_AFFINITY_POLICY)),
        ])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("emergency_disable_tls_verification", Role::PoolAdmin).sync_only(),
    Message::new("emergency_reenable_tls_verification", Role::PoolAdmin).sync_only(),
    Message::new("apply_updates", Role::PoolOperator)
        .params(&[Param::new("self", HOST_REF), Param::new("hash", Ty::String)])
        .returns(Ty::Set(&STRING_SET)),
    Message::new("set_https_only", Role::PoolOperator)
        .params(&[Param::new("self", HOST_REF), Param::new("value", Ty::Bool)])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("apply_recommended_guidances", Role::PoolOperator)
        .params(&[Param::new("self", HOST_REF)])
        .lifecycle(Lifecycle::Removed),
    Message::new("emergency_clear_mandatory_guidance", Role::PoolAdmin)
        .lifecycle(Lifecycle::Prototyped),
];

pub static HOST: Class = Class {
    name: "host",
    fields: HOST_FIELDS,
    messages: HOST_MESSAGES,
    enums: &[
        &HOST_ALLOWED_OPERATIONS,
        &HOST_DISPLAY,
        &UPDATE_GUIDANCES,
        &LATEST_SYNCED_UPDATES_APPLIED_STATE,
        &HOST_NUMA_AFFINITY_POLICY,
        &HOST_SCHED_GRAN,
    ],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
