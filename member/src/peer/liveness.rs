//! How each end of a peer stream shows that it is alive and notices that the other is not: a
//! ping on a stream that has carried nothing for the ping interval, and a read timeout after
//! which a silent stream is dead. TCP alone notices a vanished peer only when its retransmissions
//! give up, minutes later; until then a cut-off stream looks up and takes frames into a void.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::peer::frame::{self, Frame, FrameError};

/// The longest one frame (a snapshot may be hundreds of megabytes) may take to write and flush
/// before the stream is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes and flushes one frame, within `WRITE_TIMEOUT`.
pub(super) async fn send<W: AsyncWrite + Unpin>(
    stream: &mut W,
    frame: &Frame,
) -> Result<(), FrameError> {
    let writing = async {
        frame::write(stream, frame).await?;
        stream.flush().await?;
        Ok(())
    };
    tokio::time::timeout(WRITE_TIMEOUT, writing)
        .await
        .unwrap_or_else(|_| Err(FrameError::Io(io::ErrorKind::TimedOut.into())))
}

/// Writes a ping at once and then every `interval`, until a write fails: what the accepting
/// end of a stream writes.
pub(super) async fn ping_every<W: AsyncWrite + Unpin>(
    writer: &mut W,
    interval: Duration,
) -> FrameError {
    let mut pings = tokio::time::interval(interval);
    loop {
        pings.tick().await;
        if let Err(error) = send(writer, &Frame::Ping).await {
            return error;
        }
    }
}

/// Reads frames and drops them until the stream fails, ends or falls silent for `read_timeout`:
/// the dialing end hears only pings, which say no more than that the other end is alive.
pub(super) async fn hear<R: AsyncRead + Unpin>(reader: R, read_timeout: Duration) -> FrameError {
    let mut reader = Silence::new(reader, read_timeout);
    loop {
        match frame::read(&mut reader).await {
            Ok(Some(_)) => {}
            Ok(None) => return FrameError::Io(io::ErrorKind::UnexpectedEof.into()),
            Err(error) => return error,
        }
    }
}

/// A reader that fails with `TimedOut` once nothing has arrived for its limit: a peer that
/// sends nothing, not even a ping, is gone, however long its TCP connection stays open.
pub(super) struct Silence<R> {
    reader: R,
    limit: Duration,
    /// Always `limit` after the last read that returned.
    deadline: Pin<Box<Sleep>>,
}

impl<R> Silence<R> {
    pub(super) fn new(reader: R, limit: Duration) -> Silence<R> {
        Silence {
            reader,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Silence<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.reader).poll_read(cx, buf) {
            Poll::Ready(outcome) => {
                let limit = this.limit;
                this.deadline.as_mut().reset(Instant::now() + limit);
                Poll::Ready(outcome)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing heard from the peer within the read timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(2);

    /// A reader fed more often than its limit goes on, however long in all; left silent for
    /// the limit, it fails with `TimedOut`.
    #[tokio::test(start_paused = true)]
    async fn silence_longer_than_the_limit_fails_the_read() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut reader = Silence::new(reader, LIMIT);
        let mut byte = [0u8; 1];
        for _ in 0..5 {
            tokio::time::sleep(LIMIT / 2).await;
            writer.write_all(b"x").await.expect("write");
            reader.read_exact(&mut byte).await.expect("a byte in time");
        }
        let started = Instant::now();
        let error = reader.read_exact(&mut byte).await.expect_err("silence");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT);
    }

    /// Pings keep the reading end of a stream listening; once they stop, it hears silence
    /// after the read timeout.
    #[tokio::test(start_paused = true)]
    async fn pings_keep_a_stream_alive_until_they_stop() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let pinging = tokio::spawn(async move {
            let _ = tokio::time::timeout(LIMIT * 5, ping_every(&mut writer, LIMIT / 4)).await;
            // Kept open: the stream falls silent, it does not end.
            writer
        });
        let hearing = tokio::spawn(hear(reader, LIMIT));
        let writer = pinging.await.expect("no panic");
        let stopped = Instant::now();
        assert!(!hearing.is_finished(), "pings arrived: the stream is alive");
        let error = hearing.await.expect("no panic");
        assert!(
            matches!(&error, FrameError::Io(io) if io.kind() == io::ErrorKind::TimedOut),
            "{error:?}"
        );
        assert!(stopped.elapsed() <= LIMIT, "{:?}", stopped.elapsed());
        drop(writer);
    }
}
