//! The TLS of every connection one member opens to another: the other host's certificate
//! pinned by the fingerprint its member record holds.

use std::sync::Arc;

use api_client::Trust;
use api_spec::tls_pin;

/// A rustls client configuration that accepts only the certificate whose SHA-256 is `pin`,
/// speaking HTTP/1.1 (the front door serves nothing else; the peer stream's upgrade is an
/// HTTP/1.1 mechanism).
pub(crate) fn pinned_client_config(pin: &str) -> rustls::ClientConfig {
    let mut config = tls_pin::client_config(Arc::new(Trust::fingerprint(pin)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
