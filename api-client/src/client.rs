//! `Client`: a connection pool to one host, calling XenAPI methods over XML-RPC or JSON-RPC
//! (api-spec's codecs) and POSTing bodies, with every reply read within a byte limit, so that
//! a host (or whatever answers at an address) cannot fill the caller's memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use api_spec::codec::{Limits, MethodCall, jsonrpc, xmlrpc};
use api_spec::tls_pin;
use api_spec::{ApiError, Value};
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::trust::Trust;

/// Which encoding `Client::call` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// XML-RPC, POSTed to `/`.
    XmlRpc,
    /// JSON-RPC 2.0, POSTed to `/jsonrpc`.
    JsonRpc,
}

/// An HTTP reply, its body read in full (within the client's limit).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of the header `name`, if it is present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How to build a `Client`; start with `Client::https` (or `Client::http`).
#[derive(Debug)]
pub struct ClientBuilder {
    address: String,
    /// `None` speaks plain HTTP.
    trust: Option<Trust>,
    protocol: Protocol,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    max_reply_bytes: usize,
    local_address: Option<IpAddr>,
    max_idle_per_host: Option<usize>,
    user_agent: Option<String>,
}

impl ClientBuilder {
    /// The encoding of `Client::call` (JSON-RPC unless told).
    pub fn protocol(mut self, protocol: Protocol) -> ClientBuilder {
        self.protocol = protocol;
        self
    }

    /// How long connecting may take (no limit unless told).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a whole request may take, connection and reply included (no limit unless told).
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// The longest reply body read, in bytes (unless told, the most a XenAPI reply may hold,
    /// `Limits::for_replies().max_body_bytes`).
    pub fn max_reply_bytes(mut self, bytes: usize) -> ClientBuilder {
        self.max_reply_bytes = bytes;
        self
    }

    /// Connects from the local address `source` (any, if `None`).
    pub fn local_address(mut self, source: Option<IpAddr>) -> ClientBuilder {
        self.local_address = source;
        self
    }

    /// How many idle keep-alive connections to keep (reqwest's default unless told).
    pub fn max_idle_connections(mut self, count: usize) -> ClientBuilder {
        self.max_idle_per_host = Some(count);
        self
    }

    /// The `user-agent` header sent (none unless told).
    pub fn user_agent(mut self, user_agent: &str) -> ClientBuilder {
        self.user_agent = Some(user_agent.to_owned());
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        // Pool hosts are reached directly: a proxy from the environment would only add a hop
        // that can fail.
        let mut builder = reqwest::Client::builder().no_proxy().http1_only();
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(count) = self.max_idle_per_host {
            builder = builder.pool_max_idle_per_host(count);
        }
        if let Some(user_agent) = &self.user_agent {
            builder = builder.user_agent(user_agent);
        }
        builder = builder.local_address(self.local_address);
        let trust = self.trust.map(Arc::new);
        // Over plain HTTP, a TLS configuration still has to be given (reqwest is built without a
        // crypto provider of its own); it accepts no certificate, so a redirect to HTTPS fails.
        let (check, scheme) = match &trust {
            Some(trust) => (Arc::clone(trust), "https"),
            None => (Arc::new(Trust::nothing()), "http"),
        };
        builder = builder.tls_backend_preconfigured(tls_pin::client_config(check));
        let http = builder.build().map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base: format!("{scheme}://{}", self.address),
            protocol: self.protocol,
            trust,
            max_reply_bytes: self.max_reply_bytes,
        })
    }
}

/// A client of one host. Cloning shares its connections.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    /// `https://host:port` (or `http://`), without a trailing slash.
    base: String,
    protocol: Protocol,
    /// `None` over plain HTTP.
    trust: Option<Arc<Trust>>,
    /// The longest reply body read, in bytes.
    pub(crate) max_reply_bytes: usize,
}

impl Client {
    /// A client of `address` (`host:port`) over HTTPS, accepting the certificates `trust`
    /// accepts.
    pub fn https(address: &str, trust: Trust) -> ClientBuilder {
        Client::builder(address, Some(trust))
    }

    /// A client of `address` (`host:port`) over plain HTTP.
    pub fn http(address: &str) -> ClientBuilder {
        Client::builder(address, None)
    }

    fn builder(address: &str, trust: Option<Trust>) -> ClientBuilder {
        ClientBuilder {
            address: address.to_owned(),
            trust,
            protocol: Protocol::JsonRpc,
            connect_timeout: None,
            timeout: None,
            max_reply_bytes: Limits::for_replies().max_body_bytes,
            local_address: None,
            max_idle_per_host: None,
            user_agent: None,
        }
    }

    /// The certificate check of this client's connections; `None` over plain HTTP.
    pub fn trust(&self) -> Option<&Trust> {
        self.trust.as_deref()
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Calls `method` with exactly `params`: `Ok(Err(_))` is the host's XenAPI error. A reply
    /// that decodes is taken whatever its HTTP status (the front door answers some refusals
    /// with a XenAPI error and a 4xx or 5xx status); one that does not is `Status` if the status
    /// was not 200, else `Undecodable`.
    pub async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, ClientError> {
        let call = MethodCall {
            method: method.to_owned(),
            params,
        };
        let (path, content_type, body) = match self.protocol {
            Protocol::XmlRpc => ("/", "text/xml", xmlrpc::encode_call(&call)),
            Protocol::JsonRpc => {
                let id = serde_json::json!(1);
                let body = jsonrpc::encode_call(jsonrpc::Version::V2, &id, &call);
                ("/jsonrpc", "application/json", body)
            }
        };
        let reply = self
            .post(path, content_type, body.into_bytes(), &[])
            .await?;
        let limits = Limits::for_replies();
        let decoded = match self.protocol {
            Protocol::XmlRpc => xmlrpc::decode_response(&reply.body, &limits),
            Protocol::JsonRpc => jsonrpc::decode_response(&reply.body, &limits),
        };
        decoded.map_err(|source| match reply.status {
            200 => ClientError::Undecodable {
                url: self.url(path),
                method: method.to_owned(),
                source,
            },
            status => ClientError::Status {
                url: self.url(path),
                status,
            },
        })
    }

    /// Calls `method` in `session`: the session ref goes first, then `params`.
    pub async fn call_in(
        &self,
        session: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, ClientError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::str(session));
        all.extend(params);
        self.call(method, all).await
    }

    /// POSTs `body` as JSON to `path` with `headers`; decodes the JSON of a 200 answer.
    pub async fn post_json<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<R, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|source| ClientError::EncodeJson {
            url: self.url(path),
            source,
        })?;
        let reply = self.post(path, "application/json", bytes, headers).await?;
        if reply.status != 200 {
            return Err(ClientError::Status {
                url: self.url(path),
                status: reply.status,
            });
        }
        serde_json::from_slice(&reply.body).map_err(|source| ClientError::DecodeJson {
            url: self.url(path),
            source,
        })
    }

    /// POSTs `body` to `path` as it is, with `headers`, and returns what came back, whatever
    /// its status.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let url = self.url(path);
        let failed = |source| ClientError::Request {
            url: url.clone(),
            source,
        };
        let mut request = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = request.send().await.map_err(failed)?;
        read_reply(&url, reply, self.max_reply_bytes).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The whole of `reply` (an answer from `url`), refused as soon as it is known to be longer
/// than `limit`: by its declared length, else once that many bytes have arrived. Dropping the
/// reply closes the connection.
pub(crate) async fn read_reply(
    url: &str,
    mut reply: reqwest::Response,
    limit: usize,
) -> Result<Reply, ClientError> {
    let too_large = || ClientError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    let declared = reply.content_length().unwrap_or(0);
    if usize::try_from(declared).map_or(true, |declared| declared > limit) {
        return Err(too_large());
    }
    let status = reply.status().as_u16();
    let headers = std::mem::take(reply.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(|source| ClientError::Request {
        url: url.to_owned(),
        source,
    })? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A plain-HTTP server on loopback that answers every request with `reply` (whole HTTP
    /// text), and its address.
    async fn answering(reply: String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("bound").to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        address
    }

    fn http_reply(status: &str, body: &str, length: usize) -> String {
        format!("HTTP/1.1 {status}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n{body}")
    }

    /// A reply longer than the limit is refused, by its declared length or by what arrives.
    #[tokio::test]
    async fn reply_over_the_limit_is_refused() {
        let body = "x".repeat(100);
        let client = |address: &str| {
            Client::http(address)
                .max_reply_bytes(99)
                .build()
                .expect("a client")
        };
        let declared = answering(http_reply("200 OK", &body, 100)).await;
        let got = client(&declared)
            .post("/", "text/plain", Vec::new(), &[])
            .await;
        assert!(matches!(got, Err(ClientError::TooLarge { limit: 99, .. })));
        let exact = answering(http_reply("200 OK", &body[..99], 99)).await;
        let got = client(&exact)
            .post("/", "text/plain", Vec::new(), &[])
            .await;
        assert_eq!(got.expect("within the limit").body.len(), 99);
    }

    /// A XenAPI error is an answer whatever the status; an undecodable body is `Status` when
    /// the status says why, else `Undecodable`.
    #[tokio::test]
    async fn call_decodes_answers_and_names_what_is_not_one() {
        let refusal = r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"INTERNAL_ERROR","data":["full"]}}"#;
        let client = |address: &str| Client::http(address).build().expect("a client");
        let refused = answering(http_reply("503 Busy", refusal, refusal.len())).await;
        let got = client(&refused).call("pool.get_all", vec![]).await;
        assert_eq!(
            got.expect("an answer").expect_err("a XenAPI error").code,
            "INTERNAL_ERROR"
        );
        let html = "<html></html>";
        let not_found = answering(http_reply("404 Not Found", html, html.len())).await;
        let got = client(&not_found).call("pool.get_all", vec![]).await;
        assert!(matches!(got, Err(ClientError::Status { status: 404, .. })));
        let garbage = answering(http_reply("200 OK", html, html.len())).await;
        let got = client(&garbage).call("pool.get_all", vec![]).await;
        assert!(matches!(got, Err(ClientError::Undecodable { .. })));
    }
}
