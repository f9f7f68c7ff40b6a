//! The data plane: bulk bytes (a migration's memory image, later disks, imports and exports,
//! console bytes) from one host to another over connections of their own, never on the peer
//! stream that carries Raft.
//!
//! The master draws a `Token` and hands it to both ends. The receiver calls
//! `DataPlane::expect(token, deadline)` and reads the returned `Incoming`; the sender calls
//! `DataPlane::send(to, token, reader)`, which `PUT`s the bytes to `/data/<token>` on the
//! receiver's HTTPS port (`route.rs`) with the receiver's certificate pinned and the pool
//! secret, as the peer streams dial (`send.rs`). Memory stays bounded at both ends: the sender
//! reads its source only as fast as the connection takes it, the route reads the connection
//! only as fast as the receiver reads (a few pieces in flight). `send` returns once the
//! receiver has read every byte and said so (`Incoming::finish`), or fails with why it did
//! not. A sender that cannot send its bytes twice first waits until the receiver expects
//! them (`wait_until_expected`, a `HEAD` of the same path). `agent_transfer.rs` lends all this to the host agent (migration images);
//! `registry.rs` holds the expected transfers; `token.rs`, `incoming.rs` and `error.rs`
//! what their names say.

mod agent_transfer;
mod error;
mod incoming;
mod registry;
mod route;
mod send;
#[cfg(test)]
mod tests;
mod token;

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio::time::Instant;

pub use self::agent_transfer::AgentTransfer;
pub use self::error::DataPlaneError;
pub use self::incoming::Incoming;
use self::registry::Registry;
pub use self::token::Token;
use crate::config::DataPlaneSettings;
use crate::peer::Member;

/// The header of a successful answer: how many bytes the receiver took.
const BYTES_HEADER: &str = "x-oxapi-data-bytes";

/// Where the data plane reads the pool secret it sends and checks: the one in use now (the
/// peer streams' membership), `None` while this host is in no pool.
pub type PoolSecret = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Another host's HTTPS listener and the certificate it must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ip:port`.
    pub address: String,
    /// The lowercase hex SHA-256 of its certificate's DER, as `Member::cert_sha256`.
    pub cert_sha256: String,
}

impl From<&Member> for Endpoint {
    fn from(member: &Member) -> Endpoint {
        Endpoint {
            address: member.address.clone(),
            cert_sha256: member.cert_sha256.clone(),
        }
    }
}

/// The data plane of this host: the transfers it expects, and the way it sends. Clones share
/// it.
#[derive(Clone)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    pool_secret: PoolSecret,
    settings: DataPlaneSettings,
    /// The address this host sends from (its own member address), so that transfers between
    /// two members are between their own addresses; `None`: the system's choice.
    local_ip: Option<IpAddr>,
}

impl DataPlane {
    pub fn new(
        settings: DataPlaneSettings,
        pool_secret: PoolSecret,
        local_ip: Option<IpAddr>,
    ) -> DataPlane {
        DataPlane {
            inner: Arc::new(Inner {
                registry: Registry::default(),
                pool_secret,
                settings,
                local_ip,
            }),
        }
    }

    /// Expects one sender with `token` until `deadline`: the returned `Incoming` yields its
    /// bytes once it connects. The token is refused once used, once `deadline` has passed
    /// with no sender, and once the `Incoming` is dropped. Fails with `TokenInUse` when the
    /// token is expected already (or was, in the last minutes).
    pub fn expect(&self, token: &Token, deadline: Instant) -> Result<Incoming, DataPlaneError> {
        let delivery = self
            .inner
            .registry
            .expect(token, deadline, Instant::now())?;
        Ok(Incoming::new(token.clone(), delivery, deadline))
    }

    /// Sends everything `body` yields, to its end, as the transfer `token` that `to` expects;
    /// returns the byte count once the receiver has taken every byte. Reads `body` only as
    /// fast as the receiver reads, a chunk of 64 KiB at a time. Fails when `body` fails
    /// (`Source`), when `to` cannot be reached or shows another certificate (`Connection`),
    /// refuses the secret or the token, when the receiver fails or gives up
    /// (`ReceiverFailed`), or when nothing moves for `data_plane.stall_timeout_ms`.
    pub async fn send(
        &self,
        to: &Endpoint,
        token: &Token,
        body: impl AsyncRead + Send + 'static,
    ) -> Result<u64, DataPlaneError> {
        send::send(&self.inner, to, token, body).await
    }

    /// Waits until `to` expects the transfer `token`, asking it without using the token, at
    /// most until `deadline` (then `UnknownToken`): for a sender whose bytes cannot be sent
    /// twice (a client's upload), which must not start before the receiver is there.
    pub async fn wait_until_expected(
        &self,
        to: &Endpoint,
        token: &Token,
        deadline: Instant,
    ) -> Result<(), DataPlaneError> {
        send::wait_until_expected(&self.inner, to, token, deadline).await
    }

    /// `PUT /data/{token}` (and `HEAD`, which asks whether it is expected), for `Front::with_pool_stream_routes` (served over TCP only,
    /// outside the body deadline: the route bounds a stall itself).
    pub fn router(&self) -> axum::Router {
        route::router(self.clone())
    }
}
