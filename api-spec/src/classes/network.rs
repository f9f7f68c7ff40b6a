//! `network`: a virtual network (a bridge on each host).

use super::{STRING_MAP, STRING_SET};
use crate::errors::NETWORK_INCOMPATIBLE_PURPOSES;
use crate::model::{Class, Field, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

const NETWORK_REF: Ty = Ty::Ref("network");

pub static NETWORK_OPERATIONS: EnumDecl = EnumDecl {
    name: "network_operations",
    values: &["attaching"],
};

pub static NETWORK_DEFAULT_LOCKING_MODE: EnumDecl = EnumDecl {
    name: "network_default_locking_mode",
    values: &["unlocked", "disabled"],
};

pub static NETWORK_PURPOSE: EnumDecl = EnumDecl {
    name: "network_purpose",
    values: &["nbd", "insecure_nbd"],
};

pub static NETWORK_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::rw("name_label", Ty::String).default(Lit::Str("")),
    Field::rw("name_description", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro(
        "allowed_operations",
        Ty::Set(&Ty::Enum(&NETWORK_OPERATIONS)),
    )
    .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&NETWORK_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("VIFs", Ty::Set(&Ty::Ref("VIF"))),
    Field::dynamic_ro("PIFs", Ty::Set(&Ty::Ref("PIF"))),
    Field::rw("MTU", Ty::Int).default(Lit::Int(1500)),
    Field::rw("other_config", STRING_MAP),
    Field::static_ro("bridge", Ty::String).default(Lit::Str("")),
    Field::static_ro("managed", Ty::Bool).default(Lit::Bool(true)),
    Field::dynamic_ro("blobs", Ty::Map(&Ty::String, &Ty::Ref("blob"))).default(Lit::Map(&[])),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro(
        "default_locking_mode",
        Ty::Enum(&NETWORK_DEFAULT_LOCKING_MODE),
    )
    .default(Lit::Enum("unlocked")),
    Field::dynamic_ro("assigned_ips", Ty::Map(&Ty::Ref("VIF"), &Ty::String)).default(Lit::Map(&[])),
    Field::dynamic_ro("purpose", Ty::Set(&Ty::Enum(&NETWORK_PURPOSE))).default(Lit::Set(&[])),
];

pub static NETWORK_MESSAGES: &[Message] = &[
    Message::new("create_new_blob", Role::PoolOperator)
        .params(&[
            Param::new("network", NETWORK_REF),
            Param::new("name", Ty::String),
            Param::new("mime_type", Ty::String),
            Param::new("public", Ty::Bool).default(Lit::Bool(false)),
        ])
        .returns(Ty::Ref("blob")),
    Message::new("set_default_locking_mode", Role::PoolOperator).params(&[
        Param::new("network", NETWORK_REF),
        Param::new("value", Ty::Enum(&NETWORK_DEFAULT_LOCKING_MODE)),
    ]),
    Message::new("add_purpose", Role::PoolAdmin)
        .params(&[
            Param::new("self", NETWORK_REF),
            Param::new("value", Ty::Enum(&NETWORK_PURPOSE)),
        ])
        .errors(&[NETWORK_INCOMPATIBLE_PURPOSES]),
    Message::new("remove_purpose", Role::PoolAdmin).params(&[
        Param::new("self", NETWORK_REF),
        Param::new("value", Ty::Enum(&NETWORK_PURPOSE)),
    ]),
];

pub static NETWORK: Class = Class {
    name: "network",
    fields: NETWORK_FIELDS,
    messages: NETWORK_MESSAGES,
    enums: &[
        &NETWORK_OPERATIONS,
        &NETWORK_DEFAULT_LOCKING_MODE,
        &NETWORK_PURPOSE,
    ],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
