//! The custom handlers: one function per message, named as the message, one file per class,
//! and the one table from wire name to handler. A message without an entry here answers
//! through the generic handler when it is implicit, else `NOT_IMPLEMENTED [wire name]`; an
//! entry for an implicit message (`VM.create`) replaces the generic behaviour.

mod event;
mod host;
mod hotplug;
mod message;
mod pbd;
mod pif;
mod pool;
mod session;
pub(crate) mod sr;
mod task;
pub(crate) mod vbd;
mod vdi;
pub(crate) mod vif;
mod vm;

use api_spec::Value;

use crate::call::ctx::{Args, Ctx};
use crate::db::BoxFuture;
use crate::error::Error;
use crate::vm::operations::Draft;

/// Records the `currently_attached` of the row `r` of `class` (a PIF, a PBD) once its host
/// has done what plugging or unplugging it needs, unless the row was destroyed meanwhile.
async fn record_attached(ctx: &Ctx, class: &str, r: &str, attached: bool) -> Result<(), Error> {
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if draft.view().exists(class, r) {
                draft.update(class, r, "currently_attached", Value::Bool(attached));
            }
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(())
}

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
    "host.assert_can_evacuate" => host::assert_can_evacuate,
    "host.compute_free_memory" => host::compute_free_memory,
    "host.compute_memory_overhead" => host::compute_memory_overhead,
    "host.disable" => host::disable,
    "host.enable" => host::enable,
    "host.evacuate" => host::evacuate,
    "host.get_server_localtime" => host::get_server_localtime,
    "host.get_servertime" => host::get_servertime,
    "host.get_vms_which_prevent_evacuation" => host::get_vms_which_prevent_evacuation,
    "message.create" => message::create,
    "message.destroy_many" => message::destroy_many,
    "message.get" => message::get,
    "message.get_since" => message::get_since,
    "PBD.plug" => pbd::plug,
    "PBD.unplug" => pbd::unplug,
    "PIF.db_introduce" => pif::db_introduce,
    "PIF.plug" => pif::plug,
    "PIF.unplug" => pif::unplug,
    "pool.designate_new_master" => pool::designate_new_master,
    "pool.eject" => pool::eject,
    "pool.emergency_transition_to_master" => pool::emergency_transition_to_master,
    "pool.join" => pool::join,
    "pool.join_force" => pool::join_force,
    "pool.recover_slaves" => pool::recover_slaves,
    "pool.sync_database" => pool::sync_database,
    "session.change_password" => session::change_password,
    "session.get_all_subject_identifiers" => session::get_all_subject_identifiers,
    "session.local_logout" => session::local_logout,
    "session.login_with_password" => session::login_with_password,
    "session.logout" => session::logout,
    "session.slave_local_login_with_password" => session::slave_local_login_with_password,
    "SR.create" => sr::create,
    "SR.destroy" => sr::destroy,
    "SR.forget" => sr::forget,
    "SR.introduce" => sr::introduce,
    "SR.scan" => sr::scan,
    "SR.update" => sr::update,
    "task.cancel" => task::cancel,
    "task.create" => task::create,
    "task.destroy" => task::destroy,
    "task.set_error_info" => task::set_error_info,
    "task.set_progress" => task::set_progress,
    "task.set_result" => task::set_result,
    "task.set_status" => task::set_status,
    "VBD.create" => vbd::create,
    "VBD.destroy" => vbd::destroy,
    "VBD.eject" => vbd::eject,
    "VBD.insert" => vbd::insert,
    "VBD.plug" => vbd::plug,
    "VBD.unplug" => vbd::unplug,
    "VBD.unplug_force" => vbd::unplug_force,
    "VDI.clone" => vdi::clone,
    "VDI.copy" => vdi::copy,
    "VDI.create" => vdi::create,
    "VDI.destroy" => vdi::destroy,
    "VDI.resize" => vdi::resize,
    "VDI.resize_online" => vdi::resize_online,
    "VDI.set_name_description" => vdi::set_name_description,
    "VDI.set_name_label" => vdi::set_name_label,
    "VDI.snapshot" => vdi::snapshot,
    "VIF.create" => vif::create,
    "VIF.destroy" => vif::destroy,
    "VIF.plug" => vif::plug,
    "VIF.unplug" => vif::unplug,
    "VIF.unplug_force" => vif::unplug_force,
    "VM.clean_reboot" => vm::clean_reboot,
    "VM.clean_shutdown" => vm::clean_shutdown,
    "VM.clone" => vm::clone,
    "VM.compute_memory_overhead" => vm::compute_memory_overhead,
    "VM.copy" => vm::copy,
    "VM.create" => vm::create,
    "VM.destroy" => vm::destroy,
    "VM.get_allowed_VBD_devices" => vm::get_allowed_vbd_devices,
    "VM.get_allowed_VIF_devices" => vm::get_allowed_vif_devices,
    "VM.hard_reboot" => vm::hard_reboot,
    "VM.hard_shutdown" => vm::hard_shutdown,
    "VM.pause" => vm::pause,
    "VM.pool_migrate" => vm::pool_migrate,
    "VM.power_state_reset" => vm::power_state_reset,
    "VM.provision" => vm::provision,
    "VM.resume" => vm::resume,
    "VM.revert" => vm::revert,
    "VM.resume_on" => vm::resume_on,
    "VM.set_VCPUs_at_startup" => vm::set_vcpus_at_startup,
    "VM.set_VCPUs_max" => vm::set_vcpus_max,
    "VM.set_VCPUs_number_live" => vm::set_vcpus_number_live,
    "VM.set_actions_after_crash" => vm::set_actions_after_crash,
    "VM.set_is_a_template" => vm::set_is_a_template,
    "VM.set_memory" => vm::set_memory,
    "VM.set_memory_dynamic_max" => vm::set_memory_dynamic_max,
    "VM.set_memory_dynamic_min" => vm::set_memory_dynamic_min,
    "VM.set_memory_dynamic_range" => vm::set_memory_dynamic_range,
    "VM.set_memory_limits" => vm::set_memory_limits,
    "VM.set_memory_static_max" => vm::set_memory_static_max,
    "VM.set_memory_static_min" => vm::set_memory_static_min,
    "VM.set_memory_static_range" => vm::set_memory_static_range,
    "VM.set_memory_target_live" => vm::set_memory_target_live,
    "VM.set_order" => vm::set_order,
    "VM.set_shutdown_delay" => vm::set_shutdown_delay,
    "VM.set_start_delay" => vm::set_start_delay,
    "VM.shutdown" => vm::shutdown,
    "VM.snapshot" => vm::snapshot,
    "VM.start" => vm::start,
    "VM.start_on" => vm::start_on,
    "VM.suspend" => vm::suspend,
    "VM.unpause" => vm::unpause,
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
            "VM.start",
            "VM.start_on",
            "VM.clean_shutdown",
            "VM.hard_shutdown",
            "VM.shutdown",
            "VM.clean_reboot",
            "VM.hard_reboot",
            "VM.suspend",
            "VM.resume",
            "VM.resume_on",
            "VM.pause",
            "VM.unpause",
            "VM.power_state_reset",
            "VM.set_memory_limits",
            "VM.set_memory_dynamic_range",
            "VM.set_memory_target_live",
            "VM.set_memory_static_range",
            "VM.set_memory",
            "VM.set_VCPUs_max",
            "VM.set_VCPUs_at_startup",
            "VM.set_VCPUs_number_live",
            "VM.set_actions_after_crash",
            "host.compute_free_memory",
            "VM.copy",
            "VM.snapshot",
            "VM.revert",
            "VM.provision",
            "VM.get_allowed_VBD_devices",
            "VM.get_allowed_VIF_devices",
            "VBD.plug",
            "VBD.unplug",
            "VBD.unplug_force",
            "VBD.insert",
            "VBD.eject",
            "VIF.plug",
            "VIF.unplug",
            "VIF.unplug_force",
            "VDI.snapshot",
            "VDI.clone",
            "VDI.copy",
            "VDI.resize",
            "VDI.resize_online",
            "VDI.set_name_label",
            "VDI.set_name_description",
            "VM.pool_migrate",
            "host.evacuate",
            "host.assert_can_evacuate",
            "host.get_vms_which_prevent_evacuation",
            "host.enable",
            "host.disable",
            "PIF.plug",
            "PIF.unplug",
            "PIF.db_introduce",
            "SR.scan",
            "SR.create",
            "SR.introduce",
            "SR.forget",
            "SR.destroy",
            "SR.update",
            "PBD.plug",
            "PBD.unplug",
        ];
        for name in needed {
            assert!(api().method(name).is_some(), "{name} is declared");
            assert!(!missing.contains(&name), "{name} has no handler");
        }
    }
}
