//! The listeners of the front door (HTTPS, optional plain HTTP, the local Unix socket) and their
//! graceful shutdown.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::SocketAddr as UnixAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::task::JoinHandle;

use crate::front::capacity::ConnectionCap;
use crate::front::http1::Http1Only;
use crate::front::server::{Front, Transport, router};

/// Where the front door listens.
#[derive(Debug, Clone, PartialEq)]
pub struct Addresses {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub unix_socket: PathBuf,
}

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on the unix socket {path}")]
    Unix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} exists and is not a socket")]
    NotASocket { path: PathBuf },
}

/// The running listeners.
pub struct Listeners {
    /// The HTTPS address actually bound (the port is chosen when the configured one is 0).
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    unix_socket: PathBuf,
    tcp: Vec<(Handle<SocketAddr>, JoinHandle<()>)>,
    unix: (Handle<UnixAddr>, JoinHandle<()>),
}

impl Listeners {
    /// Opens every listener and starts serving; once it returns, all of them accept
    /// connections. Must run inside the tokio runtime.
    ///
    /// Every listener serves HTTP/1.1 only (`http1.rs`). The TCP listeners share one
    /// `ConnectionCap`; the Unix socket, reachable by root only,
    /// is not capped, so that the host's own tools get in when the network has taken every
    /// slot. Every listener closes a connection whose request headers are not in within the
    /// header timeout, idle keep-alive connections included.
    pub fn start(
        front: Front,
        tls: Arc<rustls::ServerConfig>,
        addresses: &Addresses,
    ) -> Result<Listeners, ListenError> {
        let limits = *front.connection_limits();
        let cap = ConnectionCap::new(limits.max_connections, limits.header_timeout);
        let tcp_service = router(front.clone(), Transport::Tcp)
            .into_make_service_with_connect_info::<SocketAddr>();
        let mut tcp = Vec::new();

        let (listener, https) = bind_tcp(addresses.https)?;
        let handle = Handle::new();
        let tls = RustlsAcceptor::new(RustlsConfig::from_config(tls)).acceptor(cap.clone());
        let mut server = axum_server::from_tcp(listener)
            .map_err(|source| ListenError::Bind {
                addr: https,
                source,
            })?
            .acceptor(Http1Only(tls))
            .handle(handle.clone());
        set_header_timeout(server.http_builder(), limits.header_timeout);
        let service = tcp_service.clone();
        let task = tokio::spawn(async move { log_end("https", server.serve(service).await) });
        tcp.push((handle, task));

        let mut http = None;
        if let Some(addr) = addresses.http {
            let (listener, bound) = bind_tcp(addr)?;
            let handle = Handle::new();
            let mut server = axum_server::from_tcp(listener)
                .map_err(|source| ListenError::Bind {
                    addr: bound,
                    source,
                })?
                .acceptor(Http1Only(cap))
                .handle(handle.clone());
            set_header_timeout(server.http_builder(), limits.header_timeout);
            let task =
                tokio::spawn(async move { log_end("http", server.serve(tcp_service).await) });
            tcp.push((handle, task));
            http = Some(bound);
        }

        let path = &addresses.unix_socket;
        let unix_error = |source| ListenError::Unix {
            path: path.clone(),
            source,
        };
        let listener = bind_unix(path)?;
        let handle = Handle::new();
        let mut server = axum_server::from_unix(listener)
            .map_err(unix_error)?
            .acceptor(Http1Only(DefaultAcceptor))
            .handle(handle.clone());
        set_header_timeout(server.http_builder(), limits.header_timeout);
        let service = router(front, Transport::LocalSocket).into_make_service();
        let task = tokio::spawn(async move { log_end("unix", server.serve(service).await) });

        Ok(Listeners {
            https,
            http,
            unix_socket: path.clone(),
            tcp,
            unix: (handle, task),
        })
    }

    /// Stops accepting, lets calls in flight finish for up to `grace`, then closes every
    /// connection and removes the Unix socket file.
    pub async fn shutdown(self, grace: Duration) {
        for (handle, _) in &self.tcp {
            handle.graceful_shutdown(Some(grace));
        }
        self.unix.0.graceful_shutdown(Some(grace));
        let tasks = self
            .tcp
            .into_iter()
            .map(|(_, task)| task)
            .chain(std::iter::once(self.unix.1));
        // The servers stop by themselves once `grace` has passed; the margin covers a shutdown
        // signal that reached a server between two accepts, which it would not see.
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(1);
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                // A cancelled task resolves at once; awaiting it makes sure its listener is closed.
                let _ = task.await;
            }
        }
        if let Err(err) = std::fs::remove_file(&self.unix_socket) {
            tracing::warn!(path = %self.unix_socket.display(), error = %err, "cannot remove the unix socket");
        }
    }
}

/// hyper closes an HTTP/1 connection whose request headers take longer than `timeout`, counted
/// from when it starts waiting for them (so an idle keep-alive connection too); it needs a timer
/// for that.
fn set_header_timeout(builder: &mut Builder<TokioExecutor>, timeout: Duration) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout);
}

fn log_end(listener: &'static str, result: std::io::Result<()>) {
    if let Err(err) = result {
        tracing::error!(listener, error = %err, "listener failed");
    }
}

/// A nonblocking std listener (tokio panics in debug builds on a blocking one) and its address.
fn bind_tcp(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), ListenError> {
    let bind_error = |source| ListenError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Binds the socket under a temporary name, makes it 0600, then renames it into place, so that
/// no one can connect before the mode is set. A stale socket at `path` (from a crash) is
/// replaced; any other file there is left alone and refused.
fn bind_unix(path: &Path) -> Result<std::os::unix::net::UnixListener, ListenError> {
    let unix_error = |source| ListenError::Unix {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ListenError::NotASocket {
                path: path.to_owned(),
            });
        }
        Ok(_) | Err(_) => {}
    }
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let _ = std::fs::remove_file(&temp);
    let listener = std::os::unix::net::UnixListener::bind(&temp).map_err(unix_error)?;
    let placed = listener
        .set_nonblocking(true)
        .and_then(|()| std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(source) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(unix_error(source));
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use api_spec::Value;
    use api_spec::codec::{Limits, MethodCall, xmlrpc};
    use rustls::pki_types::{CertificateDer, ServerName};

    use super::*;
    use crate::front::testing::{RawReply, exchange, fake_front, parse_reply, post, request};
    use crate::front::tls;

    struct Started {
        listeners: Listeners,
        cert: CertificateDer<'static>,
        unix_socket: PathBuf,
        _dir: tempfile::TempDir,
    }

    fn start_on_loopback() -> Started {
        let dir = tempfile::tempdir().expect("temp dir");
        let host_cert = tls::load_or_create(dir.path(), "localhost", &[]).expect("cert");
        let cert = host_cert.cert.clone();
        let config = tls::server_config(host_cert).expect("tls config");
        let unix_socket = dir.path().join("xapi.sock");
        let addresses = Addresses {
            https: "127.0.0.1:0".parse().expect("address"),
            http: Some("127.0.0.1:0".parse().expect("address")),
            unix_socket: unix_socket.clone(),
        };
        let listeners = Listeners::start(fake_front(), config, &addresses).expect("listeners");
        Started {
            listeners,
            cert,
            unix_socket,
            _dir: dir,
        }
    }

    fn call_body(method: &str) -> Vec<u8> {
        xmlrpc::encode_call(&MethodCall {
            method: method.to_owned(),
            params: vec![],
        })
        .into_bytes()
    }

    fn result(reply: &RawReply) -> Value {
        xmlrpc::decode_response(&reply.body, &Limits::default())
            .expect("readable reply")
            .expect("a successful call")
    }

    /// A blocking TLS client that trusts only `cert` and offers `alpn`; returns the negotiated
    /// protocol and, over http/1.1, the reply to `raw`.
    fn tls_exchange(
        addr: SocketAddr,
        cert: CertificateDer<'static>,
        alpn: &[&[u8]],
        raw: &[u8],
    ) -> (Option<Vec<u8>>, RawReply) {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(cert)
            .expect("the host certificate as a trust anchor");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let tcp = std::net::TcpStream::connect(addr).expect("connect");
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("TLS handshake");
        }
        let protocol = stream.conn.alpn_protocol().map(<[u8]>::to_vec);
        stream.write_all(raw).expect("send request");
        let mut bytes = Vec::new();
        // Data read before an abrupt close stays in `bytes`.
        let _ = stream.read_to_end(&mut bytes);
        (protocol, parse_reply(&bytes))
    }

    /// Writes `raw` on `stream` and returns what comes back until the server closes it.
    async fn exchange_bytes(stream: &mut tokio::net::TcpStream, raw: &[u8]) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(raw).await.expect("send");
        let mut bytes = Vec::new();
        // Data read before an abrupt close stays in `bytes`.
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
        bytes
    }

    /// The HTTPS listener serves XML-RPC with the host certificate over http/1.1, also to a
    /// client that offers h2 first (ALPN); the plain-HTTP listener serves the same calls, and
    /// closes a connection that opens as HTTP/2 without serving it.
    #[tokio::test]
    async fn https_and_http_listeners_serve_calls() {
        let started = start_on_loopback();
        let https = started.listeners.https;
        let raw = request("POST", "/", &[], &call_body("system.listMethods"));
        let (cert, raw_h1) = (started.cert.clone(), raw.clone());
        let (protocol, reply) =
            tokio::task::spawn_blocking(move || tls_exchange(https, cert, &[b"http/1.1"], &raw_h1))
                .await
                .expect("client thread");
        assert_eq!(protocol.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/xml"));

        let cert = started.cert.clone();
        let (protocol, reply) = tokio::task::spawn_blocking(move || {
            tls_exchange(https, cert, &[b"h2", b"http/1.1"], &raw)
        })
        .await
        .expect("client thread");
        assert_eq!(protocol.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(reply.status, 200);

        let http = started.listeners.http.expect("plain http bound");
        let mut h2c = tokio::net::TcpStream::connect(http).await.expect("connect");
        let answer = exchange_bytes(&mut h2c, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        assert!(
            answer.is_empty(),
            "an HTTP/2 connection is closed unserved: {:?}",
            String::from_utf8_lossy(&answer)
        );
        let reply = post(http, "/", &call_body("origin")).await;
        let expected = format!(
            "{:?}",
            master::Origin::Network {
                peer: Some(http.ip())
            }
        );
        assert_eq!(result(&reply), Value::str(expected));
        started.listeners.shutdown(Duration::from_secs(1)).await;
    }

    /// The Unix socket is mode 0600, its calls carry `Origin::LocalSocket`, and shutdown
    /// removes it and stops the TCP listeners.
    #[tokio::test]
    async fn unix_socket_calls_are_local_and_shutdown_removes_it() {
        let started = start_on_loopback();
        let mode = std::fs::metadata(&started.unix_socket)
            .expect("socket file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let stream = tokio::net::UnixStream::connect(&started.unix_socket)
            .await
            .expect("connect to the unix socket");
        let reply = exchange(stream, &request("POST", "/", &[], &call_body("origin"))).await;
        assert_eq!(
            result(&reply),
            Value::str(format!("{:?}", master::Origin::LocalSocket))
        );

        let http = started.listeners.http.expect("plain http bound");
        let unix_socket = started.unix_socket.clone();
        started.listeners.shutdown(Duration::from_secs(1)).await;
        assert!(!unix_socket.exists());
        assert!(tokio::net::TcpStream::connect(http).await.is_err());
    }

    /// A stale socket file left by a crash is replaced; a regular file in its place is refused.
    #[test]
    fn stale_socket_is_replaced_but_other_files_are_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("xapi.sock");
        let stale = std::os::unix::net::UnixListener::bind(&path).expect("stale socket");
        drop(stale);
        let listener = bind_unix(&path).expect("replaces the stale socket");
        drop(listener);

        let file = dir.path().join("notes.txt");
        std::fs::write(&file, b"keep me").expect("write");
        assert!(matches!(
            bind_unix(&file),
            Err(ListenError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
    }

    /// An address already in use is a bind error naming it.
    #[test]
    fn busy_address_is_a_bind_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("address");
        let err = bind_tcp(addr).expect_err("address in use");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
