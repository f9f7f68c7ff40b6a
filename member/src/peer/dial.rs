//! The outgoing stream to one member: dialed over HTTPS with the member's certificate pinned,
//! `GET /peer` upgraded, then frames from the queue written in order, a ping when there is
//! nothing to write for `peer.ping_interval_ms`, while the other end's pings are heard; on any
//! failure, or `peer.read_timeout_ms` without a ping, the queued frames are dropped and the
//! member dialed again, backing off from `peer.min_backoff_ms` to `peer.max_backoff_ms`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_client::Trust;
use api_spec::tls_pin;
use reqwest::StatusCode;
use reqwest::header::{CONNECTION, UPGRADE};
use tokio::io::AsyncWrite;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::peer::frame::{Frame, FrameError};
use crate::peer::liveness::{hear, send};
use crate::peer::{
    Dialer, EPOCH_HEADER, Member, NODE_HEADER, Outbound, PEER_PATH, Peers, QUEUE_FRAMES,
    RaftInbound, SECRET_HEADER, UPGRADE_PROTOCOL,
};

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

/// The time from the start of one dial to the start of the next: `min` after a dial that got
/// through (or when the member has just dialed us), doubled after each failure in a row, at
/// most `max`. Counted from the start, so that a dial that waited out its timeout is followed
/// by a fresh one at once: the kernel retransmits an unanswered SYN only after a second, then
/// three, and a partition healing meanwhile should not wait for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// The time between two dial starts now; the one after it is twice as long, up to `max`.
    fn take(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = self.min;
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
    let settings = peers.inner.settings.clone();
    let mut backoff = Backoff::new(settings.min_backoff(), settings.max_backoff());
    let mut failures = 0u32;
    loop {
        let dialed_at = Instant::now();
        // A dial sent while the member was cut off may wait for a SYN retransmission long after
        // the cut heals: the member dialing us says a fresh one gets through now.
        let dialed = tokio::select! {
            dialed = connect(&peers, &member) => dialed,
            () = redial.notified() => {
                backoff.reset();
                continue;
            }
        };
        match dialed {
            Ok(stream) => {
                connected.store(true, Ordering::Relaxed);
                tracing::info!(node, address = %member.address, "peer stream up");
                backoff.reset();
                failures = 0;
                let (reader, mut writer) = tokio::io::split(stream);
                let outcome = tokio::select! {
                    outcome = pump(&peers, node, &mut writer, &mut queue) => outcome,
                    error = hear(reader, settings.read_timeout()) => Err(error),
                };
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
        let pause = backoff.take().saturating_sub(dialed_at.elapsed());
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = redial.notified() => backoff.reset(),
        }
    }
}

/// Writes queued frames, and a ping whenever there has been nothing to write for the ping
/// interval, until the queue closes (`Ok`) or the stream fails.
async fn pump<W: AsyncWrite + Unpin>(
    peers: &Peers,
    node: u64,
    stream: &mut W,
    queue: &mut mpsc::Receiver<Outbound>,
) -> Result<(), FrameError> {
    let ping_interval = peers.inner.settings.ping_interval();
    let hello = Frame::Hello {
        node: peers.node_id(),
    };
    send(stream, &hello).await?;
    loop {
        let outbound = match tokio::time::timeout(ping_interval, queue.recv()).await {
            Ok(Some(outbound)) => outbound,
            Ok(None) => return Ok(()),
            Err(_) => {
                send(stream, &Frame::Ping).await?;
                continue;
            }
        };
        let outcome = send(stream, &outbound.frame).await;
        if outbound.snapshot {
            peers.to_raft(RaftInbound::SnapshotSent {
                to: node,
                finished: outcome.is_ok(),
            });
        }
        outcome?;
    }
}

/// Dials `member` and upgrades `GET /peer` to a stream; each step (the connection, the answer,
/// the upgrade) within the read timeout.
async fn connect(peers: &Peers, member: &Member) -> Result<reqwest::Upgraded, DialError> {
    let dial_timeout = peers.inner.settings.read_timeout();
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
        .connect_timeout(dial_timeout)
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
    let response = tokio::time::timeout(dial_timeout, request)
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
    tokio::time::timeout(dial_timeout, response.upgrade())
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Request)
}

/// A rustls client configuration that accepts only the certificate whose SHA-256 is `pin`,
/// speaking HTTP/1.1 (the upgrade is an HTTP/1.1 mechanism).
fn client_config(pin: &str) -> rustls::ClientConfig {
    let mut config = tls_pin::client_config(Arc::new(Trust::fingerprint(pin)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pause doubles after each failure up to the cap, and starts small again after a
    /// reset.
    #[test]
    fn backoff_doubles_to_its_cap_and_resets_to_its_start() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(20), ms(500));
        let pauses: Vec<Duration> = (0..7).map(|_| backoff.take()).collect();
        assert_eq!(
            pauses,
            [ms(20), ms(40), ms(80), ms(160), ms(320), ms(500), ms(500)]
        );
        backoff.reset();
        assert_eq!(backoff.take(), ms(20));
    }
}
