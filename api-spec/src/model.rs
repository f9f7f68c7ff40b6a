//! The shapes a class declaration is written in: `Class`, `Field`, `Message`, `Param`, `Relation`.

use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Qualifier, Ty};

/// One XenAPI class: its fields, then its explicit (custom) messages. Implicit messages
/// (`get_X`, `set_X`, `get_record`, …) are derived in `implicit.rs`, never declared here.
#[derive(Debug)]
pub struct Class {
    /// The wire name, e.g. `VM`, `host_metrics`.
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Explicit messages only.
    pub messages: &'static [Message],
    /// The enums this class's file declares (an enum is declared once, where xapi declares it).
    pub enums: &'static [&'static EnumDecl],
    /// Whether `create` and `destroy` are generated.
    pub has_constructor: bool,
    /// Whether `get_all`, `get_all_records` and their `_where` forms are generated.
    pub has_get_all: bool,
    /// Whether the class has rows in the pool DB (`event` does not).
    pub in_db: bool,
    /// Whether changes to its rows are events.
    pub gen_events: bool,
    /// The least privileged role that may call the generated setters.
    pub writer_role: Role,
}

impl Class {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields.iter().find(|f| f.name == name)
    }

    pub fn message(&self, name: &str) -> Option<&'static Message> {
        let messages: &'static [Message] = self.messages;
        messages.iter().find(|m| m.name == name)
    }

    /// Whether rows are identified by a `uuid` field (`get_by_uuid`).
    pub fn has_uuid(&self) -> bool {
        self.field("uuid").is_some()
    }

    /// Whether rows are named by a `name_label` field (`get_by_name_label`).
    pub fn has_name_label(&self) -> bool {
        self.field("name_label").is_some()
    }
}

/// A field of a class; namespaces are flattened with `_` (`name_label`).
#[derive(Debug, PartialEq)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub qualifier: Qualifier,
    /// The value a constructor uses when the field is left out; `None` means the field must be
    /// given (RW, StaticRO) or starts at the type's zero value (DynamicRO).
    pub default: Option<Lit>,
    pub lifecycle: Lifecycle,
}

/// Where a field or message stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Published,
    Prototyped,
    Deprecated,
    /// Gone from the API: calling a removed message answers `MESSAGE_REMOVED`; removed fields are
    /// not declared at all.
    Removed,
}

/// An explicit message. The session parameter is not listed: `takes_session` says whether the
/// message expects one first.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub params: &'static [Param],
    /// `None` is void.
    pub result: Option<Ty>,
    /// The error codes this message may raise (each declared in `errors.rs`).
    pub errors: &'static [&'static str],
    /// The least privileged role allowed to call it.
    pub role: Role,
    /// Whether an `Async.` form exists.
    pub has_async: bool,
    pub takes_session: bool,
    /// Answered by every host of a pool from its own replica, never forwarded to the master:
    /// the event reads (tokens are the same on every replica) and what a host needs when its
    /// pool has no master (the emergency transition, the slave-local login).
    pub on_every_host: bool,
    pub lifecycle: Lifecycle,
}

/// A parameter of a message. Trailing parameters with a default may be left out by callers.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub default: Option<Lit>,
}

/// A one-to-many relation that the pool DB keeps in step: setting `one_field` (a ref) on a row of
/// `one_class` adds the row to `many_field` (a ref set, DynamicRO) of the referenced row of
/// `many_class`. Example: `VBD.VM` ↔ `VM.VBDs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub one_class: &'static str,
    pub one_field: &'static str,
    pub many_class: &'static str,
    pub many_field: &'static str,
}
