//! JSON-RPC 1.0 and 2.0 as xapi speaks them on `POST /jsonrpc`.

use crate::codec::{Limits, MethodCall};
use crate::error::DecodeError;
use crate::errors::ApiError;
use crate::types::Value;

/// The protocol version of a request: `"jsonrpc": "2.0"` is V2; no `jsonrpc` member is V1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A decoded JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCall {
    pub call: MethodCall,
    /// The request id, echoed in the reply: a string or an integer.
    pub id: serde_json::Value,
    pub version: Version,
}

/// Decodes a request body.
pub fn decode_call(body: &[u8], limits: &Limits) -> Result<JsonCall, DecodeError> {
    let _ = (body, limits);
    todo!()
}

/// Encodes a request (for clients).
pub fn encode_call(version: Version, id: &serde_json::Value, call: &MethodCall) -> String {
    let _ = (version, id, call);
    todo!()
}

/// Encodes a reply: V1 `{result, error: null|[code, params…], id}`; V2
/// `{jsonrpc: "2.0", result, id}` or `{jsonrpc: "2.0", error: {code: 1, message: CODE, data:
/// [params…]}, id}`.
pub fn encode_response(
    version: Version,
    id: &serde_json::Value,
    result: &Result<Value, ApiError>,
) -> String {
    let _ = (version, id, result);
    todo!()
}

/// Decodes a reply (for clients), in either version.
pub fn decode_response(
    body: &[u8],
    limits: &Limits,
) -> Result<Result<Value, ApiError>, DecodeError> {
    let _ = (body, limits);
    todo!()
}

/// A value as JSON: ints and floats as numbers, datetimes as their text.
pub fn to_json(value: &Value) -> serde_json::Value {
    let _ = value;
    todo!()
}

/// JSON as a value: integral numbers become `Int`, other numbers `Float`, `null` `Nil`.
pub fn from_json(json: serde_json::Value) -> Value {
    let _ = json;
    todo!()
}
