//! `DataPlaneError`: why a transfer could not be set up, sent or received.

use std::time::Duration;

use crate::identity::IdentityError;

/// Why a transfer could not be set up, sent or received. On the receiving side, the `Incoming`
/// reader's `io::Error`s carry one of these as their inner error.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("cannot draw a random transfer token")]
    Random(#[source] IdentityError),
    #[error("a transfer token is 32 lowercase hex characters")]
    MalformedToken,
    #[error("a transfer with this token is expected already")]
    TokenInUse,
    #[error("this host is in no pool: it has no pool secret")]
    NoPoolSecret,
    #[error("cannot build the https client")]
    Client(#[source] reqwest::Error),
    /// The connection failed: refused, reset, or the certificate shown was not the pinned one.
    #[error("the transfer to {address} failed")]
    Connection {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot read the bytes to send")]
    Source(#[source] std::io::Error),
    #[error("{address} refused the pool secret")]
    SecretRefused { address: String },
    #[error("{address} expects no transfer with this token")]
    UnknownToken { address: String },
    #[error("{address} no longer takes this token: used, expired or given up")]
    TokenGone { address: String },
    /// The receiver answered that it did not take every byte: it failed, gave up, or took
    /// nothing for the stall timeout. `reason` is its own account.
    #[error("the receiver at {address} did not take the bytes ({status})")]
    ReceiverFailed {
        address: String,
        status: u16,
        reason: String,
    },
    #[error("the receiver counted {received} bytes of the {sent} sent")]
    CountMismatch { sent: u64, received: u64 },
    #[error("no byte moved for {after:?}")]
    Stalled { after: Duration },
    #[error("no sender came before the deadline")]
    Expired,
    #[error("the sender's connection ended before the last byte")]
    SenderLost,
    #[error("the transfer ended before the receiver read all of it")]
    Unfinished,
}
