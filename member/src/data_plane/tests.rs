//! Transfers between two real front doors on loopback, over TLS: bytes moved in order with
//! the sender never far ahead of the receiver, and every refusal.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::Instant;

use super::*;
use crate::front::listen::{Addresses, Listeners};
use crate::front::testing::{exchange, fake_front, request};
use crate::front::tls;

/// The pool secret of the test hosts.
const SECRET: &str = "the pool secret of the test hosts";
/// The length of the repeated pattern the generator sends: prime, so that no chunk size lines
/// up with it and a piece out of place shows.
const PATTERN_BYTES: usize = 65_521;
/// How far the sender may read its source ahead of what the receiver has read: the pieces in
/// flight, hyper's and rustls's buffers and both kernel socket buffers, with room to spare —
/// and a small part of what moves.
const MAX_LEAD_BYTES: u64 = 32 << 20;

/// How often a slow receiver lets the other tasks run between two reads of a KiB. With the
/// route's channel unbounded, 20 lets the sender run over 200 MiB ahead.
const SLOW_YIELDS: usize = 20;

/// One host: a real front door (HTTPS on 127.0.0.1) with its data plane.
struct Host {
    plane: DataPlane,
    endpoint: Endpoint,
    listeners: Listeners,
    unix_socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn start_host(secret: &str, stall: Duration) -> Host {
    let dir = tempfile::tempdir().expect("temp dir");
    let host_cert = tls::load_or_create(dir.path(), "localhost", &[]).expect("certificate");
    let cert_sha256 = crate::peer::cert_sha256(&host_cert.cert);
    let secret = secret.to_owned();
    let settings = DataPlaneSettings {
        stall_timeout_ms: u64::try_from(stall.as_millis()).expect("a short stall"),
    };
    let plane = DataPlane::new(settings, Arc::new(move || Some(secret.clone())), None);
    let front = fake_front().with_pool_stream_routes(plane.router());
    let unix_socket = dir.path().join("xapi.sock");
    let addresses = Addresses {
        https: "127.0.0.1:0".parse().expect("address"),
        http: None,
        unix_socket: unix_socket.clone(),
    };
    let config = tls::server_config(host_cert).expect("tls config");
    let listeners = Listeners::start(front, config, &addresses).expect("listeners");
    Host {
        plane,
        endpoint: Endpoint {
            address: listeners.https.to_string(),
            cert_sha256,
        },
        listeners,
        unix_socket,
        _dir: dir,
    }
}

fn two_hosts() -> (Host, Host) {
    let stall = Duration::from_secs(30);
    (start_host(SECRET, stall), start_host(SECRET, stall))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..PATTERN_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    })
}

/// How far the source was read, and how far the receiver.
#[derive(Debug, Default)]
struct Gauge {
    produced: AtomicU64,
    consumed: AtomicU64,
    /// The most `produced` was ever ahead of `consumed`.
    max_lead: AtomicU64,
}

/// A source of `total` bytes of the pattern (endless when `None`), noting on the gauge how
/// far it is read.
struct Generator {
    total: Option<u64>,
    gauge: Arc<Gauge>,
}

impl AsyncRead for Generator {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let produced = self.gauge.produced.load(Ordering::SeqCst);
        let left = self.total.map_or(u64::MAX, |total| total - produced);
        let start = usize::try_from(produced % PATTERN_BYTES as u64).expect("small");
        let n = buf
            .remaining()
            .min(PATTERN_BYTES - start)
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        buf.put_slice(&pattern()[start..start + n]);
        let produced = produced + n as u64;
        self.gauge.produced.store(produced, Ordering::SeqCst);
        let lead = produced - self.gauge.consumed.load(Ordering::SeqCst);
        self.gauge.max_lead.fetch_max(lead, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// Reads `incoming` to its end, checking every byte against the pattern and noting on the
/// gauge how far it has read; then finishes it. The first `slow_bytes` are read a KiB at a
/// time, letting every other task run between two reads: a receiver slower than the network,
/// which a sender without backpressure would run far ahead of.
async fn check_all(
    mut incoming: Incoming,
    gauge: &Gauge,
    slow_bytes: u64,
) -> Result<u64, DataPlaneError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    loop {
        let read = if offset < slow_bytes {
            for _ in 0..SLOW_YIELDS {
                tokio::task::yield_now().await;
            }
            incoming.read(&mut buf[..1024]).await
        } else {
            incoming.read(&mut buf).await
        };
        let n = read.expect("the transfer reads");
        if n == 0 {
            break;
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let start = usize::try_from(offset % PATTERN_BYTES as u64).expect("small");
            let take = rest.len().min(PATTERN_BYTES - start);
            assert!(
                rest[..take] == pattern()[start..start + take],
                "bytes out of place at offset {offset}"
            );
            rest = &rest[take..];
            offset += take as u64;
        }
        gauge.consumed.store(offset, Ordering::SeqCst);
    }
    incoming.finish()
}

/// Sends `total` pattern bytes from `from` to `to` with a fresh token.
async fn move_bytes(
    from: &Host,
    to: &Host,
    total: u64,
) -> (
    Result<u64, DataPlaneError>,
    Result<u64, DataPlaneError>,
    Arc<Gauge>,
) {
    let token = Token::generate().expect("token");
    let incoming = to.plane.expect(&token, soon()).expect("expected");
    let gauge = Arc::new(Gauge::default());
    let source = Generator {
        total: Some(total),
        gauge: Arc::clone(&gauge),
    };
    let (sent, received) = tokio::join!(
        from.plane.send(&to.endpoint, &token, source),
        check_all(incoming, &gauge, total / 8)
    );
    (sent, received, gauge)
}

/// Half a GiB moves in order from one host to another, and the sender never reads its source
/// more than `MAX_LEAD_BYTES` ahead of what the receiver has read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_gibibyte_moves_with_the_sender_never_far_ahead_of_the_receiver() {
    let (a, b) = two_hosts();
    let total = 512 << 20;
    let (sent, received, gauge) = move_bytes(&a, &b, total).await;
    assert_eq!(sent.expect("sent"), total);
    assert_eq!(received.expect("received"), total);
    let max_lead = gauge.max_lead.load(Ordering::SeqCst);
    assert!(
        max_lead <= MAX_LEAD_BYTES,
        "the sender ran {max_lead} bytes ahead of the receiver"
    );
    a.listeners.shutdown(Duration::from_secs(1)).await;
    b.listeners.shutdown(Duration::from_secs(1)).await;
}

/// The stall timeout of the hosts of the refusal tests.
const STALL: Duration = Duration::from_secs(30);

/// Reads `incoming` to its end and finishes it.
async fn read_all(mut incoming: Incoming) -> (Vec<u8>, Result<u64, DataPlaneError>) {
    let mut bytes = Vec::new();
    incoming
        .read_to_end(&mut bytes)
        .await
        .expect("the transfer reads");
    (bytes, incoming.finish())
}

/// Sends `bytes` from `from` to `to` while `to` reads them; what was sent and read.
async fn send_and_read(
    from: &Host,
    to: &Host,
    token: &Token,
    incoming: Incoming,
) -> (Result<u64, DataPlaneError>, Vec<u8>) {
    let (sent, (bytes, finished)) = tokio::join!(
        from.plane.send(&to.endpoint, token, &b"hello"[..]),
        read_all(incoming)
    );
    finished.expect("finished");
    (sent, bytes)
}

/// A sender with another pool's secret is refused, and the token stays usable: the right
/// sender then gets through.
#[tokio::test]
async fn a_wrong_pool_secret_is_refused_and_leaves_the_token_usable() {
    let (a, b) = two_hosts();
    let outsider = start_host("another pool's secret", STALL);
    let token = Token::generate().expect("token");
    let incoming = b.plane.expect(&token, soon()).expect("expected");
    let refused = outsider.plane.send(&b.endpoint, &token, &b"x"[..]).await;
    assert!(
        matches!(refused, Err(DataPlaneError::SecretRefused { .. })),
        "{refused:?}"
    );
    let (sent, bytes) = send_and_read(&a, &b, &token, incoming).await;
    assert_eq!(sent.expect("sent"), 5);
    assert_eq!(bytes, b"hello");
}

/// A receiver that shows another certificate than the pinned one gets nothing, and the token
/// stays usable.
#[tokio::test]
async fn a_certificate_other_than_the_pinned_one_is_refused() {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let incoming = b.plane.expect(&token, soon()).expect("expected");
    let impostor = Endpoint {
        address: b.endpoint.address.clone(),
        cert_sha256: a.endpoint.cert_sha256.clone(),
    };
    let refused = a.plane.send(&impostor, &token, &b"x"[..]).await;
    assert!(
        matches!(refused, Err(DataPlaneError::Connection { .. })),
        "{refused:?}"
    );
    let (sent, bytes) = send_and_read(&a, &b, &token, incoming).await;
    assert_eq!(sent.expect("sent"), 5);
    assert_eq!(bytes, b"hello");
}

/// A token the receiving host does not expect is refused as unknown.
#[tokio::test]
async fn an_unknown_token_is_refused() {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let refused = a.plane.send(&b.endpoint, &token, &b"x"[..]).await;
    assert!(
        matches!(refused, Err(DataPlaneError::UnknownToken { .. })),
        "{refused:?}"
    );
}

/// A token carries one transfer: sending with it again is refused as gone.
#[tokio::test]
async fn a_token_is_used_once() {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let incoming = b.plane.expect(&token, soon()).expect("expected");
    let (sent, _) = send_and_read(&a, &b, &token, incoming).await;
    assert_eq!(sent.expect("sent"), 5);
    let again = a.plane.send(&b.endpoint, &token, &b"hello"[..]).await;
    assert!(
        matches!(again, Err(DataPlaneError::TokenGone { .. })),
        "{again:?}"
    );
}

/// A sender after the deadline is refused as gone, and the receiver's read fails as expired.
#[tokio::test]
async fn a_token_past_its_deadline_is_refused() {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let mut incoming = b.plane.expect(&token, Instant::now()).expect("expected");
    let late = a.plane.send(&b.endpoint, &token, &b"x"[..]).await;
    assert!(
        matches!(late, Err(DataPlaneError::TokenGone { .. })),
        "{late:?}"
    );
    let error = incoming.read(&mut [0u8; 16]).await.expect_err("expired");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert!(
        matches!(
            error.get_ref().and_then(|e| e.downcast_ref()),
            Some(DataPlaneError::Expired)
        ),
        "{error:?}"
    );
}

/// Starts an endless transfer from `a` to `b`; once `b` has read a MiB, `end` ends its
/// `Incoming`. What `send` then returns.
async fn cut_midway(end: impl FnOnce(Incoming)) -> Result<u64, DataPlaneError> {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let mut incoming = b.plane.expect(&token, soon()).expect("expected");
    let source = Generator {
        total: None,
        gauge: Arc::default(),
    };
    let sending = tokio::spawn({
        let (plane, endpoint, token) = (a.plane.clone(), b.endpoint.clone(), token.clone());
        async move { plane.send(&endpoint, &token, source).await }
    });
    let mut buf = vec![0u8; 1 << 20];
    incoming
        .read_exact(&mut buf)
        .await
        .expect("the transfer reads");
    end(incoming);
    tokio::time::timeout(Duration::from_secs(20), sending)
        .await
        .expect("send ends")
        .expect("send does not panic")
}

/// A receiver that fails midway (a restore that went wrong) fails the sender, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_midway_fails_the_sender_with_its_reason() {
    let sent = cut_midway(|incoming| incoming.fail("restore failed")).await;
    match sent {
        Err(DataPlaneError::ReceiverFailed { status, reason, .. }) => {
            assert_eq!((status, reason.as_str()), (500, "restore failed"));
        }
        other => panic!("the receiver's failure, got {other:?}"),
    }
}

/// A receiver that drops its `Incoming` midway fails the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_dropped_midway_fails_the_sender() {
    let sent = cut_midway(drop).await;
    assert!(
        matches!(
            sent,
            Err(DataPlaneError::ReceiverFailed { status: 500, .. })
        ),
        "{sent:?}"
    );
}

/// A source that yields a KiB and then nothing more.
struct StallsAfterAKib {
    sent: bool,
}

impl AsyncRead for StallsAfterAKib {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.sent {
            return Poll::Pending;
        }
        self.sent = true;
        buf.put_slice(&[7u8; 1024]);
        Poll::Ready(Ok(()))
    }
}

/// A sender whose source stops yielding fails after the stall timeout at both ends.
#[tokio::test]
async fn a_stalled_transfer_fails_at_both_ends() {
    let stall = Duration::from_millis(300);
    let (a, b) = (start_host(SECRET, stall), start_host(SECRET, stall));
    let token = Token::generate().expect("token");
    let mut incoming = b.plane.expect(&token, soon()).expect("expected");
    let source = StallsAfterAKib { sent: false };
    let mut bytes = Vec::new();
    let (sent, read) = tokio::join!(
        a.plane.send(&b.endpoint, &token, source),
        incoming.read_to_end(&mut bytes)
    );
    assert!(
        matches!(
            sent,
            Err(DataPlaneError::Stalled { .. } | DataPlaneError::ReceiverFailed { status: 408, .. })
        ),
        "{sent:?}"
    );
    assert_eq!(read.expect_err("stalled").kind(), io::ErrorKind::TimedOut);
    assert_eq!(bytes.len(), 1024);
}

/// The data route is served over TCP only: on the local Unix socket, with the right secret
/// and token, it is not found, and the token stays usable.
#[tokio::test]
async fn the_data_route_is_not_served_on_the_local_socket() {
    let (a, b) = two_hosts();
    let token = Token::generate().expect("token");
    let incoming = b.plane.expect(&token, soon()).expect("expected");
    let stream = tokio::net::UnixStream::connect(&b.unix_socket)
        .await
        .expect("connect to the unix socket");
    let path = format!("/data/{}", token.to_hex());
    let raw = request("PUT", &path, &[(crate::peer::SECRET_HEADER, SECRET)], b"x");
    assert_eq!(exchange(stream, &raw).await.status, 404);
    let (sent, bytes) = send_and_read(&a, &b, &token, incoming).await;
    assert_eq!(sent.expect("sent"), 5);
    assert_eq!(bytes, b"hello");
}

/// A sender that asks first waits until the receiver expects its token, and asking uses
/// nothing: the transfer goes through afterwards. A token never expected is unknown once
/// the wait is over, and a wrong secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_may_wait_until_its_token_is_expected() {
    let (sender, receiver) = two_hosts();
    let token = Token::generate().expect("token");
    let early = Instant::now() + Duration::from_millis(100);
    assert!(matches!(
        sender
            .plane
            .wait_until_expected(&receiver.endpoint, &token, early)
            .await,
        Err(DataPlaneError::UnknownToken { .. })
    ));
    let plane = receiver.plane.clone();
    let expected = token.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        plane.expect(&expected, soon()).expect("expected")
    });
    sender
        .plane
        .wait_until_expected(&receiver.endpoint, &token, soon())
        .await
        .expect("the receiver expects it in time");
    let mut incoming = later.await.expect("the receiver");
    let receive = async {
        let mut bytes = Vec::new();
        incoming.read_to_end(&mut bytes).await.expect("reads");
        incoming.finish().expect("finished");
        bytes
    };
    let send = sender
        .plane
        .send(&receiver.endpoint, &token, &b"after asking"[..]);
    let (bytes, sent) = tokio::join!(receive, send);
    assert_eq!(
        (bytes.as_slice(), sent.ok()),
        (&b"after asking"[..], Some(12))
    );

    let stranger = start_host("another secret", Duration::from_secs(30));
    assert!(matches!(
        stranger
            .plane
            .wait_until_expected(&receiver.endpoint, &token, soon())
            .await,
        Err(DataPlaneError::SecretRefused { .. })
    ));
}
