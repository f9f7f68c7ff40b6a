//! The transfers this host expects: by token, the receiver waiting for its sender, or a token
//! that was used, expired or given up and is refused as such for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::data_plane::{DataPlaneError, Token};

/// How long after its deadline a token is still known: refused as used or expired (410)
/// rather than unknown (404), so that a sender retrying late learns what happened. Then it is
/// forgotten, so the registry holds only the tokens of the last few minutes.
const REMEMBER_AFTER_DEADLINE: Duration = Duration::from_secs(600);

/// What the route hands the receiver when the sender has connected.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub pieces: mpsc::Receiver<Piece>,
    /// The receiver's answer, for the sender.
    pub verdict: oneshot::Sender<Verdict>,
}

/// One step of an incoming body.
#[derive(Debug)]
pub(crate) enum Piece {
    Data(Bytes),
    /// The body is complete. A channel that closes without it was cut short.
    End,
    /// The body cannot be complete.
    Broken(DataPlaneError),
}

/// The receiver's answer to the sender.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every byte was read and used.
    Consumed {
        bytes: u64,
    },
    Failed {
        reason: String,
    },
}

/// Why a sender's token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Never expected here, or forgotten.
    Unknown,
    /// Used, expired or given up by its receiver.
    Gone,
}

#[derive(Debug)]
enum Entry {
    Waiting {
        deadline: Instant,
        arrival: oneshot::Sender<Delivery>,
    },
    Gone {
        deadline: Instant,
    },
}

impl Entry {
    fn deadline(&self) -> Instant {
        match self {
            Entry::Waiting { deadline, .. } | Entry::Gone { deadline } => *deadline,
        }
    }
}

/// The expected transfers. Time is an input: every method takes `now`.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<Token, Entry>>,
}

impl Registry {
    /// Expects a sender with `token` until `deadline`; the receiver gets its delivery.
    pub fn expect(
        &self,
        token: &Token,
        deadline: Instant,
        now: Instant,
    ) -> Result<oneshot::Receiver<Delivery>, DataPlaneError> {
        let mut entries = self.entries();
        entries.retain(|_, entry| now < entry.deadline() + REMEMBER_AFTER_DEADLINE);
        if entries.contains_key(token) {
            return Err(DataPlaneError::TokenInUse);
        }
        let (arrival, delivery) = oneshot::channel();
        entries.insert(token.clone(), Entry::Waiting { deadline, arrival });
        Ok(delivery)
    }

    /// Takes the expectation of `token` for a sender that has just connected: from now on the
    /// token is used.
    pub fn claim(&self, token: &Token, now: Instant) -> Result<oneshot::Sender<Delivery>, Refusal> {
        let mut entries = self.entries();
        let entry = entries.get_mut(token).ok_or(Refusal::Unknown)?;
        let deadline = entry.deadline();
        match std::mem::replace(entry, Entry::Gone { deadline }) {
            Entry::Waiting { arrival, .. } if now < deadline && !arrival.is_closed() => Ok(arrival),
            Entry::Waiting { .. } | Entry::Gone { .. } => Err(Refusal::Gone),
        }
    }

    /// Whether a sender with `token` would be taken now, without taking it.
    pub fn check(&self, token: &Token, now: Instant) -> Result<(), Refusal> {
        match self.entries().get(token) {
            None => Err(Refusal::Unknown),
            Some(Entry::Waiting { deadline, arrival })
                if now < *deadline && !arrival.is_closed() =>
            {
                Ok(())
            }
            Some(_) => Err(Refusal::Gone),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Entry>> {
        self.entries
            .lock()
            .expect("no panics under the registry lock")
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> Token {
        Token::parse(&format!("{n:02x}").repeat(16)).expect("a token")
    }

    /// A token is claimed once: the second claim finds it gone, and an unexpected token is
    /// unknown.
    #[test]
    fn a_token_is_claimed_once() {
        let registry = Registry::default();
        let now = Instant::now();
        let _delivery = registry
            .expect(&token(1), now + Duration::from_secs(5), now)
            .expect("expected");
        assert!(registry.claim(&token(1), now).is_ok());
        assert_eq!(registry.claim(&token(1), now).err(), Some(Refusal::Gone));
        assert_eq!(registry.claim(&token(2), now).err(), Some(Refusal::Unknown));
    }

    /// A token claimed at or after its deadline is gone, whether or not its receiver waits.
    #[test]
    fn a_token_past_its_deadline_is_gone() {
        let registry = Registry::default();
        let now = Instant::now();
        let _delivery = registry.expect(&token(1), now, now).expect("expected");
        assert_eq!(registry.claim(&token(1), now).err(), Some(Refusal::Gone));
    }

    /// A token whose receiver let go of its end of the hand-over is gone.
    #[test]
    fn a_token_given_up_is_gone() {
        let registry = Registry::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        drop(registry.expect(&token(1), later, now).expect("expected"));
        assert_eq!(registry.claim(&token(1), now).err(), Some(Refusal::Gone));
    }

    /// A token is expected once, even after it was used; tokens are forgotten a while after
    /// their deadline, when the next expectation is registered.
    #[test]
    fn tokens_are_expected_once_and_forgotten_after_a_while() {
        let registry = Registry::default();
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let _delivery = registry.expect(&token(1), deadline, now).expect("expected");
        assert!(matches!(
            registry.expect(&token(1), deadline, now),
            Err(DataPlaneError::TokenInUse)
        ));
        assert!(registry.claim(&token(1), now).is_ok());
        assert!(registry.expect(&token(1), deadline, now).is_err());

        let much_later = deadline + REMEMBER_AFTER_DEADLINE;
        let _other = registry
            .expect(&token(2), much_later + Duration::from_secs(5), much_later)
            .expect("expected");
        assert_eq!(registry.len(), 1);
        assert_eq!(
            registry.claim(&token(1), much_later).err(),
            Some(Refusal::Unknown)
        );
    }
}
