//! Property tests over both codecs: round trips of random values, and decoders fed random and
//! mutated bodies.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;

use crate::codec::xml_write::carried;
use crate::codec::{Limits, MethodCall, jsonrpc, xmlrpc};
use crate::datetime;
use crate::error::DecodeError;
use crate::errors::ApiError;
use crate::types::Value;

/// Characters that stress escaping: markup, whitespace, controls, non-characters, astral planes.
const TRICKY_CHARS: &[char] = &[
    'a', ' ', '\t', '\n', '\r', '&', '<', '>', '"', '\'', ';', '#', ']', '\u{0}', '\u{1}',
    '\u{1f}', '\u{7f}', '\u{85}', 'é', '\u{2028}', '\u{fffd}', '\u{fffe}', '\u{ffff}', '😀',
];

/// Arbitrary unicode strings, or short ones made of `TRICKY_CHARS`.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(TRICKY_CHARS), 0..16)
            .prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), any::<i64>()].prop_map(Value::Int),
        prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()].prop_map(Value::Int32),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            any::<f64>(),
        ]
        .prop_map(Value::Float),
        text().prop_map(Value::String),
        (-20_000_000_000i64..20_000_000_000)
            .prop_map(|secs| Value::DateTime(datetime::format_unix(secs))),
    ]
}

/// Values nested up to four levels, with arbitrary unicode strings and member names.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6).prop_map(Value::Struct),
        ]
    })
}

/// Calls whose every string is text XML 1.0 can carry: the decoders refuse any other.
fn method_call() -> impl Strategy<Value = MethodCall> {
    (
        "[A-Za-z][A-Za-z0-9_.]{0,30}",
        prop::collection::vec(value().prop_map(|v| carries(&v)), 0..4),
    )
        .prop_map(|(method, params)| MethodCall { method, params })
}

fn api_error() -> impl Strategy<Value = ApiError> {
    (text(), prop::collection::vec(text(), 0..4))
        .prop_map(|(code, params)| ApiError { code, params })
}

fn json_id() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ]
}

fn version() -> impl Strategy<Value = jsonrpc::Version> {
    prop_oneof![Just(jsonrpc::Version::V1), Just(jsonrpc::Version::V2)]
}

/// `value` with the characters XML 1.0 cannot carry dropped from its strings and member names
/// (of members whose names then coincide, the last is kept).
fn carries(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(carried(s)),
        Value::Array(items) => Value::Array(items.iter().map(carries).collect()),
        Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(name, item)| (carried(name), carries(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A value as XML-RPC carries it: an int64 is an untyped string, and strings and member names
/// lose the characters XML 1.0 cannot carry; `None` when two member names of a struct then
/// coincide, which the reader refuses.
fn as_xmlrpc_carries(value: &Value) -> Option<Value> {
    Some(match value {
        Value::Int(i) => Value::String(i.to_string()),
        Value::String(s) => Value::String(carried(s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(as_xmlrpc_carries).collect::<Option<_>>()?)
        }
        Value::Struct(members) => {
            let mut carried_members = BTreeMap::new();
            for (name, item) in members {
                let item = as_xmlrpc_carries(item)?;
                if carried_members.insert(carried(name), item).is_some() {
                    return None;
                }
            }
            Value::Struct(carried_members)
        }
        other => other.clone(),
    })
}

/// A value as JSON carries it: an int32 is an int, a datetime its string, and a non-finite float
/// `null`.
fn as_json_carries(value: &Value) -> Value {
    match value {
        Value::Int32(i) => Value::Int(i64::from(*i)),
        Value::Float(f) if !f.is_finite() => Value::Nil,
        Value::DateTime(s) => Value::String(s.clone()),
        Value::Array(items) => Value::Array(items.iter().map(as_json_carries).collect()),
        Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(name, item)| (name.clone(), as_json_carries(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Equality where NaN equals NaN and doubles must be bit for bit the same.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Value::Struct(xs), Value::Struct(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

fn all_same(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Feeds `body` to every decoder, with the default limits and with tight ones; only a panic
/// fails.
fn decode_everywhere(body: &[u8]) {
    let tight = Limits {
        max_body_bytes: 4096,
        max_depth: 3,
        max_string_bytes: 16,
        max_values: 24,
    };
    for limits in [Limits::default(), tight] {
        let _ = xmlrpc::decode_call(body, &limits);
        let _ = xmlrpc::decode_response(body, &limits);
        let _ = xmlrpc::decode_value(&String::from_utf8_lossy(body), &limits);
        let _ = jsonrpc::decode_call(body, &limits);
        let _ = jsonrpc::decode_response(body, &limits);
    }
}

/// Fragments that decoders have to make sense of, glued at random.
const XML_FRAGMENTS: &[&str] = &[
    "<?xml version=\"1.0\"?>",
    "<methodCall>",
    "</methodCall>",
    "<methodName>",
    "</methodName>",
    "<methodResponse>",
    "</methodResponse>",
    "<params>",
    "</params>",
    "<param>",
    "</param>",
    "<fault>",
    "</fault>",
    "<value>",
    "</value>",
    "<value/>",
    "<array>",
    "</array>",
    "<data>",
    "</data>",
    "<struct>",
    "</struct>",
    "<member>",
    "</member>",
    "<name>",
    "</name>",
    "<i4>",
    "</i4>",
    "<int>",
    "</int>",
    "<double>",
    "</double>",
    "<boolean>",
    "</boolean>",
    "<dateTime.iso8601>",
    "</dateTime.iso8601>",
    "<base64>",
    "</base64>",
    "<nil/>",
    "<string>",
    "</string>",
    "Status",
    "Success",
    "Failure",
    "Value",
    "ErrorDescription",
    "faultCode",
    "faultString",
    "1",
    "-9223372036854775809",
    "2024-01-01T00:00:00+99:99",
    "aGVsbG8=",
    "&lt;",
    "&#x0;",
    "&#65;",
    "&bogus;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<!DOCTYPE x>",
    " ",
    "\r\n",
    "é",
];

const JSON_FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\"jsonrpc\"",
    "\"2.0\"",
    "\"method\"",
    "\"params\"",
    "\"id\"",
    "\"result\"",
    "\"error\"",
    "\"code\"",
    "\"message\"",
    "\"data\"",
    "null",
    "true",
    "1",
    "-0",
    "1.5e308",
    "1e999",
    "99999999999999999999",
    "\"\\ud800\"",
    "\"\\u0041\"",
    " ",
];

fn glued(fragments: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(fragments), 0..40).prop_map(|parts| parts.concat())
}

/// Applies byte edits (replace, insert, delete) at random places.
fn mutate(body: &str, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    for (at, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match kind % 3 {
            0 => bytes[i] = *byte,
            1 => bytes.insert(i, *byte),
            _ => {
                bytes.remove(i);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An XML-RPC call reads back as sent, as XML-RPC carries its values.
    #[test]
    fn xmlrpc_calls_round_trip(call in method_call()) {
        let decoded = xmlrpc::decode_call(xmlrpc::encode_call(&call).as_bytes(), &Limits::default());
        let decoded = decoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<Value> = call.params.iter().map(as_xmlrpc_carries).collect::<Option<_>>()
            .expect("names that XML carries as they are cannot coincide");
        prop_assert_eq!(&decoded.method, &call.method);
        prop_assert!(all_same(&decoded.params, &want), "{:?} != {:?}", decoded.params, want);
    }

    /// An XML-RPC success reads back as its value, unless dropping what XML cannot carry
    /// made two member names the same.
    #[test]
    fn xmlrpc_successes_round_trip(value in value()) {
        let body = xmlrpc::encode_response(&Ok(value.clone()));
        let decoded = xmlrpc::decode_response(body.as_bytes(), &Limits::default());
        match as_xmlrpc_carries(&value) {
            Some(want) => {
                let decoded = decoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(matches!(&decoded, Ok(got) if same(got, &want)), "{:?} != {:?}", decoded, want);
            }
            None => prop_assert_eq!(decoded, Err(DecodeError::DuplicateMember)),
        }
    }

    /// An XML-RPC failure reads back as its code and parameters.
    #[test]
    fn xmlrpc_failures_round_trip(error in api_error()) {
        let body = xmlrpc::encode_response(&Err(error.clone()));
        let decoded = xmlrpc::decode_response(body.as_bytes(), &Limits::default());
        let want = ApiError {
            code: carried(&error.code),
            params: error.params.iter().map(|p| carried(p)).collect(),
        };
        prop_assert_eq!(decoded, Ok(Err(want)));
    }

    /// A single XML-RPC value element reads back as its value.
    #[test]
    fn xmlrpc_values_round_trip(value in value()) {
        let decoded = xmlrpc::decode_value(&xmlrpc::encode_value(&value), &Limits::default());
        match as_xmlrpc_carries(&value) {
            Some(want) => {
                let decoded = decoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(same(&decoded, &want));
            }
            None => prop_assert_eq!(decoded, Err(DecodeError::DuplicateMember)),
        }
    }

    /// A call with a character XML 1.0 forbids anywhere in its strings is refused over both
    /// protocols.
    #[test]
    fn calls_with_forbidden_characters_are_refused(
        call in method_call(),
        forbidden in prop::sample::select(&['\u{0}', '\u{1}', '\u{b}', '\u{1f}', '\u{fffe}', '\u{ffff}'][..]),
        at in any::<Index>(),
    ) {
        let mut params = call.params.clone();
        let text = format!("a{forbidden}");
        let slot = at.index(params.len() + 1);
        params.insert(slot, Value::Array(vec![Value::Struct(BTreeMap::from([(text.clone(), Value::Nil)]))]));
        let call = MethodCall { method: call.method, params };
        let want = Err(DecodeError::ForbiddenCharacter { code_point: u32::from(forbidden) });
        let json = jsonrpc::encode_call(jsonrpc::Version::V2, &serde_json::Value::from(1), &call);
        prop_assert_eq!(jsonrpc::decode_call(json.as_bytes(), &Limits::default()).map(|_| ()), want.clone());
        let mut xml = xmlrpc::encode_call(&call);
        // The writer drops what XML cannot carry: put the character back, raw.
        xml = xml.replacen("<name>a</name>", &format!("<name>{text}</name>"), 1);
        prop_assert_eq!(xmlrpc::decode_call(xml.as_bytes(), &Limits::default()).map(|_| ()), want);
    }

    /// A JSON-RPC call reads back with its version, id and values as JSON carries them.
    #[test]
    fn jsonrpc_calls_round_trip(call in method_call(), id in json_id(), version in version()) {
        let body = jsonrpc::encode_call(version, &id, &call);
        let decoded = jsonrpc::decode_call(body.as_bytes(), &Limits::default());
        let decoded = decoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<Value> = call.params.iter().map(as_json_carries).collect();
        prop_assert_eq!(decoded.version, version);
        prop_assert_eq!(&decoded.id, &id);
        prop_assert_eq!(&decoded.call.method, &call.method);
        prop_assert!(all_same(&decoded.call.params, &want), "{:?} != {:?}", decoded.call.params, want);
    }

    /// A JSON-RPC reply, success or failure, reads back in either version.
    #[test]
    fn jsonrpc_replies_round_trip(
        value in value(),
        error in api_error(),
        id in json_id(),
        version in version(),
    ) {
        let body = jsonrpc::encode_response(version, &id, &Ok(value.clone()));
        let decoded = jsonrpc::decode_response(body.as_bytes(), &Limits::default());
        let decoded = decoded.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = as_json_carries(&value);
        prop_assert!(matches!(&decoded, Ok(got) if same(got, &want)), "{:?} != {:?}", decoded, want);
        let body = jsonrpc::encode_response(version, &id, &Err(error.clone()));
        prop_assert_eq!(jsonrpc::decode_response(body.as_bytes(), &Limits::default()), Ok(Err(error)));
    }

    /// No byte string makes a decoder panic.
    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_everywhere(&body);
    }

    /// No glue of protocol fragments makes a decoder panic.
    #[test]
    fn glued_fragments_never_panic(xml in glued(XML_FRAGMENTS), json in glued(JSON_FRAGMENTS)) {
        decode_everywhere(xml.as_bytes());
        decode_everywhere(json.as_bytes());
    }

    /// No mutation of a valid body makes a decoder panic.
    #[test]
    fn mutated_bodies_never_panic(
        call in method_call(),
        error in api_error(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let id = serde_json::Value::from(1);
        let bodies = [
            xmlrpc::encode_call(&call),
            xmlrpc::encode_response(&Ok(Value::Array(call.params.clone()))),
            xmlrpc::encode_response(&Err(error.clone())),
            jsonrpc::encode_call(jsonrpc::Version::V2, &id, &call),
            jsonrpc::encode_response(jsonrpc::Version::V1, &id, &Ok(Value::Array(call.params.clone()))),
            jsonrpc::encode_response(jsonrpc::Version::V2, &id, &Err(error)),
        ];
        for body in &bodies {
            decode_everywhere(&mutate(body, &edits));
        }
    }
}
