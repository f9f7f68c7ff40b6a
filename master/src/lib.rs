//! What the pool master decides.
//!
//! The master turns a decoded call (`Call`) into an answer: `dispatch.rs` finds the method in the
//! api-spec table, checks arity and types, fills defaults, checks the session, runs `Async.`
//! calls as tasks, and hands the call to a handler: the generic handler for implicit messages
//! (`generic.rs`), or the custom handler of an explicit one (`handlers/*.rs`). State lives in the
//! pool DB, reached only through `ReplicatedDb` (`db.rs`); time only through `Clock`.
//!
//! It opens no sockets or files and starts no processes: `member` wires it to Raft and HTTPS.
//! `testing.rs` holds in-memory doubles so a handler test is a function call.

pub mod bootstrap;
pub mod db;

use std::net::IpAddr;

/// The source of time for the master: seconds since the Unix epoch. `member` gives the system
/// clock; tests give a settable one.
pub trait Clock: Send + Sync + 'static {
    fn now_unix(&self) -> i64;
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Over TCP (HTTPS or plain HTTP) from this address.
    Network { peer: Option<IpAddr> },
    /// Over the local Unix socket: a login there is trusted as root, as on xapi.
    LocalSocket,
}

/// A decoded call, before the master has checked anything.
#[derive(Debug, Clone)]
pub struct Call {
    /// The wire name, possibly with the `Async.` prefix.
    pub method: String,
    pub params: Vec<api_spec::Value>,
    pub origin: Origin,
}
