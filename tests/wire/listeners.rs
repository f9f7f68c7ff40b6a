//! The listeners and first-start state of a real `oxapi`: the Unix socket's trusted local login,
//! plain HTTP, the TLS certificate and the root password.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use api_spec::Value;
use api_spec::codec::{Limits, MethodCall, xmlrpc};
use oxapi_tests::{Client, Host, HostOptions, Protocol};

fn login_body(password: &str) -> String {
    xmlrpc::encode_call(&MethodCall {
        method: "session.login_with_password".into(),
        params: vec![Value::str("root"), Value::str(password)],
    })
}

fn result_of(http_reply: &str) -> Result<Value, api_spec::ApiError> {
    let (_, body) = http_reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP reply: {http_reply}"));
    xmlrpc::decode_response(body.as_bytes(), &Limits::default()).expect("an XML-RPC reply")
}

/// A login over the local Unix socket is trusted as root: the password is not checked (as xapi).
#[test]
fn unix_socket_login_is_trusted_as_root() {
    let host = Host::start();
    let body = login_body("not the password");
    let mut stream = UnixStream::connect(host.unix_socket()).expect("the socket accepts");
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request sent");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply read");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let session = result_of(&reply).expect("the login succeeds");
    assert!(
        session
            .as_str()
            .is_some_and(|s| s.starts_with("OpaqueRef:"))
    );
}

/// The same wrong password over HTTPS is refused, so the trust is the socket's alone.
#[tokio::test]
async fn https_login_with_a_wrong_password_is_refused() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let err = client
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str("not the password")],
        )
        .await
        .expect_err("refused");
    assert_eq!(err.code, "SESSION_AUTHENTICATION_FAILED");
}

/// The optional plain-HTTP listener serves the same API.
#[tokio::test]
async fn plain_http_listener_serves_the_api() {
    let host = Host::start_with(HostOptions {
        root_password: Some("plain-http-pw".into()),
        plain_http: true,
        ..HostOptions::default()
    });
    let reply = plain_http_post(&host.http_url(), login_body("plain-http-pw")).await;
    let value = xmlrpc::decode_response(reply.as_bytes(), &Limits::default())
        .expect("an XML-RPC reply")
        .expect("logged in");
    assert!(value.as_str().is_some_and(|s| s.starts_with("OpaqueRef:")));
}

async fn plain_http_post(url: &str, body: String) -> String {
    let addr = url.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
        write!(
            stream,
            "POST /RPC2 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("request sent");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("reply read");
        let (_, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        body.to_owned()
    })
    .await
    .expect("the blocking request finishes")
}

/// Without OXAPI_ROOT_PASSWORD a password is generated, printed once, and works; a restart keeps
/// the password and the certificate and prints nothing new.
#[tokio::test]
async fn generated_password_is_printed_once_and_state_survives_restart() {
    let mut host = Host::start_with(HostOptions::default());
    let printed: Vec<&String> = host
        .startup_lines
        .iter()
        .filter(|l| l.starts_with("root password: "))
        .collect();
    assert_eq!(printed.len(), 1, "{:?}", host.startup_lines);
    assert!(host.password.len() >= 16, "a strong generated password");
    let cert = host.cert_pem();
    let mut client = Client::new(&host, Protocol::JsonRpc);
    client.login(&host.password.clone()).await;

    host.stop();
    host.start_again();
    let printed = host
        .startup_lines
        .iter()
        .filter(|l| l.starts_with("root password: "))
        .count();
    assert_eq!(
        printed, 1,
        "the password is printed on the first start only"
    );
    assert_eq!(host.cert_pem(), cert, "the certificate is kept");
    let mut client = Client::new(&host, Protocol::JsonRpc);
    client.login(&host.password.clone()).await;
}

/// A second start ignores OXAPI_ROOT_PASSWORD: the password chosen at creation stays.
#[tokio::test]
async fn password_from_environment_is_only_read_when_the_pool_is_new() {
    let mut host = Host::start_with(HostOptions {
        root_password: Some("first-password".into()),
        ..HostOptions::default()
    });
    host.stop();
    host.start_again_with_password("second-password");
    let client = Client::new(&host, Protocol::XmlRpc);
    let err = client
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str("second-password")],
        )
        .await
        .expect_err("the new env var is ignored");
    assert_eq!(err.code, "SESSION_AUTHENTICATION_FAILED");
    client
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str("first-password")],
        )
        .await
        .expect("the first password still works");
}

/// The root password is kept only as a hash: no file of the data dir holds it, neither the Raft
/// log nor the dumps written at shutdown.
#[tokio::test]
async fn root_password_is_stored_only_as_a_hash() {
    let password = "a-very-distinctive-root-password";
    let mut host = Host::start_with(HostOptions {
        root_password: Some(password.into()),
        ..HostOptions::default()
    });
    let mut client = Client::new(&host, Protocol::XmlRpc);
    client.login(password).await;
    assert_eq!(host.stop(), Some(0), "a clean shutdown writes a final dump");
    let mut files = vec![host.data_dir()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readable dir") {
                files.push(entry.expect("dir entry").path());
            }
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "{} holds the password",
            path.display()
        );
    }
    assert!(
        checked >= 3,
        "the data dir holds the log, a dump and the identity"
    );
}
