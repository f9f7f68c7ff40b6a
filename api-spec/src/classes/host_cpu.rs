//! `host_cpu`: a physical CPU of a host (superseded by `host.cpu_info`).

use super::STRING_MAP;
use crate::model::{Class, Field};
use crate::roles::Role;
use crate::types::{Lit, Ty};

pub static HOST_CPU_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("host", Ty::Ref("host")),
    Field::dynamic_ro("number", Ty::Int),
    Field::dynamic_ro("vendor", Ty::String),
    Field::dynamic_ro("speed", Ty::Int),
    Field::dynamic_ro("modelname", Ty::String),
    Field::dynamic_ro("family", Ty::Int),
    Field::dynamic_ro("model", Ty::Int),
    Field::dynamic_ro("stepping", Ty::String),
    Field::dynamic_ro("flags", Ty::String),
    Field::dynamic_ro("features", Ty::String),
    Field::dynamic_ro("utilisation", Ty::Float),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
];

pub static HOST_CPU: Class = Class {
    name: "host_cpu",
    fields: HOST_CPU_FIELDS,
    messages: &[],
    enums: &[],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
