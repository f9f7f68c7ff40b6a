//! `AgentError`: why an action failed on this host, with its causes, and the one place it
//! becomes the `AgentFailure` the master is sent (which the master turns into a XenAPI error).

use host_api::{AgentFailure, PowerState};

use crate::backend::BackendError;
use crate::hooks::HookError;
use crate::transfer::TransferError;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A failure the master is told as it is: a stale term (the action comes from a deposed
    /// master), a cancellation (what was done has been undone), a bad power state, a guest
    /// that did not shut down in time.
    #[error(transparent)]
    Failure(#[from] AgentFailure),
    #[error("hook failed")]
    Hook(#[from] HookError),
    #[error("driver operation failed")]
    Backend(#[from] BackendError),
    /// A migration's image could not be moved to or from the other host.
    #[error("the memory image transfer failed")]
    Transfer(#[from] TransferError),
    /// The action's task ended without an answer (it panicked).
    #[error("the action ended without an answer")]
    Lost,
}

impl From<AgentError> for AgentFailure {
    fn from(err: AgentError) -> AgentFailure {
        match err {
            AgentError::Failure(failure) => failure,
            AgentError::Hook(HookError::Failed {
                hook,
                reason,
                stdout,
                exit_code,
            }) => AgentFailure::HookFailed {
                hook,
                reason: reason.to_owned(),
                stdout,
                exit_code,
            },
            AgentError::Backend(err) => backend_failure(err),
            err @ (AgentError::Hook(_) | AgentError::Transfer(_) | AgentError::Lost) => {
                internal(&err)
            }
        }
    }
}

fn backend_failure(err: BackendError) -> AgentFailure {
    match err {
        BackendError::NoDomain { vm } => AgentFailure::BadPowerState {
            vm,
            expected: PowerState::Running,
            actual: PowerState::Halted,
        },
        BackendError::BadState {
            vm,
            expected,
            actual,
        } => AgentFailure::BadPowerState {
            vm,
            expected,
            actual,
        },
        BackendError::DeviceAttached { device } => AgentFailure::DeviceAlreadyAttached { device },
        BackendError::DeviceDetached { device } => AgentFailure::DeviceAlreadyDetached { device },
        BackendError::DetachRejected { device, reason } => {
            AgentFailure::DetachRejected { device, reason }
        }
        BackendError::DriveEmpty { vbd } => AgentFailure::DriveEmpty { vbd },
        BackendError::DriveNotEmpty { vbd } => AgentFailure::DriveNotEmpty { vbd },
        BackendError::NotRemovable { vbd } => AgentFailure::NotRemovable { vbd },
        BackendError::TooManyVcpus { vm, .. } => AgentFailure::TooManyVcpus { vm },
        BackendError::NoStorageDriver { sr_type } => AgentFailure::UnknownSrDriver { sr_type },
        BackendError::ImageTooLarge {
            location,
            virtual_size_bytes,
            image_bytes,
        } => AgentFailure::ImageTooLarge {
            location,
            virtual_size_bytes,
            image_bytes,
        },
        BackendError::ImageUnusable { reason } => AgentFailure::ImageUnusable { reason },
        BackendError::SrUnavailable { sr, reason } => AgentFailure::SrUnavailable { sr, reason },
        BackendError::NotSupported { sr, .. } => AgentFailure::SrOperationNotSupported { sr },
        BackendError::NoVdi { sr, location } => AgentFailure::VdiMissing { sr, location },
        BackendError::CannotShrink {
            sr,
            location,
            virtual_size_bytes,
            requested_bytes,
        } => AgentFailure::VdiCannotShrink {
            sr,
            location,
            virtual_size_bytes,
            requested_bytes,
        },
        BackendError::VdiInUse { sr, location, op } => match op.storage_operation() {
            Some(operation) => AgentFailure::VdiInUse {
                sr,
                location,
                operation,
            },
            None => internal(&BackendError::VdiInUse { sr, location, op }),
        },
        BackendError::QemuImg { op, status, stderr } => match op.storage_operation() {
            Some(operation) => AgentFailure::StorageBackend {
                operation,
                status,
                stderr,
            },
            None => internal(&BackendError::QemuImg { op, status, stderr }),
        },
        err @ (BackendError::DomainExists { .. }
        | BackendError::NoImage { .. }
        | BackendError::InUse { .. }
        | BackendError::Failed { .. }
        | BackendError::State { .. }
        | BackendError::Corrupt { .. }) => internal(&err),
    }
}

/// `Internal` with the whole chain of causes, so an operator sees what broke.
fn internal(err: &dyn std::error::Error) -> AgentFailure {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    AgentFailure::Internal { message }
}

#[cfg(test)]
mod tests {
    use host_api::StorageOperation;

    use super::*;
    use crate::backend::BackendOp;

    /// A failed hook keeps its four parts, in xapi's order.
    #[test]
    fn a_hook_failure_keeps_its_parts() {
        let failure = AgentFailure::from(AgentError::Hook(HookError::Failed {
            hook: "vm-pre-start/10-check".to_owned(),
            reason: "none",
            stdout: "refusing\n".to_owned(),
            exit_code: "3".to_owned(),
        }));
        assert_eq!(
            failure,
            AgentFailure::HookFailed {
                hook: "vm-pre-start/10-check".to_owned(),
                reason: "none".to_owned(),
                stdout: "refusing\n".to_owned(),
                exit_code: "3".to_owned(),
            }
        );
    }

    /// A backend failure with no typed counterpart is `Internal` with its causes.
    #[test]
    fn an_unexpected_backend_failure_is_internal_with_its_cause() {
        let failure = AgentFailure::from(AgentError::Backend(BackendError::Failed {
            op: BackendOp::Build,
            reason: "injected failure".to_owned(),
        }));
        assert_eq!(
            failure,
            AgentFailure::Internal {
                message: "build failed: injected failure".to_owned()
            }
        );
    }

    /// A disk on an SR type with no storage driver here names that type.
    #[test]
    fn an_unknown_sr_type_is_named() {
        let failure = AgentFailure::from(AgentError::Backend(BackendError::NoStorageDriver {
            sr_type: "lvm".to_owned(),
        }));
        assert_eq!(
            failure,
            AgentFailure::UnknownSrDriver {
                sr_type: "lvm".to_owned()
            }
        );
    }

    /// A storage driver's failures keep their VDI (by SR uuid and location) and operation:
    /// a missing VDI, one in use, a shrink, and `qemu-img` failing with what it printed.
    #[test]
    fn storage_failures_name_their_vdi_and_operation() {
        let failure = |err| AgentFailure::from(AgentError::Backend(err));
        let (sr, location) = ("sr-1".to_owned(), "a.qcow2".to_owned());
        assert_eq!(
            failure(BackendError::NoVdi {
                sr: sr.clone(),
                location: location.clone()
            }),
            AgentFailure::VdiMissing {
                sr: sr.clone(),
                location: location.clone()
            }
        );
        assert_eq!(
            failure(BackendError::VdiInUse {
                sr: sr.clone(),
                location: location.clone(),
                op: BackendOp::SnapshotVdi
            }),
            AgentFailure::VdiInUse {
                sr: sr.clone(),
                location: location.clone(),
                operation: StorageOperation::SnapshotVdi
            }
        );
        assert_eq!(
            failure(BackendError::CannotShrink {
                sr: sr.clone(),
                location: location.clone(),
                virtual_size_bytes: 2,
                requested_bytes: 1
            }),
            AgentFailure::VdiCannotShrink {
                sr,
                location,
                virtual_size_bytes: 2,
                requested_bytes: 1
            }
        );
        assert_eq!(
            failure(BackendError::QemuImg {
                op: BackendOp::ResizeVdi,
                status: "exit status: 1".to_owned(),
                stderr: "Image is not in qcow2 format".to_owned()
            }),
            AgentFailure::StorageBackend {
                operation: StorageOperation::ResizeVdi,
                status: "exit status: 1".to_owned(),
                stderr: "Image is not in qcow2 format".to_owned()
            }
        );
    }

    /// A domain that is gone is a VM that is halted, not running.
    #[test]
    fn no_domain_is_a_halted_vm() {
        let failure = AgentFailure::from(AgentError::Backend(BackendError::NoDomain {
            vm: "uuid".to_owned(),
        }));
        assert_eq!(
            failure,
            AgentFailure::BadPowerState {
                vm: "uuid".to_owned(),
                expected: PowerState::Running,
                actual: PowerState::Halted,
            }
        );
    }
}
