//! XML-RPC as xapi speaks it: `methodCall` in; a `Status`/`Value`/`ErrorDescription` struct out,
//! strings and int64s untyped, dash-less datetimes, `<nil/>`.

use crate::codec::xml_read::{Tag, Token, XmlReader};
use crate::codec::xml_write::{NODE_MARKUP, escape_into, write_value};
use crate::codec::{Limits, MethodCall, check_characters, len_hint};
use crate::error::DecodeError;
use crate::errors::ApiError;
use crate::types::Value;

/// The code of the `ApiError` that stands for a standard XML-RPC `<fault>`; its parameters are
/// the `faultCode` and the `faultString`. xapi never sends a fault; its client library reads one
/// the same way.
pub const FAULT_CODE: &str = "fault";

const DECLARATION: &str = "<?xml version=\"1.0\"?>";
const RESPONSE_OPEN: &str = "<?xml version=\"1.0\"?><methodResponse><params><param>";
const RESPONSE_CLOSE: &str = "</param></params></methodResponse>";

/// Decodes a `methodCall` request body.
pub fn decode_call(body: &[u8], limits: &Limits) -> Result<MethodCall, DecodeError> {
    let call = read_call(body, limits)?;
    check_characters(&call)?;
    Ok(call)
}

fn read_call(body: &[u8], limits: &Limits) -> Result<MethodCall, DecodeError> {
    let mut reader = XmlReader::new(body, limits)?;
    reader.open(Tag::MethodCall)?;
    let method = match reader.next_element()? {
        Token::Open(Tag::MethodName) => reader.text()?.trim().to_owned(),
        Token::Empty(Tag::MethodName) => String::new(),
        _ => return Err(DecodeError::malformed("methodCall has no methodName")),
    };
    let mut params = Vec::new();
    match reader.next_element()? {
        Token::Open(Tag::Params) => loop {
            match reader.next_element()? {
                Token::Open(Tag::Param) => {
                    params.push(reader.value_element()?);
                    reader.close(Tag::Param)?;
                }
                Token::Close(Tag::Params) => break,
                _ => return Err(DecodeError::malformed("expected <param> or </params>")),
            }
        },
        Token::Empty(Tag::Params) => {}
        Token::Close(Tag::MethodCall) => {
            reader.end()?;
            return Ok(MethodCall { method, params });
        }
        _ => return Err(DecodeError::malformed("expected <params> or </methodCall>")),
    }
    reader.close(Tag::MethodCall)?;
    reader.end()?;
    Ok(MethodCall { method, params })
}

/// Encodes a `methodCall` (for clients).
pub fn encode_call(call: &MethodCall) -> String {
    let hint: usize = call
        .params
        .iter()
        .map(|param| len_hint(param, NODE_MARKUP) + 16)
        .sum();
    let mut out = String::with_capacity(96 + call.method.len() + hint);
    out.push_str(DECLARATION);
    out.push_str("<methodCall><methodName>");
    escape_into(&mut out, &call.method);
    out.push_str("</methodName><params>");
    for param in &call.params {
        out.push_str("<param>");
        write_value(&mut out, param);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// Encodes a reply in xapi's envelope: `{Status: Success, Value}` or
/// `{Status: Failure, ErrorDescription: [code, params…]}`.
pub fn encode_response(result: &Result<Value, ApiError>) -> String {
    match result {
        Ok(value) => {
            let mut out = String::with_capacity(256 + len_hint(value, NODE_MARKUP));
            out.push_str(RESPONSE_OPEN);
            out.push_str(
                "<value><struct><member><name>Status</name><value>Success</value></member>\
                 <member><name>Value</name>",
            );
            write_value(&mut out, value);
            out.push_str("</member></struct></value>");
            out.push_str(RESPONSE_CLOSE);
            out
        }
        Err(error) => {
            let hint: usize = error.params.iter().map(|p| p.len() + 16).sum();
            let mut out = String::with_capacity(320 + error.code.len() + hint);
            out.push_str(RESPONSE_OPEN);
            out.push_str(
                "<value><struct><member><name>Status</name><value>Failure</value></member>\
                 <member><name>ErrorDescription</name><value><array><data>",
            );
            for text in std::iter::once(&error.code).chain(&error.params) {
                out.push_str("<value>");
                escape_into(&mut out, text);
                out.push_str("</value>");
            }
            out.push_str("</data></array></value></member></struct></value>");
            out.push_str(RESPONSE_CLOSE);
            out
        }
    }
}

/// Encodes a reply without the envelope, as xapi answers `system.listMethods`.
pub fn encode_raw_response(value: &Value) -> String {
    let mut out = String::with_capacity(96 + len_hint(value, NODE_MARKUP));
    out.push_str(RESPONSE_OPEN);
    write_value(&mut out, value);
    out.push_str(RESPONSE_CLOSE);
    out
}

/// Decodes a `methodResponse` (for clients): the enveloped result, or, for a reply without the
/// envelope, the bare value as a success. A `<fault>` becomes an `ApiError` coded
/// [`FAULT_CODE`].
pub fn decode_response(
    body: &[u8],
    limits: &Limits,
) -> Result<Result<Value, ApiError>, DecodeError> {
    let mut reader = XmlReader::new(body, limits)?;
    reader.open(Tag::MethodResponse)?;
    let reply = match reader.next_element()? {
        Token::Open(Tag::Params) => {
            reader.open(Tag::Param)?;
            let value = reader.value_element()?;
            reader.close(Tag::Param)?;
            reader.close(Tag::Params)?;
            unwrap_envelope(value)?
        }
        Token::Open(Tag::Fault) => {
            let value = reader.value_element()?;
            reader.close(Tag::Fault)?;
            Err(fault(value)?)
        }
        _ => return Err(DecodeError::malformed("expected <params> or <fault>")),
    };
    reader.close(Tag::MethodResponse)?;
    reader.end()?;
    Ok(reply)
}

/// One `<value>…</value>` element: what a task's `result` field holds.
pub fn encode_value(value: &Value) -> String {
    let mut out = String::with_capacity(len_hint(value, NODE_MARKUP));
    write_value(&mut out, value);
    out
}

/// Decodes one `<value>…</value>` element.
pub fn decode_value(text: &str, limits: &Limits) -> Result<Value, DecodeError> {
    let mut reader = XmlReader::new(text.as_bytes(), limits)?;
    let value = reader.value_element()?;
    reader.end()?;
    Ok(value)
}

/// The result inside xapi's envelope, as rpclib reads it: a struct with `Status` `Success` and a
/// `Value`, or `Failure` and an `ErrorDescription`; anything else is a bare success.
fn unwrap_envelope(value: Value) -> Result<Result<Value, ApiError>, DecodeError> {
    let Value::Struct(mut members) = value else {
        return Ok(Ok(value));
    };
    let status = match members.get("Status") {
        Some(Value::String(status)) => status.as_str(),
        _ => "",
    };
    let result = match status {
        "Success" => members.remove("Value").map(Ok),
        "Failure" => members.remove("ErrorDescription").map(Err),
        _ => None,
    };
    match result {
        Some(Ok(value)) => Ok(Ok(value)),
        Some(Err(description)) => Ok(Err(error_description(description)?)),
        None => Ok(Ok(Value::Struct(members))),
    }
}

/// `[code, params…]` as an `ApiError`.
fn error_description(description: Value) -> Result<ApiError, DecodeError> {
    let Value::Array(items) = description else {
        return Err(DecodeError::malformed("ErrorDescription is not an array"));
    };
    let mut texts = items.into_iter().map(|item| {
        scalar_text(item)
            .ok_or_else(|| DecodeError::malformed("ErrorDescription holds a non-scalar"))
    });
    let code = texts
        .next()
        .ok_or_else(|| DecodeError::malformed("ErrorDescription is empty"))??;
    let params = texts.collect::<Result<_, _>>()?;
    Ok(ApiError { code, params })
}

/// A standard fault struct as an `ApiError`.
fn fault(value: Value) -> Result<ApiError, DecodeError> {
    let missing = || DecodeError::malformed("fault needs a faultCode and a faultString");
    let Value::Struct(mut members) = value else {
        return Err(missing());
    };
    let code = members
        .remove("faultCode")
        .and_then(scalar_text)
        .ok_or_else(missing)?;
    let text = members
        .remove("faultString")
        .and_then(scalar_text)
        .ok_or_else(missing)?;
    Ok(ApiError {
        code: FAULT_CODE.to_owned(),
        params: vec![code, text],
    })
}

fn scalar_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) | Value::DateTime(s) => Some(s),
        Value::Int(_) | Value::Int32(_) | Value::Float(_) | Value::Bool(_) => Some(value.to_key()),
        Value::Nil | Value::Array(_) | Value::Struct(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn call(body: &str) -> Result<MethodCall, DecodeError> {
        decode_call(body.as_bytes(), &limits())
    }

    fn response(body: &str) -> Result<Result<Value, ApiError>, DecodeError> {
        decode_response(body.as_bytes(), &limits())
    }

    /// A success is byte for byte what xapi sends: untyped strings in the Status/Value struct.
    #[test]
    fn success_reply_matches_xapis_bytes() {
        assert_eq!(
            encode_response(&Ok(Value::str("OpaqueRef:a1"))),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>Status</name><value>Success</value></member>\
             <member><name>Value</name><value>OpaqueRef:a1</value></member>\
             </struct></value></param></params></methodResponse>"
        );
    }

    /// A void success carries the empty string.
    #[test]
    fn void_reply_is_an_empty_value() {
        assert_eq!(
            encode_response(&Ok(Value::str(""))),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>Status</name><value>Success</value></member>\
             <member><name>Value</name><value></value></member>\
             </struct></value></param></params></methodResponse>"
        );
    }

    /// A failure is the ErrorDescription array of strings, code first.
    #[test]
    fn failure_reply_matches_xapis_bytes() {
        let error = ApiError::new("HANDLE_INVALID", ["VM", "OpaqueRef:x<"]);
        assert_eq!(
            encode_response(&Err(error)),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>Status</name><value>Failure</value></member>\
             <member><name>ErrorDescription</name><value><array><data>\
             <value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:x&lt;</value>\
             </data></array></value></member></struct></value></param></params></methodResponse>"
        );
    }

    /// A record is a struct of members in key order, its int64 an untyped string and its
    /// datetime dash-less.
    #[test]
    fn struct_int64_and_datetime_match_xapis_bytes() {
        let record = Value::Struct(BTreeMap::from([
            ("memory_static_max".to_owned(), Value::Int(4_294_967_296)),
            (
                "last_updated".to_owned(),
                Value::DateTime("20240101T00:00:00Z".into()),
            ),
        ]));
        assert_eq!(
            encode_value(&record),
            "<value><struct><member><name>last_updated</name><value><dateTime.iso8601>\
             20240101T00:00:00Z</dateTime.iso8601></value></member>\
             <member><name>memory_static_max</name><value>4294967296</value></member>\
             </struct></value>"
        );
    }

    /// The raw reply has no Status/Value struct around the value.
    #[test]
    fn raw_reply_has_no_envelope() {
        assert_eq!(
            encode_raw_response(&Value::Array(vec![Value::str("VM.start")])),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
             <value>VM.start</value></data></array></value></param></params></methodResponse>"
        );
    }

    /// A call is written as Python's xmlrpc.client would send it, and read back.
    #[test]
    fn call_is_written_and_read_back() {
        let sent = MethodCall {
            method: "session.login_with_password".into(),
            params: vec![Value::str("root"), Value::str("p&ss")],
        };
        let body = encode_call(&sent);
        assert_eq!(
            body,
            "<?xml version=\"1.0\"?><methodCall><methodName>session.login_with_password\
             </methodName><params><param><value>root</value></param><param><value>p&amp;ss\
             </value></param></params></methodCall>"
        );
        assert_eq!(call(&body), Ok(sent));
    }

    /// Calls as clients send them: pretty-printed, typed strings, a byte-order mark, no params.
    #[test]
    fn calls_in_client_shapes_are_read() {
        let python = "<?xml version='1.0'?>\n<methodCall>\n<methodName>VM.start</methodName>\n\
                      <params>\n<param>\n<value><string>OpaqueRef:s</string></value>\n</param>\n\
                      <param>\n<value><boolean>0</boolean></value>\n</param>\n<param>\n\
                      <value><nil/></value>\n</param>\n</params>\n</methodCall>\n";
        assert_eq!(
            call(python),
            Ok(MethodCall {
                method: "VM.start".into(),
                params: vec![Value::str("OpaqueRef:s"), Value::Bool(false), Value::Nil],
            })
        );
        for body in [
            "\u{feff}<?xml version=\"1.0\"?><methodCall><methodName>system.listMethods\
             </methodName></methodCall>",
            "<methodCall><methodName>system.listMethods</methodName></methodCall>",
            "<methodCall><methodName>system.listMethods</methodName><params/></methodCall>",
            "<methodCall><methodName>system.listMethods</methodName><params></params></methodCall>",
        ] {
            assert_eq!(
                call(body),
                Ok(MethodCall {
                    method: "system.listMethods".into(),
                    params: vec![],
                }),
                "{body}"
            );
        }
    }

    /// A methodCall without methodName, or with stray content, is malformed.
    #[test]
    fn broken_calls_are_malformed() {
        for body in [
            "<methodCall><params/></methodCall>",
            "<methodCall></methodCall>",
            "<methodResponse/>",
            "<methodCall><methodName>a</methodName><params><value/></params></methodCall>",
            "<methodCall><methodName>a</methodName><params>",
            "<methodCall><methodName>a</methodName></methodCall><x/>",
            "<methodCall><methodName>a</methodName></methodCall>junk",
            "<methodCall><methodName>a</methodName><params><param><value>x</value></methodCall>",
            "",
        ] {
            assert!(
                matches!(call(body), Err(DecodeError::Malformed { .. })),
                "{body}"
            );
        }
    }

    /// The envelope reads back as the result; a failure as the ApiError.
    #[test]
    fn enveloped_replies_are_unwrapped() {
        let ok = Ok(Value::Int32(4));
        assert_eq!(response(&encode_response(&ok)), Ok(ok));
        let err = Err(ApiError::new("SESSION_INVALID", ["OpaqueRef:s"]));
        assert_eq!(response(&encode_response(&err)), Ok(err));
    }

    /// A reply without the envelope, and a struct that is not one, are bare successes.
    #[test]
    fn bare_values_are_successes() {
        let listed = Value::Array(vec![Value::str("VM.start")]);
        assert_eq!(response(&encode_raw_response(&listed)), Ok(Ok(listed)));
        let record = Value::Struct(BTreeMap::from([("Status".to_owned(), Value::str("odd"))]));
        assert_eq!(response(&encode_raw_response(&record)), Ok(Ok(record)));
    }

    /// A standard fault becomes an ApiError coded `fault` with the code and the string.
    #[test]
    fn faults_become_api_errors() {
        let body = "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>\
                    <member><name>faultCode</name><value><int>4</int></value></member>\
                    <member><name>faultString</name><value><string>Too many parameters.\
                    </string></value></member></struct></value></fault></methodResponse>";
        assert_eq!(
            response(body),
            Ok(Err(ApiError::new(
                FAULT_CODE,
                ["4", "Too many parameters."]
            )))
        );
        let incomplete = "<methodResponse><fault><value><struct/></value></fault></methodResponse>";
        assert!(matches!(
            response(incomplete),
            Err(DecodeError::Malformed { .. })
        ));
    }

    /// An ErrorDescription that is empty or not an array of scalars is malformed.
    #[test]
    fn bad_error_descriptions_are_malformed() {
        for description in [
            "<array><data/></array>",
            "<struct/>",
            "<array><data><value><array/></value></data></array>",
        ] {
            let body = format!(
                "<methodResponse><params><param><value><struct><member><name>Status</name>\
                 <value>Failure</value></member><member><name>ErrorDescription</name>\
                 <value>{description}</value></member></struct></value></param></params>\
                 </methodResponse>"
            );
            assert!(
                matches!(response(&body), Err(DecodeError::Malformed { .. })),
                "{description}"
            );
        }
    }

    /// Limits are checked: body size first, then UTF-8, then depth and string length.
    #[test]
    fn hostile_bodies_get_the_right_error() {
        let small = Limits {
            max_body_bytes: 64,
            ..limits()
        };
        let big = format!(
            "<methodCall><methodName>{}</methodName></methodCall>",
            "a".repeat(64)
        );
        assert_eq!(
            decode_call(big.as_bytes(), &small),
            Err(DecodeError::BodyTooLarge {
                size: big.len(),
                limit: 64
            })
        );
        let bad_utf8 = b"<methodCall><methodName>\xff</methodName></methodCall>";
        assert_eq!(
            decode_call(bad_utf8, &limits()),
            Err(DecodeError::InvalidUtf8)
        );
        let deep = format!(
            "<methodCall><methodName>a</methodName><params><param>{}",
            "<value><array><data>".repeat(100_000)
        );
        assert_eq!(call(&deep), Err(DecodeError::TooDeep { limit: 64 }));
        let short = Limits {
            max_string_bytes: 8,
            ..limits()
        };
        let long = "<methodCall><methodName>a</methodName><params><param><value>123456789\
                    </value></param></params></methodCall>";
        assert!(matches!(
            decode_call(long.as_bytes(), &short),
            Err(DecodeError::StringTooLong { limit: 8, .. })
        ));
        let long_name = "<methodCall><methodName>123456789</methodName></methodCall>";
        assert!(matches!(
            decode_call(long_name.as_bytes(), &short),
            Err(DecodeError::StringTooLong { limit: 8, .. })
        ));
        let doctype = "<!DOCTYPE lolz [<!ENTITY lol \"lol\">]><methodCall><methodName>&lol;\
                       </methodName></methodCall>";
        assert!(matches!(call(doctype), Err(DecodeError::Malformed { .. })));
        let unclosed = "<methodCall><methodName>a</methodName><params><param><value><struct>";
        assert!(matches!(call(unclosed), Err(DecodeError::Malformed { .. })));
    }

    /// A call whose method name, strings or member names hold a character XML 1.0 forbids is
    /// refused, however it is written: raw, as a character reference, or in base64.
    #[test]
    fn calls_with_characters_xml_forbids_are_refused() {
        let with_param = |value: &str| {
            call(&format!(
                "<methodCall><methodName>m</methodName><params><param><value>{value}\
                 </value></param></params></methodCall>"
            ))
        };
        let forbidden = |code_point| Err(DecodeError::ForbiddenCharacter { code_point });
        assert_eq!(with_param("a\u{0}b"), forbidden(0));
        assert_eq!(with_param("<string>&#1;</string>"), forbidden(1));
        assert_eq!(with_param("&#xFFFE;"), forbidden(0xfffe));
        assert_eq!(with_param("<base64>Hw==</base64>"), forbidden(0x1f));
        assert_eq!(
            with_param("<struct><member><name>a\u{ffff}</name><value/></member></struct>"),
            forbidden(0xffff)
        );
        assert_eq!(
            call("<methodCall><methodName>m\u{b}n</methodName></methodCall>"),
            forbidden(0xb)
        );
        assert_eq!(
            with_param("a&#9;&#10;&#13;\u{e000}\u{fffd}\u{10000}").map(|c| c.params),
            Ok(vec![Value::str("a\t\n\r\u{e000}\u{fffd}\u{10000}")])
        );
    }

    /// A struct with two members of the same name is refused, a call's as a reply's.
    #[test]
    fn members_of_the_same_name_are_refused() {
        let twice = "<value><struct><member><name>k</name><value>1</value></member>\
                     <member><name>k</name><value>2</value></member></struct></value>";
        assert_eq!(
            call(&format!(
                "<methodCall><methodName>m</methodName><params><param>{twice}</param>\
                 </params></methodCall>"
            )),
            Err(DecodeError::DuplicateMember)
        );
        assert_eq!(
            response(&format!(
                "<methodResponse><params><param>{twice}</param></params></methodResponse>"
            )),
            Err(DecodeError::DuplicateMember)
        );
    }

    /// decode_value reads exactly one value element.
    #[test]
    fn a_single_value_is_read() {
        assert_eq!(
            decode_value("<value>x</value>", &limits()),
            Ok(Value::str("x"))
        );
        assert!(matches!(
            decode_value("<value>x</value><value/>", &limits()),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
