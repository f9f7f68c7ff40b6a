//! Client TLS for hosts with self-signed certificates: a server is accepted by the certificate
//! it shows, as a `CertCheck` decides (one pinned fingerprint, trust on first use, one exact
//! certificate), never by its name or a chain. Pool members dialing each other, `xe` and the
//! tests all reach hosts this way; the handshake's signatures are still verified, with the
//! aws-lc-rs provider. Behind the `tls-pin` feature, so that the rest of the crate stays free of
//! TLS.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Decides, from the DER of the certificate a server shows, whether to talk to it.
pub trait CertCheck: fmt::Debug + Send + Sync + 'static {
    /// `Ok` to go on with the server that shows `der`; else why not, in a few words.
    fn check(&self, der: &[u8]) -> Result<(), &'static str>;
}

/// A rustls client configuration that accepts a server when `check` does.
pub fn client_config(check: Arc<dyn CertCheck>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("invariant: the aws-lc-rs provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { check, provider }))
        .with_no_client_auth()
}

/// The SHA-256 of `der` (a certificate's fingerprint, before it is written out).
pub fn sha256(der: &[u8]) -> Vec<u8> {
    // aws-lc-rs is reached through rustls's provider: the hash of a SHA-256 cipher suite.
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("invariant: TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite");
    suite.common.hash_provider.hash(der).as_ref().to_vec()
}

#[derive(Debug)]
struct Verifier {
    check: Arc<dyn CertCheck>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check
            .check(end_entity.as_ref())
            .map(|()| ServerCertVerified::assertion())
            .map_err(|why| rustls::Error::General(why.into()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Only(&'static [u8]);

    impl CertCheck for Only {
        fn check(&self, der: &[u8]) -> Result<(), &'static str> {
            (der == self.0).then_some(()).ok_or("not that one")
        }
    }

    fn verify(
        verifier: &Verifier,
        der: &'static [u8],
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("host.example").expect("a DNS name");
        verifier.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
    }

    /// The verifier accepts what the check accepts and refuses the rest with the check's words.
    #[test]
    fn verifier_follows_the_check() {
        let verifier = Verifier {
            check: Arc::new(Only(b"pinned")),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        };
        assert!(verify(&verifier, b"pinned").is_ok());
        let refused = verify(&verifier, b"other").expect_err("refused");
        assert_eq!(refused, rustls::Error::General("not that one".into()));
    }

    /// `sha256` is SHA-256 (the FIPS 180-2 vector for "abc").
    #[test]
    fn sha256_of_abc_is_the_standard_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
