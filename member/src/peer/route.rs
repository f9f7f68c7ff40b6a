//! `GET /peer`: another member's stream to this host. The pool secret, the dialing node (a
//! member) and the pool epoch are checked, the connection is upgraded, and its frames are
//! dispatched: Raft messages to the Raft node, link frames to the links layer. This end writes
//! only pings, so that the dialing end hears that it is alive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::peer::frame::{self, Frame, FrameError};
use crate::peer::liveness::{Silence, ping_every};
use crate::peer::{
    EPOCH_HEADER, NODE_HEADER, PEER_PATH, PROTOCOL_HEADER, Peers, RaftInbound, SECRET_HEADER,
    UPGRADE_PROTOCOL, same_secret,
};

pub(crate) fn router(peers: Peers) -> Router {
    Router::new()
        .route(PEER_PATH, get(accept))
        .with_state(peers)
}

/// Checks the headers and upgrades the connection; the frames are read on their own task.
async fn accept(State(peers): State<Peers>, mut request: Request) -> Response {
    let node = match check(&peers, request.headers()) {
        Ok(node) => node,
        Err(Refusal::Status(status)) => return status.into_response(),
        Err(Refusal::OtherEpoch { ours }) => {
            return (StatusCode::CONFLICT, [(EPOCH_HEADER, ours)]).into_response();
        }
    };
    let protocol = request
        .headers()
        .get(PROTOCOL_HEADER)
        .and_then(|value| value.to_str().ok());
    peers.note_protocol(node, protocol);
    peers.redial(node);
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => serve_stream(&peers, node, UpgradedIo(upgraded)).await,
            Err(error) => tracing::info!(node, error = %error, "peer stream upgrade failed"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (CONNECTION, HeaderValue::from_static("upgrade")),
            (UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL)),
            (
                HeaderName::from_static(PROTOCOL_HEADER),
                HeaderValue::from(host_api::PROTOCOL_VERSION),
            ),
        ],
    )
        .into_response()
}

/// Why a stream is refused.
enum Refusal {
    Status(StatusCode),
    /// 409, with this host's epoch.
    OtherEpoch {
        ours: HeaderValue,
    },
}

/// The dialing node, or the answer refusing it: 400 for a malformed request, 403 for a wrong
/// secret or a node that is not a member, 409 (with this host's epoch) for another epoch.
fn check(peers: &Peers, headers: &HeaderMap) -> Result<u64, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header(UPGRADE.as_str()) != Some(UPGRADE_PROTOCOL) {
        return Err(Refusal::Status(StatusCode::BAD_REQUEST));
    }
    let node = header(NODE_HEADER)
        .and_then(|node| node.parse::<u64>().ok())
        .ok_or(Refusal::Status(StatusCode::BAD_REQUEST))?;
    let guard = peers.inner.membership();
    let Some(membership) = guard.as_ref() else {
        return Err(Refusal::Status(StatusCode::FORBIDDEN));
    };
    let secret = header(SECRET_HEADER).unwrap_or_default();
    if !same_secret(secret.as_bytes(), membership.pool_secret.as_bytes()) {
        tracing::warn!(node, "peer stream refused: wrong pool secret");
        return Err(Refusal::Status(StatusCode::FORBIDDEN));
    }
    let their_epoch = header(EPOCH_HEADER).unwrap_or_default();
    if their_epoch != membership.pool_epoch {
        let ours = HeaderValue::from_str(&membership.pool_epoch)
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        let their_epoch = their_epoch.to_owned();
        drop(guard);
        peers.report_split(node, &their_epoch);
        return Err(Refusal::OtherEpoch { ours });
    }
    if node == peers.node_id() || membership.member(node).is_none() {
        tracing::info!(node, "peer stream refused: not a pool member");
        return Err(Refusal::Status(StatusCode::FORBIDDEN));
    }
    Ok(node)
}

/// Reads the frames of `node`'s stream, pinging back, until it ends, fails or stays silent for
/// the read timeout.
async fn serve_stream(peers: &Peers, node: u64, stream: UpgradedIo) {
    let settings = &peers.inner.settings;
    let (reader, mut writer) = tokio::io::split(stream);
    let reader = Silence::new(reader, settings.read_timeout());
    let failed = tokio::select! {
        failed = read_stream(peers, node, reader) => failed,
        failed = ping_every(&mut writer, settings.ping_interval()) => Some(failed),
    };
    if let Some(error) = failed {
        tracing::info!(
            node,
            error = &error as &dyn std::error::Error,
            "inbound peer stream failed"
        );
    }
}

/// Reads and dispatches the frames of `node`'s stream until it ends (`None`), fails or carries
/// something wrong (logged here, `None`).
async fn read_stream<R: AsyncRead + Unpin>(
    peers: &Peers,
    node: u64,
    mut stream: R,
) -> Option<FrameError> {
    let this_node = peers.node_id();
    loop {
        let frame = match frame::read(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(error) => return Some(error),
        };
        match frame {
            Frame::Hello { node: hello } if hello == node => {}
            Frame::Hello { node: hello } => {
                tracing::warn!(node, hello, "peer stream names another node; closed");
                return None;
            }
            Frame::Ping => {}
            Frame::Raft(bytes) => match Message::parse_from_bytes(&bytes.0) {
                Ok(message) if message.from == node && message.to == this_node => {
                    peers.to_raft(RaftInbound::Message(message));
                }
                Ok(message) => tracing::warn!(
                    node,
                    from = message.from,
                    to = message.to,
                    "raft message with the wrong ends dropped"
                ),
                Err(error) => {
                    tracing::warn!(node, error = %error, "undecodable raft message; stream closed");
                    return None;
                }
            },
            Frame::Link(bytes) => {
                if let Err(error) = peers.inner.link_tx.try_send((node, bytes.0)) {
                    tracing::warn!(node, error = %error, "link frame dropped: nobody takes them fast enough");
                }
            }
        }
    }
}

/// hyper's upgraded connection as a tokio reader and writer.
struct UpgradedIo(hyper::upgrade::Upgraded);

impl AsyncRead for UpgradedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = {
            let mut hyper_buf = hyper::rt::ReadBuf::new(buf.initialize_unfilled());
            match hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, hyper_buf.unfilled()) {
                Poll::Ready(Ok(())) => hyper_buf.filled().len(),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        };
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}
