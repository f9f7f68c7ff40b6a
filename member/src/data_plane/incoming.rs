//! `Incoming`: the receiving end of one expected transfer, read as an `AsyncRead`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};

use crate::data_plane::registry::{Delivery, Piece, Verdict};
use crate::data_plane::{DataPlaneError, Token};

/// The receiving end of one expected transfer (from `DataPlane::expect`). Reading waits for
/// the sender, then yields its bytes in order and ends (reads 0) after the last one; a read
/// fails with an `io::Error` whose inner error is a `DataPlaneError` when no sender came before
/// the deadline (`Expired`) or the sender's connection broke (`SenderLost`, `Stalled`).
///
/// The sender learns the outcome: `finish` after reading to the end tells it every byte was
/// taken; `fail`, or dropping the handle, fails its `send`. A handle dropped before its
/// sender came refuses the token from then on (the registry sees its end of the hand-over
/// closed).
#[derive(Debug)]
pub struct Incoming {
    token: Token,
    state: State,
    /// Bytes handed to the reader so far.
    bytes_read: u64,
}

#[derive(Debug)]
enum State {
    /// No sender yet; `expiry` fires at the deadline.
    Waiting {
        delivery: oneshot::Receiver<Delivery>,
        expiry: Pin<Box<Sleep>>,
    },
    Receiving {
        pieces: mpsc::Receiver<Piece>,
        verdict: oneshot::Sender<Verdict>,
        /// What is left of the last piece; never holds more than one piece.
        current: Bytes,
    },
    /// The last byte was read; the verdict is still to give.
    AtEnd { verdict: oneshot::Sender<Verdict> },
    /// Failed, or the verdict was given.
    Over,
}

impl Incoming {
    pub(crate) fn new(
        token: Token,
        delivery: oneshot::Receiver<Delivery>,
        deadline: Instant,
    ) -> Incoming {
        Incoming {
            token,
            state: State::Waiting {
                delivery,
                expiry: Box::pin(tokio::time::sleep_until(deadline)),
            },
            bytes_read: 0,
        }
    }

    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Tells the sender that every byte was taken and used; its `send` returns the count.
    /// Fails with `Unfinished` (and fails the sender) unless the reader has read the end.
    pub fn finish(mut self) -> Result<u64, DataPlaneError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::AtEnd { verdict } => {
                // A sender gone since the last byte has its answer from its own connection.
                let _ = verdict.send(Verdict::Consumed {
                    bytes: self.bytes_read,
                });
                Ok(self.bytes_read)
            }
            state => {
                self.state = state;
                self.fail("the receiver stopped before the end");
                Err(DataPlaneError::Unfinished)
            }
        }
    }

    /// Tells the sender that the bytes were not taken, and why (e.g. a restore failed); its
    /// `send` fails with `ReceiverFailed` carrying `reason`.
    pub fn fail(mut self, reason: impl Into<String>) {
        let reason = reason.into();
        match std::mem::replace(&mut self.state, State::Over) {
            State::Receiving { verdict, .. } | State::AtEnd { verdict } => {
                let _ = verdict.send(Verdict::Failed { reason });
            }
            State::Waiting { .. } | State::Over => {}
        }
    }
}

/// An `io::Error` carrying `error`.
fn broken(error: DataPlaneError) -> io::Error {
    let kind = match error {
        DataPlaneError::Expired | DataPlaneError::Stalled { .. } => io::ErrorKind::TimedOut,
        DataPlaneError::SenderLost => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

impl AsyncRead for Incoming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Waiting { delivery, expiry } => {
                    match Pin::new(delivery).poll(cx) {
                        Poll::Ready(Ok(Delivery { pieces, verdict })) => {
                            this.state = State::Receiving {
                                pieces,
                                verdict,
                                current: Bytes::new(),
                            };
                            continue;
                        }
                        // The registry drops a waiting entry's sender only when a sender
                        // came after the deadline.
                        Poll::Ready(Err(_)) => {
                            this.state = State::Over;
                            return Poll::Ready(Err(broken(DataPlaneError::Expired)));
                        }
                        Poll::Pending => {}
                    }
                    // The registry refuses a sender from now on.
                    ready!(expiry.as_mut().poll(cx));
                    this.state = State::Over;
                    return Poll::Ready(Err(broken(DataPlaneError::Expired)));
                }
                State::Receiving {
                    pieces, current, ..
                } => {
                    if !current.is_empty() {
                        let n = current.len().min(buf.remaining());
                        buf.put_slice(&current.split_to(n));
                        this.bytes_read += n as u64;
                        return Poll::Ready(Ok(()));
                    }
                    match ready!(pieces.poll_recv(cx)) {
                        Some(Piece::Data(data)) => *current = data,
                        Some(Piece::End) => {
                            this.state = match std::mem::replace(&mut this.state, State::Over) {
                                State::Receiving { verdict, .. } => State::AtEnd { verdict },
                                other => other,
                            };
                        }
                        Some(Piece::Broken(error)) => {
                            this.state = State::Over;
                            return Poll::Ready(Err(broken(error)));
                        }
                        None => {
                            this.state = State::Over;
                            return Poll::Ready(Err(broken(DataPlaneError::SenderLost)));
                        }
                    }
                }
                State::AtEnd { .. } => return Poll::Ready(Ok(())),
                State::Over => return Poll::Ready(Err(broken(DataPlaneError::Unfinished))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::data_plane::registry::{Refusal, Registry};

    /// An `Incoming` expecting a token, and the route's end of it once a sender has come:
    /// where pieces go in, and where the verdict comes out.
    fn connected() -> (Incoming, mpsc::Sender<Piece>, oneshot::Receiver<Verdict>) {
        let registry = Registry::default();
        let token = Token::generate().expect("token");
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        let delivery = registry.expect(&token, deadline, now).expect("expected");
        let incoming = Incoming::new(token.clone(), delivery, deadline);
        let (pieces, receiver_pieces) = mpsc::channel(4);
        let (receiver_verdict, verdict) = oneshot::channel();
        registry
            .claim(&token, now)
            .expect("claimed")
            .send(Delivery {
                pieces: receiver_pieces,
                verdict: receiver_verdict,
            })
            .expect("delivered");
        (incoming, pieces, verdict)
    }

    /// The pieces are read in order up to the end; finishing then tells the sender how many
    /// bytes were taken.
    #[tokio::test]
    async fn pieces_read_in_order_and_finish_reports_the_count() {
        let (mut incoming, pieces, mut verdict) = connected();
        for piece in [
            Piece::Data(Bytes::from_static(b"ab")),
            Piece::Data(Bytes::from_static(b"cde")),
            Piece::End,
        ] {
            pieces.send(piece).await.expect("room");
        }
        let mut bytes = Vec::new();
        incoming.read_to_end(&mut bytes).await.expect("reads");
        assert_eq!(bytes, b"abcde");
        assert_eq!(incoming.finish().expect("finished"), 5);
        assert!(matches!(
            verdict.try_recv(),
            Ok(Verdict::Consumed { bytes: 5 })
        ));
    }

    /// Pieces that stop without their end fail the read: the sender's connection broke.
    #[tokio::test]
    async fn pieces_that_stop_short_fail_the_read() {
        let (mut incoming, pieces, _verdict) = connected();
        pieces
            .send(Piece::Data(Bytes::from_static(b"ab")))
            .await
            .expect("room");
        drop(pieces);
        let mut bytes = Vec::new();
        let error = incoming
            .read_to_end(&mut bytes)
            .await
            .expect_err("cut short");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(bytes, b"ab");
    }

    /// Finishing before the end fails, and tells the sender the bytes were not all taken.
    #[tokio::test]
    async fn finishing_before_the_end_fails_the_sender() {
        let (mut incoming, pieces, mut verdict) = connected();
        pieces
            .send(Piece::Data(Bytes::from_static(b"ab")))
            .await
            .expect("room");
        let mut buf = [0u8; 2];
        incoming.read_exact(&mut buf).await.expect("reads");
        assert!(matches!(incoming.finish(), Err(DataPlaneError::Unfinished)));
        assert!(matches!(verdict.try_recv(), Ok(Verdict::Failed { .. })));
    }

    /// With no sender by the deadline, the read fails as expired and the token is refused.
    #[tokio::test(start_paused = true)]
    async fn no_sender_by_the_deadline_expires_the_read_and_the_token() {
        let registry = Registry::default();
        let token = Token::generate().expect("token");
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let delivery = registry.expect(&token, deadline, now).expect("expected");
        let mut incoming = Incoming::new(token.clone(), delivery, deadline);
        let error = incoming.read(&mut [0u8; 4]).await.expect_err("expired");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(Instant::now() >= deadline);
        assert_eq!(registry.claim(&token, now).err(), Some(Refusal::Gone));
    }

    /// Dropping a waiting `Incoming` refuses its token, even before its deadline.
    #[tokio::test]
    async fn dropping_a_waiting_handle_refuses_its_token() {
        let registry = Registry::default();
        let token = Token::generate().expect("token");
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        let delivery = registry.expect(&token, deadline, now).expect("expected");
        drop(Incoming::new(token.clone(), delivery, deadline));
        assert_eq!(registry.claim(&token, now).err(), Some(Refusal::Gone));
    }
}
