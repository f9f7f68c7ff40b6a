//! HTTPS to another host of the pool: trusting its certificate on first use (a join, before
//! anything is known of the master) or pinning the fingerprint of its `member/…` entry; the
//! JSON-RPC login; JSON bodies to the pool routes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_spec::codec::{Limits, MethodCall, jsonrpc};
use api_spec::{ApiError, Value};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::peer::cert_sha256;

/// The header that carries the pool secret on the pool routes.
pub const POOL_SECRET_HEADER: &str = "x-oxapi-pool-secret";
/// How long one request to another host may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting to another host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to another host failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the https client")]
    Build(#[source] reqwest::Error),
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered status {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered something undecodable: {reason}")]
    Decode { url: String, reason: String },
}

/// The certificate a host must show: any (noted, trust on first use) or one fingerprint.
#[derive(Debug)]
enum Trust {
    /// Accepts the first certificate and notes its fingerprint; later ones must match it.
    OnFirstUse(Mutex<Option<String>>),
    Pinned(String),
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
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
        let seen = cert_sha256(end_entity.as_ref());
        let expected = match &self.trust {
            Trust::Pinned(fingerprint) => fingerprint.clone(),
            Trust::OnFirstUse(noted) => noted
                .lock()
                .expect("no panic while holding the noted fingerprint")
                .get_or_insert_with(|| seen.clone())
                .clone(),
        };
        if seen == expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate is not the expected one".into(),
            ))
        }
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

/// A client of one host, at `https://{address}`.
pub struct HostClient {
    http: reqwest::Client,
    base: String,
    verifier: Arc<Verifier>,
}

impl HostClient {
    /// A client that trusts the first certificate `address` shows.
    pub fn trust_on_first_use(address: &str) -> Result<HostClient, ClientError> {
        HostClient::new(address, Trust::OnFirstUse(Mutex::new(None)))
    }

    /// A client that accepts only the certificate of fingerprint `cert_sha256`.
    pub fn pinned(address: &str, cert_sha256: &str) -> Result<HostClient, ClientError> {
        HostClient::new(address, Trust::Pinned(cert_sha256.to_ascii_lowercase()))
    }

    fn new(address: &str, trust: Trust) -> Result<HostClient, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(Verifier {
            trust,
            provider: provider.clone(),
        });
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(HostClient {
            http,
            base: format!("https://{address}"),
            verifier,
        })
    }

    /// The fingerprint of the certificate the host showed, once it has shown one.
    pub fn seen_cert_sha256(&self) -> Option<String> {
        match &self.verifier.trust {
            Trust::Pinned(fingerprint) => Some(fingerprint.clone()),
            Trust::OnFirstUse(noted) => noted
                .lock()
                .expect("no panic while holding the noted fingerprint")
                .clone(),
        }
    }

    /// Calls a XenAPI method over JSON-RPC: `Ok(Err(_))` is the host's XenAPI error.
    pub async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, ClientError> {
        let call = MethodCall {
            method: method.to_owned(),
            params,
        };
        let body = jsonrpc::encode_call(jsonrpc::Version::V2, &serde_json::json!(1), &call);
        let url = format!("{}/jsonrpc", self.base);
        let reply = self
            .send(&url, "application/json", body.into_bytes(), None)
            .await?;
        jsonrpc::decode_response(&reply, &Limits::default()).map_err(|e| ClientError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    /// POSTs `body` as JSON to `path`, with the pool secret when given; decodes the JSON
    /// answer.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        pool_secret: Option<&str>,
    ) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base);
        let bytes = serde_json::to_vec(body).expect("pool messages are plain data");
        let reply = self
            .send(&url, "application/json", bytes, pool_secret)
            .await?;
        serde_json::from_slice(&reply).map_err(|e| ClientError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    async fn send(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        pool_secret: Option<&str>,
    ) -> Result<Vec<u8>, ClientError> {
        let failed = |source| ClientError::Request {
            url: url.to_owned(),
            source,
        };
        let mut request = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body);
        if let Some(secret) = pool_secret {
            request = request.header(POOL_SECRET_HEADER, secret);
        }
        let reply = request.send().await.map_err(failed)?;
        let status = reply.status().as_u16();
        if status != 200 {
            return Err(ClientError::Status {
                url: url.to_owned(),
                status,
            });
        }
        Ok(reply.bytes().await.map_err(failed)?.to_vec())
    }
}
