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
    /// Counted before anything is built from the body, so that a body of many tiny values costs
    /// no memory beyond its bytes.
    #[error("more than {limit} values")]
    TooManyValues { limit: usize },
    /// xapi's readers keep the last of two members of the same name; which one a request meant
    /// is anyone's guess, so it is refused.
    #[error("a struct has two members of the same name")]
    DuplicateMember,
    /// A character XML 1.0 forbids (a NUL, another C0 control but tab, newline and carriage
    /// return, U+FFFE or U+FFFF) in a string of a call: it could be stored but never sent back
    /// over XML-RPC.
    #[error("a string holds U+{code_point:04X}, which XML 1.0 forbids")]
    ForbiddenCharacter { code_point: u32 },
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
