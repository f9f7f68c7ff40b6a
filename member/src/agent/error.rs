//! `AgentError`: why an action failed on this host, and the one place it becomes a XenAPI error.
//!
//! The agent names VMs and devices by uuid (it knows no refs): the parameters of the errors it
//! sends carry uuids where xapi sends refs, and `TASK_CANCELLED` goes out with no parameter.
//! The master, which knows the refs and the task, fills them in.

use std::time::Duration;

use api_spec::ApiError;
use api_spec::errors;

use crate::agent::backend::BackendError;
use crate::agent::hooks::HookError;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The action carries an older Raft term than one this agent has seen: it comes from a
    /// deposed master. xapi has no such check (nor an error code for it):
    /// `OPERATION_NOT_ALLOWED ["stale term: newest seen N, got M"]`.
    #[error("stale term: newest seen {newest_seen}, got {got}")]
    StaleTerm { newest_seen: u64, got: u64 },
    /// Cancelled at a micro-op boundary (or while waiting for a guest); what was done has been
    /// undone.
    #[error("cancelled")]
    Cancelled,
    #[error("vm {vm} is {actual}, not {expected}")]
    BadPowerState {
        vm: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("vm {vm} did not shut down within {timeout:?}")]
    ShutdownTimeout { vm: String, timeout: Duration },
    #[error("hook failed")]
    Hook(#[from] HookError),
    #[error("backend operation failed")]
    Backend(#[from] BackendError),
    /// The action's task ended without an answer (it panicked).
    #[error("the action ended without an answer")]
    Lost,
}

impl From<AgentError> for ApiError {
    fn from(err: AgentError) -> ApiError {
        match err {
            AgentError::StaleTerm { .. } => {
                ApiError::new(errors::OPERATION_NOT_ALLOWED, [err.to_string()])
            }
            AgentError::Cancelled => ApiError::new(errors::TASK_CANCELLED, Vec::<String>::new()),
            AgentError::BadPowerState {
                vm,
                expected,
                actual,
            } => bad_power_state(vm, expected, actual),
            AgentError::ShutdownTimeout { vm, timeout } => ApiError::new(
                errors::VM_SHUTDOWN_TIMEOUT,
                [vm, timeout.as_secs_f64().to_string()],
            ),
            AgentError::Hook(HookError::Failed {
                hook,
                reason,
                stdout,
                exit_code,
            }) => ApiError::new(
                errors::XAPI_HOOK_FAILED,
                [hook, reason.to_owned(), stdout, exit_code],
            ),
            AgentError::Backend(err) => backend_error(err),
            err @ (AgentError::Hook(_) | AgentError::Lost) => internal(&err),
        }
    }
}

fn backend_error(err: BackendError) -> ApiError {
    match err {
        BackendError::NoDomain { vm } => bad_power_state(vm, "running", "halted"),
        BackendError::BadState {
            vm,
            expected,
            actual,
        } => bad_power_state(vm, expected, actual),
        BackendError::DeviceAttached { device } => {
            ApiError::new(errors::DEVICE_ALREADY_ATTACHED, [device])
        }
        BackendError::DeviceDetached { device } => {
            ApiError::new(errors::DEVICE_ALREADY_DETACHED, [device])
        }
        BackendError::DriveEmpty { vbd } => ApiError::new(errors::VBD_IS_EMPTY, [vbd]),
        BackendError::DriveNotEmpty { vbd } => ApiError::new(errors::VBD_NOT_EMPTY, [vbd]),
        BackendError::NotRemovable { vbd } => ApiError::new(errors::VBD_NOT_REMOVABLE_MEDIA, [vbd]),
        BackendError::TooManyVcpus { vm, .. } => ApiError::new(errors::VM_TOO_MANY_VCPUS, [vm]),
        err @ (BackendError::DomainExists { .. }
        | BackendError::NoImage { .. }
        | BackendError::Failed { .. }
        | BackendError::State { .. }
        | BackendError::Corrupt { .. }) => internal(&err),
    }
}

fn bad_power_state(vm: String, expected: &str, actual: &str) -> ApiError {
    ApiError::new(
        errors::VM_BAD_POWER_STATE,
        [vm, expected.to_owned(), actual.to_owned()],
    )
}

/// `INTERNAL_ERROR` with the whole chain of causes, so an operator sees what broke.
fn internal(err: &dyn std::error::Error) -> ApiError {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError::new(errors::INTERNAL_ERROR, [format!("host agent: {message}")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::backend::BackendOp;

    /// A stale term becomes OPERATION_NOT_ALLOWED naming both terms.
    #[test]
    fn stale_term_is_operation_not_allowed() {
        let err = ApiError::from(AgentError::StaleTerm {
            newest_seen: 7,
            got: 5,
        });
        assert_eq!(
            err,
            ApiError::new(
                errors::OPERATION_NOT_ALLOWED,
                ["stale term: newest seen 7, got 5"]
            )
        );
    }

    /// A failed hook keeps xapi's parameter order: hook, reason, stdout, exit code.
    #[test]
    fn hook_failure_is_xapi_hook_failed_in_order() {
        let err = ApiError::from(AgentError::Hook(HookError::Failed {
            hook: "vm-pre-start/10-check".to_owned(),
            reason: "none",
            stdout: "refusing\n".to_owned(),
            exit_code: "3".to_owned(),
        }));
        assert_eq!(
            err.description(),
            [
                "XAPI_HOOK_FAILED",
                "vm-pre-start/10-check",
                "none",
                "refusing\n",
                "3"
            ]
        );
    }

    /// A backend failure with no XenAPI counterpart is INTERNAL_ERROR with its causes.
    #[test]
    fn unexpected_backend_failure_is_internal_error_with_its_cause() {
        let err = ApiError::from(AgentError::Backend(BackendError::Failed {
            op: BackendOp::Build,
            reason: "injected failure".to_owned(),
        }));
        assert_eq!(err.code, errors::INTERNAL_ERROR);
        assert_eq!(err.params, ["host agent: build failed: injected failure"]);
    }

    /// A cancelled action is TASK_CANCELLED with no parameter: the master adds the task.
    #[test]
    fn cancelled_is_task_cancelled_without_parameters() {
        let err = ApiError::from(AgentError::Cancelled);
        assert_eq!(err.description(), ["TASK_CANCELLED"]);
    }
}
