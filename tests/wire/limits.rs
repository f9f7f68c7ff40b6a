//! The limits of a real `oxapi` on its requests and connections: clients that trickle their
//! headers or body are cut off, connections over the cap are refused with HTTP 503, bodies over
//! 80 MiB get their 413, and a body of many tiny values is refused without the process growing.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api_spec::Value;
use api_spec::codec::{Limits, MethodCall, jsonrpc, xmlrpc};
use oxapi_tests::client::RawReply;
use oxapi_tests::{Client, Host, HostOptions, Protocol, memory_bytes};
use serde_json::json;

/// How much the host's peak resident memory may grow while it refuses a hostile body of at most
/// 16 MiB: the body itself and the buffers that read it, not what decoding it would build.
const MEMORY_GROWTH_BOUND: u64 = 64 * 1024 * 1024;

/// A host with plain HTTP (which a raw socket can speak) and these `limits`.
fn host_with_limits(limits: serde_json::Value) -> Host {
    Host::start_with(HostOptions {
        root_password: Some(format!("pw-{}", std::process::id())),
        plain_http: true,
        config: Some(json!({ "limits": limits })),
        ..HostOptions::default()
    })
}

/// The message of the `INTERNAL_ERROR` a reply to `path` carries, in that path's protocol.
fn internal_error_of(path: &str, reply: &RawReply) -> String {
    let decoded = match path {
        "/jsonrpc" => jsonrpc::decode_response(&reply.body, &Limits::default()),
        _ => xmlrpc::decode_response(&reply.body, &Limits::default()),
    };
    let err = decoded
        .unwrap_or_else(|e| panic!("{path}: unreadable reply ({e}): {}", reply.text()))
        .expect_err("a failure");
    assert_eq!(err.code, "INTERNAL_ERROR", "{path}: {err:?}");
    err.params.concat()
}

fn http_address(host: &Host) -> String {
    host.http_url().trim_start_matches("http://").to_owned()
}

/// What a client that trickles its request saw: when the server closed the connection (counted
/// from the end of `start`), if it did before `patience` ran out, and what it answered.
struct Trickled {
    closed_after: Option<Duration>,
    answer: Vec<u8>,
}

/// Sends `start`, then `drop_of` every 100 ms, reading what comes back, until the server closes
/// the connection or `patience` runs out.
async fn trickle(
    address: String,
    start: Vec<u8>,
    drop_of: Vec<u8>,
    patience: Duration,
) -> Trickled {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        stream.write_all(&start).expect("send the start");
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while started.elapsed() < patience {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
            // Once the server has closed, a write may still be buffered, or fail: the next read
            // tells.
            let _ = stream.write_all(&drop_of);
        }
        let elapsed = started.elapsed();
        Trickled {
            closed_after: (elapsed < patience).then_some(elapsed),
            answer,
        }
    })
    .await
    .expect("the trickling client finishes")
}

/// Checks that the server closed the connection once the timeout of a second had passed, and
/// not long after.
fn assert_cut_off_after_a_second(outcome: &Trickled) {
    let closed_after = outcome
        .closed_after
        .expect("the connection is closed while the request trickles in");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(10),
        "closed after {closed_after:?}"
    );
}

/// A client that sends its headers a line every 100 ms is cut off at the header timeout.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let host = host_with_limits(json!({"header_timeout_secs": 1}));
    let outcome = trickle(
        http_address(&host),
        b"POST / HTTP/1.1\r\nHost: oxapi\r\n".to_vec(),
        b"X-Slow: a\r\n".to_vec(),
        Duration::from_secs(20),
    )
    .await;
    assert_cut_off_after_a_second(&outcome);
}

/// A client that sends its body a byte every 100 ms gets HTTP 408 at the body timeout, and is
/// cut off.
#[tokio::test]
async fn a_client_trickling_its_body_is_cut_off() {
    let host = host_with_limits(json!({"body_timeout_secs": 1}));
    let outcome = trickle(
        http_address(&host),
        b"POST / HTTP/1.1\r\nHost: oxapi\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<"
            .to_vec(),
        b" ".to_vec(),
        Duration::from_secs(20),
    )
    .await;
    assert_cut_off_after_a_second(&outcome);
    // The 408 may be lost to a reset when a byte crosses the close; what arrived is the 408.
    let answer = String::from_utf8_lossy(&outcome.answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

/// A keep-alive connection over plain HTTP that has had its answer and stays open.
fn held_connection(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"OPTIONS / HTTP/1.1\r\nHost: oxapi\r\n\r\n")
        .expect("send a request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read the answer");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    stream
}

/// With every slot held (over plain HTTP), a call over HTTPS gets HTTP 503 with INTERNAL_ERROR
/// in its protocol; once the connections close, calls are served again.
#[tokio::test]
async fn connections_over_the_cap_get_503_until_some_close() {
    let host = host_with_limits(json!({"max_connections": 4}));
    let address = http_address(&host);
    let holders = tokio::task::spawn_blocking(move || {
        (0..4)
            .map(|_| held_connection(&address))
            .collect::<Vec<_>>()
    })
    .await
    .expect("the connections are held");

    let xml = Client::new(&host, Protocol::XmlRpc);
    let login = xmlrpc::encode_call(&MethodCall {
        method: "session.login_with_password".into(),
        params: vec![Value::str("root"), Value::str(&host.password)],
    });
    let reply = xml
        .post_raw("/", "text/xml", login.clone().into_bytes())
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let err = internal_error_of("/", &reply);
    assert!(err.contains("connections"), "{err}");
    let body = br#"{"jsonrpc":"2.0","method":"session.login_with_password","params":[],"id":7}"#;
    let reply = xml
        .post_raw("/jsonrpc", "application/json", body.to_vec())
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    internal_error_of("/jsonrpc", &reply);

    drop(holders);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = xml
            .post_raw("/", "text/xml", login.clone().into_bytes())
            .await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(
            Instant::now() < deadline,
            "the slots are not freed when their connections close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A body of more than 80 MiB gets the 413 the README promises, readable, not a cut connection.
#[tokio::test]
async fn a_body_over_80_mib_gets_413() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let huge = vec![b' '; 100 * 1024 * 1024];
    let reply = client
        .try_post_raw("/jsonrpc", "application/json", huge)
        .await
        .expect("an answer, not a reset");
    assert_eq!(reply.status, 413);
    internal_error_of("/jsonrpc", &reply);
    let mut client = client;
    client.login(&host.password.clone()).await;
}

/// Bodies of 16 MiB at most holding millions of tiny values (empty arrays in JSON, empty
/// values in XML-RPC, a million keys) are refused with INTERNAL_ERROR before a session is
/// looked at, and the host's peak memory grows by less than `MEMORY_GROWTH_BOUND`.
#[tokio::test]
async fn bodies_of_many_tiny_values_are_refused_without_memory_growth() {
    let host = Host::start();
    let pid = host.pid().expect("the host runs");
    let client = Client::new(&host, Protocol::JsonRpc);
    let arrays = format!(
        r#"{{"jsonrpc":"2.0","method":"VM.get_all","params":[[{}[]]],"id":1}}"#,
        "[],".repeat(5_000_000)
    );
    let keys: Vec<String> = (0..1_000_000).map(|i| format!(r#""k{i}":0"#)).collect();
    let keys = format!(
        r#"{{"jsonrpc":"2.0","method":"VM.get_all","params":[{{{}}}],"id":1}}"#,
        keys.join(",")
    );
    let values = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>VM.get_all</methodName><params>\
         <param><value><array><data>{}</data></array></value></param></params></methodCall>",
        "<value/>".repeat(2_000_000)
    );
    let bodies = [
        ("/jsonrpc", "application/json", arrays),
        ("/jsonrpc", "application/json", keys),
        ("/", "text/xml", values),
    ];
    for (path, content_type, body) in bodies {
        assert!(
            body.len() <= 16 * 1024 * 1024,
            "{path}: {} bytes",
            body.len()
        );
        let before = memory_bytes(pid, "VmHWM").max(memory_bytes(pid, "VmRSS"));
        let reply = client.post_raw(path, content_type, body.into_bytes()).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.text());
        let err = internal_error_of(path, &reply);
        assert!(err.contains("values"), "{path}: {err}");
        let peak = memory_bytes(pid, "VmHWM");
        assert!(
            peak < before + MEMORY_GROWTH_BOUND,
            "{path}: the peak grew from {before} to {peak} bytes"
        );
    }
}
