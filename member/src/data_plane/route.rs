//! `PUT /data/{token}`: a sender's bytes for a transfer this host expects. The pool secret
//! and the token are checked, then the body is moved piece by piece into the waiting
//! `Incoming`, never more than a few pieces ahead of its reader; the answer says whether the
//! receiver took every byte. `HEAD /data/{token}` answers the same refusals, or 200 when the
//! token is expected, without using it: a sender whose bytes cannot be sent twice asks first.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::data_plane::registry::{Delivery, Piece, Refusal, Verdict};
use crate::data_plane::{BYTES_HEADER, DataPlane, DataPlaneError, Token};
use crate::front::body::next_data;
use crate::peer::{SECRET_HEADER, same_secret};

/// Pieces of a body (each at most one read of the connection, some hundreds of KiB) moved
/// to the receiver and not yet read: the route reads no more of the connection until it
/// reads one.
const PIECES_IN_FLIGHT: usize = 4;
/// How long the rest of a body nobody takes any more is read and dropped after the answer
/// went out, so that the sender reads the answer before the connection closes.
const LINGER: Duration = Duration::from_secs(2);

pub(crate) fn router(plane: DataPlane) -> Router {
    Router::new()
        .route("/data/{token}", put(receive).head(probe))
        .with_state(plane)
}

/// 403 without the pool secret, 404 for a token not expected here, 410 for one used,
/// expired or given up; then the body goes to the receiver, and the answer is 200 with the
/// byte count when it took them all, 408 when the sender stalled, 500 when the receiver
/// failed, gave up or stalled (its reason as the body).
async fn receive(
    State(plane): State<DataPlane>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    if !has_pool_secret(&plane, request.headers()) {
        tracing::warn!("data plane transfer refused: wrong pool secret");
        return StatusCode::FORBIDDEN.into_response();
    }
    let Ok(token) = Token::parse(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let arrival = match plane.inner.registry.claim(&token, Instant::now()) {
        Ok(arrival) => arrival,
        Err(refusal) => {
            tracing::info!(token = %token, ?refusal, "data plane transfer refused");
            return match refusal {
                Refusal::Unknown => StatusCode::NOT_FOUND,
                Refusal::Gone => StatusCode::GONE,
            }
            .into_response();
        }
    };
    let (pieces, receiver_pieces) = mpsc::channel(PIECES_IN_FLIGHT);
    let (receiver_verdict, verdict) = oneshot::channel();
    let delivery = Delivery {
        pieces: receiver_pieces,
        verdict: receiver_verdict,
    };
    if arrival.send(delivery).is_err() {
        return StatusCode::GONE.into_response();
    }
    let stall = plane.inner.settings.stall_timeout();
    let mut body = request.into_body();
    let outcome = forward(&mut body, &pieces, stall).await;
    if matches!(
        outcome,
        Forwarded::ReceiverGone | Forwarded::ReceiverStalled
    ) {
        // The sender is still writing: a connection closed under it would be reset before it
        // reads the answer, so the rest of its body is read and dropped for a moment.
        tokio::spawn(tokio::time::timeout(LINGER, drain(body)));
    }
    let answer = answer(outcome, &pieces, verdict, stall).await;
    tracing::debug!(token = %token, status = %answer.status(), "data plane transfer ended");
    answer
}

/// 403 without the pool secret, 404 for a token not expected here, 410 for one used,
/// expired or given up, 200 for one a sender may use now.
async fn probe(
    State(plane): State<DataPlane>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    if !has_pool_secret(&plane, &headers) {
        return StatusCode::FORBIDDEN;
    }
    let Ok(token) = Token::parse(&token) else {
        return StatusCode::NOT_FOUND;
    };
    match plane.inner.registry.check(&token, Instant::now()) {
        Ok(()) => StatusCode::OK,
        Err(Refusal::Unknown) => StatusCode::NOT_FOUND,
        Err(Refusal::Gone) => StatusCode::GONE,
    }
}

fn has_pool_secret(plane: &DataPlane, headers: &HeaderMap) -> bool {
    let given = headers
        .get(SECRET_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    (plane.inner.pool_secret)().is_some_and(|ours| same_secret(given.as_bytes(), ours.as_bytes()))
}

/// How moving a body to its receiver ended.
#[derive(Debug, PartialEq, Eq)]
enum Forwarded {
    /// Every byte is with the receiver (not necessarily read yet).
    All,
    SenderStalled,
    SenderBroke,
    ReceiverGone,
    ReceiverStalled,
}

/// Moves `body` into `pieces`, waiting at most `stall` for each piece to arrive and for
/// room for it.
async fn forward(body: &mut Body, pieces: &mpsc::Sender<Piece>, stall: Duration) -> Forwarded {
    loop {
        let data = match tokio::time::timeout(stall, next_data(body)).await {
            Err(_) => return Forwarded::SenderStalled,
            Ok(Err(_)) => return Forwarded::SenderBroke,
            Ok(Ok(None)) => return Forwarded::All,
            Ok(Ok(Some(data))) => data,
        };
        match tokio::time::timeout(stall, pieces.send(Piece::Data(data))).await {
            Err(_) => return Forwarded::ReceiverStalled,
            Ok(Err(_)) => return Forwarded::ReceiverGone,
            Ok(Ok(())) => {}
        }
    }
}

/// Reads and drops what is left of `body`.
async fn drain(mut body: Body) {
    while let Ok(Some(_)) = next_data(&mut body).await {}
}

/// Tells the receiver how the body ended and the sender what the receiver made of it.
async fn answer(
    forwarded: Forwarded,
    pieces: &mpsc::Sender<Piece>,
    mut verdict: oneshot::Receiver<Verdict>,
    stall: Duration,
) -> Response {
    let broken = |error| {
        // A receiver that reads nothing more learns it from the channel closing.
        let _ = pieces.try_send(Piece::Broken(error));
    };
    let refusal = match forwarded {
        Forwarded::All => {
            if tokio::time::timeout(stall, pieces.send(Piece::End))
                .await
                .is_ok_and(|sent| sent.is_ok())
            {
                return match tokio::time::timeout(stall, verdict).await {
                    Ok(Ok(Verdict::Consumed { bytes })) => {
                        (StatusCode::OK, [(BYTES_HEADER, HeaderValue::from(bytes))]).into_response()
                    }
                    Ok(Ok(Verdict::Failed { reason })) => failed(&reason),
                    Ok(Err(_)) => failed("the receiver gave up"),
                    Err(_) => failed("the receiver gave no answer in time"),
                };
            }
            "the receiver took nothing more"
        }
        Forwarded::SenderStalled => {
            broken(DataPlaneError::Stalled { after: stall });
            return close(StatusCode::REQUEST_TIMEOUT, "no byte arrived in time");
        }
        Forwarded::SenderBroke => {
            broken(DataPlaneError::SenderLost);
            return close(StatusCode::BAD_REQUEST, "the body broke off");
        }
        Forwarded::ReceiverStalled => "the receiver took nothing more",
        Forwarded::ReceiverGone => "the receiver gave up",
    };
    // The receiver gives its reason before it lets go of the pieces.
    match verdict.try_recv() {
        Ok(Verdict::Failed { reason }) => failed(&reason),
        _ => failed(refusal),
    }
}

/// 500 with the receiver's reason: the sender's `send` fails with it.
fn failed(reason: &str) -> Response {
    close(StatusCode::INTERNAL_SERVER_ERROR, reason)
}

/// An answer that closes the connection: a sender may still be writing a body nobody reads.
fn close(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [
            (header::CONNECTION, "close"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        reason.to_owned(),
    )
        .into_response()
}
