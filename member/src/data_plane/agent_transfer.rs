//! The agent's `BulkTransfer` over the data plane: a migration's image goes from the source's
//! agent straight to the destination's, the destination host named by its ref and found in
//! the peer book.

use std::sync::Arc;
use std::time::Duration;

use agent::BoxFuture;
use agent::transfer::{BulkTransfer, IncomingBytes, Outgoing, TransferError};
use host_api::TransferToken;
use tokio::time::Instant;

use crate::data_plane::{DataPlane, DataPlaneError, Endpoint, Incoming, Token};
use crate::peer::Peers;

/// The data plane, as the agent moves migration images with it.
pub struct AgentTransfer {
    pub plane: DataPlane,
    pub peers: Peers,
}

impl AgentTransfer {
    pub fn new(plane: DataPlane, peers: Peers) -> Arc<AgentTransfer> {
        Arc::new(AgentTransfer { plane, peers })
    }

    /// The HTTPS listener of the host `host_ref`, from the peer book.
    fn endpoint(&self, host_ref: &str) -> Result<Endpoint, TransferError> {
        let node = self.peers.node_of_host(host_ref);
        let member = node.and_then(|node| self.peers.member(node));
        member
            .map(|member| Endpoint::from(&member))
            .ok_or_else(|| TransferError::Failed {
                reason: format!("host {host_ref} is not a member of the pool"),
            })
    }
}

fn token(token: &TransferToken) -> Result<Token, TransferError> {
    Token::parse(&token.0).map_err(failed)
}

/// The error with its causes, for the agent's failure.
fn failed(err: DataPlaneError) -> TransferError {
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    TransferError::Failed { reason }
}

impl BulkTransfer for AgentTransfer {
    fn receive(
        &self,
        token: &TransferToken,
        wait: Duration,
    ) -> Result<Box<dyn IncomingBytes>, TransferError> {
        let incoming = self
            .plane
            .expect(&self::token(token)?, Instant::now() + wait)
            .map_err(failed)?;
        Ok(Box::new(incoming))
    }

    fn send<'a>(
        &'a self,
        to_host: &'a str,
        token: &'a TransferToken,
        body: Outgoing,
    ) -> BoxFuture<'a, Result<u64, TransferError>> {
        Box::pin(async move {
            let endpoint = self.endpoint(to_host)?;
            match self.plane.send(&endpoint, &self::token(token)?, body).await {
                Ok(bytes) => Ok(bytes),
                Err(DataPlaneError::UnknownToken { .. }) => Err(TransferError::NotExpected),
                Err(err) => Err(failed(err)),
            }
        })
    }

    fn wait_for_receiver<'a>(
        &'a self,
        to_host: &'a str,
        token: &'a TransferToken,
        wait: Duration,
    ) -> BoxFuture<'a, Result<(), TransferError>> {
        Box::pin(async move {
            let endpoint = self.endpoint(to_host)?;
            let deadline = Instant::now() + wait;
            match self
                .plane
                .wait_until_expected(&endpoint, &self::token(token)?, deadline)
                .await
            {
                Ok(()) => Ok(()),
                Err(DataPlaneError::UnknownToken { .. }) => Err(TransferError::NotExpected),
                Err(err) => Err(failed(err)),
            }
        })
    }
}

impl IncomingBytes for Incoming {
    fn finish(self: Box<Self>) -> Result<u64, TransferError> {
        (*self).finish().map_err(failed)
    }

    fn fail(self: Box<Self>, reason: String) {
        (*self).fail(reason);
    }
}
