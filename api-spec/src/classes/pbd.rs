//! `PBD`: how one host reaches one SR (the attachment and its device config).

use super::STRING_MAP;
use crate::errors::SR_UNKNOWN_DRIVER;
use crate::model::{Class, Field, Message, Param};
use crate::roles::Role;
use crate::types::{Lit, Ty};

const PBD_REF: Ty = Ty::Ref("PBD");

pub static PBD_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::static_ro("host", Ty::Ref("host")),
    Field::static_ro("SR", Ty::Ref("SR")),
    Field::static_ro("device_config", STRING_MAP),
    Field::dynamic_ro("currently_attached", Ty::Bool),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
];

pub static PBD_MESSAGES: &[Message] = &[
    Message::new("plug", Role::PoolOperator)
        .params(&[Param::new("self", PBD_REF)])
        .errors(&[SR_UNKNOWN_DRIVER]),
    Message::new("unplug", Role::PoolOperator).params(&[Param::new("self", PBD_REF)]),
    Message::new("set_device_config", Role::PoolOperator)
        .params(&[Param::new("self", PBD_REF), Param::new("value", STRING_MAP)]),
];

pub static PBD: Class = Class {
    name: "PBD",
    fields: PBD_FIELDS,
    messages: PBD_MESSAGES,
    enums: &[],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
