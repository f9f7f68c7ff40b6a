//! `event`: the change notifications clients poll for (`event.from`); it has no rows.

use super::STRING_SET;
use crate::errors::{EVENTS_LOST, SESSION_NOT_REGISTERED};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Ty};

pub static EVENT_OPERATION: EnumDecl = EnumDecl {
    name: "event_operation",
    values: &["add", "del", "mod"],
};

/// The fields of an event record. `snapshot` is the record of the object that changed, so its
/// type depends on `class`.
pub static EVENT_FIELDS: &[Field] = &[
    Field::static_ro("id", Ty::Int),
    Field::static_ro("timestamp", Ty::DateTime).lifecycle(Lifecycle::Deprecated),
    Field::static_ro("class", Ty::String),
    Field::static_ro("operation", Ty::Enum(&EVENT_OPERATION)),
    Field::static_ro("ref", Ty::String),
    Field::static_ro("obj_uuid", Ty::String).lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("snapshot", Ty::Record("<class>")),
];

const NEXT_ERRORS: &[&str] = &[SESSION_NOT_REGISTERED, EVENTS_LOST];

pub static EVENT_MESSAGES: &[Message] = &[
    Message::new("register", Role::ReadOnly)
        .params(&[Param::new("classes", STRING_SET)])
        .sync_only()
        .on_every_host()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("unregister", Role::ReadOnly)
        .params(&[Param::new("classes", STRING_SET)])
        .sync_only()
        .on_every_host()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("next", Role::ReadOnly)
        .returns(Ty::Set(&Ty::Record("event")))
        .errors(NEXT_ERRORS)
        .sync_only()
        .on_every_host()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("from", Role::ReadOnly)
        .params(&[
            Param::new("classes", STRING_SET),
            Param::new("token", Ty::String),
            Param::new("timeout", Ty::Float),
        ])
        // The batch is the struct `{events, valid_ref_counts, token}`, which xapi's datamodel
        // cannot express either. `event_batch` is no class, so `coerce` passes it through.
        .returns(Ty::Record("event_batch"))
        .errors(NEXT_ERRORS)
        .sync_only()
        .on_every_host(),
    Message::new("get_current_id", Role::ReadOnly)
        .returns(Ty::Int)
        .sync_only()
        .on_every_host(),
    Message::new("inject", Role::ReadOnly)
        .params(&[
            Param::new("class", Ty::String),
            Param::new("ref", Ty::String),
        ])
        .returns(Ty::String)
        .sync_only(),
];

/// `event` has no rows and no implicit messages; none of its messages has an `Async.` form.
pub static EVENT: Class = Class {
    name: "event",
    fields: EVENT_FIELDS,
    messages: EVENT_MESSAGES,
    enums: &[&EVENT_OPERATION],
    has_constructor: false,
    has_get_all: false,
    in_db: false,
    gen_events: false,
    writer_role: Role::PoolAdmin,
};
