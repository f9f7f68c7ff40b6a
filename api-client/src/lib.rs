//! The one HTTPS XenAPI client: what `xe`, a joining host (pool join) and the tests use to talk
//! to a host of an oxapi pool.
//!
//! - `client`: `Client`, a connection pool to one host that calls XenAPI methods over XML-RPC or
//!   JSON-RPC (api-spec's codecs), POSTs raw or JSON bodies, reads every reply within a byte
//!   limit, and honours the timeouts it was built with;
//! - `trust`: which certificate the host must show (`Trust`: one certificate, one SHA-256
//!   `Fingerprint`, the first one seen, or any), checked through api-spec's `tls_pin`; pool hosts
//!   have self-signed certificates, so names and chains are never checked;
//! - `failover`: trying the members of a pool in turn until one answers;
//! - `transfer`: streamed uploads and downloads (a disk's bytes), never held whole in memory;
//! - `error`: `ClientError`, why a request got no usable answer.
//!
//! It holds no session and no file: logging in, remembering certificates and members is the
//! caller's. Start with `Client::https`.

pub mod client;
pub mod error;
pub mod failover;
pub mod transfer;
pub mod trust;

pub use client::{Client, ClientBuilder, Protocol, Reply};
pub use error::ClientError;
pub use failover::{Attempt, Failover, candidates, first_reachable};
pub use transfer::Download;
pub use trust::{Fingerprint, Trust};
