//! Values in JSON: writing them straight from `Value` with serde, and reading a body within
//! `Limits` straight into values.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::Number;
use serde_json::error::Category;

use crate::codec::{Limits, body_text, check_string, check_values};
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

/// Parses a body that must be a JSON object, after checking its size, its encoding, its
/// nesting, its integer literals and how many values it holds: its members by name, each read as
/// a `Value` at depth 0, except that the items of a `params` array are at depth 0 themselves
/// (they are the parameters). Two members of the same name, in the envelope or in any object
/// within, are refused.
pub(super) fn parse_object(
    body: &[u8],
    limits: &Limits,
) -> Result<BTreeMap<String, Value>, DecodeError> {
    let text = body_text(body, limits)?;
    let value_depth = limits.max_depth.min(MAX_BODY_NESTING - 2);
    prescan(text.as_bytes(), value_depth + 2, value_depth, limits)?;
    let parse = Parse {
        limits,
        refusal: Cell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = Envelope(&parse)
        .deserialize(&mut deserializer)
        .and_then(|members| deserializer.end().map(|()| members));
    members.map_err(|e| {
        parse.refusal.take().unwrap_or_else(|| match e.classify() {
            Category::Data => DecodeError::malformed("body is not a JSON object"),
            Category::Io | Category::Syntax | Category::Eof => DecodeError::malformed(format!(
                "not valid JSON at line {} column {}",
                e.line(),
                e.column()
            )),
        })
    })
}

/// Checks the raw text before serde_json sees it: arrays and objects nest at most `max_nesting`
/// deep (else `TooDeep { limit: reported_limit }`), no integer literal is beyond i64, which
/// serde_json would silently read as a float, and there are at most `limits.max_values` values,
/// so that nothing is built for a body of too many.
fn prescan(
    text: &[u8],
    max_nesting: usize,
    reported_limit: usize,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut values = 0usize;
    let mut i = 0;
    while i < text.len() {
        let is_value = match text[i] {
            b'"' => {
                i = string_end(text, i + 1);
                // A string followed by a colon is a member name, not a value.
                let next = text[i..].iter().find(|b| !is_json_space(**b));
                next != Some(&b':')
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(DecodeError::TooDeep {
                        limit: reported_limit,
                    });
                }
                i += 1;
                true
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
                false
            }
            b'-' | b'0'..=b'9' => {
                let end = token_end(text, i, |b| {
                    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                });
                check_integer(&text[i..end])?;
                i = end;
                true
            }
            // `true`, `false`, `null` (or garbage, which serde_json refuses).
            b'a'..=b'z' => {
                i = token_end(text, i, |b| b.is_ascii_lowercase());
                true
            }
            _ => {
                i += 1;
                false
            }
        };
        if is_value {
            values += 1;
            check_values(values, limits)?;
        }
    }
    Ok(())
}

/// The index just past the run of bytes from `start` that `is_part` accepts.
fn token_end(text: &[u8], start: usize, is_part: impl Fn(u8) -> bool) -> usize {
    text[start..]
        .iter()
        .position(|b| !is_part(*b))
        .map_or(text.len(), |len| start + len)
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
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

/// What the readers of one body share: the limits, and the first refusal, which serde's error
/// type cannot carry (the reader that refuses stores it, and fails with a placeholder).
struct Parse<'l> {
    limits: &'l Limits,
    refusal: Cell<Option<DecodeError>>,
}

impl<'l> Parse<'l> {
    fn refuse<E: serde::de::Error>(&self, refusal: DecodeError) -> E {
        self.refusal.set(Some(refusal));
        E::custom("refused")
    }

    fn check_string<E: serde::de::Error>(&self, text: &str) -> Result<(), E> {
        check_string(text.len(), self.limits).map_err(|e| self.refuse(e))
    }

    /// Reads the members of an object into a map, refusing a name seen before; `seed_for`
    /// gives the reader of each member's value by its name.
    fn members<'de, 'p, A: MapAccess<'de>>(
        &'p self,
        mut map: A,
        seed_for: impl Fn(&str) -> Element<'p, 'l>,
    ) -> Result<BTreeMap<String, Value>, A::Error> {
        let mut members = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            self.check_string(&name)?;
            let seed = seed_for(&name);
            match members.entry(name) {
                Entry::Occupied(_) => return Err(self.refuse(DecodeError::DuplicateMember)),
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(seed)?);
                }
            }
        }
        Ok(members)
    }
}

/// The reader of the top-level object.
struct Envelope<'p, 'l>(&'p Parse<'l>);

impl<'de> DeserializeSeed<'de> for Envelope<'_, '_> {
    type Value = BTreeMap<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, '_> {
    type Value = BTreeMap<String, Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let parse = self.0;
        parse.members(map, |name| Element {
            parse,
            depth: 0,
            is_params: name == "params",
        })
    }
}

/// The reader of one value whose container is at nesting `depth` (0: a parameter, a result).
#[derive(Clone, Copy)]
struct Element<'p, 'l> {
    parse: &'p Parse<'l>,
    depth: usize,
    /// The envelope's `params`: as an array, it is the parameter list, whose items are at
    /// depth 0 like the array itself; as an object, it is the one parameter.
    is_params: bool,
}

impl Element<'_, '_> {
    fn inner(self) -> Self {
        Element {
            depth: self.depth + 1,
            is_params: false,
            ..self
        }
    }

    fn check_depth<E: serde::de::Error>(self) -> Result<(), E> {
        check_depth(self.depth, self.parse.limits).map_err(|e| self.parse.refuse(e))
    }
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Integral numbers within i64 are `Int`, other numbers `Float`, `null` is `Nil`.
impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| self.parse.refuse(out_of_range()))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        self.parse.check_string(s)?;
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        self.parse.check_string(&s)?;
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = if self.is_params {
            Element {
                is_params: false,
                ..self
            }
        } else {
            self.check_depth()?;
            self.inner()
        };
        let mut items = Vec::new();
        while let Some(value) = seq.next_element_seed(item)? {
            items.push(value);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        self.check_depth()?;
        let item = self.inner();
        self.parse.members(map, |_| item).map(Value::Struct)
    }
}

/// A reply's error in either shape, `[code, params…]` or `{code, message, data}`, as an
/// `ApiError`; numbers and booleans among the params become their JSON text.
pub(super) fn api_error(error: Value) -> Result<ApiError, DecodeError> {
    let (code, data) = match error {
        Value::Array(mut items) if !items.is_empty() => {
            let code = items.remove(0);
            (code, items)
        }
        Value::Struct(mut members) => {
            let data = match members.remove("data") {
                None | Some(Value::Nil) => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(_) => return Err(DecodeError::malformed("error data is not an array")),
            };
            (members.remove("message").unwrap_or(Value::Nil), data)
        }
        _ => {
            return Err(DecodeError::malformed(
                "error is neither an array nor an object",
            ));
        }
    };
    let Value::String(code) = code else {
        return Err(DecodeError::malformed("error code is not a string"));
    };
    let params = data
        .into_iter()
        .map(|param| match param {
            Value::String(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Number::from_f64(f)
                .map(|n| n.to_string())
                .ok_or_else(out_of_range),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(DecodeError::malformed("error parameter is not a scalar")),
        })
        .collect::<Result<_, _>>()?;
    Ok(ApiError { code, params })
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

    fn scan(text: &[u8], max_nesting: usize, reported_limit: usize) -> Result<(), DecodeError> {
        prescan(text, max_nesting, reported_limit, &Limits::default())
    }

    /// Integer literals beyond i64 are refused, wherever they sit outside strings.
    #[test]
    fn integers_beyond_i64_are_refused_before_parsing() {
        assert_eq!(
            scan(b"[9223372036854775807, -9223372036854775808]", 8, 8),
            Ok(())
        );
        for text in [
            &b"[9223372036854775808]"[..],
            b"[-9223372036854775809]",
            b"{\"a\":123456789012345678901234567890}",
        ] {
            assert!(matches!(
                scan(text, 8, 8),
                Err(DecodeError::Malformed { .. })
            ));
        }
        assert_eq!(
            scan(b"[\"99999999999999999999\", 1e400, 1.5, -0]", 8, 8),
            Ok(())
        );
    }

    /// Brackets inside strings, escaped quotes included, do not count as nesting.
    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert_eq!(scan(br#"[["[[[[", "\"[[[["]]"#, 2, 0), Ok(()));
        assert_eq!(
            scan(b"[[[]]]", 2, 0),
            Err(DecodeError::TooDeep { limit: 0 })
        );
    }

    /// Every array, object, string, number and literal counts as a value, member names and
    /// anything inside strings do not.
    #[test]
    fn values_are_counted_before_parsing() {
        let limits = |max_values| Limits {
            max_values,
            ..Limits::default()
        };
        let body = br#"{"a" : [1, -2.5e3, "x,[y]", true, false, null], "b": {"c": {}}}"#;
        assert_eq!(prescan(body, 8, 8, &limits(10)), Ok(()));
        assert_eq!(
            prescan(body, 8, 8, &limits(9)),
            Err(DecodeError::TooManyValues { limit: 9 })
        );
        let tiny = "[]".repeat(1000);
        assert_eq!(
            prescan(tiny.as_bytes(), 8, 8, &limits(999)),
            Err(DecodeError::TooManyValues { limit: 999 })
        );
    }

    /// Numbers map to Int when integral and within i64, to Float otherwise.
    #[test]
    fn numbers_map_by_their_form() {
        let members = parse_object(br#"{"r": [1, -1, 1.0, 1e2, -0]}"#, &Limits::default());
        let want = Value::Array(vec![
            Value::Int(1),
            Value::Int(-1),
            Value::Float(1.0),
            Value::Float(100.0),
            Value::Float(-0.0),
        ]);
        assert_eq!(members.map(|mut m| m.remove("r")), Ok(Some(want)));
    }

    /// Two members of the same name are refused, in the envelope as in any object within.
    #[test]
    fn members_of_the_same_name_are_refused() {
        for body in [
            &br#"{"method": "VM.get_all", "method": "session.logout"}"#[..],
            br#"{"params": [{"a": 1, "b": {"c": 1, "c": 2}}]}"#,
            br#"{"result": {"a": 1, "a": 1}}"#,
        ] {
            assert_eq!(
                parse_object(body, &Limits::default()),
                Err(DecodeError::DuplicateMember),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
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
