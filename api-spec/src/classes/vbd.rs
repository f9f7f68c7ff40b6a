//! `VBD`: a virtual block device: a VDI plugged into a VM.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{
    DEVICE_ALREADY_DETACHED, DEVICE_DETACH_REJECTED, VBD_IS_EMPTY, VBD_NOT_EMPTY,
    VBD_NOT_REMOVABLE_MEDIA,
};
use crate::model::{Class, Field, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

const VBD_REF: Ty = Ty::Ref("VBD");

crate::wire_enum! {
    /// What a VBD is doing or may do: the values of `current_operations` and
    /// `allowed_operations`.
    pub enum VbdOperation in VBD_OPERATIONS = "vbd_operations" {
        Attach = "attach",
        Eject = "eject",
        Insert = "insert",
        Plug = "plug",
        Unplug = "unplug",
        UnplugForce = "unplug_force",
        Pause = "pause",
        Unpause = "unpause",
    }
}

pub static VBD_MODE: EnumDecl = EnumDecl {
    name: "vbd_mode",
    values: &["RO", "RW"],
};

pub static VBD_TYPE: EnumDecl = EnumDecl {
    name: "vbd_type",
    values: &["CD", "Disk", "Floppy"],
};

pub static VBD_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("allowed_operations", Ty::Set(&Ty::Enum(&VBD_OPERATIONS)))
        .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&VBD_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::static_ro("VM", Ty::Ref("VM")),
    Field::static_ro("VDI", Ty::Ref("VDI")),
    Field::static_ro("device", Ty::String).default(Lit::Str("")),
    Field::rw("userdevice", Ty::String),
    Field::rw("bootable", Ty::Bool),
    Field::static_ro("mode", Ty::Enum(&VBD_MODE)),
    Field::rw("type", Ty::Enum(&VBD_TYPE)),
    Field::rw("unpluggable", Ty::Bool).default(Lit::Bool(true)),
    Field::dynamic_ro("storage_lock", Ty::Bool),
    Field::static_ro("empty", Ty::Bool),
    Field::rw("other_config", STRING_MAP),
    Field::static_ro("currently_attached", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("status_code", Ty::Int),
    Field::dynamic_ro("status_detail", Ty::String),
    Field::dynamic_ro("runtime_properties", STRING_MAP),
    Field::rw("qos_algorithm_type", Ty::String),
    Field::rw("qos_algorithm_params", STRING_MAP),
    Field::dynamic_ro("qos_supported_algorithms", STRING_SET),
];

pub static VBD_MESSAGES: &[Message] = &[
    Message::new("eject", Role::VmOperator)
        .params(&[Param::new("vbd", VBD_REF)])
        .errors(&[VBD_NOT_REMOVABLE_MEDIA, VBD_IS_EMPTY]),
    Message::new("insert", Role::VmOperator)
        .params(&[
            Param::new("vbd", VBD_REF),
            Param::new("vdi", Ty::Ref("VDI")),
        ])
        .errors(&[VBD_NOT_REMOVABLE_MEDIA, VBD_NOT_EMPTY]),
    Message::new("plug", Role::VmAdmin).params(&[Param::new("self", VBD_REF)]),
    Message::new("unplug", Role::VmAdmin)
        .params(&[Param::new("self", VBD_REF)])
        .errors(&[DEVICE_DETACH_REJECTED, DEVICE_ALREADY_DETACHED]),
    Message::new("unplug_force", Role::VmAdmin).params(&[Param::new("self", VBD_REF)]),
    Message::new("assert_attachable", Role::VmAdmin).params(&[Param::new("self", VBD_REF)]),
    Message::new("set_mode", Role::VmAdmin).params(&[
        Param::new("self", VBD_REF),
        Param::new("value", Ty::Enum(&VBD_MODE)),
    ]),
];

pub static VBD: Class = Class {
    name: "VBD",
    fields: VBD_FIELDS,
    messages: VBD_MESSAGES,
    enums: &[&VBD_OPERATIONS, &VBD_MODE, &VBD_TYPE],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
