//! The master's internal failures (`Error`), the one place they become XenAPI errors
//! (`to_api_error`), and the constructors of the XenAPI errors the master raises (`xenapi`).

use api_spec::ApiError;
use db_schema::{ApplyError, Precondition};

use crate::db::ProposeError;

/// Why a call failed inside the master.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A XenAPI failure decided by a handler; it reaches the client as it is.
    #[error("xenapi failure {}", .0.code)]
    Api(#[from] ApiError),
    /// A Txn was not applied.
    #[error("proposal was not applied")]
    Propose(#[from] ProposeError),
    /// The replica could not confirm that this host still leads.
    #[error("read barrier failed")]
    ReadBarrier(#[source] ProposeError),
    /// Concurrent writers kept invalidating the decision.
    #[error("decision lost its race {attempts} times")]
    Contended { attempts: u32 },
    /// The blocking thread that checks or hashes a password did not complete.
    #[error("password thread failed")]
    PasswordThread(#[source] tokio::task::JoinError),
    /// argon2 refused to hash a password.
    #[error("password could not be hashed")]
    PasswordHash { reason: String },
    /// An argument reached a handler missing or in a shape dispatch should have ruled out.
    #[error("argument has an unexpected shape")]
    Argument { name: &'static str },
    /// A class the master relies on is not declared by the API spec.
    #[error("class not declared")]
    Undeclared { class: &'static str },
}

/// The XenAPI error a client gets for `error`. Unexpected failures are logged here and become
/// `INTERNAL_ERROR` with a message an operator can act on.
pub fn to_api_error(error: Error) -> ApiError {
    let message = match &error {
        Error::Api(e) => return e.clone(),
        Error::Propose(ProposeError::TooLarge { bytes, limit }) => {
            return xenapi::database_entry_too_large(*bytes, *limit);
        }
        Error::Propose(ProposeError::Apply(apply)) => match expected_apply_error(apply) {
            Some(e) => return e,
            None => format!("the pool database refused a change ({apply}); see the master's log"),
        },
        Error::Propose(ProposeError::NotLeader) | Error::ReadBarrier(ProposeError::NotLeader) => {
            "this host stopped being the pool master during the call; retry it on the new master"
                .to_owned()
        }
        Error::Propose(ProposeError::Stopped) | Error::ReadBarrier(ProposeError::Stopped) => {
            "the pool database on this host has stopped; see this host's log".to_owned()
        }
        Error::ReadBarrier(ProposeError::Apply(_) | ProposeError::TooLarge { .. }) => {
            "the pool database could not confirm its leadership; retry the call".to_owned()
        }
        Error::Contended { attempts } => format!(
            "the call lost {attempts} races with concurrent writers to the same objects; retry it"
        ),
        Error::PasswordThread(_) => {
            "the password check did not complete; see the master's log".to_owned()
        }
        Error::PasswordHash { reason } => format!("the password could not be hashed: {reason}"),
        Error::Argument { name } => {
            format!("argument {name} reached its handler in an unexpected shape; this is a bug")
        }
        Error::Undeclared { class } => {
            format!("class {class} is missing from the API declarations; this is a bug")
        }
    };
    tracing::warn!(error = %error, detail = ?std::error::Error::source(&error).map(ToString::to_string), "call failed unexpectedly");
    xenapi::internal_error(message)
}

/// The XenAPI error for an apply failure a racing writer can cause.
fn expected_apply_error(apply: &ApplyError) -> Option<ApiError> {
    match apply {
        ApplyError::RowMissing { class, r#ref } => Some(xenapi::handle_invalid(class, r#ref)),
        ApplyError::PreconditionFailed { precondition } => match precondition.as_ref() {
            Precondition::Exists { class, r#ref } => Some(xenapi::handle_invalid(class, r#ref)),
            _ => None,
        },
        // Handlers check the key first and name the object by uuid; this is the race fallback.
        ApplyError::MapDuplicateKey {
            class,
            r#ref,
            field,
            key,
        } => Some(xenapi::map_duplicate_key(class, field, r#ref, key)),
        _ => None,
    }
}

/// The XenAPI errors the master raises, parameters in the order the spec declares them.
pub mod xenapi {
    use api_spec::{ApiError, errors};

    fn error<const N: usize>(code: &str, params: [String; N]) -> ApiError {
        debug_assert!(
            errors::decl(code).is_some_and(|d| d.params.len() == N),
            "{code} is declared with {N} parameters"
        );
        ApiError::new(code, params)
    }

    pub fn message_method_unknown(method: &str) -> ApiError {
        error(errors::MESSAGE_METHOD_UNKNOWN, [method.to_owned()])
    }

    pub fn message_removed() -> ApiError {
        error(errors::MESSAGE_REMOVED, [])
    }

    pub fn database_entry_too_large(size: usize, limit: usize) -> ApiError {
        error(
            errors::DATABASE_ENTRY_TOO_LARGE,
            [size.to_string(), limit.to_string()],
        )
    }

    pub fn database_space_low(host: &str, reason: &str) -> ApiError {
        error(
            errors::DATABASE_SPACE_LOW,
            [host.to_owned(), reason.to_owned()],
        )
    }

    /// Counts exclude the session.
    pub fn message_parameter_count_mismatch(
        method: &str,
        expected: usize,
        received: i64,
    ) -> ApiError {
        error(
            errors::MESSAGE_PARAMETER_COUNT_MISMATCH,
            [
                method.to_owned(),
                expected.to_string(),
                received.to_string(),
            ],
        )
    }

    pub fn field_type_error(field: &str) -> ApiError {
        error(errors::FIELD_TYPE_ERROR, [field.to_owned()])
    }

    pub fn invalid_value(field: &str, value: &str) -> ApiError {
        error(errors::INVALID_VALUE, [field.to_owned(), value.to_owned()])
    }

    pub fn session_invalid(session: &str) -> ApiError {
        error(errors::SESSION_INVALID, [session.to_owned()])
    }

    pub fn session_authentication_failed(uname: &str, message: &str) -> ApiError {
        error(
            errors::SESSION_AUTHENTICATION_FAILED,
            [uname.to_owned(), message.to_owned()],
        )
    }

    pub fn session_not_registered(session: &str) -> ApiError {
        error(errors::SESSION_NOT_REGISTERED, [session.to_owned()])
    }

    pub fn handle_invalid(class: &str, r#ref: &str) -> ApiError {
        error(errors::HANDLE_INVALID, [class.to_owned(), r#ref.to_owned()])
    }

    pub fn uuid_invalid(class: &str, uuid: &str) -> ApiError {
        error(errors::UUID_INVALID, [class.to_owned(), uuid.to_owned()])
    }

    /// xapi's order: the class, the field, the object's uuid, the key.
    pub fn map_duplicate_key(class: &str, field: &str, uuid: &str, key: &str) -> ApiError {
        error(
            errors::MAP_DUPLICATE_KEY,
            [
                class.to_owned(),
                field.to_owned(),
                uuid.to_owned(),
                key.to_owned(),
            ],
        )
    }

    /// States are lowercase; several expected ones are joined by `, `, as xapi's operation
    /// check (`report_power_state_error`) does. (Its later `assert_initial_power_state_in`
    /// joins with `;`, but a call never gets past the operation check to reach it.)
    pub fn vm_bad_power_state(vm: &str, expected: &[&str], actual: &str) -> ApiError {
        let lower = |s: &str| s.to_ascii_lowercase();
        let expected: Vec<String> = expected.iter().map(|s| lower(s)).collect();
        error(
            errors::VM_BAD_POWER_STATE,
            [vm.to_owned(), expected.join(", "), lower(actual)],
        )
    }

    pub fn vm_is_template(vm: &str) -> ApiError {
        error(errors::VM_IS_TEMPLATE, [vm.to_owned()])
    }

    pub fn vm_is_immobile(vm: &str) -> ApiError {
        error(errors::VM_IS_IMMOBILE, [vm.to_owned()])
    }

    pub fn vm_requires_sr(vm: &str, sr: &str) -> ApiError {
        error(errors::VM_REQUIRES_SR, [vm.to_owned(), sr.to_owned()])
    }

    pub fn vm_migrate_failed(vm: &str, source: &str, destination: &str, msg: &str) -> ApiError {
        error(
            errors::VM_MIGRATE_FAILED,
            [
                vm.to_owned(),
                source.to_owned(),
                destination.to_owned(),
                msg.to_owned(),
            ],
        )
    }

    /// xapi's `CANNOT_EVACUATE_HOST [errors]`: `errors` lists, separated by `|`, each VM's
    /// error as its code and parameters separated by `,`. api-spec does not declare this code
    /// yet.
    pub fn cannot_evacuate_host(errors: &str) -> ApiError {
        ApiError::new(CANNOT_EVACUATE_HOST, [errors])
    }

    pub const CANNOT_EVACUATE_HOST: &str = "CANNOT_EVACUATE_HOST";

    pub fn vm_no_suspend_sr(vm: &str) -> ApiError {
        error(errors::VM_NO_SUSPEND_SR, [vm.to_owned()])
    }

    pub fn operation_blocked(r#ref: &str, reason: &str) -> ApiError {
        error(
            errors::OPERATION_BLOCKED,
            [r#ref.to_owned(), reason.to_owned()],
        )
    }

    /// `key` is the key of the operation in `current_operations` (its task).
    pub fn other_operation_in_progress(
        class: &str,
        r#ref: &str,
        operation: &str,
        key: &str,
    ) -> ApiError {
        error(
            errors::OTHER_OPERATION_IN_PROGRESS,
            [
                class.to_owned(),
                r#ref.to_owned(),
                operation.to_owned(),
                key.to_owned(),
            ],
        )
    }

    pub fn memory_constraint_violation(constraint: &str) -> ApiError {
        error(errors::MEMORY_CONSTRAINT_VIOLATION, [constraint.to_owned()])
    }

    /// Amounts in bytes.
    pub fn host_not_enough_free_memory(needed: i64, available: i64) -> ApiError {
        error(
            errors::HOST_NOT_ENOUGH_FREE_MEMORY,
            [needed.to_string(), available.to_string()],
        )
    }

    pub fn no_hosts_available() -> ApiError {
        error(errors::NO_HOSTS_AVAILABLE, [])
    }

    pub fn host_disabled(host: &str) -> ApiError {
        error(errors::HOST_DISABLED, [host.to_owned()])
    }

    pub fn host_not_live() -> ApiError {
        error(errors::HOST_NOT_LIVE, [])
    }

    pub fn device_already_attached(device: &str) -> ApiError {
        error(errors::DEVICE_ALREADY_ATTACHED, [device.to_owned()])
    }

    pub fn device_already_detached(device: &str) -> ApiError {
        error(errors::DEVICE_ALREADY_DETACHED, [device.to_owned()])
    }

    pub fn vbd_not_removable_media(vbd: &str) -> ApiError {
        error(errors::VBD_NOT_REMOVABLE_MEDIA, [vbd.to_owned()])
    }

    pub fn vbd_is_empty(vbd: &str) -> ApiError {
        error(errors::VBD_IS_EMPTY, [vbd.to_owned()])
    }

    pub fn vbd_not_empty(vbd: &str) -> ApiError {
        error(errors::VBD_NOT_EMPTY, [vbd.to_owned()])
    }

    pub fn vdi_in_use(vdi: &str, operation: &str) -> ApiError {
        error(errors::VDI_IN_USE, [vdi.to_owned(), operation.to_owned()])
    }

    pub fn vdi_readonly(vdi: &str) -> ApiError {
        error(errors::VDI_READONLY, [vdi.to_owned()])
    }

    /// `minimum` in bytes.
    pub fn vdi_too_small(vdi: &str, minimum: i64) -> ApiError {
        error(errors::VDI_TOO_SMALL, [vdi.to_owned(), minimum.to_string()])
    }

    pub fn vdi_on_boot_mode_incompatible_with_operation() -> ApiError {
        error(errors::VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION, [])
    }

    pub fn invalid_value_of(field: &str, value: i64) -> ApiError {
        invalid_value(field, &value.to_string())
    }

    pub fn value_not_supported(field: &str, value: &str, reason: &str) -> ApiError {
        error(
            errors::VALUE_NOT_SUPPORTED,
            [field.to_owned(), value.to_owned(), reason.to_owned()],
        )
    }

    pub fn vm_is_snapshot(vm: &str, operation: &str) -> ApiError {
        error(
            errors::VM_IS_SNAPSHOT,
            [vm.to_owned(), operation.to_owned()],
        )
    }

    pub fn only_provision_template() -> ApiError {
        error(errors::ONLY_PROVISION_TEMPLATE, [])
    }

    pub fn only_revert_snapshot() -> ApiError {
        error(errors::ONLY_REVERT_SNAPSHOT, [])
    }

    pub fn vbd_not_unpluggable(vbd: &str) -> ApiError {
        error(errors::VBD_NOT_UNPLUGGABLE, [vbd.to_owned()])
    }

    pub fn domain_exists(vm: &str, domid: i64) -> ApiError {
        error(errors::DOMAIN_EXISTS, [vm.to_owned(), domid.to_string()])
    }

    pub fn cannot_reset_control_domain(vm: &str) -> ApiError {
        error(errors::CANNOT_RESET_CONTROL_DOMAIN, [vm.to_owned()])
    }

    pub fn vm_cannot_delete_default_template(vm: &str) -> ApiError {
        error(errors::VM_CANNOT_DELETE_DEFAULT_TEMPLATE, [vm.to_owned()])
    }

    pub fn vbd_cds_must_be_readonly() -> ApiError {
        error(errors::VBD_CDS_MUST_BE_READONLY, [])
    }

    pub fn vdi_incompatible_type(vdi: &str, vdi_type: &str) -> ApiError {
        error(
            errors::VDI_INCOMPATIBLE_TYPE,
            [vdi.to_owned(), vdi_type.to_owned()],
        )
    }

    pub fn vm_revert_failed(vm: &str, snapshot: &str) -> ApiError {
        error(
            errors::VM_REVERT_FAILED,
            [vm.to_owned(), snapshot.to_owned()],
        )
    }

    pub fn default_sr_not_found(sr: &str) -> ApiError {
        error(errors::DEFAULT_SR_NOT_FOUND, [sr.to_owned()])
    }

    /// xapi's `INVALID_DEVICE [device]`: a device name or number a VBD or VIF cannot have.
    /// api-spec does not declare this code yet.
    pub fn invalid_device(device: &str) -> ApiError {
        ApiError::new(INVALID_DEVICE, [device])
    }

    /// xapi's `DEVICE_ALREADY_EXISTS [device]`: another VBD (or VIF) of the VM has the device.
    /// api-spec does not declare this code yet.
    pub fn device_already_exists(device: &str) -> ApiError {
        ApiError::new(DEVICE_ALREADY_EXISTS, [device])
    }

    /// xapi's `MAC_INVALID [MAC]`. api-spec does not declare this code yet.
    pub fn mac_invalid(mac: &str) -> ApiError {
        ApiError::new(MAC_INVALID, [mac])
    }

    pub const INVALID_DEVICE: &str = "INVALID_DEVICE";
    pub const DEVICE_ALREADY_EXISTS: &str = "DEVICE_ALREADY_EXISTS";
    pub const MAC_INVALID: &str = "MAC_INVALID";

    pub fn operation_not_allowed(reason: &str) -> ApiError {
        error(errors::OPERATION_NOT_ALLOWED, [reason.to_owned()])
    }

    pub fn task_cancelled(task: &str) -> ApiError {
        error(errors::TASK_CANCELLED, [task.to_owned()])
    }

    pub fn event_subscription_parse_failure(subscription: &str) -> ApiError {
        error(
            errors::EVENT_SUBSCRIPTION_PARSE_FAILURE,
            [subscription.to_owned()],
        )
    }

    pub fn event_from_token_parse_failure(token: &str) -> ApiError {
        error(errors::EVENT_FROM_TOKEN_PARSE_FAILURE, [token.to_owned()])
    }

    pub fn not_implemented(function: &str) -> ApiError {
        error(errors::NOT_IMPLEMENTED, [function.to_owned()])
    }

    pub fn internal_error(message: String) -> ApiError {
        error(errors::INTERNAL_ERROR, [message])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row that vanished under a precondition is the handle the client gave, not a crash.
    #[test]
    fn failed_exists_precondition_is_handle_invalid() {
        let error = Error::Propose(ProposeError::Apply(ApplyError::PreconditionFailed {
            precondition: Box::new(Precondition::Exists {
                class: "VM".into(),
                r#ref: "OpaqueRef:x".into(),
            }),
        }));
        assert_eq!(
            to_api_error(error),
            ApiError::new("HANDLE_INVALID", ["VM", "OpaqueRef:x"])
        );
    }

    /// Losing leadership is an internal error that tells the operator what to do.
    #[test]
    fn lost_leadership_is_an_actionable_internal_error() {
        let e = to_api_error(Error::Propose(ProposeError::NotLeader));
        assert_eq!(e.code, "INTERNAL_ERROR");
        assert!(e.params[0].contains("retry"), "{:?}", e.params);
    }

    /// Handler decisions pass through unchanged.
    #[test]
    fn api_errors_pass_through() {
        let e = xenapi::vm_bad_power_state("OpaqueRef:v", &["Halted", "Suspended"], "Running");
        assert_eq!(to_api_error(Error::Api(e.clone())), e);
        assert_eq!(e.params, ["OpaqueRef:v", "halted, suspended", "running"]);
    }
}
