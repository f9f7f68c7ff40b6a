//! Which certificate another host of the pool must show, by the lowercase hex SHA-256 that
//! `member/…` records hold (`cert_sha256`): the one recorded, or, for a join before anything
//! is known of the master, the first one seen, noted.

use std::sync::{Arc, Mutex};

use api_spec::tls_pin::{self, CertCheck};

use crate::peer::cert_sha256;

#[derive(Debug)]
pub(crate) enum Trust {
    /// Accepts the first certificate and notes its fingerprint; later ones must match it.
    OnFirstUse(Mutex<Option<String>>),
    Pinned(String),
}

impl Trust {
    pub(crate) fn on_first_use() -> Trust {
        Trust::OnFirstUse(Mutex::new(None))
    }

    pub(crate) fn pinned(cert_sha256: &str) -> Trust {
        Trust::Pinned(cert_sha256.to_ascii_lowercase())
    }

    /// The fingerprint a host must show now: the pinned one, or the first one seen.
    pub(crate) fn expected(&self) -> Option<String> {
        match self {
            Trust::Pinned(fingerprint) => Some(fingerprint.clone()),
            Trust::OnFirstUse(noted) => noted
                .lock()
                .expect("no panic while holding the noted fingerprint")
                .clone(),
        }
    }
}

impl CertCheck for Trust {
    fn check(&self, der: &[u8]) -> Result<(), &'static str> {
        let seen = cert_sha256(der);
        let expected = match self {
            Trust::Pinned(fingerprint) => fingerprint.clone(),
            Trust::OnFirstUse(noted) => noted
                .lock()
                .expect("no panic while holding the noted fingerprint")
                .get_or_insert_with(|| seen.clone())
                .clone(),
        };
        (seen == expected)
            .then_some(())
            .ok_or("certificate is not the expected one")
    }
}

/// A rustls client configuration that accepts only the certificate whose SHA-256 is `pin`,
/// speaking HTTP/1.1 (the front door serves nothing else; the peer stream's upgrade is an
/// HTTP/1.1 mechanism): the TLS of every connection one member opens to another.
pub(crate) fn pinned_client_config(pin: &str) -> rustls::ClientConfig {
    let mut config = tls_pin::client_config(Arc::new(Trust::pinned(pin)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trust on first use notes the first certificate and then holds to it; a pin holds to its
    /// fingerprint from the start, whatever its case.
    #[test]
    fn first_use_notes_and_pins_hold() {
        let first_use = Trust::on_first_use();
        assert_eq!(first_use.expected(), None);
        assert_eq!(first_use.check(b"one"), Ok(()));
        assert_eq!(first_use.expected(), Some(cert_sha256(b"one")));
        assert!(first_use.check(b"two").is_err());
        assert_eq!(first_use.check(b"one"), Ok(()));

        let pinned = Trust::pinned(&cert_sha256(b"one").to_ascii_uppercase());
        assert!(pinned.check(b"two").is_err());
        assert_eq!(pinned.check(b"one"), Ok(()));
    }
}
