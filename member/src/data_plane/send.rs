//! The sending end: a body read from an `AsyncRead` a chunk at a time, only as fast as the
//! connection takes it, `PUT` to the receiving host over the pinned TLS of the peer streams.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use hyper::body::Frame;
use reqwest::StatusCode;
use tokio::io::{AsyncRead, ReadBuf};

use crate::data_plane::{BYTES_HEADER, DataPlaneError, Endpoint, Inner, Token};
use crate::peer::SECRET_HEADER;
use crate::peer::trust::pinned_client_config;

/// The most bytes read from the source at once: one piece of the body.
const CHUNK_BYTES: usize = 64 * 1024;
/// How often `wait_until_expected` asks the receiver.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// The most bytes of a refusal's text kept as its reason.
const REASON_BYTES: usize = 1024;

/// Sends `body` to `to` as the transfer `token`; see `DataPlane::send`.
pub(crate) async fn send(
    plane: &Inner,
    to: &Endpoint,
    token: &Token,
    body: impl AsyncRead + Send + 'static,
) -> Result<u64, DataPlaneError> {
    let (client, secret) = client(plane, to)?;
    let stall = plane.settings.stall_timeout();
    let progress = Arc::new(Progress::default());
    let body = ReaderBody {
        reader: Mutex::new(Box::pin(body)),
        chunk: Vec::new(),
        progress: Arc::clone(&progress),
    };
    let url = format!("https://{}/data/{}", to.address, token.to_hex());
    let exchange = async {
        let response = client
            .put(url)
            .header(SECRET_HEADER, secret)
            .body(reqwest::Body::wrap(body))
            .send()
            .await?;
        let status = response.status();
        let received = response
            .headers()
            .get(BYTES_HEADER)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let reason = reason(response).await;
        Ok::<_, reqwest::Error>((status, received, reason))
    };
    let (status, received, reason) = tokio::select! {
        exchanged = exchange => exchanged.map_err(|source| {
            match progress.take_source_error() {
                Some(error) => DataPlaneError::Source(error),
                None => DataPlaneError::Connection { address: to.address.clone(), source },
            }
        })?,
        stalled = watch(&progress, stall) => return Err(stalled),
    };
    let address = to.address.clone();
    let sent = progress.bytes.load(Ordering::Relaxed);
    match status {
        StatusCode::OK => match received {
            Some(received) if received == sent => Ok(sent),
            received => Err(DataPlaneError::CountMismatch {
                sent,
                received: received.unwrap_or(0),
            }),
        },
        StatusCode::FORBIDDEN => Err(DataPlaneError::SecretRefused { address }),
        StatusCode::NOT_FOUND => Err(DataPlaneError::UnknownToken { address }),
        StatusCode::GONE => Err(DataPlaneError::TokenGone { address }),
        status => Err(DataPlaneError::ReceiverFailed {
            address,
            status: status.as_u16(),
            reason,
        }),
    }
}

/// A client to `to` with its certificate pinned, and the pool secret it sends.
fn client(plane: &Inner, to: &Endpoint) -> Result<(reqwest::Client, String), DataPlaneError> {
    let secret = (plane.pool_secret)().ok_or(DataPlaneError::NoPoolSecret)?;
    let client = reqwest::Client::builder()
        .local_address(plane.local_ip)
        .use_preconfigured_tls(pinned_client_config(&to.cert_sha256))
        .http1_only()
        .connect_timeout(plane.settings.stall_timeout())
        .build()
        .map_err(DataPlaneError::Client)?;
    Ok((client, secret))
}

/// Waits until `to` expects the transfer `token` (asking every `PROBE_INTERVAL`), at most
/// until `deadline`; see `DataPlane::wait_until_expected`.
pub(crate) async fn wait_until_expected(
    plane: &Inner,
    to: &Endpoint,
    token: &Token,
    deadline: tokio::time::Instant,
) -> Result<(), DataPlaneError> {
    let (client, secret) = client(plane, to)?;
    let url = format!("https://{}/data/{}", to.address, token.to_hex());
    let address = to.address.clone();
    loop {
        let response = client
            .head(&url)
            .header(SECRET_HEADER, &secret)
            .send()
            .await
            .map_err(|source| DataPlaneError::Connection {
                address: address.clone(),
                source,
            })?;
        match response.status() {
            StatusCode::OK => return Ok(()),
            StatusCode::NOT_FOUND if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            StatusCode::NOT_FOUND => return Err(DataPlaneError::UnknownToken { address }),
            StatusCode::FORBIDDEN => return Err(DataPlaneError::SecretRefused { address }),
            StatusCode::GONE => return Err(DataPlaneError::TokenGone { address }),
            status => {
                return Err(DataPlaneError::ReceiverFailed {
                    address,
                    status: status.as_u16(),
                    reason: String::new(),
                });
            }
        }
    }
}

/// The start of a reply's text, for a refusal's reason.
async fn reason(mut response: reqwest::Response) -> String {
    let mut text = Vec::new();
    while text.len() < REASON_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    text.truncate(REASON_BYTES);
    String::from_utf8_lossy(&text).into_owned()
}

/// Fails once `stall` passes without a byte read from the source; once the source has
/// ended, the receiver gets twice as long for its answer (the last bytes are still on their
/// way to it).
async fn watch(progress: &Progress, stall: Duration) -> DataPlaneError {
    let mut seen = progress.bytes.load(Ordering::Relaxed);
    let mut ended_grace = true;
    loop {
        tokio::time::sleep(stall).await;
        let now = progress.bytes.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
        } else if progress.has_ended.load(Ordering::Relaxed) && ended_grace {
            ended_grace = false;
        } else {
            return DataPlaneError::Stalled { after: stall };
        }
    }
}

/// How far the source has been read.
#[derive(Debug, Default)]
struct Progress {
    bytes: AtomicU64,
    has_ended: AtomicBool,
    /// The source's failure, for `DataPlaneError::Source` (hyper sees only a copy).
    source_error: Mutex<Option<io::Error>>,
}

impl Progress {
    fn take_source_error(&self) -> Option<io::Error> {
        self.source_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A request body read from an `AsyncRead` one chunk per poll: hyper polls it only when the
/// connection has room, so the source is never read further ahead than hyper's and the
/// kernel's buffers.
struct ReaderBody {
    /// In a mutex only to make the body `Sync`, as reqwest asks; reached through `get_mut`,
    /// never locked.
    reader: Mutex<Pin<Box<dyn AsyncRead + Send>>>,
    /// The buffer of the next chunk; kept across a poll that finds nothing to read yet.
    chunk: Vec<u8>,
    progress: Arc<Progress>,
}

impl HttpBody for ReaderBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.progress.has_ended.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        let reader = this
            .reader
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        this.chunk.resize(CHUNK_BYTES, 0);
        let mut buf = ReadBuf::new(&mut this.chunk);
        match reader.as_mut().poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                let copy = io::Error::new(error.kind(), "the source of the body failed");
                *this
                    .progress
                    .source_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error);
                Poll::Ready(Some(Err(copy)))
            }
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len();
                if read == 0 {
                    this.progress.has_ended.store(true, Ordering::Relaxed);
                    return Poll::Ready(None);
                }
                this.chunk.truncate(read);
                this.progress
                    .bytes
                    .fetch_add(read as u64, Ordering::Relaxed);
                let data = Bytes::from(std::mem::take(&mut this.chunk));
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.progress.has_ended.load(Ordering::Relaxed)
    }
}
