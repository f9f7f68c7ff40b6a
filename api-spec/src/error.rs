//! `DecodeError`: why a request or response body could not be decoded.

/// Why a body could not be decoded. The message is safe to send back to the client: it never
/// echoes the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("body of {size} bytes is over the limit of {limit}")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("nesting deeper than {limit}")]
    TooDeep { limit: usize },
    /// `size` is what had been read when the limit was crossed: a lower bound.
    #[error("string of {size} bytes is over the limit of {limit}")]
    StringTooLong { size: usize, limit: usize },
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
}

impl DecodeError {
    pub(crate) fn malformed(reason: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            reason: reason.into(),
        }
    }
}
