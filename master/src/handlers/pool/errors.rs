//! The XenAPI errors of the pool operations, parameters in the order the spec declares them,
//! and how `PoolControl`'s failures become XenAPI errors.

use api_spec::{ApiError, errors};

use crate::error::xenapi;
use crate::pool_control::ControlError;

fn error<const N: usize>(code: &str, params: [String; N]) -> ApiError {
    debug_assert!(
        errors::decl(code).is_some_and(|d| d.params.len() == N),
        "{code} is declared with {N} parameters"
    );
    ApiError::new(code, params)
}

pub(super) fn operation_not_allowed(reason: &str) -> ApiError {
    error(errors::OPERATION_NOT_ALLOWED, [reason.to_owned()])
}

pub(super) fn ha_is_enabled() -> ApiError {
    error(errors::HA_IS_ENABLED, [])
}

pub(super) fn joining_host_cannot_have_running_vms() -> ApiError {
    error(errors::JOINING_HOST_CANNOT_HAVE_RUNNING_VMS, [])
}

pub(super) fn joining_host_cannot_have_vms_with_current_operations() -> ApiError {
    error(
        errors::JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS,
        [],
    )
}

pub(super) fn joining_host_cannot_be_master_of_other_hosts() -> ApiError {
    error(errors::JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS, [])
}

pub(super) fn joining_host_cannot_contain_shared_srs() -> ApiError {
    error(errors::JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS, [])
}

pub(super) fn joining_host_connection_failed() -> ApiError {
    error(errors::JOINING_HOST_CONNECTION_FAILED, [])
}

/// Versions as `major.minor`.
pub(super) fn pool_joining_host_must_have_same_api_version(host: &str, master: &str) -> ApiError {
    error(
        errors::POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION,
        [host.to_owned(), master.to_owned()],
    )
}

pub(super) fn hosts_not_homogeneous(reason: &str) -> ApiError {
    error(errors::HOSTS_NOT_HOMOGENEOUS, [reason.to_owned()])
}

pub(super) fn cannot_contact_host(host: &str) -> ApiError {
    error(errors::CANNOT_CONTACT_HOST, [host.to_owned()])
}

/// A membership change or a message to another host that failed: `INTERNAL_ERROR` saying what
/// was being done, except a lost leadership, which the caller retries on the new master.
pub(super) fn control_failed(doing: &str, failure: ControlError) -> ApiError {
    tracing::warn!(error = %failure, doing, "pool operation failed");
    let message = match failure {
        ControlError::NotLeader => {
            format!(
                "this host stopped being the pool master while {doing}; retry on the new master"
            )
        }
        other => format!("{doing} failed: {other}"),
    };
    xenapi::internal_error(message)
}
