//! Values in JSON: writing them straight from `Value` with serde, parsing a body within
//! `Limits`, and turning parsed JSON into values.

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Number};

use crate::codec::{Limits, body_text, check_string};
use crate::error::DecodeError;
use crate::errors::ApiError;
use crate::types::Value;

/// The deepest nesting of arrays and objects a body may have. It stays below serde_json's own
/// recursion limit (128), so that limit never decides, and leaves two levels for the envelope.
const MAX_BODY_NESTING: usize = 100;

/// Markup bytes per node, for `len_hint`.
pub(super) const NODE_MARKUP: usize = 8;

/// A value serialised as JSON: ints and floats as numbers (a non-finite float, which JSON cannot
/// write, as `null`), datetimes as their text, `Nil` as `null`.
pub(super) struct Json<'a>(pub(super) &'a Value);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Int32(i) => serializer.serialize_i32(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::String(s) | Value::DateTime(s) => serializer.serialize_str(s),
            Value::Array(items) => serializer.collect_seq(items.iter().map(Json)),
            Value::Struct(members) => {
                serializer.collect_map(members.iter().map(|(name, item)| (name, Json(item))))
            }
        }
    }
}

/// `value` as JSON text in a buffer sized from `capacity`.
pub(super) fn to_text<T: Serialize>(value: &T, capacity: usize) -> String {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value).expect(
        "invariant: writing to a Vec fails only on non-string map keys, which Value has not",
    );
    String::from_utf8(out).expect("invariant: serde_json writes UTF-8")
}

/// Parses a body that must be a JSON object, after checking its size, its encoding, its nesting
/// and its integer literals.
pub(super) fn parse_object(
    body: &[u8],
    limits: &Limits,
) -> Result<Map<String, serde_json::Value>, DecodeError> {
    let text = body_text(body, limits)?;
    let value_depth = limits.max_depth.min(MAX_BODY_NESTING - 2);
    prescan(text.as_bytes(), value_depth + 2, value_depth)?;
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err(DecodeError::malformed("body is not a JSON object")),
        Err(e) => Err(DecodeError::malformed(format!(
            "not valid JSON at line {} column {}",
            e.line(),
            e.column()
        ))),
    }
}

/// Checks the raw text before serde_json sees it: arrays and objects nest at most `max_nesting`
/// deep (else `TooDeep { limit: reported_limit }`), and no integer literal is beyond i64, which
/// serde_json would silently read as a float.
fn prescan(text: &[u8], max_nesting: usize, reported_limit: usize) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i = string_end(text, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(DecodeError::TooDeep {
                        limit: reported_limit,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = text[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(text.len(), |len| i + len);
                check_integer(&text[i..end])?;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index just past the closing quote of the string whose body starts at `i`.
fn string_end(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// Fails on an integer literal (digits, maybe a minus) outside i64.
fn check_integer(token: &[u8]) -> Result<(), DecodeError> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(());
    }
    let fits = std::str::from_utf8(token).is_ok_and(|t| t.parse::<i64>().is_ok());
    if fits { Ok(()) } else { Err(out_of_range()) }
}

fn out_of_range() -> DecodeError {
    DecodeError::malformed("integer out of the 64-bit range")
}

/// Parsed JSON as a value within `limits`, `depth` being the nesting of its container. Integral
/// numbers within i64 are `Int`, other numbers `Float`, `null` is `Nil`.
pub(super) fn value_from_json(
    json: serde_json::Value,
    limits: &Limits,
    depth: usize,
) -> Result<Value, DecodeError> {
    Ok(match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => number(&n)?,
        serde_json::Value::String(s) => {
            check_string(s.len(), limits)?;
            Value::String(s)
        }
        serde_json::Value::Array(items) => {
            check_depth(depth, limits)?;
            Value::Array(
                items
                    .into_iter()
                    .map(|item| value_from_json(item, limits, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        serde_json::Value::Object(object) => {
            check_depth(depth, limits)?;
            let mut members = std::collections::BTreeMap::new();
            for (name, item) in object {
                check_string(name.len(), limits)?;
                members.insert(name, value_from_json(item, limits, depth + 1)?);
            }
            Value::Struct(members)
        }
    })
}

/// A reply's error in either shape, `[code, params…]` or `{code, message, data}`, as an
/// `ApiError`.
pub(super) fn api_error(
    error: serde_json::Value,
    limits: &Limits,
) -> Result<ApiError, DecodeError> {
    let (code, data) = match error {
        serde_json::Value::Array(mut items) if !items.is_empty() => {
            let code = items.remove(0);
            (code, items)
        }
        serde_json::Value::Object(mut object) => {
            let data = match object.remove("data") {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::Array(items)) => items,
                Some(_) => return Err(DecodeError::malformed("error data is not an array")),
            };
            (object.remove("message").unwrap_or_default(), data)
        }
        _ => {
            return Err(DecodeError::malformed(
                "error is neither an array nor an object",
            ));
        }
    };
    let code = match code {
        serde_json::Value::String(code) => code,
        _ => return Err(DecodeError::malformed("error code is not a string")),
    };
    check_string(code.len(), limits)?;
    let params = data
        .into_iter()
        .map(|param| {
            let text = match param {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(DecodeError::malformed("error parameter is not a scalar")),
            };
            check_string(text.len(), limits)?;
            Ok(text)
        })
        .collect::<Result<_, _>>()?;
    Ok(ApiError { code, params })
}

fn number(n: &Number) -> Result<Value, DecodeError> {
    if let Some(i) = n.as_i64() {
        Ok(Value::Int(i))
    } else if n.is_u64() {
        Err(out_of_range())
    } else {
        n.as_f64().map(Value::Float).ok_or_else(out_of_range)
    }
}

fn check_depth(depth: usize, limits: &Limits) -> Result<(), DecodeError> {
    if depth >= limits.max_depth {
        return Err(DecodeError::TooDeep {
            limit: limits.max_depth,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Integer literals beyond i64 are refused, wherever they sit outside strings.
    #[test]
    fn integers_beyond_i64_are_refused_before_parsing() {
        assert_eq!(
            prescan(b"[9223372036854775807, -9223372036854775808]", 8, 8),
            Ok(())
        );
        for text in [
            &b"[9223372036854775808]"[..],
            b"[-9223372036854775809]",
            b"{\"a\":123456789012345678901234567890}",
        ] {
            assert!(matches!(
                prescan(text, 8, 8),
                Err(DecodeError::Malformed { .. })
            ));
        }
        assert_eq!(
            prescan(b"[\"99999999999999999999\", 1e400, 1.5, -0]", 8, 8),
            Ok(())
        );
    }

    /// Brackets inside strings, escaped quotes included, do not count as nesting.
    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert_eq!(prescan(br#"[["[[[[", "\"[[[["]]"#, 2, 0), Ok(()));
        assert_eq!(
            prescan(b"[[[]]]", 2, 0),
            Err(DecodeError::TooDeep { limit: 0 })
        );
    }

    /// Numbers map to Int when integral and within i64, to Float otherwise.
    #[test]
    fn numbers_map_by_their_form() {
        let limits = Limits::default();
        let parsed: serde_json::Value =
            serde_json::from_str("[1, -1, 1.0, 1e2, 18446744073709551615]").expect("valid JSON");
        let serde_json::Value::Array(items) = parsed else {
            panic!("an array");
        };
        let got: Vec<_> = items
            .into_iter()
            .map(|n| value_from_json(n, &limits, 0))
            .collect();
        assert_eq!(got[0], Ok(Value::Int(1)));
        assert_eq!(got[1], Ok(Value::Int(-1)));
        assert_eq!(got[2], Ok(Value::Float(1.0)));
        assert_eq!(got[3], Ok(Value::Float(100.0)));
        assert!(matches!(got[4], Err(DecodeError::Malformed { .. })));
    }

    /// Non-finite floats are written as null and everything else as its JSON form.
    #[test]
    fn values_serialise_as_xapi_json() {
        let value = Value::Array(vec![
            Value::Float(f64::NAN),
            Value::Float(0.5),
            Value::Int(i64::MAX),
            Value::Int32(-3),
            Value::DateTime("19700101T00:00:00Z".into()),
            Value::Nil,
            Value::Bool(true),
            Value::str("a\"\u{1}"),
        ]);
        assert_eq!(
            to_text(&Json(&value), 16),
            r#"[null,0.5,9223372036854775807,-3,"19700101T00:00:00Z",null,true,"a\"\u0001"]"#
        );
    }
}
