//! The cap on the front door's open connections: an acceptor that gives each TCP connection a
//! slot before anything else happens on it (the TLS handshake included), and serves a connection
//! that finds none HTTP 503, then closes it.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use api_spec::codec::jsonrpc::Version;
use axum::http::{HeaderValue, Request, StatusCode, Version as HttpVersion, header};
use axum::response::Response;
use axum_server::accept::Accept;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::either::Either;
use tower_service::Service;

use crate::front::{jsonrpc, xmlrpc};

/// The slots of the TCP listeners, shared by all of them (each connection is a file
/// descriptor, whichever listener took it); an acceptor for axum-server.
#[derive(Clone)]
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    max_connections: usize,
    /// How long a refused connection may stay open if it does not send a request at once.
    refused_lifetime: Duration,
    /// Set when a connection found no slot, cleared when one found a slot again: the cap is
    /// logged when it is reached and when it is left, not once per connection.
    is_full: Arc<AtomicBool>,
}

impl ConnectionCap {
    pub fn new(max_connections: usize, refused_lifetime: Duration) -> ConnectionCap {
        ConnectionCap {
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            refused_lifetime,
            is_full: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<I, S> Accept<I, S> for ConnectionCap {
    type Stream = CappedStream<I>;
    type Service = Admission<S>;
    type Future = Ready<io::Result<(CappedStream<I>, Admission<S>)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => {
                if self.is_full.swap(false, Ordering::Relaxed) {
                    tracing::info!("open connections are below the cap again");
                }
                let stream = CappedStream {
                    inner: stream,
                    _slot: Some(slot),
                    expiry: None,
                };
                (stream, Admission::Admitted(service))
            }
            Err(_) => {
                if !self.is_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_connections = self.max_connections,
                        "connection cap reached: new connections get HTTP 503"
                    );
                }
                let stream = CappedStream {
                    inner: stream,
                    _slot: None,
                    expiry: Some(Box::pin(tokio::time::sleep(self.refused_lifetime))),
                };
                let refused = Admission::Refused {
                    max_connections: self.max_connections,
                };
                (stream, refused)
            }
        };
        ready(Ok(accepted))
    }
}

/// A connection's stream. An admitted one holds its slot as long as it lives (an upgraded peer
/// stream included); a refused one ends when its lifetime is over, read as the end of the
/// stream, so that it cannot hold its descriptor longer whatever the client does.
pub struct CappedStream<I> {
    inner: I,
    _slot: Option<OwnedSemaphorePermit>,
    expiry: Option<Pin<Box<Sleep>>>,
}

impl<I> CappedStream<I> {
    fn has_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.expiry
            .as_mut()
            .is_some_and(|expiry| expiry.as_mut().poll(cx).is_ready())
    }
}

fn expired() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "refused connection closed at the end of its lifetime",
    )
}

impl<I: AsyncRead + Unpin> AsyncRead for CappedStream<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.has_expired(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for CappedStream<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.has_expired(cx) {
            return Poll::Ready(Err(expired()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.has_expired(cx) {
            return Poll::Ready(Err(expired()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The service of one connection: the router's, or the refusal when the connection found no
/// slot.
#[derive(Clone)]
pub enum Admission<S> {
    Admitted(S),
    Refused { max_connections: usize },
}

impl<S> Service<Request<Incoming>> for Admission<S>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            Admission::Admitted(service) => service.poll_ready(cx),
            Admission::Refused { .. } => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        match self {
            Admission::Admitted(service) => Either::Left(service.call(request)),
            Admission::Refused { max_connections } => {
                Either::Right(ready(Ok(refusal(&request, *max_connections))))
            }
        }
    }
}

/// HTTP 503 with `INTERNAL_ERROR` in the request's protocol (JSON-RPC on its paths, XML-RPC on
/// the others, as the router would answer), closing an HTTP/1 connection after it.
fn refusal(request: &Request<Incoming>, max_connections: usize) -> Response {
    tracing::debug!(path = %request.uri().path(), "request on a connection over the cap refused");
    let message =
        format!("too many open connections (the limit is {max_connections}); try again later");
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut response = match request.uri().path() {
        "/jsonrpc" | "/json" => {
            jsonrpc::failure(status, &message, Version::V1, &serde_json::Value::Null)
        }
        _ => xmlrpc::failure(status, &message),
    };
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if request.version() < HttpVersion::HTTP_2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    use super::*;
    use crate::front::server::{Transport, router};
    use crate::front::testing::{
        RawReply, assert_internal_error, exchange, fake_front, json_result, request, xml_call,
        xml_result,
    };

    /// Serves the fake front door over plain TCP behind `cap`.
    async fn serve_capped(cap: ConnectionCap) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("bound address");
        let server = axum_server::from_tcp(listener)
            .expect("a server")
            .acceptor(cap);
        let service = router(fake_front(), Transport::Tcp)
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(server.serve(service));
        addr
    }

    async fn post_to(addr: SocketAddr, path: &str, body: &[u8]) -> RawReply {
        let stream = TcpStream::connect(addr).await.expect("connect");
        exchange(stream, &request("POST", path, &[], body)).await
    }

    /// Posts on new connections until one is answered with `status`, within ten seconds: the
    /// server takes and frees slots on tasks of its own.
    async fn post_until(addr: SocketAddr, path: &str, body: &[u8], status: u16) -> RawReply {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reply = post_to(addr, path, body).await;
            if reply.status == status || tokio::time::Instant::now() > deadline {
                return reply;
            }
            tokio::task::yield_now().await;
        }
    }

    /// With every slot held, a request gets HTTP 503 and INTERNAL_ERROR in its own protocol;
    /// once the slot is free again, requests are served.
    #[tokio::test]
    async fn connections_over_the_cap_get_503_until_a_slot_is_free() {
        let addr = serve_capped(ConnectionCap::new(1, Duration::from_secs(10))).await;
        let holder = TcpStream::connect(addr).await.expect("connect");
        let echo = xml_call("echo", vec![]);
        let reply = post_until(addr, "/", &echo, 503).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("content-type"), Some("text/xml"));
        assert_eq!(reply.header("connection"), Some("close"));
        assert_internal_error(xml_result(&reply));
        let body = br#"{"jsonrpc":"2.0","method":"echo","params":[],"id":1}"#;
        let reply = post_to(addr, "/jsonrpc", body).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_internal_error(json_result(&reply));

        drop(holder);
        let reply = post_until(addr, "/", &echo, 200).await;
        assert_eq!(xml_result(&reply), Ok(api_spec::Value::Array(vec![])));
    }

    /// A refused connection that sends nothing is closed at the end of its lifetime.
    #[tokio::test]
    async fn a_silent_refused_connection_is_closed_at_its_lifetime() {
        let addr = serve_capped(ConnectionCap::new(1, Duration::from_millis(200))).await;
        let _holder = TcpStream::connect(addr).await.expect("connect");
        post_until(addr, "/", &xml_call("echo", vec![]), 503).await;
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut bytes));
        let outcome = read
            .await
            .expect("the server closes the refused connection");
        assert!(bytes.is_empty(), "{outcome:?} {bytes:?}");
    }
}
