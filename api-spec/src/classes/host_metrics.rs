//! `host_metrics`: a host's memory and liveness as last reported.

use super::STRING_MAP;
use crate::model::{Class, Field};
use crate::roles::Role;
use crate::types::{Lit, Ty};

pub static HOST_METRICS_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("memory_total", Ty::Int),
    Field::dynamic_ro("live", Ty::Bool),
    Field::dynamic_ro("last_updated", Ty::DateTime),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
];

pub static HOST_METRICS: Class = Class {
    name: "host_metrics",
    fields: HOST_METRICS_FIELDS,
    messages: &[],
    enums: &[],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
