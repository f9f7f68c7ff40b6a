//! `XeError`: every way a command can fail, from a missing parameter to a XenAPI failure.

use std::path::PathBuf;

use api_client::ClientError;
use api_spec::ApiError;
use api_spec::error::DecodeError;

/// Why a command failed. Each is printed on stderr and makes xe exit with status 1.
#[derive(Debug, thiserror::Error)]
pub enum XeError {
    #[error("no command given")]
    NoCommand,
    #[error("unknown command '{name}': `xe help` lists the commands")]
    UnknownCommand { name: String },
    #[error("missing parameter: {name} (`xe help {command}` shows every parameter)")]
    MissingParam { command: String, name: String },
    #[error("unknown parameter: {name} (`xe help {command}` shows every parameter)")]
    UnknownParam { command: String, name: String },
    #[error("unexpected argument '{arg}': parameters are written name=value")]
    UnexpectedArgument { arg: String },
    #[error("invalid value for {name}: {reason}")]
    InvalidValue { name: String, reason: String },
    #[error("{class} has no parameter '{name}'")]
    UnknownField { class: String, name: String },
    #[error("{name} of {class} cannot be changed")]
    ReadOnlyField { class: String, name: String },
    #[error("no {class} matches the parameters given")]
    NoMatch { class: String },
    #[error(
        "{count} objects of class {class} match; the operation acts on one at a time unless --multiple is given"
    )]
    MultipleMatches { class: String, count: usize },
    #[error("cannot reach {server}")]
    Unreachable {
        server: String,
        #[source]
        source: ClientError,
    },
    #[error("no host could be reached: tried {tried}")]
    NoHostReachable { tried: String },
    #[error(
        "the certificate of {server} has changed: it was {known}, it is now {presented}. xe refuses \
         to talk to it, as the change may be an attack. If the host was reinstalled or its \
         certificate renewed on purpose, delete the line of {server} from {} (it is trusted \
         again on the next use), or pass --no-verify for one call",
        file.display()
    )]
    CertificateChanged {
        server: String,
        known: String,
        presented: String,
        file: PathBuf,
    },
    /// The XenAPI answered with a failure; printed in plain words by `main`.
    #[error("{method} failed: {}", error.code)]
    Api { method: String, error: ApiError },
    #[error("the reply of {server} to {method} cannot be decoded")]
    Decode {
        server: String,
        method: String,
        #[source]
        source: DecodeError,
    },
    /// A reply that is no XenAPI answer: an HTTP error status, or too long.
    #[error("the reply of {server} to {method} cannot be read")]
    BadReply {
        server: String,
        method: String,
        #[source]
        source: ClientError,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the password file {} must hold the user name on its first line and the password on its second", path.display())]
    PasswordFile { path: PathBuf },
    #[error("the server sent {what} where xe expected {expected}")]
    UnexpectedReply {
        what: String,
        expected: &'static str,
    },
    #[error("VM {vm} has no {drive}")]
    NoDrive { vm: String, drive: String },
    #[error("VM {vm} has several {drive}s: name one by its uuid with `xe {command}`")]
    SeveralDrives {
        vm: String,
        drive: String,
        command: &'static str,
    },
    #[error("not confirmed: nothing was done")]
    NotConfirmed,
    #[error("timed out after {seconds} s")]
    TimedOut { seconds: f64 },
}

impl XeError {
    /// A XenAPI failure of `method`.
    pub fn api(method: &str, error: ApiError) -> XeError {
        XeError::Api {
            method: method.to_owned(),
            error,
        }
    }

    /// The XenAPI error code, when the server refused the call.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            XeError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }
}
