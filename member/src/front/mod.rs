//! The XenAPI front door: HTTPS, plain HTTP and the local Unix socket, XML-RPC and JSON-RPC.
//!
//! `server.rs` routes requests, `body.rs` reads their bodies; `xmlrpc.rs` and `jsonrpc.rs`
//! decode a body, hand the call to an `Answer` (in a pool, `links::Forwarder`: the leader's
//! master, or a forward to it) and encode the reply; `listen.rs` opens the listeners and shuts
//! them down, `capacity.rs` caps how many connections they hold, `http1.rs` keeps them to
//! HTTP/1.1; `tls.rs` holds the host certificate. `raw_vdi.rs` serves xapi's HTTP handlers
//! `import_raw_vdi` and `export_raw_vdi`. `simulator.rs` is the simulator's test-only control,
//! mounted on the local Unix socket only.

pub mod body;
pub mod capacity;
pub mod http1;
pub mod jsonrpc;
pub mod listen;
pub mod raw_vdi;
pub mod server;
pub mod simulator;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls;
pub mod xmlrpc;

use std::sync::Arc;

use api_spec::{ApiError, Value};
use master::db::BoxFuture;
use master::{Call, Master};

/// What answers the calls the front door decodes: the master, or a fake in tests.
pub trait Answer: Send + Sync + 'static {
    fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>>;
}

impl Answer for Arc<Master> {
    fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>> {
        let master = Arc::clone(self);
        Box::pin(async move { master.call(call).await })
    }
}
