//! The custom handlers: one function per message, named as the message, one file per class,
//! and the one table from wire name to handler. A message without an entry here answers
//! through the generic handler when it is implicit, else `NOT_IMPLEMENTED [wire name]`; an
//! entry for an implicit message (`VM.create`) replaces the generic behaviour.

mod event;
mod host;
mod message;
mod session;
mod task;
mod vm;

use api_spec::Value;

use crate::ctx::{Args, Ctx};
use crate::db::BoxFuture;
use crate::error::Error;

/// A handler: owns its context and arguments, so its future can run as a task.
pub(crate) type Handler = fn(Ctx, Args) -> BoxFuture<'static, Result<Value, Error>>;

macro_rules! table {
    ($($wire:literal => $handler:path,)*) => {
        /// Every custom handler, by wire name.
        static HANDLERS: &[(&str, Handler)] = &[
            $(($wire, |ctx, args| Box::pin($handler(ctx, args))),)*
        ];
    };
}

table! {
    "event.from" => event::from,
    "event.get_current_id" => event::get_current_id,
    "event.inject" => event::inject,
    "event.next" => event::next,
    "event.register" => event::register,
    "event.unregister" => event::unregister,
    "host.get_server_localtime" => host::get_server_localtime,
    "host.get_servertime" => host::get_servertime,
    "message.create" => message::create,
    "message.destroy_many" => message::destroy_many,
    "message.get" => message::get,
    "message.get_since" => message::get_since,
    "session.change_password" => session::change_password,
    "session.get_all_subject_identifiers" => session::get_all_subject_identifiers,
    "session.local_logout" => session::local_logout,
    "session.login_with_password" => session::login_with_password,
    "session.logout" => session::logout,
    "task.cancel" => task::cancel,
    "task.create" => task::create,
    "task.destroy" => task::destroy,
    "task.set_error_info" => task::set_error_info,
    "task.set_progress" => task::set_progress,
    "task.set_result" => task::set_result,
    "task.set_status" => task::set_status,
    "VM.clone" => vm::clone,
    "VM.create" => vm::create,
    "VM.destroy" => vm::destroy,
    "VM.set_is_a_template" => vm::set_is_a_template,
}

/// The custom handler of a wire method, if it has one.
pub(crate) fn handler(wire_name: &str) -> Option<Handler> {
    HANDLERS
        .iter()
        .find(|(name, _)| *name == wire_name)
        .map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use api_spec::api;
    use api_spec::api::MethodKind;

    use super::*;

    /// Lists the declared explicit messages without a handler (they answer `NOT_IMPLEMENTED`
    /// for now), and fails if one this issue needs is among them or if the table names a
    /// method the API does not have.
    #[test]
    fn every_custom_message_has_a_handler() {
        for (name, _) in HANDLERS {
            assert!(api().method(name).is_some(), "{name} is not an API method");
        }
        let missing: Vec<&str> = api()
            .methods()
            .filter(|m| matches!(m.kind, MethodKind::Explicit(_)) && !m.is_removed)
            .map(|m| m.wire_name.as_str())
            .filter(|name| handler(name).is_none())
            .collect();
        println!("explicit messages answering NOT_IMPLEMENTED: {missing:?}");
        let needed = [
            "session.login_with_password",
            "session.logout",
            "session.local_logout",
            "task.create",
            "task.cancel",
            "task.destroy",
            "event.from",
            "event.inject",
            "event.get_current_id",
            "event.register",
            "event.unregister",
            "event.next",
            "VM.clone",
        ];
        for name in needed {
            assert!(api().method(name).is_some(), "{name} is declared");
            assert!(!missing.contains(&name), "{name} has no handler");
        }
    }
}
