//! JSON-RPC 1.0 and 2.0 as xapi speaks them on `POST /jsonrpc`.

use serde::Serialize;
use serde::ser::Serializer;

use crate::codec::json_value::{Json, NODE_MARKUP, api_error, parse_object, to_text};
use crate::codec::{Limits, MethodCall, check_characters, len_hint};
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

/// The `code` of every V2 error object, as xapi sends it (some clients take 0 for "no error").
const ERROR_CODE: i64 = 1;

/// Decodes a request body. `params` must be an array, except in V2 where it may be missing or
/// `null` (no params) or an object (one struct param). A request without an id is a
/// notification, which xapi refuses too.
pub fn decode_call(body: &[u8], limits: &Limits) -> Result<JsonCall, DecodeError> {
    let mut request = parse_object(body, limits)?;
    let method = match request.remove("method") {
        Some(Value::String(method)) => method,
        _ => return Err(DecodeError::malformed("method must be a string")),
    };
    let version = version(request.get("jsonrpc"))?;
    let params = match (version, request.remove("params")) {
        (_, Some(Value::Array(items))) => items,
        (Version::V2, None | Some(Value::Nil)) => Vec::new(),
        (Version::V2, Some(object @ Value::Struct(_))) => vec![object],
        _ => return Err(DecodeError::malformed("params must be an array")),
    };
    let id = match request.remove("id") {
        Some(Value::String(id)) => serde_json::Value::String(id),
        Some(Value::Int(id)) => serde_json::Value::from(id),
        None | Some(Value::Nil) => {
            return Err(DecodeError::malformed(
                "a request without an id (a notification) is not supported",
            ));
        }
        Some(_) => return Err(DecodeError::malformed("id must be a string or an integer")),
    };
    let call = MethodCall { method, params };
    check_characters(&call)?;
    Ok(JsonCall { call, id, version })
}

/// Encodes a request (for clients); params are always an array.
pub fn encode_call(version: Version, id: &serde_json::Value, call: &MethodCall) -> String {
    #[derive(Serialize)]
    struct Request<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        jsonrpc: Option<&'static str>,
        method: &'a str,
        #[serde(serialize_with = "values")]
        params: &'a [Value],
        id: &'a serde_json::Value,
    }
    let request = Request {
        jsonrpc: (version == Version::V2).then_some("2.0"),
        method: &call.method,
        params: &call.params,
        id,
    };
    let hint: usize = call.params.iter().map(|p| len_hint(p, NODE_MARKUP)).sum();
    to_text(&request, 64 + call.method.len() + hint)
}

/// Encodes a reply: V1 `{result, error: null|[code, params…], id}`; V2
/// `{jsonrpc: "2.0", result, id}` or `{jsonrpc: "2.0", error: {code: 1, message: CODE, data:
/// [params…]}, id}`.
pub fn encode_response(
    version: Version,
    id: &serde_json::Value,
    result: &Result<Value, ApiError>,
) -> String {
    #[derive(Serialize)]
    struct ReplyV1<'a> {
        result: Option<Json<'a>>,
        #[serde(serialize_with = "description")]
        error: Option<&'a ApiError>,
        id: &'a serde_json::Value,
    }
    #[derive(Serialize)]
    struct ReplyV2<'a> {
        jsonrpc: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Json<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorObject<'a>>,
        id: &'a serde_json::Value,
    }
    #[derive(Serialize)]
    struct ErrorObject<'a> {
        code: i64,
        message: &'a str,
        data: &'a [String],
    }
    let capacity = match result {
        Ok(value) => 64 + len_hint(value, NODE_MARKUP),
        Err(error) => {
            96 + error.code.len() + error.params.iter().map(|p| p.len() + 4).sum::<usize>()
        }
    };
    match version {
        Version::V1 => to_text(
            &ReplyV1 {
                result: result.as_ref().ok().map(Json),
                error: result.as_ref().err(),
                id,
            },
            capacity,
        ),
        Version::V2 => to_text(
            &ReplyV2 {
                jsonrpc: "2.0",
                result: result.as_ref().ok().map(Json),
                error: result.as_ref().err().map(|error| ErrorObject {
                    code: ERROR_CODE,
                    message: &error.code,
                    data: &error.params,
                }),
                id,
            },
            capacity,
        ),
    }
}

/// Decodes a reply (for clients), in either version. An error may be the V2 object
/// `{code, message, data}` or an array `[code, params…]` (V1, and V2 before XenServer 7.3).
pub fn decode_response(
    body: &[u8],
    limits: &Limits,
) -> Result<Result<Value, ApiError>, DecodeError> {
    let mut reply = parse_object(body, limits)?;
    version(reply.get("jsonrpc"))?;
    let error = reply
        .remove("error")
        .filter(|error| !matches!(error, Value::Nil));
    match (reply.remove("result"), error) {
        (None | Some(Value::Nil), Some(error)) => Ok(Err(api_error(error)?)),
        (Some(result), None) => Ok(Ok(result)),
        (Some(_), Some(_)) => Err(DecodeError::malformed(
            "reply has both a result and an error",
        )),
        (None, None) => Err(DecodeError::malformed(
            "reply has neither a result nor an error",
        )),
    }
}

/// A value as JSON: ints and floats as numbers, datetimes as their text. A non-finite float,
/// which JSON cannot carry, becomes `null`.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Int32(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::String(s) | Value::DateTime(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Struct(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(name, item)| (name.clone(), to_json(item)))
                .collect(),
        ),
    }
}

/// JSON as a value: integral numbers become `Int`, other numbers `Float`, `null` `Nil`. An
/// integer beyond i64 becomes a `Float` here; the decoders refuse it instead.
pub fn from_json(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(members) => Value::Struct(
            members
                .into_iter()
                .map(|(name, item)| (name, from_json(item)))
                .collect(),
        ),
    }
}

fn version(jsonrpc: Option<&Value>) -> Result<Version, DecodeError> {
    match jsonrpc {
        None => Ok(Version::V1),
        Some(Value::String(v)) if v == "2.0" => Ok(Version::V2),
        Some(_) => Err(DecodeError::malformed("unsupported jsonrpc version")),
    }
}

fn values<S: Serializer>(values: &&[Value], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(Json))
}

/// A V1 error: `null`, or `[code, params…]`.
fn description<S: Serializer>(error: &Option<&ApiError>, serializer: S) -> Result<S::Ok, S::Error> {
    match error {
        None => serializer.serialize_none(),
        Some(error) => serializer.collect_seq(std::iter::once(&error.code).chain(&error.params)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn call(body: &str) -> Result<JsonCall, DecodeError> {
        decode_call(body.as_bytes(), &Limits::default())
    }

    fn response(body: &str) -> Result<Result<Value, ApiError>, DecodeError> {
        decode_response(body.as_bytes(), &Limits::default())
    }

    fn malformed<T: std::fmt::Debug>(result: Result<T, DecodeError>) -> bool {
        matches!(result, Err(DecodeError::Malformed { .. }))
    }

    /// V1 replies carry both result and error, one of them null.
    #[test]
    fn v1_replies_match_xapis_bytes() {
        let id = json!(1);
        assert_eq!(
            encode_response(Version::V1, &id, &Ok(Value::str("OpaqueRef:a"))),
            r#"{"result":"OpaqueRef:a","error":null,"id":1}"#
        );
        assert_eq!(
            encode_response(
                Version::V1,
                &id,
                &Err(ApiError::new("VM_IS_TEMPLATE", ["OpaqueRef:v"]))
            ),
            r#"{"result":null,"error":["VM_IS_TEMPLATE","OpaqueRef:v"],"id":1}"#
        );
    }

    /// V2 replies carry either a result or an error object with code 1.
    #[test]
    fn v2_replies_match_xapis_bytes() {
        let id = json!("7");
        let record = Value::Struct(BTreeMap::from([
            ("memory_target".to_owned(), Value::Int(4_294_967_296)),
            (
                "last_updated".to_owned(),
                Value::DateTime("20240101T00:00:00Z".into()),
            ),
            ("ratio".to_owned(), Value::Float(0.5)),
            ("affinity".to_owned(), Value::Nil),
        ]));
        assert_eq!(
            encode_response(Version::V2, &id, &Ok(record)),
            r#"{"jsonrpc":"2.0","result":{"affinity":null,"last_updated":"20240101T00:00:00Z","memory_target":4294967296,"ratio":0.5},"id":"7"}"#
        );
        assert_eq!(
            encode_response(
                Version::V2,
                &id,
                &Err(ApiError::new("SESSION_INVALID", ["OpaqueRef:s"]))
            ),
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID","data":["OpaqueRef:s"]},"id":"7"}"#
        );
    }

    /// Requests are written with array params and read back with their version and id.
    #[test]
    fn calls_are_written_and_read_back() {
        let sent = MethodCall {
            method: "VM.start".into(),
            params: vec![
                Value::str("OpaqueRef:s"),
                Value::Bool(false),
                Value::Int(-1),
            ],
        };
        let v2 = encode_call(Version::V2, &json!(3), &sent);
        assert_eq!(
            v2,
            r#"{"jsonrpc":"2.0","method":"VM.start","params":["OpaqueRef:s",false,-1],"id":3}"#
        );
        assert_eq!(
            call(&v2),
            Ok(JsonCall {
                call: sent.clone(),
                id: json!(3),
                version: Version::V2
            })
        );
        let v1 = encode_call(Version::V1, &json!("x"), &sent);
        assert_eq!(
            v1,
            r#"{"method":"VM.start","params":["OpaqueRef:s",false,-1],"id":"x"}"#
        );
        assert_eq!(call(&v1).map(|c| c.version), Ok(Version::V1));
    }

    /// V2 params may be missing, null or one object; V1 params must be an array.
    #[test]
    fn params_shapes_follow_the_version() {
        let v2 = |params: &str| {
            call(&format!(
                r#"{{"jsonrpc":"2.0","method":"m","id":1{params}}}"#
            ))
        };
        assert_eq!(v2("").map(|c| c.call.params), Ok(vec![]));
        assert_eq!(v2(r#","params":null"#).map(|c| c.call.params), Ok(vec![]));
        assert_eq!(
            v2(r#","params":{"a":1}"#).map(|c| c.call.params),
            Ok(vec![Value::Struct(BTreeMap::from([(
                "a".to_owned(),
                Value::Int(1)
            )]))])
        );
        assert!(malformed(v2(r#","params":"x""#)));
        assert!(malformed(call(r#"{"method":"m","id":1}"#)));
        assert!(malformed(call(r#"{"method":"m","params":{},"id":1}"#)));
        assert!(malformed(call(r#"{"method":"m","params":"s","id":1}"#)));
    }

    /// The version must be absent or "2.0"; the id a string or an integer; the method a string.
    #[test]
    fn bad_versions_ids_and_methods_are_malformed() {
        for body in [
            r#"{"jsonrpc":"1.0","method":"m","params":[],"id":1}"#,
            r#"{"jsonrpc":2.0,"method":"m","params":[],"id":1}"#,
            r#"{"method":"m","params":[],"id":null}"#,
            r#"{"method":"m","params":[]}"#,
            r#"{"method":"m","params":[],"id":1.5}"#,
            r#"{"method":"m","params":[],"id":[1]}"#,
            r#"{"method":1,"params":[],"id":1}"#,
            r#"{"params":[],"id":1}"#,
            r#"["m"]"#,
            r#"{"method":"m","params":[],"id":1"#,
            "",
        ] {
            assert!(malformed(call(body)), "{body}");
        }
    }

    /// Numbers keep their kind: integral within i64 is Int, else Float; beyond i64 is refused.
    #[test]
    fn numbers_are_ints_floats_or_refused() {
        let params = |p: &str| {
            call(&format!(r#"{{"method":"m","params":[{p}],"id":1}}"#)).map(|c| c.call.params)
        };
        assert_eq!(
            params("-9223372036854775808"),
            Ok(vec![Value::Int(i64::MIN)])
        );
        assert_eq!(params("60.1"), Ok(vec![Value::Float(60.1)]));
        assert_eq!(params("1e3"), Ok(vec![Value::Float(1000.0)]));
        assert!(malformed(params("9223372036854775808")));
        assert!(malformed(params("100000000000000000000000")));
    }

    /// Replies of both versions and both error shapes are read.
    #[test]
    fn replies_of_every_shape_are_read() {
        let failure = Err(ApiError::new("HANDLE_INVALID", ["VM", "OpaqueRef:x"]));
        assert_eq!(
            response(r#"{"result":"","error":null,"id":1}"#),
            Ok(Ok(Value::str("")))
        );
        assert_eq!(
            response(r#"{"result":null,"error":null,"id":1}"#),
            Ok(Ok(Value::Nil))
        );
        assert_eq!(
            response(r#"{"result":null,"error":["HANDLE_INVALID","VM","OpaqueRef:x"],"id":1}"#),
            Ok(failure.clone())
        );
        assert_eq!(
            response(r#"{"jsonrpc":"2.0","result":[1],"id":1}"#),
            Ok(Ok(Value::Array(vec![Value::Int(1)])))
        );
        assert_eq!(
            response(
                r#"{"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["VM","OpaqueRef:x"]},"id":1}"#
            ),
            Ok(failure.clone())
        );
        assert_eq!(
            response(r#"{"jsonrpc":"2.0","error":["HANDLE_INVALID","VM","OpaqueRef:x"],"id":1}"#),
            Ok(failure)
        );
        assert_eq!(
            response(r#"{"jsonrpc":"2.0","error":{"code":1,"message":"X"},"id":1}"#),
            Ok(Err(ApiError::new("X", Vec::<String>::new())))
        );
    }

    /// Replies with both, neither, or a shapeless error are malformed.
    #[test]
    fn inconsistent_replies_are_malformed() {
        for body in [
            r#"{"result":1,"error":["X"],"id":1}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","error":[],"id":1}"#,
            r#"{"jsonrpc":"2.0","error":"X","id":1}"#,
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":"y"},"id":1}"#,
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":[[1]]},"id":1}"#,
            r#"{"jsonrpc":"3.0","result":1,"id":1}"#,
        ] {
            assert!(malformed(response(body)), "{body}");
        }
    }

    /// Hostile bodies get the right error: size first, then UTF-8, depth and string length.
    #[test]
    fn hostile_bodies_get_the_right_error() {
        let small = Limits {
            max_body_bytes: 16,
            ..Limits::default()
        };
        let body = br#"{"method":"m","params":[],"id":1}"#;
        assert_eq!(
            decode_call(body, &small),
            Err(DecodeError::BodyTooLarge {
                size: body.len(),
                limit: 16
            })
        );
        assert_eq!(
            decode_call(
                b"{\"method\":\"\xff\",\"params\":[],\"id\":1}",
                &Limits::default()
            ),
            Err(DecodeError::InvalidUtf8)
        );
        let deep = format!(r#"{{"method":"m","id":1,"params":{}"#, "[".repeat(100_000));
        assert_eq!(call(&deep), Err(DecodeError::TooDeep { limit: 64 }));
        let deep = format!(
            r#"{{"method":"m","id":1,"params":[{}"#,
            r#"{"a":"#.repeat(100_000)
        );
        assert_eq!(call(&deep), Err(DecodeError::TooDeep { limit: 64 }));
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let two = br#"{"method":"m","id":1,"params":[[{}]]}"#;
        assert!(decode_call(two, &limits).is_ok());
        let three = br#"{"method":"m","id":1,"params":[[{"a":[]}]]}"#;
        assert_eq!(
            decode_call(three, &limits),
            Err(DecodeError::TooDeep { limit: 2 })
        );
        let object = br#"{"jsonrpc":"2.0","method":"m","id":1,"params":{"a":{"b":{}}}}"#;
        assert_eq!(
            decode_call(object, &limits),
            Err(DecodeError::TooDeep { limit: 2 })
        );
        let short = Limits {
            max_string_bytes: 4,
            ..Limits::default()
        };
        for body in [
            &br#"{"method":"m","id":1,"params":["abcde"]}"#[..],
            br#"{"method":"m","id":1,"params":[{"abcde":1}]}"#,
            br#"{"method":"mmmmm","id":1,"params":[]}"#,
            br#"{"method":"m","id":"iiiii","params":[]}"#,
        ] {
            assert!(matches!(
                decode_call(body, &short),
                Err(DecodeError::StringTooLong { limit: 4, .. })
            ));
        }
    }

    /// A request that names a member twice is refused, whichever member it is: with the last
    /// one winning, `VM.get_all` could turn into `session.logout`.
    #[test]
    fn requests_naming_a_member_twice_are_refused() {
        for body in [
            r#"{"method":"VM.get_all","method":"session.logout","params":["s"],"id":1}"#,
            r#"{"method":"m","params":[],"params":["s"],"id":1}"#,
            r#"{"method":"m","params":[{"a":1,"a":2}],"id":1}"#,
        ] {
            assert_eq!(call(body), Err(DecodeError::DuplicateMember), "{body}");
        }
    }

    /// A call whose strings, member names or method hold a character XML 1.0 forbids is
    /// refused: it could not be sent back over XML-RPC.
    #[test]
    fn calls_with_characters_xml_forbids_are_refused() {
        let forbidden = |code_point| Err(DecodeError::ForbiddenCharacter { code_point });
        let code_point = |body: &str| call(body).map(|_| ());
        assert_eq!(
            code_point(r#"{"method":"m","params":["a\u0000b"],"id":1}"#),
            forbidden(0)
        );
        assert_eq!(
            code_point(r#"{"method":"m","params":[{"\u001f":1}],"id":1}"#),
            forbidden(0x1f)
        );
        assert_eq!(
            code_point(r#"{"method":"m\uffff","params":[],"id":1}"#),
            forbidden(0xffff)
        );
        assert_eq!(
            code_point(r#"{"method":"m","params":["\t\n\r\ud83d\ude00"],"id":"\u0000"}"#),
            Ok(())
        );
    }

    /// A body of more values than the limit is refused before anything is built from it.
    #[test]
    fn bodies_of_too_many_values_are_refused() {
        let limits = Limits {
            max_values: 1000,
            ..Limits::default()
        };
        let body = format!(
            r#"{{"method":"m","params":[{}],"id":1}}"#,
            vec!["[]"; 1000].join(",")
        );
        assert_eq!(
            decode_call(body.as_bytes(), &limits),
            Err(DecodeError::TooManyValues { limit: 1000 })
        );
        let reply = format!(r#"{{"result":[{}],"error":null,"id":1}}"#, "0,".repeat(999));
        assert!(matches!(
            decode_response(reply.as_bytes(), &limits),
            Err(DecodeError::TooManyValues { limit: 1000 })
        ));
    }

    /// to_json and from_json map each kind as the wire does.
    #[test]
    fn json_conversions_map_each_kind() {
        let value = Value::Array(vec![
            Value::Int(1),
            Value::Int32(2),
            Value::Float(0.5),
            Value::Float(f64::INFINITY),
            Value::DateTime("19700101T00:00:00Z".into()),
        ]);
        let json = to_json(&value);
        assert_eq!(json, json!([1, 2, 0.5, null, "19700101T00:00:00Z"]));
        assert_eq!(
            from_json(json),
            Value::Array(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Float(0.5),
                Value::Nil,
                Value::str("19700101T00:00:00Z"),
            ])
        );
        assert_eq!(
            from_json(json!(18446744073709551615u64)),
            Value::Float(18446744073709551615.0)
        );
    }
}
