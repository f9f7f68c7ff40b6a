//! A XenAPI client for tests and the benchmark: XML-RPC or JSON-RPC over keep-alive HTTPS, with
//! the host's certificate pinned.

use std::net::IpAddr;
use std::sync::Arc;

use api_spec::codec::{Limits, MethodCall, jsonrpc, xmlrpc};
use api_spec::tls_pin::{self, CertCheck};
use api_spec::{ApiError, Value};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::host::Host;

/// Accepts exactly one certificate, whatever name it is reached by (as xapi pins pool members).
#[derive(Debug)]
struct PinnedCert(Vec<u8>);

impl CertCheck for PinnedCert {
    fn check(&self, der: &[u8]) -> Result<(), &'static str> {
        (der == self.0.as_slice())
            .then_some(())
            .ok_or("certificate is not the pinned one")
    }
}

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

/// A TLS client configuration that trusts only the certificate `cert_pem`.
pub fn pinned_tls(cert_pem: &[u8]) -> rustls::ClientConfig {
    let der = CertificateDer::from_pem_slice(cert_pem)
        .expect("the host's certificate is PEM")
        .to_vec();
    tls_pin::client_config(Arc::new(PinnedCert(der)))
}

/// Which protocol `Client::call` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    XmlRpc,
    JsonRpc,
}

/// A client of one host. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
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
        let tls = pinned_tls(cert_pem);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .pool_max_idle_per_host(64)
            .local_address(source)
            .build()
            .expect("an HTTPS client");
        Client {
            http,
            base,
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
    ) -> Result<RawReply, reqwest::Error> {
        let reply = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = reply.status().as_u16();
        let header = |name: &str| {
            reply
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let allow_origin = header("access-control-allow-origin");
        let body = reply.bytes().await?.to_vec();
        Ok(RawReply {
            status,
            content_type,
            allow_origin,
            body,
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
    ) -> Result<Result<Value, ApiError>, reqwest::Error> {
        let call = MethodCall {
            method: method.to_owned(),
            params,
        };
        let limits = Limits::for_replies();
        let reply = match self.protocol {
            Protocol::XmlRpc => {
                let body = xmlrpc::encode_call(&call).into_bytes();
                let reply = self.try_post_raw("/", "text/xml", body).await?;
                xmlrpc::decode_response(&reply.body, &limits)
                    .map_err(|e| format!("{e}: {}", reply.text()))
            }
            Protocol::JsonRpc => {
                let id = serde_json::json!(1);
                let body = jsonrpc::encode_call(jsonrpc::Version::V2, &id, &call).into_bytes();
                let reply = self
                    .try_post_raw("/jsonrpc", "application/json", body)
                    .await?;
                jsonrpc::decode_response(&reply.body, &limits)
                    .map_err(|e| format!("{e}: {}", reply.text()))
            }
        };
        Ok(reply.unwrap_or_else(|e| panic!("undecodable reply to {method}: {e}")))
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
    ) -> Result<Result<Value, ApiError>, reqwest::Error> {
        let session = self.session.clone().expect("logged in");
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(session));
        all.extend(params);
        self.try_call_raw(method, all).await
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
