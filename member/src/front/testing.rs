//! Test doubles for the front door: a fake `Answer`, and a bare HTTP/1.1 client that shows the
//! status, headers and body exactly as they went over the wire.

use std::net::SocketAddr;
use std::sync::Arc;

use api_spec::codec::{Limits, jsonrpc, xmlrpc};
use api_spec::{ApiError, Value};
use master::Call;
use master::db::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::front::Answer;
use crate::front::server::{Front, Transport, router};

/// Answers by method name: `system.listMethods` lists two names, `echo` returns its params,
/// `origin` describes where the call came from, `panic` panics, anything else is unknown.
pub struct FakeAnswer;

impl Answer for FakeAnswer {
    fn answer(&self, call: Call) -> BoxFuture<'static, Result<Value, ApiError>> {
        Box::pin(async move {
            match call.method.as_str() {
                "system.listMethods" => Ok(Value::Array(vec![
                    Value::str("VM.get_all_records"),
                    Value::str("VM.start"),
                ])),
                "echo" => Ok(Value::Array(call.params)),
                "origin" => Ok(Value::str(format!("{:?}", call.origin))),
                "panic" => panic!("the fake handler panics on purpose"),
                other => Err(api_spec::errors::message_method_unknown(other)),
            }
        })
    }
}

/// Limits small enough to cross in a test.
pub fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 4096,
        max_depth: 8,
        max_string_bytes: 1024,
        max_values: 256,
    }
}

pub fn fake_front() -> Front {
    Front::new(Arc::new(FakeAnswer), small_limits())
}

/// Serves the fake front door over plain TCP on a free loopback port.
pub async fn serve_fake() -> SocketAddr {
    serve(fake_front()).await
}

/// Serves `front` over plain TCP on a free loopback port.
pub async fn serve(front: Front) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("bound address");
    let service = router(front, Transport::Tcp).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    addr
}

/// A reply as it went over the wire.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 request that closes the connection after the reply.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `body` as chunked transfer encoding, in chunks of `chunk` bytes.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in body.chunks(chunk) {
        bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

/// POSTs `body` to `path` over TCP.
pub async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> RawReply {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    exchange(stream, &request("POST", path, &[], body)).await
}

/// Writes a raw request and reads the reply until the server closes the connection.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, raw: &[u8]) -> RawReply {
    // The server may answer (and stop reading) before the whole body is written.
    let _ = stream.write_all(raw).await;
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes).await;
    parse_reply(&bytes)
}

/// Parses a complete HTTP/1.1 reply, chunked or not.
pub fn parse_reply(bytes: &[u8]) -> RawReply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut reply = RawReply {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &bytes[split + 4..];
    reply.body = if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    reply
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// An XML-RPC `methodCall` body.
pub fn xml_call(method: &str, params: Vec<Value>) -> Vec<u8> {
    xmlrpc::encode_call(&api_spec::codec::MethodCall {
        method: method.to_owned(),
        params,
    })
    .into_bytes()
}

/// The result in an XML-RPC reply (with or without the envelope).
pub fn xml_result(reply: &RawReply) -> Result<Value, ApiError> {
    xmlrpc::decode_response(&reply.body, &Limits::default()).expect("a readable XML reply")
}

/// The result in a JSON-RPC reply, either version.
pub fn json_result(reply: &RawReply) -> Result<Value, ApiError> {
    jsonrpc::decode_response(&reply.body, &Limits::default()).expect("a readable JSON reply")
}

/// The reply body as JSON.
pub fn json_body(reply: &RawReply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).expect("a JSON body")
}

/// Checks that a result is `INTERNAL_ERROR [message]`.
pub fn assert_internal_error(result: Result<Value, ApiError>) {
    let err = result.expect_err("an error reply");
    assert_eq!(err.code, "INTERNAL_ERROR");
    assert_eq!(err.params.len(), 1, "{err:?}");
}
