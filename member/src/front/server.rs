//! The router of the front door: JSON-RPC on `/jsonrpc` and `/json`, XML-RPC on every other POST
//! path, CORS on OPTIONS; the body limit and deadline; the origin of a call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_spec::codec::Limits;
use api_spec::{ApiError, Value};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use master::{Call, Origin};

use crate::front::body::{read_body, set_body_deadline};
use crate::front::{Answer, jsonrpc, xmlrpc};

/// What every listener shares: who answers calls, the decoding limits, the bounds on
/// connections, the routes served only on the local Unix socket, and the routes between pool
/// members served over TCP (those whose bodies stream apart).
#[derive(Clone)]
pub struct Front {
    answer: Arc<dyn Answer>,
    limits: Limits,
    connection_limits: ConnectionLimits,
    local_routes: Option<Router>,
    pool_routes: Option<Router>,
    pool_stream_routes: Option<Router>,
}

/// Bounds on the front door's connections: how many may be open, and how long a request may
/// take to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// The most connections open at once on the TCP listeners together.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// How requests reach a router: over TCP (the peer address is known) or the local Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    LocalSocket,
}

#[derive(Clone)]
struct RouteState {
    front: Front,
    transport: Transport,
}

impl Front {
    pub fn new(answer: Arc<dyn Answer>, limits: Limits) -> Front {
        Front {
            answer,
            limits,
            connection_limits: ConnectionLimits::default(),
            local_routes: None,
            pool_routes: None,
            pool_stream_routes: None,
        }
    }

    pub fn with_connection_limits(mut self, connection_limits: ConnectionLimits) -> Front {
        self.connection_limits = connection_limits;
        self
    }

    /// Adds routes between pool members (the peer stream, joins), served over TCP before the
    /// XML-RPC fallback; they check the pool secret themselves.
    pub fn with_pool_routes(mut self, routes: Router) -> Front {
        self.pool_routes = Some(match self.pool_routes.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }

    /// Adds routes whose request bodies stream for as long as they make progress (the data
    /// plane between pool members, the VDI import and export of clients): served over TCP
    /// like the pool routes, but outside the body deadline, so they must bound a stall
    /// themselves.
    pub fn with_pool_stream_routes(mut self, routes: Router) -> Front {
        self.pool_stream_routes = Some(match self.pool_stream_routes.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }

    /// Adds routes served only on the local Unix socket (the simulator's test-only control),
    /// before the XML-RPC fallback.
    pub fn with_local_routes(mut self, routes: Router) -> Front {
        self.local_routes = Some(routes);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn connection_limits(&self) -> &ConnectionLimits {
        &self.connection_limits
    }

    /// Runs a call to completion in its own task, so that a client hanging up does not cut a
    /// call short, and a panic in a handler becomes `INTERNAL_ERROR` instead of a dropped
    /// connection.
    pub async fn call(&self, call: Call) -> Result<Value, ApiError> {
        let method = call.method.clone();
        tracing::debug!(method = %method, origin = ?call.origin, "call");
        match tokio::spawn(self.answer.answer(call)).await {
            Ok(result) => result,
            Err(err) => {
                tracing::error!(method = %method, error = %err, "call failed unexpectedly");
                Err(internal_error(
                    "the call failed unexpectedly; see the host log",
                ))
            }
        }
    }
}

/// The router for one listener.
pub fn router(front: Front, transport: Transport) -> Router {
    let extra_routes = match transport {
        Transport::LocalSocket => front.local_routes.clone(),
        Transport::Tcp => front.pool_routes.clone(),
    };
    let stream_routes = match transport {
        Transport::LocalSocket => None,
        Transport::Tcp => front.pool_stream_routes.clone(),
    };
    let body_timeout = front.connection_limits.body_timeout;
    let router = Router::new()
        .route("/jsonrpc", post(json_rpc).options(cors))
        .route("/json", post(json_rpc).options(cors))
        .fallback(other)
        .with_state(RouteState { front, transport });
    let router = match extra_routes {
        Some(extra_routes) => router.merge(extra_routes),
        None => router,
    };
    let router = router
        .layer(axum::middleware::map_request_with_state(
            body_timeout,
            set_body_deadline,
        ))
        .layer(axum::middleware::map_response(allow_any_origin));
    // Merged after the layers, which wrap only the routes already there.
    match stream_routes {
        Some(stream_routes) => router.merge(stream_routes),
        None => router,
    }
}

/// `INTERNAL_ERROR [message]`.
pub fn internal_error(message: &str) -> ApiError {
    api_spec::errors::internal_error(message)
}

/// A reply with exactly this content type.
pub fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn json_rpc(State(state): State<RouteState>, request: Request) -> Response {
    let origin = origin_of(&request, state.transport);
    let body = read_body(request, state.front.limits.max_body_bytes).await;
    jsonrpc::handle(&state.front, origin, body).await
}

/// XML-RPC on any other POST path (`/`, `/RPC2`, `/xmlrpc`, …), as xapi routes it; CORS on
/// OPTIONS; nothing else is served yet.
async fn other(State(state): State<RouteState>, request: Request) -> Response {
    match *request.method() {
        Method::POST => {
            let origin = origin_of(&request, state.transport);
            let body = read_body(request, state.front.limits.max_body_bytes).await;
            xmlrpc::handle(&state.front, origin, body).await
        }
        Method::OPTIONS => cors(request.headers().clone()).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn cors(headers: HeaderMap) -> Response {
    let allow_headers = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type, X-Requested-With"));
    (
        StatusCode::OK,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            ),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
        ],
    )
        .into_response()
}

async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn origin_of(request: &Request, transport: Transport) -> Origin {
    match transport {
        Transport::LocalSocket => Origin::LocalSocket,
        Transport::Tcp => Origin::Network {
            peer: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_canonical()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::testing::{
        assert_internal_error, json_result, post, request, serve_fake, xml_call, xml_result,
    };

    /// OPTIONS on any path answers CORS.
    #[tokio::test]
    async fn options_answers_cors_on_any_path() {
        let addr = serve_fake().await;
        for path in ["/", "/jsonrpc", "/json", "/xmlrpc"] {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let raw = request("OPTIONS", path, &[("Origin", "https://xo.example")], b"");
            let reply = crate::front::testing::exchange(stream, &raw).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
            assert_eq!(
                reply.header("access-control-allow-methods"),
                Some("POST, OPTIONS")
            );
        }
    }

    /// A GET on an unclaimed path is 404, still with the CORS header.
    #[tokio::test]
    async fn get_on_unclaimed_path_is_404() {
        let addr = serve_fake().await;
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let reply = crate::front::testing::exchange(stream, &request("GET", "/", &[], b"")).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    }

    /// A call over TCP carries the peer's address as its origin.
    #[tokio::test]
    async fn tcp_calls_carry_the_peer_address() {
        let addr = serve_fake().await;
        let reply = post(addr, "/", &xml_call("origin", vec![])).await;
        let expected = format!(
            "{:?}",
            Origin::Network {
                peer: Some(addr.ip())
            }
        );
        assert_eq!(xml_result(&reply), Ok(Value::str(expected)));
    }

    /// The real master answers through the front door: the method list bare over XML-RPC, a
    /// XenAPI error over JSON-RPC.
    #[tokio::test]
    async fn the_master_answers_through_the_front_door() {
        let pool = master::testing::TestPool::new();
        let front = Front::new(Arc::new(Arc::clone(&pool.master)), Limits::default());
        let addr = crate::front::testing::serve(front).await;

        let reply = post(addr, "/", &xml_call("system.listMethods", vec![])).await;
        assert_eq!(reply.status, 200);
        let Ok(Value::Array(names)) = xml_result(&reply) else {
            panic!(
                "a method list, got {:?}",
                String::from_utf8_lossy(&reply.body)
            );
        };
        assert!(names.contains(&Value::str("VM.get_all_records")));
        assert!(names.contains(&Value::str("session.login_with_password")));

        let body = br#"{"jsonrpc":"2.0","method":"VM.no_such_message","params":[],"id":1}"#;
        let reply = post(addr, "/jsonrpc", body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            json_result(&reply),
            Err(ApiError::new(
                "MESSAGE_METHOD_UNKNOWN",
                ["VM.no_such_message"]
            ))
        );
    }

    /// A handler that panics gives the client INTERNAL_ERROR, and the server keeps serving.
    #[tokio::test]
    async fn a_panicking_call_becomes_internal_error() {
        let addr = serve_fake().await;
        let reply = post(addr, "/", &xml_call("panic", vec![])).await;
        assert_eq!(reply.status, 200);
        assert_internal_error(xml_result(&reply));
        let reply = post(addr, "/", &xml_call("echo", vec![])).await;
        assert_eq!(xml_result(&reply), Ok(Value::Array(vec![])));
    }
}
