//! XML-RPC as xapi speaks it: `methodCall` in; a `Status`/`Value`/`ErrorDescription` struct out,
//! strings and int64s untyped, dash-less datetimes, `<nil/>`.

use crate::codec::{Limits, MethodCall};
use crate::error::DecodeError;
use crate::errors::ApiError;
use crate::types::Value;

/// Decodes a `methodCall` request body.
pub fn decode_call(body: &[u8], limits: &Limits) -> Result<MethodCall, DecodeError> {
    let _ = (body, limits);
    todo!()
}

/// Encodes a `methodCall` (for clients).
pub fn encode_call(call: &MethodCall) -> String {
    let _ = call;
    todo!()
}

/// Encodes a reply in xapi's envelope: `{Status: Success, Value}` or
/// `{Status: Failure, ErrorDescription: [code, params…]}`.
pub fn encode_response(result: &Result<Value, ApiError>) -> String {
    let _ = result;
    todo!()
}

/// Encodes a reply without the envelope, as xapi answers `system.listMethods`.
pub fn encode_raw_response(value: &Value) -> String {
    let _ = value;
    todo!()
}

/// Decodes a `methodResponse` (for clients): the enveloped result, or, for a reply without the
/// envelope, the bare value as a success.
pub fn decode_response(
    body: &[u8],
    limits: &Limits,
) -> Result<Result<Value, ApiError>, DecodeError> {
    let _ = (body, limits);
    todo!()
}

/// One `<value>…</value>` element: what a task's `result` field holds.
pub fn encode_value(value: &Value) -> String {
    let _ = value;
    todo!()
}

/// Decodes one `<value>…</value>` element.
pub fn decode_value(text: &str, limits: &Limits) -> Result<Value, DecodeError> {
    let _ = (text, limits);
    todo!()
}
