//! The outgoing stream to one member: dialed over HTTPS with the member's certificate pinned,
//! `GET /peer` upgraded, then frames from the queue written in order; on any failure the
//! queued frames are dropped and the member dialed again, backing off from 100 ms to 5 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_spec::tls_pin;
use reqwest::StatusCode;
use reqwest::header::{CONNECTION, UPGRADE};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::peer::frame::{self, Frame, FrameError};
use crate::peer::trust::Trust;
use crate::peer::{
    Dialer, EPOCH_HEADER, Member, NODE_HEADER, Outbound, PEER_PATH, Peers, QUEUE_FRAMES,
    RaftInbound, SECRET_HEADER, UPGRADE_PROTOCOL,
};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest a connection, the upgrade or one write may take before the stream is redialed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle stream carries a `Hello` this often, so that the reading side knows it is alive.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(2);

/// Why dialing a member failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("no membership to dial with")]
    NoMembership,
    #[error("https client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("peer request failed")]
    Request(#[source] reqwest::Error),
    #[error("peer did not answer in time")]
    Timeout,
    #[error("peer refused the stream with {status}")]
    Refused { status: StatusCode },
    #[error("peer is on another pool epoch")]
    OtherEpoch { their_epoch: String },
}

/// Starts the stream to `member`.
pub(crate) fn start(peers: Peers, member: Member) -> Dialer {
    let (queue, receiver) = mpsc::channel(QUEUE_FRAMES);
    let connected = Arc::new(AtomicBool::new(false));
    let redial = Arc::new(Notify::new());
    let task = tokio::spawn(run(
        peers,
        member.clone(),
        receiver,
        Arc::clone(&connected),
        Arc::clone(&redial),
    ));
    Dialer {
        member,
        queue,
        connected,
        redial,
        task,
    }
}

async fn run(
    peers: Peers,
    member: Member,
    mut queue: mpsc::Receiver<Outbound>,
    connected: Arc<AtomicBool>,
    redial: Arc<Notify>,
) {
    let node = member.node_id;
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    loop {
        match connect(&peers, &member).await {
            Ok(mut stream) => {
                connected.store(true, Ordering::Relaxed);
                tracing::info!(node, address = %member.address, "peer stream up");
                backoff = MIN_BACKOFF;
                failures = 0;
                let outcome = pump(&peers, node, &mut stream, &mut queue).await;
                connected.store(false, Ordering::Relaxed);
                while let Ok(outbound) = queue.try_recv() {
                    if outbound.snapshot {
                        peers.to_raft(RaftInbound::SnapshotSent {
                            to: node,
                            finished: false,
                        });
                    }
                }
                match outcome {
                    Ok(()) => return,
                    Err(error) => tracing::info!(
                        node,
                        error = &error as &dyn std::error::Error,
                        "peer stream down"
                    ),
                }
            }
            Err(DialError::OtherEpoch { their_epoch }) => {
                peers.report_split(node, &their_epoch);
            }
            Err(error) => {
                // The first failure in a row is worth a line; the retries are not.
                failures += 1;
                if failures == 1 {
                    tracing::warn!(node, address = %member.address, error = &error as &dyn std::error::Error, "cannot reach peer");
                } else {
                    tracing::debug!(
                        node,
                        error = &error as &dyn std::error::Error,
                        "cannot reach peer"
                    );
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(MAX_BACKOFF),
            () = redial.notified() => backoff = MIN_BACKOFF,
        }
    }
}

/// Writes queued frames until the queue closes (`Ok`) or the stream fails.
async fn pump<W: AsyncWrite + Unpin>(
    peers: &Peers,
    node: u64,
    stream: &mut W,
    queue: &mut mpsc::Receiver<Outbound>,
) -> Result<(), FrameError> {
    let hello = Frame::Hello {
        node: peers.node_id(),
    };
    write(stream, &hello).await?;
    loop {
        let outbound = match tokio::time::timeout(KEEPALIVE, queue.recv()).await {
            Ok(Some(outbound)) => outbound,
            Ok(None) => return Ok(()),
            Err(_) => {
                write(stream, &hello).await?;
                continue;
            }
        };
        let outcome = write(stream, &outbound.frame).await;
        if outbound.snapshot {
            peers.to_raft(RaftInbound::SnapshotSent {
                to: node,
                finished: outcome.is_ok(),
            });
        }
        outcome?;
    }
}

/// Writes and flushes one frame, within `IO_TIMEOUT`.
async fn write<W: AsyncWrite + Unpin>(stream: &mut W, frame: &Frame) -> Result<(), FrameError> {
    let writing = async {
        frame::write(stream, frame).await?;
        stream.flush().await?;
        Ok(())
    };
    tokio::time::timeout(IO_TIMEOUT, writing)
        .await
        .unwrap_or_else(|_| Err(FrameError::Io(std::io::ErrorKind::TimedOut.into())))
}

/// Dials `member` and upgrades `GET /peer` to a stream.
async fn connect(peers: &Peers, member: &Member) -> Result<reqwest::Upgraded, DialError> {
    let (secret, epoch) = {
        let membership = peers.inner.membership();
        let membership = membership.as_ref().ok_or(DialError::NoMembership)?;
        (
            membership.pool_secret.clone(),
            membership.pool_epoch.clone(),
        )
    };
    let client = reqwest::Client::builder()
        .local_address(peers.local_ip())
        .use_preconfigured_tls(client_config(&member.cert_sha256))
        .http1_only()
        .connect_timeout(IO_TIMEOUT)
        .build()
        .map_err(DialError::Client)?;
    let request = client
        .get(format!("https://{}{PEER_PATH}", member.address))
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, UPGRADE_PROTOCOL)
        .header(SECRET_HEADER, secret)
        .header(NODE_HEADER, peers.node_id().to_string())
        .header(EPOCH_HEADER, epoch)
        .send();
    let response = tokio::time::timeout(IO_TIMEOUT, request)
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Request)?;
    match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => {}
        StatusCode::CONFLICT => {
            let their_epoch = response
                .headers()
                .get(EPOCH_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(DialError::OtherEpoch { their_epoch });
        }
        status => return Err(DialError::Refused { status }),
    }
    tokio::time::timeout(IO_TIMEOUT, response.upgrade())
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Request)
}

/// A rustls client configuration that accepts only the certificate whose SHA-256 is `pin`,
/// speaking HTTP/1.1 (the upgrade is an HTTP/1.1 mechanism).
fn client_config(pin: &str) -> rustls::ClientConfig {
    let mut config = tls_pin::client_config(Arc::new(Trust::pinned(pin)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
