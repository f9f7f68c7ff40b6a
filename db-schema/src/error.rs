//! Why a Txn was not applied, and why a dump could not be read or written.

/// Why a Txn changed nothing. Applying is deterministic, so every replica fails the same way.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ApplyError {
    #[error("no such class")]
    ClassUnknown { class: String },
    #[error("no such row")]
    RowMissing { class: String, r#ref: String },
    #[error("row exists already")]
    RowExists { class: String, r#ref: String },
    #[error("no such field")]
    FieldUnknown { class: String, field: String },
    #[error("field is not a map or a set")]
    FieldNotCollection { class: String, field: String },
    #[error("precondition failed")]
    PreconditionFailed {
        precondition: Box<crate::Precondition>,
    },
    #[error("map key exists already")]
    MapDuplicateKey {
        class: String,
        r#ref: String,
        field: String,
        key: String,
    },
}

/// Why a dump could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("dump io failed")]
    Io(#[from] std::io::Error),
    #[error("not a dump (bad magic)")]
    BadMagic,
    #[error("dump format version not supported")]
    UnsupportedVersion { found: u32 },
    #[error("dump is truncated")]
    Truncated,
    #[error("dump checksum mismatch")]
    ChecksumMismatch,
    #[error("dump body could not be decoded")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("dump body could not be encoded")]
    Encode(#[from] rmp_serde::encode::Error),
}
