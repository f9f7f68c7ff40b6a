//! The simulator's test-only control: HTTP routes that make a simulated guest act by itself and
//! inject failures. Mounted only on the local Unix socket (whoever can reach it is root on the
//! host) and only when the backend is the simulator; nothing here exists on a real hypervisor.
//!
//! - `POST /simulator/guest` with `{"vm": "<uuid>", "event": "poweroff" | "reboot" | "crash" |
//!   "hang"}`: the guest of a running VM powers off, reboots or crashes as if by itself (the
//!   agent then honours the VM's `actions_after_*` and reports it), or stops answering shutdown
//!   requests (a clean shutdown then times out).
//! - `POST /simulator/fail` with `{"operation": "build", "nth": 1}`: the `nth` operation of that
//!   kind from now on fails (operations as in `SimulatorSettings`).
//!
//! Answers are JSON: the request echoed on success (200); `{"error": "…"}` with 400 for a body
//! that does not parse, 404 for a VM without a domain, 409 for a guest that is not running.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use agent::backend::BackendError;
use agent::backend::simulator::{Failure, GuestAction, Simulator};

/// A guest event asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestRequest {
    vm: String,
    event: GuestAction,
}

/// The control's routes over `simulator`.
pub fn routes(simulator: Arc<Simulator>) -> Router {
    Router::new()
        .route("/simulator/guest", post(guest))
        .route("/simulator/fail", post(fail))
        .with_state(simulator)
}

async fn guest(State(simulator): State<Arc<Simulator>>, body: Bytes) -> Response {
    let request: GuestRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err),
    };
    match simulator.guest(&request.vm, request.event).await {
        Ok(()) => (StatusCode::OK, Json(request)).into_response(),
        Err(err @ BackendError::NoDomain { .. }) => error(StatusCode::NOT_FOUND, &err),
        Err(err @ BackendError::BadState { .. }) => error(StatusCode::CONFLICT, &err),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &err),
    }
}

async fn fail(State(simulator): State<Arc<Simulator>>, body: Bytes) -> Response {
    let failure: Failure = match serde_json::from_slice(&body) {
        Ok(failure) => failure,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err),
    };
    simulator.fail(failure);
    (StatusCode::OK, Json(failure)).into_response()
}

fn error(status: StatusCode, err: &dyn std::error::Error) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": err.to_string() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use host_api::{AgentReport, HostAction, VmAction};
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::front::server::{Transport, router};
    use crate::front::testing::{RawReply, exchange, fake_front, request};
    use agent::testing::vm_spec;
    use agent::{Agent, AgentConfig};

    /// Serves the fake front door with the control over a Unix socket and over TCP.
    async fn serve(
        simulator: Arc<Simulator>,
        dir: &tempfile::TempDir,
    ) -> (std::path::PathBuf, std::net::SocketAddr) {
        let front = fake_front().with_local_routes(routes(simulator));
        let path = dir.path().join("control.sock");
        let unix = tokio::net::UnixListener::bind(&path).expect("bind the unix socket");
        let local = router(front.clone(), Transport::LocalSocket);
        tokio::spawn(async move { axum::serve(unix, local).await });
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("address");
        let remote = router(front, Transport::Tcp);
        tokio::spawn(async move { axum::serve(tcp, remote).await });
        (path, addr)
    }

    async fn post_unix(path: &std::path::Path, route: &str, body: &str) -> RawReply {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect");
        exchange(stream, &request("POST", route, &[], body.as_bytes())).await
    }

    fn json(reply: &RawReply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("a JSON answer")
    }

    /// On the Unix socket the control crashes a running guest (the agent reports it) and
    /// answers errors as JSON; over TCP the same path is just XML-RPC.
    #[tokio::test]
    async fn the_control_acts_on_the_unix_socket_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (reports, mut reported) = mpsc::channel(16);
        let agent = Agent::start(
            AgentConfig::default(),
            dir.path(),
            1,
            agent::transfer::LocalTransfer::new(),
            reports,
        )
        .await
        .expect("agent");
        assert!(matches!(
            reported.recv().await,
            Some(AgentReport::Hypervisor(_))
        ));
        assert!(matches!(
            reported.recv().await,
            Some(AgentReport::Inventory(_))
        ));
        let spec = vm_spec("crashing", 1, 1);
        let action = HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        });
        let (progress, _) = watch::channel(0.0);
        agent
            .run(1, action, progress, CancellationToken::new())
            .await
            .expect("started");
        let simulator = agent
            .simulator()
            .expect("the simulator is the default backend");
        let (path, addr) = serve(simulator, &dir).await;

        let body = format!(r#"{{"vm": "{}", "event": "crash"}}"#, spec.uuid);
        let reply = post_unix(&path, "/simulator/guest", &body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(json(&reply)["event"], "crash");
        let Some(AgentReport::GuestChanged { vm, now, .. }) = reported.recv().await else {
            panic!("a guest change is reported");
        };
        assert_eq!(vm, spec.uuid);
        assert!(
            now.is_some(),
            "a crash preserves the domain by default here"
        );

        let reply = post_unix(&path, "/simulator/guest", &body).await;
        assert_eq!(reply.status, 409, "a crashed guest cannot crash again");
        let body = r#"{"vm": "no-such-vm", "event": "poweroff"}"#;
        assert_eq!(post_unix(&path, "/simulator/guest", body).await.status, 404);
        let reply = post_unix(
            &path,
            "/simulator/fail",
            r#"{"operation": "boot", "nth": 1}"#,
        )
        .await;
        assert_eq!(reply.status, 400);
        assert!(json(&reply)["error"].is_string());
        let reply = post_unix(
            &path,
            "/simulator/fail",
            r#"{"operation": "build", "nth": 1}"#,
        )
        .await;
        assert_eq!(reply.status, 200);

        let reply = crate::front::testing::post(addr, "/simulator/fail", b"{}").await;
        assert_eq!(reply.header("content-type"), Some("text/xml"));
    }
}
