//! Which certificate a host must show: `Trust` is the `CertCheck` every client of a pool host
//! uses (xe's trust on first use and `--no-verify`, a joiner trusting the master's first
//! certificate, a fingerprint from a `member/…` entry, the tests' exact certificate), and
//! `Fingerprint` the SHA-256 it compares, in the two forms oxapi writes it.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use api_spec::tls_pin::{self, CertCheck};

/// The SHA-256 of a certificate's DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest: [u8; 32] = tls_pin::sha256(der)
            .try_into()
            .expect("invariant: a SHA-256 digest is 32 bytes");
        Fingerprint(digest)
    }

    /// Reads either form `to_hex` and `to_openssl` write, in any case; `None` for anything else.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let hex: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Fingerprint(digest))
    }

    /// Lowercase hex without separators, as `member/…` entries hold it (`cert_sha256`).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Colon-separated uppercase hex, as `openssl x509 -noout -fingerprint -sha256` prints it,
    /// so that an operator can compare it with a host's certificate file.
    pub fn to_openssl(&self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Which certificates a `Trust` accepts.
#[derive(Debug)]
enum Pin {
    /// Exactly this DER.
    Certificate(Vec<u8>),
    /// The certificate of this fingerprint; `None` (an unreadable fingerprint) accepts none.
    Fingerprint(Option<Fingerprint>),
    /// The first certificate shown, and then only that one.
    FirstUse,
    /// Any certificate (`xe --no-verify`).
    Anything,
}

/// What the handshakes so far have shown.
#[derive(Debug, Default)]
struct Seen {
    /// The first certificate accepted: under `Pin::FirstUse`, the one later ones must match.
    first: Option<Fingerprint>,
    /// The certificate of the last handshake, and whether it was accepted.
    last: Option<(Fingerprint, bool)>,
}

/// Decides which certificate a host must show, and remembers what it showed. Pool hosts have
/// self-signed certificates: neither the name nor a chain is checked, only the certificate
/// (the handshake's signatures are still verified by `tls_pin`).
#[derive(Debug)]
pub struct Trust {
    pin: Pin,
    seen: Mutex<Seen>,
}

impl Trust {
    fn with(pin: Pin) -> Trust {
        Trust {
            pin,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Accepts exactly the certificate `der`, whatever name it is reached by.
    pub fn certificate(der: Vec<u8>) -> Trust {
        Trust::with(Pin::Certificate(der))
    }

    /// Accepts the certificate whose SHA-256 is `fingerprint` (either form, any case); an
    /// unreadable fingerprint accepts no certificate.
    pub fn fingerprint(fingerprint: &str) -> Trust {
        Trust::with(Pin::Fingerprint(Fingerprint::parse(fingerprint)))
    }

    /// Accepts the first certificate shown, and then only that one.
    pub fn first_use() -> Trust {
        Trust::with(Pin::FirstUse)
    }

    /// Accepts any certificate.
    pub fn anything() -> Trust {
        Trust::with(Pin::Anything)
    }

    /// Accepts no certificate.
    pub(crate) fn nothing() -> Trust {
        Trust::with(Pin::Fingerprint(None))
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock leaves a consistent `Seen`: every write is one store.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate the last handshake showed.
    pub fn presented(&self) -> Option<Fingerprint> {
        self.seen().last.map(|(fingerprint, _)| fingerprint)
    }

    /// The certificate the last handshake showed, if it was refused: the host's certificate is
    /// not the one expected.
    pub fn refused(&self) -> Option<Fingerprint> {
        match self.seen().last {
            Some((fingerprint, false)) => Some(fingerprint),
            _ => None,
        }
    }

    /// Whether this trusts on first use and a certificate has been shown (the caller may want
    /// to remember it).
    pub fn is_first_use(&self) -> bool {
        matches!(self.pin, Pin::FirstUse) && self.seen().first.is_some()
    }
}

impl CertCheck for Trust {
    fn check(&self, der: &[u8]) -> Result<(), &'static str> {
        let presented = Fingerprint::of(der);
        let mut seen = self.seen();
        let accepted = match &self.pin {
            Pin::Certificate(pinned) => der == pinned.as_slice(),
            Pin::Fingerprint(pinned) => *pinned == Some(presented),
            Pin::FirstUse => *seen.first.get_or_insert(presented) == presented,
            Pin::Anything => true,
        };
        if accepted {
            seen.first.get_or_insert(presented);
        }
        seen.last = Some((presented, accepted));
        accepted
            .then_some(())
            .ok_or("certificate is not the expected one")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is SHA-256, written as colon-separated upper-case hex for operators and
    /// as plain lowercase hex for member entries; both forms read back.
    #[test]
    fn fingerprint_is_sha256_in_both_forms() {
        let abc = Fingerprint::of(b"abc");
        assert_eq!(
            abc.to_openssl(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
        assert_eq!(
            abc.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Fingerprint::parse(&abc.to_openssl()), Some(abc));
        assert_eq!(Fingerprint::parse(&abc.to_hex().to_uppercase()), Some(abc));
        assert_eq!(Fingerprint::parse("AA:BB"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    /// Trust on first use notes the first certificate and then holds to it; a fingerprint holds
    /// to its certificate from the start, whatever its case.
    #[test]
    fn first_use_notes_and_fingerprints_hold() {
        let first_use = Trust::first_use();
        assert!(!first_use.is_first_use());
        assert_eq!(first_use.check(b"one"), Ok(()));
        assert!(first_use.is_first_use());
        assert_eq!(first_use.presented(), Some(Fingerprint::of(b"one")));
        assert!(first_use.check(b"two").is_err());
        assert_eq!(first_use.check(b"one"), Ok(()));

        let pinned = Trust::fingerprint(&Fingerprint::of(b"one").to_hex().to_uppercase());
        assert!(pinned.check(b"two").is_err());
        assert_eq!(pinned.check(b"one"), Ok(()));
        assert!(!pinned.is_first_use());
        assert!(Trust::fingerprint("garbage").check(b"one").is_err());
    }

    /// A refused certificate is reported with what was shown; `anything` refuses none, and an
    /// exact certificate accepts only itself.
    #[test]
    fn refused_certificate_is_reported_only_when_checked() {
        let changed = Trust::fingerprint(&Fingerprint::of(b"old").to_openssl());
        assert!(changed.check(b"new").is_err());
        assert_eq!(changed.refused(), Some(Fingerprint::of(b"new")));
        let unchecked = Trust::anything();
        assert_eq!(unchecked.check(b"new"), Ok(()));
        assert_eq!(unchecked.refused(), None);
        assert!(!unchecked.is_first_use());
        let exact = Trust::certificate(b"der".to_vec());
        assert!(exact.check(b"other").is_err());
        assert_eq!(exact.check(b"der"), Ok(()));
        assert_eq!(exact.refused(), None);
    }
}
