//! HTTP/1.1 only: XenAPI clients speak nothing else, and hyper bounds the time a client takes to
//! send its request headers (`limits.header_timeout_secs`) in HTTP/1 only. TLS offers
//! `http/1.1` alone (ALPN, `tls.rs`), and `Http1Only` closes a connection that opens with the
//! HTTP/2 preface anyway (which hyper would otherwise serve as HTTP/2, headers unbounded). HTTP
//! upgrades (the peer streams) are HTTP/1.1 and stay served.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How every HTTP/2 connection opens (RFC 9113, 3.4); no HTTP/1 method is `PRI`.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// An acceptor that wraps `A`'s streams in `NoHttp2`.
#[derive(Debug, Clone)]
pub struct Http1Only<A>(pub A);

impl<I, S, A> Accept<I, S> for Http1Only<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: 'static,
    A::Service: 'static,
{
    type Stream = NoHttp2<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let stream = NoHttp2 {
                inner: stream,
                preface_matched: Some(0),
            };
            Ok((stream, service))
        })
    }
}

/// A stream that fails its reads once its first bytes are the HTTP/2 preface.
pub struct NoHttp2<I> {
    inner: I,
    /// How many bytes of the preface the stream has opened with so far; `None` once it opened
    /// with something else.
    preface_matched: Option<usize>,
}

impl<I: AsyncRead + Unpin> AsyncRead for NoHttp2<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(matched)) = (&polled, self.preface_matched) {
            let new = &buf.filled()[before..];
            let expected = &HTTP2_PREFACE[matched..];
            let n = new.len().min(expected.len());
            self.preface_matched = (new[..n] == expected[..n]).then_some(matched + n);
            if self.preface_matched == Some(HTTP2_PREFACE.len()) {
                tracing::debug!("an HTTP/2 connection refused: HTTP/1.1 only");
                // A read that fails hands over no bytes.
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "HTTP/2 is not served: HTTP/1.1 only",
                )));
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for NoHttp2<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What reading a stream that opens with `sent`, written in pieces of `piece` bytes, gives.
    async fn read_all(sent: &'static [u8], piece: usize) -> io::Result<Vec<u8>> {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for chunk in sent.chunks(piece) {
                client.write_all(chunk).await.expect("written");
                tokio::task::yield_now().await;
            }
        });
        let mut stream = NoHttp2 {
            inner: server,
            preface_matched: Some(0),
        };
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.map(|_| got)
    }

    /// The HTTP/2 preface fails the read, whole or a byte at a time; an HTTP/1.1 request, even
    /// one that starts as the preface does, reads through.
    #[tokio::test]
    async fn the_http2_preface_fails_and_http1_reads_through() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        for piece in [1, 3, preface.len()] {
            let read = read_all(preface, piece).await;
            assert_eq!(
                read.expect_err("refused").kind(),
                io::ErrorKind::InvalidData
            );
        }
        let request = b"POST / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(read_all(request, 1).await.expect("read"), request);
        let lookalike = b"PRIVATE / HTTP/1.1\r\n\r\n";
        assert_eq!(read_all(lookalike, 2).await.expect("read"), lookalike);
    }
}
