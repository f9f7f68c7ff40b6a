//! One file per XenAPI class: its enums, its fields, then its explicit messages, then the class.
//!
//! Declarations are written with the shorthands at the bottom of this file
//! (`Field::rw(..).default(..)`, `Message::new(..).returns(..)`), which build the plain structs of
//! `model.rs` at compile time. The facts come from xapi's datamodel: names, types, qualifiers,
//! defaults, roles, errors and which messages have an `Async.` form.

use crate::model::{Class, Field, Lifecycle, Message, Param, Relation};
use crate::roles::Role;
use crate::types::{Lit, Qualifier, Ty};

pub mod console;
pub mod event;
pub mod host;
pub mod host_cpu;
pub mod host_metrics;
pub mod message;
pub mod network;
pub mod pbd;
pub mod pif;
pub mod pool;
pub mod session;
pub mod sr;
pub mod task;
pub mod vbd;
pub mod vdi;
pub mod vif;
pub mod vm;
pub mod vm_guest_metrics;
pub mod vm_metrics;

/// Every declared class.
pub static ALL: &[&Class] = &[
    &session::SESSION,
    &pool::POOL,
    &host::HOST,
    &host_metrics::HOST_METRICS,
    &host_cpu::HOST_CPU,
    &vm::VM,
    &vm_metrics::VM_METRICS,
    &vm_guest_metrics::VM_GUEST_METRICS,
    &vbd::VBD,
    &vdi::VDI,
    &sr::SR,
    &pbd::PBD,
    &vif::VIF,
    &network::NETWORK,
    &pif::PIF,
    &console::CONSOLE,
    &task::TASK,
    &message::MESSAGE,
    &event::EVENT,
];

const fn relation(
    one_class: &'static str,
    one_field: &'static str,
    many_class: &'static str,
    many_field: &'static str,
) -> Relation {
    Relation {
        one_class,
        one_field,
        many_class,
        many_field,
    }
}

/// The one-to-many relations the pool DB keeps in step: xapi's `all_relations` restricted to the
/// declared classes. xapi's `task.session` ↔ `session.tasks` is left out: `task.session` is an
/// internal field that the API does not expose.
pub static RELATIONS: &[Relation] = &[
    relation("VM", "snapshot_of", "VM", "snapshots"),
    relation("VDI", "snapshot_of", "VDI", "snapshots"),
    relation("VM", "parent", "VM", "children"),
    relation("task", "subtask_of", "task", "subtasks"),
    relation("PBD", "host", "host", "PBDs"),
    relation("PBD", "SR", "SR", "PBDs"),
    relation("VBD", "VDI", "VDI", "VBDs"),
    relation("VBD", "VM", "VM", "VBDs"),
    relation("VIF", "VM", "VM", "VIFs"),
    relation("VIF", "network", "network", "VIFs"),
    relation("PIF", "host", "host", "PIFs"),
    relation("PIF", "network", "network", "PIFs"),
    relation("VDI", "SR", "SR", "VDIs"),
    relation("console", "VM", "VM", "consoles"),
    relation("VM", "resident_on", "host", "resident_VMs"),
    relation("host_cpu", "host", "host", "host_CPUs"),
    relation("VDI", "metadata_of_pool", "pool", "metadata_VDIs"),
];

/// `(string -> string) map`, the type of every `other_config`.
pub(crate) const STRING_MAP: Ty = Ty::Map(&Ty::String, &Ty::String);

/// `string set`, the type of every `tags`.
pub(crate) const STRING_SET: Ty = Ty::Set(&Ty::String);

// Shorthands the declarations are written with. Each returns a plain `model` struct, so a
// declaration is still data: `Field::rw("name_label", Ty::String)` is the field
// `{ name: "name_label", ty: String, qualifier: RW, default: None, lifecycle: Published }`.

impl Field {
    const fn new(name: &'static str, ty: Ty, qualifier: Qualifier) -> Field {
        Field {
            name,
            ty,
            qualifier,
            default: None,
            lifecycle: Lifecycle::Published,
        }
    }

    /// A published RW field without a default.
    pub(crate) const fn rw(name: &'static str, ty: Ty) -> Field {
        Field::new(name, ty, Qualifier::RW)
    }

    /// A published StaticRO ("RO/constructor") field without a default.
    pub(crate) const fn static_ro(name: &'static str, ty: Ty) -> Field {
        Field::new(name, ty, Qualifier::StaticRO)
    }

    /// A published DynamicRO ("RO/runtime") field without a default.
    pub(crate) const fn dynamic_ro(name: &'static str, ty: Ty) -> Field {
        Field::new(name, ty, Qualifier::DynamicRO)
    }

    pub(crate) const fn default(self, value: Lit) -> Field {
        Field {
            default: Some(value),
            ..self
        }
    }

    pub(crate) const fn lifecycle(self, lifecycle: Lifecycle) -> Field {
        Field { lifecycle, ..self }
    }
}

impl Param {
    /// A parameter callers must give.
    pub(crate) const fn new(name: &'static str, ty: Ty) -> Param {
        Param {
            name,
            ty,
            default: None,
        }
    }

    /// The value used when a caller leaves this (trailing) parameter out.
    pub(crate) const fn default(self, value: Lit) -> Param {
        Param {
            default: Some(value),
            ..self
        }
    }
}

impl Message {
    /// A published message without parameters that takes a session, has an `Async.` form,
    /// returns nothing and declares no error.
    pub(crate) const fn new(name: &'static str, role: Role) -> Message {
        Message {
            name,
            params: &[],
            result: None,
            errors: &[],
            role,
            has_async: true,
            takes_session: true,
            on_every_host: false,
            lifecycle: Lifecycle::Published,
        }
    }

    pub(crate) const fn params(self, params: &'static [Param]) -> Message {
        Message { params, ..self }
    }

    pub(crate) const fn returns(self, ty: Ty) -> Message {
        Message {
            result: Some(ty),
            ..self
        }
    }

    pub(crate) const fn errors(self, errors: &'static [&'static str]) -> Message {
        Message { errors, ..self }
    }

    /// No `Async.` form (xapi's ``~flags:[`Session]``).
    pub(crate) const fn sync_only(self) -> Message {
        Message {
            has_async: false,
            ..self
        }
    }

    /// Answered by every host from its own replica (`Message::on_every_host`).
    pub(crate) const fn on_every_host(self) -> Message {
        Message {
            on_every_host: true,
            ..self
        }
    }

    /// Called without a session (the logins).
    pub(crate) const fn without_session(self) -> Message {
        Message {
            takes_session: false,
            ..self
        }
    }

    pub(crate) const fn lifecycle(self, lifecycle: Lifecycle) -> Message {
        Message { lifecycle, ..self }
    }
}
