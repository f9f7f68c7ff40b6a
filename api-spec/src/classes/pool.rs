//! `pool`: the pool itself (exactly one row): its master, defaults, HA and TLS settings.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{
    CANNOT_CONTACT_HOST, CANNOT_PLUG_BOND_SLAVE, HA_IS_ENABLED, HOST_IS_SLAVE, INTERNAL_ERROR,
    JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS, NOT_SUPPORTED_DURING_UPGRADE,
    PIF_HAS_NO_NETWORK_CONFIGURATION, PIF_HAS_NO_V6_NETWORK_CONFIGURATION,
    PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE, PIF_NOT_PRESENT, VLAN_TAG_INVALID,
};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, NEVER, Ty};

const POOL_REF: Ty = Ty::Ref("pool");

pub static POOL_ALLOWED_OPERATIONS: EnumDecl = EnumDecl {
    name: "pool_allowed_operations",
    values: &[
        "ha_enable",
        "ha_disable",
        "cluster_create",
        "designate_new_master",
        "configure_repositories",
        "sync_updates",
        "get_updates",
        "apply_updates",
        "tls_verification_enable",
        "cert_refresh",
        "exchange_certificates_on_join",
        "exchange_ca_certificates_on_join",
        "copy_primary_host_certs",
        "eject",
    ],
};

pub static TELEMETRY_FREQUENCY: EnumDecl = EnumDecl {
    name: "telemetry_frequency",
    values: &["daily", "weekly", "monthly"],
};

pub static UPDATE_SYNC_FREQUENCY: EnumDecl = EnumDecl {
    name: "update_sync_frequency",
    values: &["daily", "weekly"],
};

pub static POOL_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::rw("name_label", Ty::String),
    Field::rw("name_description", Ty::String),
    Field::dynamic_ro("master", Ty::Ref("host")),
    Field::rw("default_SR", Ty::Ref("SR")),
    Field::rw("suspend_image_SR", Ty::Ref("SR")),
    Field::rw("crash_dump_SR", Ty::Ref("SR")),
    Field::rw("other_config", STRING_MAP),
    Field::dynamic_ro("ha_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("ha_configuration", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("ha_statefiles", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("ha_host_failures_to_tolerate", Ty::Int).default(Lit::Int(0)),
    Field::dynamic_ro("ha_plan_exists_for", Ty::Int).default(Lit::Int(0)),
    Field::rw("ha_allow_overcommit", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("ha_overcommitted", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("blobs", Ty::Map(&Ty::String, &Ty::Ref("blob"))).default(Lit::Map(&[])),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::rw("gui_config", STRING_MAP).default(Lit::Map(&[])),
    Field::rw("health_check_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("wlb_url", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("wlb_username", Ty::String).default(Lit::Str("")),
    Field::rw("wlb_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::rw("wlb_verify_cert", Ty::Bool)
        .default(Lit::Bool(false))
        .lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("redo_log_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("redo_log_vdi", Ty::Ref("VDI")).default(Lit::NullRef),
    Field::dynamic_ro("vswitch_controller", Ty::String)
        .default(Lit::Str(""))
        .lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("restrictions", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("metadata_VDIs", Ty::Set(&Ty::Ref("VDI"))),
    Field::dynamic_ro("ha_cluster_stack", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro(
        "allowed_operations",
        Ty::Set(&Ty::Enum(&POOL_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&POOL_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("guest_agent_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("cpu_info", STRING_MAP).default(Lit::Map(&[])),
    Field::rw("policy_no_vendor_device", Ty::Bool).default(Lit::Bool(false)),
    Field::rw("live_patching_disabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("igmp_snooping_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::static_ro("uefi_certificates", Ty::String).default(Lit::Str("")),
    Field::static_ro("custom_uefi_certificates", Ty::String)
        .default(Lit::Str(""))
        .lifecycle(Lifecycle::Prototyped),
    Field::rw("is_psr_pending", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("tls_verification_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("repositories", Ty::Set(&Ty::Ref("Repository"))).default(Lit::Set(&[])),
    Field::dynamic_ro("client_certificate_auth_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("client_certificate_auth_name", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("repository_proxy_url", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("repository_proxy_username", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("repository_proxy_password", Ty::Ref("secret")).default(Lit::NullRef),
    Field::rw("migration_compression", Ty::Bool)
        .default(Lit::Bool(false))
        .lifecycle(Lifecycle::Prototyped),
    Field::rw("coordinator_bias", Ty::Bool).default(Lit::Bool(true)),
    Field::static_ro("local_auth_max_threads", Ty::Int)
        .default(Lit::Int(8))
        .lifecycle(Lifecycle::Prototyped),
    Field::static_ro("ext_auth_max_threads", Ty::Int)
        .default(Lit::Int(1))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("telemetry_uuid", Ty::Ref("secret"))
        .default(Lit::NullRef)
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("telemetry_frequency", Ty::Enum(&TELEMETRY_FREQUENCY))
        .default(Lit::Enum("weekly"))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("telemetry_next_collection", Ty::DateTime)
        .default(Lit::DateTime(NEVER))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("last_update_sync", Ty::DateTime)
        .default(Lit::DateTime(NEVER))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("update_sync_frequency", Ty::Enum(&UPDATE_SYNC_FREQUENCY))
        .default(Lit::Enum("weekly"))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("update_sync_day", Ty::Int)
        .default(Lit::Int(0))
        .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro("update_sync_enabled", Ty::Bool)
        .default(Lit::Bool(false))
        .lifecycle(Lifecycle::Prototyped),
];

pub static POOL_MESSAGES: &[Message] = &[
    Message::new("join", Role::PoolOperator)
        .params(&[
            Param::new("master_address", Ty::String),
            Param::new("master_username", Ty::String),
            Param::new("master_password", Ty::SecretString),
        ])
        .errors(&[JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS]),
    Message::new("join_force", Role::PoolOperator).params(&[
        Param::new("master_address", Ty::String),
        Param::new("master_username", Ty::String),
        Param::new("master_password", Ty::SecretString),
    ]),
    Message::new("eject", Role::PoolOperator).params(&[Param::new("host", Ty::Ref("host"))]),
    Message::new("emergency_transition_to_master", Role::PoolOperator)
        .sync_only()
        .on_every_host(),
    Message::new("emergency_reset_master", Role::PoolOperator)
        .params(&[Param::new("master_address", Ty::String)])
        .sync_only(),
    Message::new("recover_slaves", Role::PoolOperator).returns(Ty::Set(&Ty::Ref("host"))),
    Message::new("create_VLAN", Role::PoolOperator)
        .params(&[
            Param::new("device", Ty::String),
            Param::new("network", Ty::Ref("network")),
            Param::new("VLAN", Ty::Int),
        ])
        .returns(Ty::Set(&Ty::Ref("PIF")))
        .errors(&[VLAN_TAG_INVALID]),
    Message::new("management_reconfigure", Role::PoolOperator)
        .params(&[Param::new("network", Ty::Ref("network"))])
        .errors(&[
            HA_IS_ENABLED,
            PIF_NOT_PRESENT,
            CANNOT_PLUG_BOND_SLAVE,
            PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE,
            PIF_HAS_NO_NETWORK_CONFIGURATION,
            PIF_HAS_NO_V6_NETWORK_CONFIGURATION,
        ]),
    Message::new("create_VLAN_from_PIF", Role::PoolOperator)
        .params(&[
            Param::new("pif", Ty::Ref("PIF")),
            Param::new("network", Ty::Ref("network")),
            Param::new("VLAN", Ty::Int),
        ])
        .returns(Ty::Set(&Ty::Ref("PIF")))
        .errors(&[VLAN_TAG_INVALID]),
    Message::new("enable_ha", Role::PoolOperator).params(&[
        Param::new("heartbeat_srs", Ty::Set(&Ty::Ref("SR"))),
        Param::new("configuration", STRING_MAP),
    ]),
    Message::new("disable_ha", Role::PoolOperator),
    Message::new("sync_database", Role::PoolOperator),
    Message::new("designate_new_master", Role::PoolOperator)
        .params(&[Param::new("host", Ty::Ref("host"))]),
    Message::new("ha_prevent_restarts_for", Role::PoolOperator)
        .params(&[Param::new("seconds", Ty::Int)])
        .sync_only(),
    Message::new("ha_failover_plan_exists", Role::PoolOperator)
        .params(&[Param::new("n", Ty::Int)])
        .returns(Ty::Bool)
        .sync_only(),
    Message::new(
        "ha_compute_max_host_failures_to_tolerate",
        Role::PoolOperator,
    )
    .returns(Ty::Int)
    .sync_only(),
    Message::new(
        "ha_compute_hypothetical_max_host_failures_to_tolerate",
        Role::ReadOnly,
    )
    .params(&[Param::new(
        "configuration",
        Ty::Map(&Ty::Ref("VM"), &Ty::String),
    )])
    .returns(Ty::Int)
    .sync_only(),
    Message::new("ha_compute_vm_failover_plan", Role::PoolOperator)
        .params(&[
            Param::new("failed_hosts", Ty::Set(&Ty::Ref("host"))),
            Param::new("failed_vms", Ty::Set(&Ty::Ref("VM"))),
        ])
        .returns(Ty::Map(&Ty::Ref("VM"), &STRING_MAP))
        .sync_only(),
    Message::new("set_ha_host_failures_to_tolerate", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Int)]),
    Message::new("create_new_blob", Role::PoolOperator)
        .params(&[
            Param::new("pool", POOL_REF),
            Param::new("name", Ty::String),
            Param::new("mime_type", Ty::String),
            Param::new("public", Ty::Bool).default(Lit::Bool(false)),
        ])
        .returns(Ty::Ref("blob")),
    Message::new("enable_external_auth", Role::PoolAdmin)
        .params(&[
            Param::new("pool", POOL_REF),
            Param::new("config", STRING_MAP),
            Param::new("service_name", Ty::String),
            Param::new("auth_type", Ty::String),
        ])
        .sync_only(),
    Message::new("disable_external_auth", Role::PoolAdmin)
        .params(&[
            Param::new("pool", POOL_REF),
            Param::new("config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .sync_only(),
    Message::new("detect_nonhomogeneous_external_auth", Role::PoolOperator)
        .params(&[Param::new("pool", POOL_REF)])
        .sync_only(),
    Message::new("initialize_wlb", Role::PoolOperator).params(&[
        Param::new("wlb_url", Ty::String),
        Param::new("wlb_username", Ty::String),
        Param::new("wlb_password", Ty::SecretString),
        Param::new("xenserver_username", Ty::String),
        Param::new("xenserver_password", Ty::SecretString),
    ]),
    Message::new("deconfigure_wlb", Role::PoolOperator),
    Message::new("send_wlb_configuration", Role::PoolOperator)
        .params(&[Param::new("config", STRING_MAP)]),
    Message::new("retrieve_wlb_configuration", Role::ReadOnly).returns(STRING_MAP),
    Message::new("retrieve_wlb_recommendations", Role::ReadOnly)
        .returns(Ty::Map(&Ty::Ref("VM"), &STRING_SET)),
    Message::new("send_test_post", Role::PoolAdmin)
        .params(&[
            Param::new("host", Ty::String),
            Param::new("port", Ty::Int),
            Param::new("body", Ty::String),
        ])
        .returns(Ty::String),
    Message::new("certificate_install", Role::PoolOperator)
        .params(&[
            Param::new("name", Ty::String),
            Param::new("cert", Ty::String),
        ])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("certificate_uninstall", Role::PoolOperator)
        .params(&[Param::new("name", Ty::String)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("certificate_list", Role::PoolOperator)
        .returns(STRING_SET)
        .lifecycle(Lifecycle::Deprecated),
    Message::new("install_ca_certificate", Role::PoolOperator).params(&[
        Param::new("name", Ty::String),
        Param::new("cert", Ty::String),
    ]),
    Message::new("uninstall_ca_certificate", Role::PoolOperator)
        .params(&[Param::new("name", Ty::String)]),
    Message::new("crl_install", Role::PoolOperator).params(&[
        Param::new("name", Ty::String),
        Param::new("cert", Ty::String),
    ]),
    Message::new("crl_uninstall", Role::PoolOperator).params(&[Param::new("name", Ty::String)]),
    Message::new("crl_list", Role::PoolOperator).returns(STRING_SET),
    Message::new("certificate_sync", Role::PoolOperator),
    Message::new("enable_tls_verification", Role::PoolAdmin).sync_only(),
    Message::new("enable_redo_log", Role::PoolOperator).params(&[Param::new("sr", Ty::Ref("SR"))]),
    Message::new("disable_redo_log", Role::PoolOperator),
    Message::new("set_vswitch_controller", Role::PoolOperator)
        .params(&[Param::new("address", Ty::String)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("test_archive_target", Role::PoolOperator)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("config", STRING_MAP),
        ])
        .returns(Ty::String)
        .sync_only(),
    Message::new("enable_local_storage_caching", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)]),
    Message::new("disable_local_storage_caching", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)]),
    Message::new("get_license_state", Role::ReadOnly)
        .params(&[Param::new("self", POOL_REF)])
        .returns(STRING_MAP),
    Message::new("apply_edition", Role::PoolOperator).params(&[
        Param::new("self", POOL_REF),
        Param::new("edition", Ty::String),
    ]),
    Message::new("enable_ssl_legacy", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)])
        .lifecycle(Lifecycle::Removed),
    Message::new("disable_ssl_legacy", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("set_igmp_snooping_enabled", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Bool)]),
    Message::new("has_extension", Role::PoolAdmin)
        .params(&[Param::new("self", POOL_REF), Param::new("name", Ty::String)])
        .returns(Ty::Bool),
    Message::new("add_to_guest_agent_config", Role::PoolAdmin).params(&[
        Param::new("self", POOL_REF),
        Param::new("key", Ty::String),
        Param::new("value", Ty::String),
    ]),
    Message::new("remove_from_guest_agent_config", Role::PoolAdmin)
        .params(&[Param::new("self", POOL_REF), Param::new("key", Ty::String)]),
    Message::new("rotate_secret", Role::PoolAdmin).errors(&[
        INTERNAL_ERROR,
        HOST_IS_SLAVE,
        CANNOT_CONTACT_HOST,
        HA_IS_ENABLED,
        NOT_SUPPORTED_DURING_UPGRADE,
    ]),
    Message::new("set_repositories", Role::PoolOperator).params(&[
        Param::new("self", POOL_REF),
        Param::new("value", Ty::Set(&Ty::Ref("Repository"))),
    ]),
    Message::new("add_repository", Role::PoolOperator).params(&[
        Param::new("self", POOL_REF),
        Param::new("value", Ty::Ref("Repository")),
    ]),
    Message::new("remove_repository", Role::PoolOperator).params(&[
        Param::new("self", POOL_REF),
        Param::new("value", Ty::Ref("Repository")),
    ]),
    Message::new("sync_updates", Role::PoolOperator)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("force", Ty::Bool),
            Param::new("token", Ty::String).default(Lit::Str("")),
            Param::new("token_id", Ty::String).default(Lit::Str("")),
        ])
        .returns(Ty::String),
    Message::new("check_update_readiness", Role::PoolOperator)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("requires_reboot", Ty::Bool),
        ])
        .returns(Ty::Set(&STRING_SET)),
    Message::new("enable_client_certificate_auth", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("name", Ty::String)]),
    Message::new("disable_client_certificate_auth", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)]),
    Message::new("configure_repository_proxy", Role::PoolOperator).params(&[
        Param::new("self", POOL_REF),
        Param::new("url", Ty::String),
        Param::new("username", Ty::String),
        Param::new("password", Ty::SecretString),
    ]),
    Message::new("disable_repository_proxy", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF)]),
    Message::new("set_uefi_certificates", Role::PoolAdmin)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("value", Ty::String),
        ])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("set_custom_uefi_certificates", Role::PoolAdmin)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("value", Ty::String),
        ])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("set_https_only", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Bool)])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("set_telemetry_next_collection", Role::PoolAdmin)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("value", Ty::DateTime),
        ])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("reset_telemetry_uuid", Role::PoolAdmin)
        .params(&[Param::new("self", POOL_REF)])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("configure_update_sync", Role::PoolOperator)
        .params(&[
            Param::new("self", POOL_REF),
            Param::new("update_sync_frequency", Ty::Enum(&UPDATE_SYNC_FREQUENCY)),
            Param::new("update_sync_day", Ty::Int),
        ])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("set_update_sync_enabled", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Bool)])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("set_local_auth_max_threads", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Int)])
        .sync_only()
        .lifecycle(Lifecycle::Prototyped),
    Message::new("set_ext_auth_max_threads", Role::PoolOperator)
        .params(&[Param::new("self", POOL_REF), Param::new("value", Ty::Int)])
        .sync_only()
        .lifecycle(Lifecycle::Prototyped),
];

pub static POOL: Class = Class {
    name: "pool",
    fields: POOL_FIELDS,
    messages: POOL_MESSAGES,
    enums: &[
        &POOL_ALLOWED_OPERATIONS,
        &TELEMETRY_FREQUENCY,
        &UPDATE_SYNC_FREQUENCY,
    ],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
