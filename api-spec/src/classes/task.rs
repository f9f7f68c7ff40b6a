//! `task`: a long-running call, its progress and its result.

use super::{STRING_MAP, STRING_SET};
use crate::errors::OPERATION_NOT_ALLOWED;
use crate::model::{Class, Field, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

const TASK_REF: Ty = Ty::Ref("task");

crate::wire_enum! {
    /// What may be done to a task: the values of `current_operations` and
    /// `allowed_operations`.
    pub enum TaskOperation in TASK_ALLOWED_OPERATIONS = "task_allowed_operations" {
        Cancel = "cancel",
        Destroy = "destroy",
    }
}

pub static TASK_STATUS_TYPE: EnumDecl = EnumDecl {
    name: "task_status_type",
    values: &["pending", "success", "failure", "cancelling", "cancelled"],
};

pub static TASK_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("name_label", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("name_description", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro(
        "allowed_operations",
        Ty::Set(&Ty::Enum(&TASK_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&TASK_ALLOWED_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("created", Ty::DateTime),
    Field::dynamic_ro("finished", Ty::DateTime),
    Field::dynamic_ro("status", Ty::Enum(&TASK_STATUS_TYPE)),
    Field::dynamic_ro("resident_on", Ty::Ref("host")),
    Field::dynamic_ro("progress", Ty::Float),
    Field::dynamic_ro("type", Ty::String),
    Field::dynamic_ro("result", Ty::String),
    Field::dynamic_ro("error_info", STRING_SET),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("subtask_of", TASK_REF).default(Lit::NullRef),
    Field::dynamic_ro("subtasks", Ty::Set(&TASK_REF)),
    Field::dynamic_ro("backtrace", Ty::String).default(Lit::Str("()")),
];

pub static TASK_MESSAGES: &[Message] = &[
    Message::new("create", Role::ReadOnly)
        .params(&[
            Param::new("label", Ty::String),
            Param::new("description", Ty::String),
        ])
        .returns(TASK_REF)
        .sync_only(),
    Message::new("destroy", Role::ReadOnly)
        .params(&[Param::new("self", TASK_REF)])
        .sync_only(),
    Message::new("cancel", Role::ReadOnly)
        .params(&[Param::new("task", TASK_REF)])
        .errors(&[OPERATION_NOT_ALLOWED])
        .sync_only(),
    Message::new("set_status", Role::ReadOnly)
        .params(&[
            Param::new("self", TASK_REF),
            Param::new("value", Ty::Enum(&TASK_STATUS_TYPE)),
        ])
        .sync_only(),
    Message::new("set_progress", Role::ReadOnly)
        .params(&[Param::new("self", TASK_REF), Param::new("value", Ty::Float)])
        .sync_only(),
    Message::new("set_result", Role::ReadOnly)
        .params(&[
            Param::new("self", TASK_REF),
            Param::new("value", Ty::String),
        ])
        .sync_only(),
    Message::new("set_error_info", Role::ReadOnly)
        .params(&[
            Param::new("self", TASK_REF),
            Param::new("value", STRING_SET),
        ])
        .sync_only(),
];

/// None of the task messages has an `Async.` form; `create` and `destroy` are explicit.
pub static TASK: Class = Class {
    name: "task",
    fields: TASK_FIELDS,
    messages: TASK_MESSAGES,
    enums: &[&TASK_ALLOWED_OPERATIONS, &TASK_STATUS_TYPE],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
