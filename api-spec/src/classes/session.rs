//! `session`: a logged-in client, its user and its rights.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{HOST_IS_SLAVE, SESSION_AUTHENTICATION_FAILED};
use crate::model::{Class, Field, Message, Param};
use crate::roles::Role;
use crate::types::{Lit, NEVER, Ty};

const SESSION_REF: Ty = Ty::Ref("session");

pub static SESSION_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("this_host", Ty::Ref("host")),
    Field::dynamic_ro("this_user", Ty::Ref("user")),
    Field::dynamic_ro("last_active", Ty::DateTime),
    Field::dynamic_ro("pool", Ty::Bool),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("is_local_superuser", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("subject", Ty::Ref("subject")).default(Lit::NullRef),
    Field::dynamic_ro("validation_time", Ty::DateTime).default(Lit::DateTime(NEVER)),
    Field::dynamic_ro("auth_user_sid", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("auth_user_name", Ty::String).default(Lit::Str("")),
    Field::static_ro("rbac_permissions", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("tasks", Ty::Set(&Ty::Ref("task"))),
    Field::static_ro("parent", SESSION_REF).default(Lit::NullRef),
    Field::dynamic_ro("originator", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("client_certificate", Ty::Bool).default(Lit::Bool(false)),
];

pub static SESSION_MESSAGES: &[Message] = &[
    // Called without a session; `version` and `originator` may be left out (XO sends only
    // `uname` and `pwd`).
    Message::new("login_with_password", Role::ReadOnly)
        .params(&[
            Param::new("uname", Ty::String),
            Param::new("pwd", Ty::SecretString),
            Param::new("version", Ty::String).default(Lit::Str("1.1")),
            Param::new("originator", Ty::String).default(Lit::Str("")),
        ])
        .returns(SESSION_REF)
        .errors(&[SESSION_AUTHENTICATION_FAILED, HOST_IS_SLAVE])
        .sync_only()
        .without_session(),
    Message::new("logout", Role::ReadOnly).sync_only(),
    Message::new("change_password", Role::PoolAdmin)
        .params(&[
            Param::new("old_pwd", Ty::SecretString),
            Param::new("new_pwd", Ty::SecretString),
        ])
        .sync_only(),
    Message::new("slave_local_login_with_password", Role::PoolAdmin)
        .params(&[
            Param::new("uname", Ty::String),
            Param::new("pwd", Ty::SecretString),
        ])
        .returns(SESSION_REF)
        .sync_only()
        .without_session()
        .on_every_host(),
    Message::new("create_from_db_file", Role::PoolAdmin)
        .params(&[Param::new("filename", Ty::String)])
        .returns(SESSION_REF)
        .sync_only(),
    Message::new("local_logout", Role::PoolAdmin)
        .sync_only()
        .on_every_host(),
    Message::new("get_all_subject_identifiers", Role::ReadOnly)
        .returns(STRING_SET)
        .sync_only(),
    Message::new("logout_subject_identifier", Role::PoolOperator)
        .params(&[Param::new("subject_identifier", Ty::String)])
        .sync_only(),
];

/// Sessions never produce events, and none of their messages has an `Async.` form.
pub static SESSION: Class = Class {
    name: "session",
    fields: SESSION_FIELDS,
    messages: SESSION_MESSAGES,
    enums: &[],
    has_constructor: false,
    has_get_all: false,
    in_db: true,
    gen_events: false,
    writer_role: Role::PoolAdmin,
};
