//! `LinkFrame`: what the links layers of two hosts say to each other over the peer link, as
//! MessagePack (`rmp_serde::to_vec_named`) in the transport's opaque payloads.

use api_spec::{ApiError, Value};
use host_api::{ActionResult, AgentFailure, AgentReport, HostAction, HostHealth};
use master::Call;
use serde::{Deserialize, Serialize};

/// One message between the links layers of two hosts. Ids are chosen by the sender of the
/// request (`Call`, `Action`) and unique among its requests in flight; the answer carries the
/// same id back to the same node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "a frame lives only from its decoding to its dispatch"
)]
pub enum LinkFrame {
    /// A member forwards a decoded XenAPI call to the master.
    Call { id: u64, call: Call },
    /// The master's answer to a forwarded call.
    CallResult {
        id: u64,
        result: Result<Value, ApiError>,
    },
    /// The host a call was forwarded to does not lead: the call was not run.
    CallRefused { id: u64 },
    /// The master asks the agent of `host` to run `action`, stamped with its Raft `term`.
    Action {
        id: u64,
        host: String,
        term: u64,
        action: HostAction,
    },
    /// The progress (0 to 1) of an action.
    Progress { id: u64, value: f64 },
    /// The outcome of an action.
    ActionResult {
        id: u64,
        result: Result<ActionResult, AgentFailure>,
    },
    /// The host an action was sent to is not this one: the action was not run.
    ActionRefused { id: u64 },
    /// The master cancels an action it sent.
    Cancel { id: u64 },
    /// What the agent of `host` tells the master unasked.
    Report { host: String, report: AgentReport },
    /// The agent of `host` is alive, and its host is as `health` says; the master answers
    /// `HeartbeatAck`. `now_unix` is the sender's wall clock as it sent the frame, in Unix
    /// seconds, for the master to compare with its own.
    Heartbeat {
        host: String,
        now_unix: i64,
        /// Absent from the heartbeats of older hosts, which say nothing of their health.
        #[serde(default)]
        health: HostHealth,
    },
    /// The master (leading in `term`) heard a heartbeat: the agent is in contact with a master.
    HeartbeatAck { term: u64 },
}

/// Why a payload is not a frame.
#[derive(Debug, thiserror::Error)]
#[error("undecodable link frame")]
pub struct FrameError(#[source] rmp_serde::decode::Error);

impl LinkFrame {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a link frame is plain data and always encodes")
    }

    pub fn decode(payload: &[u8]) -> Result<LinkFrame, FrameError> {
        rmp_serde::from_slice(payload).map_err(FrameError)
    }

    /// The frame's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LinkFrame::Call { .. } => "call",
            LinkFrame::CallResult { .. } => "call_result",
            LinkFrame::CallRefused { .. } => "call_refused",
            LinkFrame::Action { .. } => "action",
            LinkFrame::ActionRefused { .. } => "action_refused",
            LinkFrame::Progress { .. } => "progress",
            LinkFrame::ActionResult { .. } => "action_result",
            LinkFrame::Cancel { .. } => "cancel",
            LinkFrame::Report { .. } => "report",
            LinkFrame::Heartbeat { .. } => "heartbeat",
            LinkFrame::HeartbeatAck { .. } => "heartbeat_ack",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use master::Origin;

    use super::*;

    /// A forwarded call keeps its method, parameters (every value kind) and its origin, the
    /// local socket included, through encoding.
    #[test]
    fn a_call_frame_round_trips_with_its_origin() {
        let params = vec![
            Value::str("OpaqueRef:s"),
            Value::Int(-3),
            Value::Int32(7),
            Value::Float(0.5),
            Value::Bool(true),
            Value::DateTime("20240101T00:00:00Z".to_owned()),
            Value::Array(vec![Value::Nil]),
            Value::Struct(BTreeMap::from([("k".to_owned(), Value::str("v"))])),
        ];
        for origin in [
            Origin::LocalSocket,
            Origin::Network {
                peer: Some("10.0.0.7".parse().expect("an address")),
            },
        ] {
            let frame = LinkFrame::Call {
                id: 9,
                call: Call {
                    method: "VM.start".to_owned(),
                    params: params.clone(),
                    origin,
                },
            };
            let decoded = LinkFrame::decode(&frame.encode()).expect("decodes");
            assert_eq!(decoded, frame);
        }
    }

    /// An error answer and an action with its term round-trip; garbage does not decode.
    #[test]
    fn answers_and_actions_round_trip_and_garbage_is_refused() {
        let frames = [
            LinkFrame::CallResult {
                id: 1,
                result: Err(api_spec::errors::host_offline("OpaqueRef:h")),
            },
            LinkFrame::CallRefused { id: 3 },
            LinkFrame::Action {
                id: 2,
                host: "OpaqueRef:h".to_owned(),
                term: 5,
                action: HostAction::Vm(host_api::VmAction::Shutdown {
                    vm: "u".to_owned(),
                    clean: false,
                }),
            },
            LinkFrame::ActionResult {
                id: 2,
                result: Ok(ActionResult::Domain(None)),
            },
        ];
        for frame in frames {
            assert_eq!(LinkFrame::decode(&frame.encode()).expect("decodes"), frame);
        }
        assert!(LinkFrame::decode(b"\xc1nonsense").is_err());
    }
}
