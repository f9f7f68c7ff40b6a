//! The whole API as one table: every class, and every wire method (`VM.get_record`,
//! `session.login_with_password`, …) with its derived signature. Built once, on first use.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::classes;
use crate::implicit::{self, Implicit};
use crate::model::{Class, Lifecycle, Message, Relation};
use crate::roles::Role;
use crate::types::{Lit, Ty};

/// The major XenAPI version oxapi speaks, reported in `host.API_version_major` (xapi 2.23).
pub const API_VERSION_MAJOR: i64 = 2;

/// The minor XenAPI version oxapi speaks, reported in `host.API_version_minor`.
pub const API_VERSION_MINOR: i64 = 23;

/// xapi's `api_version_vendor`, reported in `host.API_version_vendor`.
pub const API_VERSION_VENDOR: &str = "XenSource";

/// The version of this model (classes, fields, messages, errors, relations). Bumped whenever the
/// model changes on purpose; the hash test in `check.rs` fails until it is.
pub const MODEL_VERSION: u32 = 9;

/// What a wire method is: a declared message or a derived one.
#[derive(Debug, Clone, Copy)]
pub enum MethodKind {
    Explicit(&'static Message),
    Implicit(Implicit),
}

/// A parameter of a wire method (the session is never listed).
#[derive(Debug, Clone)]
pub struct MethodParam {
    pub name: &'static str,
    pub ty: Ty,
    pub default: Option<Lit>,
}

/// One callable wire method.
#[derive(Debug, Clone)]
pub struct Method {
    /// `Class.message`, as clients call it (without `Async.`).
    pub wire_name: String,
    pub class: &'static Class,
    pub name: String,
    pub kind: MethodKind,
    pub params: Vec<MethodParam>,
    /// `None` is void.
    pub result: Option<Ty>,
    pub role: Role,
    pub has_async: bool,
    pub takes_session: bool,
    /// See `Message::on_every_host`; derived messages are the master's.
    pub on_every_host: bool,
    /// A removed message still has a name but answers `MESSAGE_REMOVED`.
    pub is_removed: bool,
}

impl Method {
    /// Whether calling it twice is as calling it once, so that a call whose master was lost
    /// may be sent again: the derived reads, and the logins (a second session is harmless).
    pub fn is_retry_safe(&self) -> bool {
        match self.kind {
            MethodKind::Implicit(kind) => matches!(
                kind,
                Implicit::GetRecord
                    | Implicit::GetByUuid
                    | Implicit::GetByNameLabel
                    | Implicit::GetAll
                    | Implicit::GetAllRecords
                    | Implicit::GetAllRecordsWhere
                    | Implicit::Get(_)
            ),
            MethodKind::Explicit(message) => !message.takes_session,
        }
    }

    /// How many parameters a caller must give at least: those before the first trailing run of
    /// defaulted ones (what `MESSAGE_PARAMETER_COUNT_MISMATCH` calls "expected").
    pub fn required_params(&self) -> usize {
        self.params.len()
            - self
                .params
                .iter()
                .rev()
                .take_while(|p| p.default.is_some())
                .count()
    }
}

/// The API table.
#[derive(Debug)]
pub struct Api {
    pub classes: &'static [&'static Class],
    pub relations: &'static [Relation],
    methods: BTreeMap<String, Method>,
}

impl Api {
    /// The class with this wire name, matched exactly (`VM`, `host_metrics`).
    pub fn class(&self, name: &str) -> Option<&'static Class> {
        self.classes.iter().copied().find(|c| c.name == name)
    }

    /// The class with this name in any case, as `event.from` subscriptions name them.
    pub fn class_ignoring_case(&self, name: &str) -> Option<&'static Class> {
        self.classes
            .iter()
            .copied()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The method with this wire name (without `Async.`).
    pub fn method(&self, wire_name: &str) -> Option<&Method> {
        self.methods.get(wire_name)
    }

    /// Whether the wire method `wire_name` is answered by every host from its own replica:
    /// the messages so declared, and `system.*`.
    pub fn is_on_every_host(&self, wire_name: &str) -> bool {
        wire_name.starts_with("system.") || self.method(wire_name).is_some_and(|m| m.on_every_host)
    }

    /// Every method, sorted by wire name.
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.methods.values()
    }
}

fn build() -> Api {
    let mut methods = BTreeMap::new();
    for class in classes::ALL.iter().copied() {
        for m in implicit::derive(class) {
            let wire_name = format!("{}.{}", class.name, m.name);
            let method = Method {
                wire_name: wire_name.clone(),
                class,
                name: m.name,
                kind: MethodKind::Implicit(m.kind),
                params: m
                    .params
                    .into_iter()
                    .map(|p| MethodParam {
                        name: p.name,
                        ty: p.ty,
                        default: None,
                    })
                    .collect(),
                result: m.result,
                role: m.role,
                has_async: m.has_async,
                takes_session: true,
                on_every_host: false,
                is_removed: false,
            };
            methods.insert(wire_name, method);
        }
        // Explicit messages come second: a class that declares its own `get_record` (message)
        // or `create` (task) replaces the derived one.
        for m in class.messages {
            let wire_name = format!("{}.{}", class.name, m.name);
            let method = Method {
                wire_name: wire_name.clone(),
                class,
                name: m.name.to_owned(),
                kind: MethodKind::Explicit(m),
                params: m
                    .params
                    .iter()
                    .map(|p| MethodParam {
                        name: p.name,
                        ty: p.ty,
                        default: p.default,
                    })
                    .collect(),
                result: m.result,
                role: m.role,
                has_async: m.has_async,
                takes_session: m.takes_session,
                on_every_host: m.on_every_host,
                is_removed: m.lifecycle == Lifecycle::Removed,
            };
            methods.insert(wire_name, method);
        }
    }
    Api {
        classes: classes::ALL,
        relations: classes::RELATIONS,
        methods,
    }
}

static API: LazyLock<Api> = LazyLock::new(build);

/// The API table, built on first use.
pub fn api() -> &'static Api {
    &API
}

#[cfg(test)]
mod tests {
    use super::api;

    /// The reads and the logins may be sent twice; writes and operations may not; the event
    /// reads and the slave-local login are answered on every host.
    #[test]
    fn methods_say_whether_they_repeat_safely_and_where_they_are_answered() {
        let safe = |name: &str| api().method(name).expect(name).is_retry_safe();
        for name in [
            "VM.get_record",
            "VM.get_all_records_where",
            "host.get_name_label",
            "session.login_with_password",
        ] {
            assert!(safe(name), "{name}");
        }
        for name in ["VM.set_name_label", "VM.start", "VM.create", "pool.join"] {
            assert!(!safe(name), "{name}");
        }
        let api = api();
        assert!(api.is_on_every_host("event.from"));
        assert!(api.is_on_every_host("session.slave_local_login_with_password"));
        assert!(api.is_on_every_host("system.listMethods"));
        assert!(!api.is_on_every_host("VM.get_all"));
        assert!(!api.is_on_every_host("Async.pool.emergency_transition_to_master"));
    }
}
