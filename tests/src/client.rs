//! The tests' XenAPI client: api-client's `Client` with the host's certificate pinned, a
//! session kept, and helpers that fail the test on what a test does not expect.

use std::net::IpAddr;
use std::sync::Arc;

pub use api_client::Protocol;
use api_client::{ClientError, Trust};
use api_spec::tls_pin;
use api_spec::{ApiError, Value};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::host::Host;

/// How many idle keep-alive connections a client keeps: the benchmark's clients share one.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// An HTTP reply as the tests look at it.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub content_type: String,
    pub allow_origin: Option<String>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Accepts exactly the certificate `cert_pem`, whatever name it is reached by (as xapi pins
/// pool members).
fn pinned(cert_pem: &[u8]) -> Trust {
    let der = CertificateDer::from_pem_slice(cert_pem)
        .expect("the host's certificate is PEM")
        .to_vec();
    Trust::certificate(der)
}

/// A TLS client configuration that trusts only the certificate `cert_pem`.
pub fn pinned_tls(cert_pem: &[u8]) -> rustls::ClientConfig {
    tls_pin::client_config(Arc::new(pinned(cert_pem)))
}

/// A client of one host. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Client {
    api: api_client::Client,
    pub protocol: Protocol,
    /// The session ref after `login`.
    pub session: Option<String>,
}

impl Client {
    /// A client with its own keep-alive connection(s) to `host`, trusting only its certificate.
    pub fn new(host: &Host, protocol: Protocol) -> Client {
        Client::pinned(host.url(), &host.cert_pem(), protocol)
    }

    /// A client of `host` whose connections come from the local address `source` (a loopback
    /// address of its own: another client, as the host sees it).
    pub fn from_source(host: &Host, protocol: Protocol, source: IpAddr) -> Client {
        Client::connecting(host.url(), &host.cert_pem(), protocol, Some(source))
    }

    /// A client of the server at `base` (`https://ip:port`), trusting only the certificate
    /// `cert_pem`.
    pub fn pinned(base: String, cert_pem: &[u8], protocol: Protocol) -> Client {
        Client::connecting(base, cert_pem, protocol, None)
    }

    fn connecting(
        base: String,
        cert_pem: &[u8],
        protocol: Protocol,
        source: Option<IpAddr>,
    ) -> Client {
        let address = base
            .strip_prefix("https://")
            .expect("the base of a host is an https URL");
        let api = api_client::Client::https(address, pinned(cert_pem))
            .protocol(protocol)
            .max_idle_connections(MAX_IDLE_CONNECTIONS)
            .local_address(source)
            .build()
            .expect("an HTTPS client");
        Client {
            api,
            protocol,
            session: None,
        }
    }

    /// POSTs `body` to `path` as it is, and returns what came back, or the transport's error.
    pub async fn try_post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<RawReply, ClientError> {
        let reply = self.api.post(path, content_type, body, &[]).await?;
        Ok(RawReply {
            status: reply.status,
            content_type: reply.header("content-type").unwrap_or_default().to_owned(),
            allow_origin: reply
                .header("access-control-allow-origin")
                .map(str::to_owned),
            body: reply.body,
        })
    }

    /// POSTs `body` to `path` as it is, and returns what came back.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> RawReply {
        self.try_post_raw(path, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("the host does not answer HTTP: {e}"))
    }

    /// Calls `method` with exactly `params` (no session added); `Err` when the host did not
    /// answer (killed, refused the connection), so the outcome is unknown.
    pub async fn try_call_raw(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, ClientError> {
        answered(method, self.api.call(method, params).await)
    }

    /// Calls `method` with exactly `params` (no session added).
    pub async fn call_raw(&self, method: &str, params: Vec<Value>) -> Result<Value, ApiError> {
        self.try_call_raw(method, params)
            .await
            .unwrap_or_else(|e| panic!("the host does not answer {method}: {e}"))
    }

    /// Calls `method` with the session first; `Err` when the host did not answer.
    pub async fn try_call(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, ClientError> {
        let session = self.session.as_deref().expect("logged in");
        answered(method, self.api.call_in(session, method, params).await)
    }

    /// Calls `method` with the session first.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ApiError> {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|e| panic!("the host does not answer {method}: {e}"))
    }

    /// Calls `method` with the session first, and fails the test on a XenAPI error.
    pub async fn ok(&self, method: &str, params: Vec<Value>) -> Value {
        self.call(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Logs in as root and keeps the session.
    pub async fn login(&mut self, password: &str) -> String {
        let session = self
            .call_raw(
                "session.login_with_password",
                vec![Value::str("root"), Value::str(password)],
            )
            .await
            .unwrap_or_else(|e| panic!("login failed: {e}"));
        let session = session.as_str().expect("a session ref").to_owned();
        self.session = Some(session.clone());
        session
    }
}

/// A client of `host` already logged in as root.
pub async fn logged_in(host: &Host, protocol: Protocol) -> Client {
    let mut client = Client::new(host, protocol);
    client.login(&host.password).await;
    client
}

/// `answer` as it is, unless the host answered something that is no XenAPI reply: a test
/// fails there, as the host is broken rather than slow or gone.
fn answered(
    method: &str,
    answer: Result<Result<Value, ApiError>, ClientError>,
) -> Result<Result<Value, ApiError>, ClientError> {
    match answer {
        Err(e @ (ClientError::Undecodable { .. } | ClientError::Status { .. })) => {
            panic!("undecodable reply to {method}: {e}")
        }
        other => other,
    }
}
