//! `VM_guest_metrics`: what the guest agent inside a VM reports.

use super::STRING_MAP;
use crate::model::{Class, Field, Lifecycle};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

pub static TRISTATE_TYPE: EnumDecl = EnumDecl {
    name: "tristate_type",
    values: &["yes", "no", "unspecified"],
};

pub static VM_GUEST_METRICS_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("os_version", STRING_MAP),
    Field::dynamic_ro("PV_drivers_version", STRING_MAP),
    Field::dynamic_ro("PV_drivers_up_to_date", Ty::Bool).lifecycle(Lifecycle::Deprecated),
    Field::dynamic_ro("networks", STRING_MAP),
    Field::dynamic_ro("other", STRING_MAP),
    Field::dynamic_ro("last_updated", Ty::DateTime),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("live", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("can_use_hotplug_vbd", Ty::Enum(&TRISTATE_TYPE))
        .default(Lit::Enum("unspecified")),
    Field::dynamic_ro("can_use_hotplug_vif", Ty::Enum(&TRISTATE_TYPE))
        .default(Lit::Enum("unspecified")),
    Field::dynamic_ro("PV_drivers_detected", Ty::Bool).default(Lit::Bool(false)),
];

pub static VM_GUEST_METRICS: Class = Class {
    name: "VM_guest_metrics",
    fields: VM_GUEST_METRICS_FIELDS,
    messages: &[],
    enums: &[&TRISTATE_TYPE],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
