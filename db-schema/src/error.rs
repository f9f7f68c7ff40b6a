//! Why a Txn was not applied, and why a dump could not be read or written.

use std::path::PathBuf;

/// Why a Txn changed nothing. Applying is deterministic, so every replica fails the same way.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ApplyError {
    #[error("no such class")]
    ClassUnknown { class: String },
    #[error("no such row")]
    RowMissing { class: String, r#ref: String },
    /// The ref is live or was used by a row since destroyed: refs are never reused.
    #[error("row exists already")]
    RowExists { class: String, r#ref: String },
    #[error("no such field")]
    FieldUnknown { class: String, field: String },
    #[error("field is not a map or a set")]
    FieldNotCollection { class: String, field: String },
    /// The field is the many end of a relation: the DB keeps it in step with the one end, and
    /// nothing else may write it.
    #[error("field is derived from a relation")]
    FieldDerived { class: String, field: String },
    /// Another live row of the class has this uuid (xapi's uniqueness constraint on `uuid`).
    #[error("uuid is in use already")]
    UuidExists {
        class: String,
        uuid: String,
        other: String,
    },
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
    /// More bytes follow the body than the header announces.
    #[error("dump has trailing bytes")]
    TrailingBytes { expected: u64, found: u64 },
    #[error("dump checksum mismatch")]
    ChecksumMismatch,
    /// The header's Raft position is not the one the body records.
    #[error("dump header does not match its body")]
    PositionMismatch {
        header_index: u64,
        header_term: u64,
        body_index: u64,
        body_term: u64,
    },
    #[error("dump body could not be decoded")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("dump body could not be encoded")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Dump files exist but none of them reads back valid: starting empty would lose the pool.
    #[error("no dump reads back valid")]
    NoValidDump { skipped: Vec<(PathBuf, DumpError)> },
}
