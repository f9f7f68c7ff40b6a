//! xapi's HTTP handlers for a VDI's bytes, served by every host of the pool over TCP:
//!
//! - `PUT /import_raw_vdi?session_id=…&vdi=…&format=raw|qcow2[&task_id=…]`: the request's
//!   body is written into the VDI;
//! - `GET /export_raw_vdi?session_id=…&vdi=…&format=raw|qcow2[&task_id=…]`: the answer's
//!   body is the VDI.
//!
//! `session_id` may come as a cookie instead, as xapi takes it; `vdi` is a ref or a uuid;
//! `format` is `raw` when left out. The master decides (`master::RAW_VDI_HOST`,
//! `IMPORT_RAW_VDI`, `EXPORT_RAW_VDI`, forwarded to it like any call) and has the agent of
//! the host that reaches the VDI's SR write or read it; the bytes go between this front door
//! and that agent over the data plane, with a token this host draws, a chunk at a time: the
//! client is read only as fast as the SR's host writes, and the export is sent only as fast
//! as the client reads. An import answers once the image is in the VDI.
//!
//! Refusals are xapi's: 401 without a session or with one that is not valid, then the
//! XenAPI error as a JSON array (`["VDI_IN_USE", "OpaqueRef:…", "import"]`) with 400 for a
//! bad parameter (`VALUE_NOT_SUPPORTED` for an unknown format), 404 for an unknown VDI and
//! 500 otherwise. An export that fails once its bytes have started is cut short (the
//! connection closes before the end of the chunked body), so a client never takes a partial
//! image for a whole one.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use api_spec::{ApiError, NULL_REF, Value, errors};
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use hyper::body::Frame;
use master::{Call, Origin};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::data_plane::{DataPlane, DataPlaneError, Endpoint, Incoming, Token};
use crate::front::body::next_data;
use crate::front::server::Front;
use crate::peer::Peers;

/// The most bytes of an export read from the data plane for one frame of the answer.
const CHUNK_BYTES: usize = 256 * 1024;
/// How long the rest of an upload nobody takes any more is read and dropped after the
/// answer, so that the client reads the answer before the connection closes.
const LINGER: Duration = Duration::from_secs(2);

/// What the handlers need: the calls, the data plane, the peer book, this host.
#[derive(Clone)]
struct Handlers {
    front: Front,
    plane: DataPlane,
    peers: Peers,
    /// The ref of this host: where an export is sent.
    host_ref: String,
    /// How long the other end of a transfer may take to be there: the agent of the SR's
    /// host to expect an import, or to start sending an export (its conversion included).
    wait: Duration,
}

/// The routes, for `Front::with_pool_stream_routes` (over TCP, outside the body deadline:
/// the data plane bounds a stall).
pub fn routes(
    front: Front,
    plane: DataPlane,
    peers: Peers,
    host_ref: String,
    wait: Duration,
) -> Router {
    Router::new()
        .route("/import_raw_vdi", put(import))
        .route("/export_raw_vdi", get(export))
        .with_state(Handlers {
            front,
            plane,
            peers,
            host_ref,
            wait,
        })
}

/// What a request names, checked before anything is asked of the master.
struct Params {
    session: String,
    vdi: String,
    format: String,
    task: String,
    origin: Origin,
}

impl Params {
    /// The parameters of `request`; without a session, `SESSION_INVALID` (answered 401).
    fn parse(query: &HashMap<String, String>, request: &Request) -> Result<Params, ApiError> {
        let session = query
            .get("session_id")
            .cloned()
            .or_else(|| cookie(request.headers(), "session_id"))
            .ok_or_else(|| errors::session_invalid(NULL_REF))?;
        let vdi = query.get("vdi").cloned().unwrap_or_default();
        let format = query
            .get("format")
            .cloned()
            .unwrap_or_else(|| "raw".to_owned());
        if host_api::ImageFormat::parse(&format).is_none() {
            return Err(errors::value_not_supported(
                "format",
                &format,
                "raw and qcow2 are",
            ));
        }
        let origin = Origin::Network {
            peer: request
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip().to_canonical()),
        };
        Ok(Params {
            session,
            vdi,
            format,
            task: query
                .get("task_id")
                .cloned()
                .unwrap_or_else(|| NULL_REF.to_owned()),
            origin,
        })
    }

    /// Calls `method` with the session and `rest`.
    async fn call(&self, front: &Front, method: &str, rest: &[&str]) -> Result<Value, ApiError> {
        let params = std::iter::once(self.session.as_str())
            .chain(rest.iter().copied())
            .map(Value::str)
            .collect();
        front
            .call(Call {
                method: method.to_owned(),
                params,
                origin: self.origin,
            })
            .await
    }
}

/// The value of the cookie `name`, if the request has it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

/// 401, as xapi answers a handler called without a valid session.
fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"xapi\"")],
    )
        .into_response()
}

/// The answer for a XenAPI failure: see the module header.
fn refusal(error: &ApiError) -> Response {
    let status = match error.code.as_str() {
        errors::SESSION_INVALID => return unauthorised(),
        errors::VALUE_NOT_SUPPORTED => StatusCode::BAD_REQUEST,
        errors::HANDLE_INVALID | errors::UUID_INVALID => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = serde_json::to_string(&error.description()).expect("strings encode");
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}

impl Handlers {
    /// The HTTPS listener of the host `host`, from the peer book.
    fn endpoint(&self, host: &str) -> Result<Endpoint, ApiError> {
        let member = self
            .peers
            .node_of_host(host)
            .and_then(|node| self.peers.member(node));
        member
            .map(|member| Endpoint::from(&member))
            .ok_or_else(|| errors::host_offline(host))
    }
}

fn token() -> Result<Token, ApiError> {
    Token::generate().map_err(|err| transfer_error(&err))
}

/// A data plane failure, for a client.
fn transfer_error(err: &DataPlaneError) -> ApiError {
    errors::internal_error(crate::error_chain::error_chain(err))
}

async fn import(
    State(handlers): State<Handlers>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let params = Params::parse(&query, &request);
    let body = SharedBody::new(request.into_body());
    let refused = match params {
        Ok(params) => match import_body(&handlers, &params, body.clone()).await {
            Ok(()) => return StatusCode::OK.into_response(),
            Err(error) => refusal(&error),
        },
        Err(error) => refusal(&error),
    };
    // The client may still be sending: a connection closed under it would be reset before
    // it reads the answer.
    tokio::spawn(tokio::time::timeout(LINGER, body.drain()));
    refused
}

/// Has the master import `body` into the VDI of `params`, sending it to the SR's host.
async fn import_body(
    handlers: &Handlers,
    params: &Params,
    body: SharedBody,
) -> Result<(), ApiError> {
    let host = params
        .call(
            &handlers.front,
            master::RAW_VDI_HOST,
            &[&params.vdi, "import"],
        )
        .await?;
    let host = host.as_str().unwrap_or_default().to_owned();
    let endpoint = handlers.endpoint(&host)?;
    let token = token()?;
    let hex = token.to_hex();
    let args = [&params.vdi, &params.format, &hex, &host, &params.task].map(String::as_str);
    let run = params.call(&handlers.front, master::IMPORT_RAW_VDI, &args);
    let send = async {
        let deadline = Instant::now() + handlers.wait;
        handlers
            .plane
            .wait_until_expected(&endpoint, &token, deadline)
            .await?;
        handlers.plane.send(&endpoint, &token, body).await
    };
    let (outcome, sent) = tokio::join!(run, send);
    outcome?;
    match sent {
        Ok(bytes) => {
            tracing::info!(vdi = %params.vdi, host = %host, bytes, "image imported");
            Ok(())
        }
        // The master's success says the image is in: only the answer to the sender was lost.
        Err(err) => {
            tracing::warn!(vdi = %params.vdi, error = %crate::error_chain::error_chain(&err), "import done, its transfer ended badly");
            Ok(())
        }
    }
}

async fn export(
    State(handlers): State<Handlers>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let params = match Params::parse(&query, &request) {
        Ok(params) => params,
        Err(error) => return refusal(&error),
    };
    match export_body(&handlers, params).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::new(body),
        )
            .into_response(),
        Err(error) => refusal(&error),
    }
}

/// Has the master send the VDI of `params` here; its bytes as a body once the first have
/// come (an error before that is the answer instead).
async fn export_body(handlers: &Handlers, params: Params) -> Result<ExportBody, ApiError> {
    params
        .call(
            &handlers.front,
            master::RAW_VDI_HOST,
            &[&params.vdi, "export"],
        )
        .await?;
    let token = token()?;
    let mut incoming = handlers
        .plane
        .expect(&token, Instant::now() + handlers.wait)
        .map_err(|err| transfer_error(&err))?;
    let front = handlers.front.clone();
    let to_host = handlers.host_ref.clone();
    let mut run: JoinHandle<Result<Value, ApiError>> = tokio::spawn(async move {
        let hex = token.to_hex();
        params
            .call(
                &front,
                master::EXPORT_RAW_VDI,
                &[&params.vdi, &params.format, &hex, &to_host, &params.task],
            )
            .await
    });
    let mut first = vec![0u8; CHUNK_BYTES];
    let (read, outcome) = tokio::select! {
        read = incoming.read(&mut first) => (read, None),
        outcome = &mut run => (Ok(0), Some(flatten(outcome))),
    };
    if let Some(Err(error)) = outcome {
        return Err(error);
    }
    let read = match read {
        Ok(read) => read,
        Err(err) => {
            // The master says why the bytes stopped, if it knows.
            flatten(run.await)?;
            return Err(errors::internal_error(format!(
                "the export broke off: {err}"
            )));
        }
    };
    first.truncate(read);
    Ok(ExportBody {
        incoming: Some(incoming),
        pending: Bytes::from(first),
        run: match outcome {
            Some(outcome) => Outcome::Known(outcome),
            None => Outcome::Running(run),
        },
        buffer: vec![0u8; CHUNK_BYTES],
    })
}

fn flatten(
    joined: Result<Result<Value, ApiError>, tokio::task::JoinError>,
) -> Result<Value, ApiError> {
    joined.unwrap_or_else(|_| {
        Err(errors::internal_error(
            "the export call failed unexpectedly",
        ))
    })
}

/// The master's answer to an export: still to come, or known.
enum Outcome {
    Running(JoinHandle<Result<Value, ApiError>>),
    Known(Result<Value, ApiError>),
}

/// The body of an export's answer: the bytes from the data plane, ended only once the master
/// says the export succeeded (else cut short). Polled again after its end or a failure, it
/// gives the same answer.
struct ExportBody {
    incoming: Option<Incoming>,
    /// Bytes read and not yet sent.
    pending: Bytes,
    run: Outcome,
    buffer: Vec<u8>,
}

impl HttpBody for ExportBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.pending)))));
        }
        if let Some(incoming) = this.incoming.as_mut() {
            let mut buf = ReadBuf::new(&mut this.buffer);
            match ready!(Pin::new(&mut *incoming).poll_read(cx, &mut buf)) {
                Err(err) => {
                    this.incoming = None;
                    return Poll::Ready(Some(Err(err)));
                }
                Ok(()) if !buf.filled().is_empty() => {
                    let data = Bytes::copy_from_slice(buf.filled());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // Every byte is here: the sender, and with it the master's call, learns so
                // now; the call then says whether they are the whole VDI.
                Ok(()) => {
                    let incoming = this.incoming.take().expect("matched above");
                    if let Err(err) = incoming.finish() {
                        return Poll::Ready(Some(Err(io::Error::other(err))));
                    }
                }
            }
        }
        let outcome = match &mut this.run {
            Outcome::Running(run) => {
                let outcome = flatten(ready!(Pin::new(run).poll(cx)));
                this.run = Outcome::Known(outcome.clone());
                outcome
            }
            Outcome::Known(outcome) => outcome.clone(),
        };
        match outcome {
            Ok(_) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(io::Error::other(error)))),
        }
    }
}

/// A request's body read as an `AsyncRead`, shared so that what the transfer did not take
/// can be drained afterwards.
#[derive(Clone)]
struct SharedBody {
    inner: Arc<Mutex<BodyReader>>,
}

struct BodyReader {
    body: Body,
    current: Bytes,
}

impl SharedBody {
    fn new(body: Body) -> SharedBody {
        SharedBody {
            inner: Arc::new(Mutex::new(BodyReader {
                body,
                current: Bytes::new(),
            })),
        }
    }

    /// Reads and drops what is left.
    async fn drain(self) {
        let mut rest = std::mem::replace(
            &mut self
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .body,
            Body::empty(),
        );
        while let Ok(Some(_)) = next_data(&mut rest).await {}
    }
}

impl AsyncRead for SharedBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut reader = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let reader = &mut *reader;
        while reader.current.is_empty() {
            match ready!(Pin::new(&mut reader.body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        reader.current = data;
                    }
                }
            }
        }
        let n = reader.current.len().min(buf.remaining());
        buf.put_slice(&reader.current.split_to(n));
        Poll::Ready(Ok(()))
    }
}
