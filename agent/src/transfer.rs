//! `BulkTransfer`: how an agent moves bulk bytes (a migration's memory image) to and from the
//! agent of another host, never through the master nor on the peer stream. Member implements
//! it on its data plane; `LocalTransfer` moves the bytes within one process, for tests.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use host_api::TransferToken;
use tokio::io::{AsyncRead, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{Notify, oneshot};

use crate::BoxFuture;

/// Bytes read from a source and written to its consumer at most this far ahead of it: the
/// buffer of the pipe between a hypervisor and a transfer.
pub const PIPE_BYTES: usize = 256 * 1024;

/// The bytes of a transfer on their way out: read as fast as the receiver takes them.
pub type Outgoing = Pin<Box<dyn AsyncRead + Send>>;

/// Moves bulk bytes between the agents of two hosts. A transfer is named by a one-use token
/// the master hands both ends.
pub trait BulkTransfer: Send + Sync + 'static {
    /// Expects the sender of `token` for `wait` at most: the bytes arrive through the result,
    /// which then says whether it used them all (`finish`) or not (`fail`, or dropping it).
    fn receive(
        &self,
        token: &TransferToken,
        wait: Duration,
    ) -> Result<Box<dyn IncomingBytes>, TransferError>;
    /// Sends everything `body` yields as the transfer `token` to the agent of `to_host` (a
    /// host ref); answers the byte count once that agent has taken every byte and finished.
    fn send<'a>(
        &'a self,
        to_host: &'a str,
        token: &'a TransferToken,
        body: Outgoing,
    ) -> BoxFuture<'a, Result<u64, TransferError>>;
    /// Waits, for `wait` at most, until the agent of `to_host` expects `token`, without using
    /// the token: for a sender whose bytes are costly to make twice (a disk exported).
    /// `NotExpected` when it still does not.
    fn wait_for_receiver<'a>(
        &'a self,
        to_host: &'a str,
        token: &'a TransferToken,
        wait: Duration,
    ) -> BoxFuture<'a, Result<(), TransferError>>;
}

/// The receiving end of one transfer.
pub trait IncomingBytes: AsyncRead + Send + Unpin {
    /// Every byte was read and used: the sender's `send` returns the count.
    fn finish(self: Box<Self>) -> Result<u64, TransferError>;
    /// The bytes could not be used: the sender's `send` fails with `reason`.
    fn fail(self: Box<Self>, reason: String);
}

/// Why a transfer could not be set up, sent or received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The receiver does not expect the token (yet): the sender may try again shortly.
    #[error("the receiver does not expect this transfer")]
    NotExpected,
    #[error("the transfer failed: {reason}")]
    Failed { reason: String },
}

/// Transfers between agents of one process: `send` hands the bytes through a pipe to the
/// `receive` of the same token, whichever agent called it.
#[derive(Default)]
pub struct LocalTransfer {
    waiting: Mutex<HashMap<TransferToken, LocalEnd>>,
    /// Told each time a transfer is expected.
    expected: Notify,
}

/// The sending end of an expected transfer.
struct LocalEnd {
    pipe: DuplexStream,
    verdict: oneshot::Receiver<Result<u64, String>>,
}

/// The receiving end of a `LocalTransfer`.
struct LocalIncoming {
    pipe: DuplexStream,
    bytes: u64,
    verdict: Option<oneshot::Sender<Result<u64, String>>>,
}

impl LocalTransfer {
    pub fn new() -> Arc<LocalTransfer> {
        Arc::new(LocalTransfer::default())
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<TransferToken, LocalEnd>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BulkTransfer for LocalTransfer {
    fn receive(
        &self,
        token: &TransferToken,
        _wait: Duration,
    ) -> Result<Box<dyn IncomingBytes>, TransferError> {
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let (verdict, answer) = oneshot::channel();
        let end = LocalEnd {
            pipe: theirs,
            verdict: answer,
        };
        if self.waiting().insert(token.clone(), end).is_some() {
            return Err(TransferError::Failed {
                reason: "a transfer with this token is expected already".to_owned(),
            });
        }
        self.expected.notify_waiters();
        Ok(Box::new(LocalIncoming {
            pipe: ours,
            bytes: 0,
            verdict: Some(verdict),
        }))
    }

    fn send<'a>(
        &'a self,
        _to_host: &'a str,
        token: &'a TransferToken,
        mut body: Outgoing,
    ) -> BoxFuture<'a, Result<u64, TransferError>> {
        Box::pin(async move {
            let mut end = self
                .waiting()
                .remove(token)
                .ok_or(TransferError::NotExpected)?;
            let failed = |reason: String| TransferError::Failed { reason };
            let copied = tokio::io::copy(&mut body, &mut end.pipe).await;
            let closed = end.pipe.shutdown().await;
            drop(end.pipe);
            match end.verdict.await {
                Ok(Ok(bytes)) => {
                    copied.map_err(|err| failed(err.to_string()))?;
                    closed.map_err(|err| failed(err.to_string()))?;
                    Ok(bytes)
                }
                Ok(Err(reason)) => Err(failed(reason)),
                Err(_) => Err(failed("the receiver gave up".to_owned())),
            }
        })
    }

    fn wait_for_receiver<'a>(
        &'a self,
        _to_host: &'a str,
        token: &'a TransferToken,
        wait: Duration,
    ) -> BoxFuture<'a, Result<(), TransferError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                // Listening before looking: an expectation made in between is not missed.
                let expected = self.expected.notified();
                if self.waiting().contains_key(token) {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, expected).await.is_err() {
                    return Err(TransferError::NotExpected);
                }
            }
        })
    }
}

impl AsyncRead for LocalIncoming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.pipe).poll_read(cx, buf);
        self.bytes += (buf.filled().len() - before) as u64;
        polled
    }
}

impl IncomingBytes for LocalIncoming {
    fn finish(mut self: Box<Self>) -> Result<u64, TransferError> {
        if let Some(verdict) = self.verdict.take() {
            // A sender gone meanwhile learns nothing; the bytes were used all the same.
            let _ = verdict.send(Ok(self.bytes));
        }
        Ok(self.bytes)
    }

    fn fail(mut self: Box<Self>, reason: String) {
        if let Some(verdict) = self.verdict.take() {
            let _ = verdict.send(Err(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender waiting for its receiver goes on as soon as the token is expected, and is told
    /// `NotExpected` when it never is.
    #[tokio::test]
    async fn a_sender_waits_for_its_receiver() {
        let transfer = LocalTransfer::new();
        let token = TransferToken("a".repeat(32));
        let waiting = {
            let transfer = Arc::clone(&transfer);
            let token = token.clone();
            tokio::spawn(async move {
                transfer
                    .wait_for_receiver("host", &token, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        let _incoming = transfer
            .receive(&token, Duration::from_secs(30))
            .expect("expected");
        assert_eq!(waiting.await.expect("joined"), Ok(()));
        let other = TransferToken("b".repeat(32));
        let never = transfer.wait_for_receiver("host", &other, Duration::from_millis(10));
        assert_eq!(never.await, Err(TransferError::NotExpected));
    }
}
