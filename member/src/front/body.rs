//! Reading a request body: within the size limit, and within the body deadline that every
//! request of the front door gets when its headers are in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use api_spec::error::DecodeError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The most buffer reserved for a body before its bytes arrive.
const PREALLOCATE_MAX_BYTES: usize = 64 * 1024;

/// Why a request body could not be read in full.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit: `size` is the declared length, else what arrived.
    TooLarge { size: usize, limit: usize },
    /// The body did not arrive within the body deadline.
    TimedOut { after: Duration },
    /// The connection failed while the body was arriving.
    Read,
}

impl BodyError {
    /// The HTTP status and the message of the `INTERNAL_ERROR` that refuses the request.
    pub fn refusal(&self) -> (StatusCode, String) {
        match self {
            BodyError::TooLarge { size, limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                DecodeError::BodyTooLarge {
                    size: *size,
                    limit: *limit,
                }
                .to_string(),
            ),
            BodyError::TimedOut { after } => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    after.as_secs()
                ),
            ),
            BodyError::Read => (
                StatusCode::BAD_REQUEST,
                "cannot read the request body".to_owned(),
            ),
        }
    }
}

/// The error of a body whose deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", after.as_secs())]
struct BodyTimedOut {
    after: Duration,
}

/// Middleware: the request's body fails once `timeout` has passed since now, when its headers
/// are in, so that a client trickling a body cannot hold its connection forever.
pub async fn set_body_deadline(State(timeout): State<Duration>, request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let body = DeadlineBody {
        inner: body,
        deadline: Instant::now() + timeout,
        timeout,
        timer: None,
    };
    Request::from_parts(parts, Body::new(body))
}

/// A body that fails with `BodyTimedOut` once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    timeout: Duration,
    /// Armed the first time the body has to wait: a body that is in already needs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut {
                after: this.timeout,
            }
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads the whole body, refusing one over `limit` without buffering more than `limit` bytes.
///
/// The rest of a body over the limit is read and dropped before the 413 goes out (unless the
/// client waits for `100 Continue`, and so has sent nothing): a client still sending would
/// otherwise be reset and never read the answer. The body deadline bounds how long that takes.
pub async fn read_body(request: Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let waits_for_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut body = request.into_body();
    if let Some(size) = declared.filter(|size| *size > limit) {
        if !waits_for_continue {
            // Too large whether or not the rest arrives in time.
            let _ = drain(&mut body).await;
        }
        return Err(BodyError::TooLarge { size, limit });
    }
    // A declared length is a claim, not data: reserve at most a little up front.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(PREALLOCATE_MAX_BYTES));
    while let Some(data) = next_data(&mut body).await? {
        if bytes.len() + data.len() > limit {
            let arrived = bytes.len() + data.len();
            drop(bytes);
            let rest = drain(&mut body).await.unwrap_or(0);
            return Err(BodyError::TooLarge {
                size: arrived.saturating_add(rest),
                limit,
            });
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// The next data frame of the body (trailers are skipped); `None` at the end.
pub(crate) async fn next_data(body: &mut Body) -> Result<Option<Bytes>, BodyError> {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match frame {
            None => return Ok(None),
            Some(Err(error)) => return Err(read_error(&error)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads and drops the rest of the body; how many bytes that was.
async fn drain(body: &mut Body) -> Result<usize, BodyError> {
    let mut seen = 0usize;
    while let Some(data) = next_data(body).await? {
        seen = seen.saturating_add(data.len());
    }
    Ok(seen)
}

/// `TimedOut` when the deadline ended the body, else `Read`.
fn read_error(error: &axum::Error) -> BodyError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(timed_out) = e.downcast_ref::<BodyTimedOut>() {
            return BodyError::TimedOut {
                after: timed_out.after,
            };
        }
        cause = e.source();
    }
    BodyError::Read
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::front::server::{ConnectionLimits, Front};
    use crate::front::testing::{
        FakeAnswer, assert_internal_error, parse_reply, serve, small_limits, xml_result,
    };

    /// A body still arriving at the deadline gets HTTP 408 with a Failure, and the connection
    /// is closed.
    #[tokio::test]
    async fn a_body_late_past_its_deadline_gets_408() {
        let front = Front::new(Arc::new(FakeAnswer), small_limits()).with_connection_limits(
            ConnectionLimits {
                body_timeout: Duration::from_millis(200),
                ..ConnectionLimits::default()
            },
        );
        let addr = serve(front).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n<methodCall>")
            .await
            .expect("send the start of the request");
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes));
        read.await
            .expect("the server closes the connection")
            .expect("read the reply");
        let reply = parse_reply(&bytes);
        assert_eq!(reply.status, 408);
        assert_internal_error(xml_result(&reply));
    }
}
