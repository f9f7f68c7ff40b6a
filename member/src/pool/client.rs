//! HTTPS to another host of the pool: trusting its certificate on first use (a join, before
//! anything is known of the master) or pinning the fingerprint of its `member/…` entry; the
//! JSON-RPC login; JSON bodies to the pool routes; every reply read within a byte limit, so that
//! a host (or whatever answers at a join's address) cannot fill this one's memory.

use std::sync::Arc;
use std::time::Duration;

use api_spec::codec::{Limits, MethodCall, jsonrpc};
use api_spec::tls_pin;
use api_spec::{ApiError, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::peer::trust::Trust;

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
    #[error("{url} answered more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
}

/// A client of one host, at `https://{address}`.
pub struct HostClient {
    http: reqwest::Client,
    base: String,
    trust: Arc<Trust>,
    /// The longest reply body read, in bytes.
    max_reply_bytes: usize,
}

impl HostClient {
    /// A client that trusts the first certificate `address` shows.
    pub fn trust_on_first_use(
        address: &str,
        max_reply_bytes: usize,
    ) -> Result<HostClient, ClientError> {
        HostClient::new(address, Trust::on_first_use(), max_reply_bytes)
    }

    /// A client that accepts only the certificate of fingerprint `cert_sha256`.
    pub fn pinned(
        address: &str,
        cert_sha256: &str,
        max_reply_bytes: usize,
    ) -> Result<HostClient, ClientError> {
        HostClient::new(address, Trust::pinned(cert_sha256), max_reply_bytes)
    }

    fn new(address: &str, trust: Trust, max_reply_bytes: usize) -> Result<HostClient, ClientError> {
        let trust = Arc::new(trust);
        let tls = tls_pin::client_config(trust.clone());
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
            trust,
            max_reply_bytes,
        })
    }

    /// The fingerprint of the certificate the host showed, once it has shown one.
    pub fn seen_cert_sha256(&self) -> Option<String> {
        self.trust.expected()
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
        let mut reply = request.send().await.map_err(failed)?;
        let status = reply.status().as_u16();
        if status != 200 {
            return Err(ClientError::Status {
                url: url.to_owned(),
                status,
            });
        }
        // Refused as soon as it is known to be too long: by its declared length, else once that
        // many bytes have arrived. Dropping the reply closes the connection.
        let too_large = || ClientError::TooLarge {
            url: url.to_owned(),
            limit: self.max_reply_bytes,
        };
        let declared = reply.content_length().unwrap_or(0);
        if usize::try_from(declared).map_or(true, |declared| declared > self.max_reply_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = reply.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_reply_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
