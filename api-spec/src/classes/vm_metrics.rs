//! `VM_metrics`: what the hypervisor reports about a running VM.

use super::{STRING_MAP, STRING_SET, vm::DOMAIN_TYPE};
use crate::model::{Class, Field};
use crate::roles::Role;
use crate::types::{Lit, Ty};

pub static VM_METRICS_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("memory_actual", Ty::Int),
    Field::dynamic_ro("VCPUs_number", Ty::Int),
    Field::dynamic_ro("VCPUs_CPU", Ty::Map(&Ty::Int, &Ty::Int)),
    Field::dynamic_ro("VCPUs_params", STRING_MAP),
    Field::dynamic_ro("VCPUs_flags", Ty::Map(&Ty::Int, &STRING_SET)),
    Field::dynamic_ro("state", STRING_SET),
    Field::dynamic_ro("start_time", Ty::DateTime),
    Field::dynamic_ro("install_time", Ty::DateTime),
    Field::dynamic_ro("last_updated", Ty::DateTime),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("hvm", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("nested_virt", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("nomigrate", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("current_domain_type", Ty::Enum(&DOMAIN_TYPE))
        .default(Lit::Enum("unspecified")),
];

pub static VM_METRICS: Class = Class {
    name: "VM_metrics",
    fields: VM_METRICS_FIELDS,
    messages: &[],
    enums: &[],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
