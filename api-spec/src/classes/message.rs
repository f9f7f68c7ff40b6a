//! `message`: an alert for the administrator, about one object.

use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Ty};

const MESSAGE_REF: Ty = Ty::Ref("message");

pub static CLS: EnumDecl = EnumDecl {
    name: "cls",
    values: &[
        "VM",
        "Host",
        "SR",
        "Pool",
        "VMPP",
        "VMSS",
        "PVS_proxy",
        "VDI",
        "Certificate",
    ],
};

pub static MESSAGE_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("name", Ty::String),
    Field::dynamic_ro("priority", Ty::Int),
    Field::dynamic_ro("cls", Ty::Enum(&CLS)),
    Field::dynamic_ro("obj_uuid", Ty::String),
    Field::dynamic_ro("timestamp", Ty::DateTime),
    Field::dynamic_ro("body", Ty::String),
];

// xapi keeps messages outside its database, so it declares their accessors explicitly; they
// replace the derived ones of the same name.
pub static MESSAGE_MESSAGES: &[Message] = &[
    Message::new("create", Role::PoolOperator)
        .params(&[
            Param::new("name", Ty::String),
            Param::new("priority", Ty::Int),
            Param::new("cls", Ty::Enum(&CLS)),
            Param::new("obj_uuid", Ty::String),
            Param::new("body", Ty::String),
        ])
        .returns(MESSAGE_REF)
        .sync_only(),
    Message::new("destroy", Role::PoolOperator)
        .params(&[Param::new("self", MESSAGE_REF)])
        .sync_only(),
    Message::new("destroy_many", Role::PoolOperator)
        .params(&[Param::new("messages", Ty::Set(&MESSAGE_REF))])
        .lifecycle(Lifecycle::Prototyped),
    Message::new("get", Role::ReadOnly)
        .params(&[
            Param::new("cls", Ty::Enum(&CLS)),
            Param::new("obj_uuid", Ty::String),
            Param::new("since", Ty::DateTime),
        ])
        .returns(Ty::Map(&MESSAGE_REF, &Ty::Record("message")))
        .sync_only(),
    Message::new("get_all", Role::ReadOnly)
        .returns(Ty::Set(&MESSAGE_REF))
        .sync_only(),
    Message::new("get_since", Role::ReadOnly)
        .params(&[Param::new("since", Ty::DateTime)])
        .returns(Ty::Map(&MESSAGE_REF, &Ty::Record("message")))
        .sync_only(),
    Message::new("get_record", Role::ReadOnly)
        .params(&[Param::new("self", MESSAGE_REF)])
        .returns(Ty::Record("message"))
        .sync_only(),
    Message::new("get_by_uuid", Role::ReadOnly)
        .params(&[Param::new("uuid", Ty::String)])
        .returns(MESSAGE_REF)
        .sync_only(),
    Message::new("get_all_records", Role::ReadOnly)
        .returns(Ty::Map(&MESSAGE_REF, &Ty::Record("message")))
        .sync_only(),
    Message::new("get_all_records_where", Role::ReadOnly)
        .params(&[Param::new("expr", Ty::String)])
        .returns(Ty::Map(&MESSAGE_REF, &Ty::Record("message")))
        .sync_only(),
];

/// oxapi keeps messages in the pool DB (`in_db`), unlike xapi; xapi lists no implicit
/// messages for them, so `has_get_all` is off and the explicit accessors stand in.
pub static MESSAGE: Class = Class {
    name: "message",
    fields: MESSAGE_FIELDS,
    messages: MESSAGE_MESSAGES,
    enums: &[&CLS],
    has_constructor: false,
    has_get_all: false,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolAdmin,
};
