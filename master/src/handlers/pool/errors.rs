//! How `PoolControl`'s failures become XenAPI errors.

use api_spec::{ApiError, errors};

use crate::pool::control::ControlError;

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
    errors::internal_error(message)
}
