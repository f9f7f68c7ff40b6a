//! The master's internal failures (`Error`), the one place they become XenAPI errors
//! (`to_api_error`), and the XenAPI errors whose parameters the master formats (`xenapi`).

use api_spec::{ApiError, errors};
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
            return errors::database_entry_too_large(*bytes, *limit);
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
    errors::internal_error(message)
}

/// The XenAPI error for an apply failure a racing writer can cause.
fn expected_apply_error(apply: &ApplyError) -> Option<ApiError> {
    match apply {
        ApplyError::RowMissing { class, r#ref } => Some(errors::handle_invalid(class, r#ref)),
        ApplyError::PreconditionFailed { precondition } => match precondition.as_ref() {
            Precondition::Exists { class, r#ref } => Some(errors::handle_invalid(class, r#ref)),
            _ => None,
        },
        // Handlers check the key first and name the object by uuid; this is the race fallback.
        ApplyError::MapDuplicateKey {
            class,
            r#ref,
            field,
            key,
        } => Some(errors::map_duplicate_key(class, field, r#ref, key)),
        _ => None,
    }
}

/// The XenAPI errors whose parameters the master formats; every other error is built by its
/// constructor in `api_spec::errors`.
pub mod xenapi {
    use api_spec::classes::vm::VmPowerState;
    use api_spec::{ApiError, errors};

    /// States are lowercase; several expected ones are joined by `, `, as xapi's operation
    /// check (`report_power_state_error`) does. (Its later `assert_initial_power_state_in`
    /// joins with `;`, but a call never gets past the operation check to reach it.)
    pub fn vm_bad_power_state(
        vm: &str,
        expected: &[VmPowerState],
        actual: VmPowerState,
    ) -> ApiError {
        let lower = |s: &VmPowerState| s.wire().to_ascii_lowercase();
        let expected: Vec<String> = expected.iter().map(lower).collect();
        errors::vm_bad_power_state(vm, expected.join(", "), lower(&actual))
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
        use api_spec::classes::vm::VmPowerState::{Halted, Running, Suspended};
        let e = xenapi::vm_bad_power_state("OpaqueRef:v", &[Halted, Suspended], Running);
        assert_eq!(to_api_error(Error::Api(e.clone())), e);
        assert_eq!(e.params, ["OpaqueRef:v", "halted, suspended", "running"]);
    }
}
