//! `SR`: a storage repository holding VDIs.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{SR_HAS_PBD, SR_UNKNOWN_DRIVER};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

const SR_REF: Ty = Ty::Ref("SR");

pub static STORAGE_OPERATIONS: EnumDecl = EnumDecl {
    name: "storage_operations",
    values: &[
        "scan",
        "destroy",
        "forget",
        "plug",
        "unplug",
        "update",
        "vdi_create",
        "vdi_introduce",
        "vdi_destroy",
        "vdi_resize",
        "vdi_clone",
        "vdi_snapshot",
        "vdi_mirror",
        "vdi_enable_cbt",
        "vdi_disable_cbt",
        "vdi_data_destroy",
        "vdi_list_changed_blocks",
        "vdi_set_on_boot",
        "pbd_create",
        "pbd_destroy",
    ],
};

pub static SR_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::static_ro("name_label", Ty::String).default(Lit::Str("")),
    Field::static_ro("name_description", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro(
        "allowed_operations",
        Ty::Set(&Ty::Enum(&STORAGE_OPERATIONS)),
    )
    .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&STORAGE_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("VDIs", Ty::Set(&Ty::Ref("VDI"))),
    Field::dynamic_ro("PBDs", Ty::Set(&Ty::Ref("PBD"))),
    Field::dynamic_ro("virtual_allocation", Ty::Int),
    Field::dynamic_ro("physical_utilisation", Ty::Int),
    Field::static_ro("physical_size", Ty::Int),
    Field::static_ro("type", Ty::String),
    Field::static_ro("content_type", Ty::String),
    Field::dynamic_ro("shared", Ty::Bool),
    Field::rw("other_config", STRING_MAP),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::rw("sm_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("blobs", Ty::Map(&Ty::String, &Ty::Ref("blob"))).default(Lit::Map(&[])),
    Field::dynamic_ro("local_cache_enabled", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("introduced_by", Ty::Ref("DR_task")).default(Lit::NullRef),
    Field::dynamic_ro("clustered", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("is_tools_sr", Ty::Bool).default(Lit::Bool(false)),
];

pub static SR_MESSAGES: &[Message] = &[
    Message::new("create", Role::PoolOperator)
        .params(&[
            Param::new("host", Ty::Ref("host")),
            Param::new("device_config", STRING_MAP),
            Param::new("physical_size", Ty::Int),
            Param::new("name_label", Ty::String),
            Param::new("name_description", Ty::String),
            Param::new("type", Ty::String),
            Param::new("content_type", Ty::String),
            Param::new("shared", Ty::Bool),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(SR_REF)
        .errors(&[SR_UNKNOWN_DRIVER]),
    Message::new("introduce", Role::PoolOperator)
        .params(&[
            Param::new("uuid", Ty::String),
            Param::new("name_label", Ty::String),
            Param::new("name_description", Ty::String),
            Param::new("type", Ty::String),
            Param::new("content_type", Ty::String),
            Param::new("shared", Ty::Bool),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(SR_REF),
    Message::new("make", Role::PoolOperator)
        .params(&[
            Param::new("host", Ty::Ref("host")),
            Param::new("device_config", STRING_MAP),
            Param::new("physical_size", Ty::Int),
            Param::new("name_label", Ty::String),
            Param::new("name_description", Ty::String),
            Param::new("type", Ty::String),
            Param::new("content_type", Ty::String),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(Ty::String)
        .lifecycle(Lifecycle::Deprecated),
    Message::new("destroy", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)])
        .errors(&[SR_HAS_PBD]),
    Message::new("forget", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)])
        .errors(&[SR_HAS_PBD]),
    Message::new("update", Role::PoolOperator).params(&[Param::new("sr", SR_REF)]),
    Message::new("get_supported_types", Role::ReadOnly)
        .returns(STRING_SET)
        .sync_only(),
    Message::new("scan", Role::VmPowerAdmin).params(&[Param::new("sr", SR_REF)]),
    Message::new("probe", Role::PoolOperator)
        .params(&[
            Param::new("host", Ty::Ref("host")),
            Param::new("device_config", STRING_MAP),
            Param::new("type", Ty::String),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(Ty::String),
    Message::new("probe_ext", Role::PoolOperator)
        .params(&[
            Param::new("host", Ty::Ref("host")),
            Param::new("device_config", STRING_MAP),
            Param::new("type", Ty::String),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(Ty::Set(&Ty::Record("probe_result"))),
    Message::new("set_shared", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF), Param::new("value", Ty::Bool)]),
    Message::new("set_name_label", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF), Param::new("value", Ty::String)]),
    Message::new("set_name_description", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF), Param::new("value", Ty::String)]),
    Message::new("create_new_blob", Role::PoolOperator)
        .params(&[
            Param::new("sr", SR_REF),
            Param::new("name", Ty::String),
            Param::new("mime_type", Ty::String),
            Param::new("public", Ty::Bool).default(Lit::Bool(false)),
        ])
        .returns(Ty::Ref("blob")),
    Message::new("set_physical_size", Role::PoolOperator)
        .params(&[Param::new("self", SR_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("assert_can_host_ha_statefile", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)]),
    Message::new("assert_supports_database_replication", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)]),
    Message::new("enable_database_replication", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)]),
    Message::new("disable_database_replication", Role::PoolOperator)
        .params(&[Param::new("sr", SR_REF)]),
    Message::new("get_data_sources", Role::ReadOnly)
        .params(&[Param::new("sr", SR_REF)])
        .returns(Ty::Set(&Ty::Record("data_source")))
        .sync_only(),
    Message::new("record_data_source", Role::PoolOperator)
        .params(&[
            Param::new("sr", SR_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
    Message::new("query_data_source", Role::ReadOnly)
        .params(&[
            Param::new("sr", SR_REF),
            Param::new("data_source", Ty::String),
        ])
        .returns(Ty::Float)
        .sync_only(),
    Message::new("forget_data_source_archives", Role::PoolOperator)
        .params(&[
            Param::new("sr", SR_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
];

pub static SR: Class = Class {
    name: "SR",
    fields: SR_FIELDS,
    messages: SR_MESSAGES,
    enums: &[&STORAGE_OPERATIONS],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
