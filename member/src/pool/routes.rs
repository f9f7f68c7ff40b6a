//! The pool routes other hosts call on this one, JSON in and out: `POST /pool/join` (a joiner
//! asks the master for admission; its session is its credential), and, with the pool secret in
//! `x-oxapi-pool-secret`, `POST /pool/reset` (this host was ejected), `POST /pool/recover` (the
//! master of a new configuration takes this host back) and `POST /pool/applied` (answers once
//! this replica has applied an index, for `pool.sync_database`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use master::Master;
use master::db::ReplicatedDb;
use master::pool::control::{Admission, JoinRequest, PoolControl, Restart};
use serde::{Deserialize, Serialize};

use super::Control;
use crate::peer::{SECRET_HEADER, same_secret};
use crate::raft::RaftDb;

pub(super) const JOIN: &str = "/pool/join";
pub(super) const RESET: &str = "/pool/reset";
pub(super) const RECOVER: &str = "/pool/recover";
pub(super) const APPLIED: &str = "/pool/applied";

/// How long `/pool/applied` waits for the replica to catch up before it answers 504.
const APPLIED_WAIT: Duration = Duration::from_secs(10);

/// The answer of a route that has nothing to say but that it is done.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Done {}

/// The body of `/pool/applied`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AppliedRequest {
    pub index: u64,
}

/// The answer of `/pool/join`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum JoinReply {
    Admitted(Admission),
    /// The XenAPI error of the refusal.
    Refused {
        code: String,
        params: Vec<String>,
    },
}

#[derive(Clone)]
struct RouteState {
    master: Arc<Master>,
    raft: Arc<RaftDb>,
    control: Arc<Control>,
}

/// The pool routes, for `Front::with_pool_routes`.
pub fn routes(master: Arc<Master>, raft: Arc<RaftDb>, control: Arc<Control>) -> Router {
    Router::new()
        .route(JOIN, post(join))
        .route(RESET, post(reset))
        .route(RECOVER, post(recover))
        .route(APPLIED, post(applied))
        .with_state(RouteState {
            master,
            raft,
            control,
        })
}

async fn join(State(state): State<RouteState>, body: Bytes) -> Response {
    let request: JoinRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let reply = match state.master.admit(request).await {
        Ok(admission) => JoinReply::Admitted(admission),
        Err(refusal) => JoinReply::Refused {
            code: refusal.code,
            params: refusal.params,
        },
    };
    json(&reply)
}

async fn reset(State(state): State<RouteState>, headers: HeaderMap) -> Response {
    if !has_pool_secret(&state.control, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    tracing::warn!("ejected from the pool: resetting to a new pool");
    restart(&state.control, Restart::Reset)
}

async fn recover(State(state): State<RouteState>, headers: HeaderMap, body: Bytes) -> Response {
    if !has_pool_secret(&state.control, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let admission: Admission = match serde_json::from_slice(&body) {
        Ok(admission) => admission,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    tracing::warn!(pool_epoch = %admission.pool_epoch, "recovered by a new master: rejoining");
    restart(&state.control, Restart::Join(admission))
}

async fn applied(State(state): State<RouteState>, headers: HeaderMap, body: Bytes) -> Response {
    if !has_pool_secret(&state.control, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let request: AppliedRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let mut applied = state.raft.applied();
    let caught_up = applied.wait_for(|index| *index >= request.index);
    match tokio::time::timeout(APPLIED_WAIT, caught_up).await {
        Ok(Ok(_)) => json(&Done {}),
        Ok(Err(_)) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Err(_) => StatusCode::GATEWAY_TIMEOUT.into_response(),
    }
}

fn restart(control: &Control, restart: Restart) -> Response {
    match control.restart(restart) {
        Ok(()) => json(&Done {}),
        Err(e) => {
            tracing::error!(error = %e, "cannot restart");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether the request carries this host's pool secret (compared in constant time).
fn has_pool_secret(control: &Control, headers: &HeaderMap) -> bool {
    let given = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    match (control.pool_secret(), given) {
        (Some(expected), Some(given)) => same_secret(given.as_bytes(), expected.as_bytes()),
        _ => false,
    }
}

fn json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("pool messages are plain data");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
