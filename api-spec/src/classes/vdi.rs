//! `VDI`: a virtual disk image stored in an SR.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{
    OPERATION_NOT_ALLOWED, SR_HAS_NO_PBDS, SR_NOT_ATTACHED, SR_OPERATION_NOT_SUPPORTED, VDI_IN_USE,
    VDI_INCOMPATIBLE_TYPE, VDI_IS_A_PHYSICAL_DEVICE, VDI_MISSING, VDI_NO_CBT_METADATA,
    VDI_NOT_SPARSE, VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION, VDI_READONLY, VDI_TOO_SMALL,
};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, NEVER, Ty};

const VDI_REF: Ty = Ty::Ref("VDI");

crate::wire_enum! {
    /// What a VDI is doing or may do: the values of `current_operations` and
    /// `allowed_operations`.
    pub enum VdiOperation in VDI_OPERATIONS = "vdi_operations" {
        Clone = "clone",
        Copy = "copy",
        Resize = "resize",
        ResizeOnline = "resize_online",
        Snapshot = "snapshot",
        Mirror = "mirror",
        Destroy = "destroy",
        Forget = "forget",
        Update = "update",
        ForceUnlock = "force_unlock",
        GenerateConfig = "generate_config",
        EnableCbt = "enable_cbt",
        DisableCbt = "disable_cbt",
        DataDestroy = "data_destroy",
        ListChangedBlocks = "list_changed_blocks",
        SetOnBoot = "set_on_boot",
        Blocked = "blocked",
    }
}

pub static VDI_TYPE: EnumDecl = EnumDecl {
    name: "vdi_type",
    values: &[
        "system",
        "user",
        "ephemeral",
        "suspend",
        "crashdump",
        "ha_statefile",
        "metadata",
        "redo_log",
        "rrd",
        "pvs_cache",
        "cbt_metadata",
    ],
};

pub static ON_BOOT: EnumDecl = EnumDecl {
    name: "on_boot",
    values: &["reset", "persist"],
};

pub static VDI_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::static_ro("name_label", Ty::String).default(Lit::Str("")),
    Field::static_ro("name_description", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("allowed_operations", Ty::Set(&Ty::Enum(&VDI_OPERATIONS)))
        .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&VDI_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::static_ro("SR", Ty::Ref("SR")),
    Field::dynamic_ro("VBDs", Ty::Set(&Ty::Ref("VBD"))),
    Field::dynamic_ro("crash_dumps", Ty::Set(&Ty::Ref("crashdump"))),
    Field::static_ro("virtual_size", Ty::Int),
    Field::dynamic_ro("physical_utilisation", Ty::Int),
    Field::static_ro("type", Ty::Enum(&VDI_TYPE)),
    Field::static_ro("sharable", Ty::Bool),
    Field::static_ro("read_only", Ty::Bool),
    Field::rw("other_config", STRING_MAP),
    Field::dynamic_ro("storage_lock", Ty::Bool),
    Field::dynamic_ro("location", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("managed", Ty::Bool),
    Field::dynamic_ro("missing", Ty::Bool),
    Field::dynamic_ro("parent", VDI_REF).lifecycle(Lifecycle::Deprecated),
    Field::rw("xenstore_data", STRING_MAP).default(Lit::Map(&[])),
    Field::rw("sm_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("is_a_snapshot", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("snapshot_of", VDI_REF).default(Lit::NullRef),
    Field::dynamic_ro("snapshots", Ty::Set(&VDI_REF)),
    Field::dynamic_ro("snapshot_time", Ty::DateTime).default(Lit::DateTime(NEVER)),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("allow_caching", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("on_boot", Ty::Enum(&ON_BOOT)).default(Lit::Enum("persist")),
    Field::dynamic_ro("metadata_of_pool", Ty::Ref("pool")).default(Lit::NullRef),
    Field::dynamic_ro("metadata_latest", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("is_tools_iso", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("cbt_enabled", Ty::Bool).default(Lit::Bool(false)),
];

const CBT_ERRORS: &[&str] = &[
    SR_OPERATION_NOT_SUPPORTED,
    VDI_MISSING,
    SR_NOT_ATTACHED,
    SR_HAS_NO_PBDS,
    OPERATION_NOT_ALLOWED,
    VDI_INCOMPATIBLE_TYPE,
    VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION,
];

pub static VDI_MESSAGES: &[Message] = &[
    Message::new("snapshot", Role::VmAdmin)
        .params(&[
            Param::new("vdi", VDI_REF),
            Param::new("driver_params", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(VDI_REF),
    Message::new("clone", Role::VmAdmin)
        .params(&[
            Param::new("vdi", VDI_REF),
            Param::new("driver_params", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(VDI_REF),
    Message::new("resize", Role::VmAdmin)
        .params(&[Param::new("vdi", VDI_REF), Param::new("size", Ty::Int)]),
    // Removed from xapi (its backends could not); oxapi grows a disk a running guest writes.
    Message::new("resize_online", Role::VmAdmin)
        .params(&[Param::new("vdi", VDI_REF), Param::new("size", Ty::Int)]),
    Message::new("introduce", Role::VmAdmin)
        .params(&[
            Param::new("uuid", Ty::String),
            Param::new("name_label", Ty::String),
            Param::new("name_description", Ty::String),
            Param::new("SR", Ty::Ref("SR")),
            Param::new("type", Ty::Enum(&VDI_TYPE)),
            Param::new("sharable", Ty::Bool),
            Param::new("read_only", Ty::Bool),
            Param::new("other_config", STRING_MAP),
            Param::new("location", Ty::String),
            Param::new("xenstore_data", STRING_MAP).default(Lit::Map(&[])),
            Param::new("sm_config", STRING_MAP).default(Lit::Map(&[])),
            Param::new("managed", Ty::Bool).default(Lit::Bool(true)),
            Param::new("virtual_size", Ty::Int).default(Lit::Int(0)),
            Param::new("physical_utilisation", Ty::Int).default(Lit::Int(0)),
            Param::new("metadata_of_pool", Ty::Ref("pool")).default(Lit::NullRef),
            Param::new("is_a_snapshot", Ty::Bool).default(Lit::Bool(false)),
            Param::new("snapshot_time", Ty::DateTime).default(Lit::DateTime(NEVER)),
            Param::new("snapshot_of", VDI_REF).default(Lit::NullRef),
        ])
        .returns(VDI_REF)
        .errors(&[SR_OPERATION_NOT_SUPPORTED]),
    Message::new("update", Role::VmAdmin)
        .params(&[Param::new("vdi", VDI_REF)])
        .errors(&[SR_OPERATION_NOT_SUPPORTED]),
    Message::new("copy", Role::VmAdmin)
        .params(&[
            Param::new("vdi", VDI_REF),
            Param::new("sr", Ty::Ref("SR")).default(Lit::NullRef),
            Param::new("base_vdi", VDI_REF).default(Lit::NullRef),
            Param::new("into_vdi", VDI_REF).default(Lit::NullRef),
        ])
        .returns(VDI_REF)
        .errors(&[VDI_READONLY, VDI_TOO_SMALL, VDI_NOT_SPARSE]),
    Message::new("forget", Role::VmAdmin).params(&[Param::new("vdi", VDI_REF)]),
    Message::new("set_sharable", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF), Param::new("value", Ty::Bool)])
        .sync_only(),
    Message::new("set_read_only", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF), Param::new("value", Ty::Bool)])
        .sync_only(),
    Message::new("set_name_label", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF), Param::new("value", Ty::String)]),
    Message::new("set_name_description", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF), Param::new("value", Ty::String)]),
    Message::new("set_on_boot", Role::VmAdmin).params(&[
        Param::new("self", VDI_REF),
        Param::new("value", Ty::Enum(&ON_BOOT)),
    ]),
    Message::new("set_allow_caching", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF), Param::new("value", Ty::Bool)]),
    Message::new("open_database", Role::PoolOperator)
        .params(&[Param::new("self", VDI_REF)])
        .returns(Ty::Ref("session")),
    Message::new("read_database_pool_uuid", Role::ReadOnly)
        .params(&[Param::new("self", VDI_REF)])
        .returns(Ty::String),
    Message::new("pool_migrate", Role::VmPowerAdmin)
        .params(&[
            Param::new("vdi", VDI_REF),
            Param::new("sr", Ty::Ref("SR")),
            Param::new("options", STRING_MAP),
        ])
        .returns(VDI_REF),
    Message::new("enable_cbt", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF)])
        .errors(CBT_ERRORS),
    Message::new("disable_cbt", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF)])
        .errors(CBT_ERRORS),
    Message::new("data_destroy", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF)])
        .errors(&[
            SR_OPERATION_NOT_SUPPORTED,
            VDI_MISSING,
            SR_NOT_ATTACHED,
            SR_HAS_NO_PBDS,
            OPERATION_NOT_ALLOWED,
            VDI_INCOMPATIBLE_TYPE,
            VDI_NO_CBT_METADATA,
            VDI_IN_USE,
            VDI_IS_A_PHYSICAL_DEVICE,
        ]),
    Message::new("list_changed_blocks", Role::VmOperator)
        .params(&[
            Param::new("vdi_from", VDI_REF),
            Param::new("vdi_to", VDI_REF),
        ])
        .returns(Ty::String)
        .errors(&[
            SR_OPERATION_NOT_SUPPORTED,
            VDI_MISSING,
            SR_NOT_ATTACHED,
            SR_HAS_NO_PBDS,
            VDI_IN_USE,
        ]),
    Message::new("get_nbd_info", Role::VmAdmin)
        .params(&[Param::new("self", VDI_REF)])
        .returns(Ty::Set(&Ty::Record("vdi_nbd_server_info")))
        .errors(&[VDI_INCOMPATIBLE_TYPE])
        .sync_only(),
];

pub static VDI: Class = Class {
    name: "VDI",
    fields: VDI_FIELDS,
    messages: VDI_MESSAGES,
    enums: &[&VDI_OPERATIONS, &VDI_TYPE, &ON_BOOT],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
