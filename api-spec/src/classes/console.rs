//! `console`: a VM console and the URL it is reached at.

use super::STRING_MAP;
use crate::model::{Class, Field};
use crate::roles::Role;
use crate::types::{EnumDecl, Ty};

pub static CONSOLE_PROTOCOL: EnumDecl = EnumDecl {
    name: "console_protocol",
    values: &["vt100", "rfb", "rdp"],
};

pub static CONSOLE_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("protocol", Ty::Enum(&CONSOLE_PROTOCOL)),
    Field::dynamic_ro("location", Ty::String),
    Field::dynamic_ro("VM", Ty::Ref("VM")),
    Field::rw("other_config", STRING_MAP),
];

pub static CONSOLE: Class = Class {
    name: "console",
    fields: CONSOLE_FIELDS,
    messages: &[],
    enums: &[&CONSOLE_PROTOCOL],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
