//! The wire codecs: XML-RPC (`xmlrpc`) and JSON-RPC 1.0 / 2.0 (`jsonrpc`), with xapi's envelopes
//! and quirks, and limits that turn hostile input into a `DecodeError`.
//!
//! Decoders check, in this order: the body size, UTF-8, then the structure while parsing, with
//! the nesting depth and the values counted as they go (JSON counts them before parsing; no
//! recursion that the input controls), every string measured against the limit and struct
//! members of the same name refused. A call's strings must also be text XML 1.0 can carry.
//! Encoders cannot fail.

mod json_value;
pub mod jsonrpc;
mod xml_read;
mod xml_value;
mod xml_write;
pub mod xmlrpc;

#[cfg(test)]
mod tests;

use crate::error::DecodeError;
use crate::types::Value;

/// Bounds on what a decoder accepts. Anything beyond them is a `DecodeError`, never a panic or
/// unbounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and structs (a flat array is 1). Keep it small: dropping and
    /// encoding a value recurse once per level. JSON-RPC caps it at 98 whatever is set here,
    /// below serde_json's own recursion limit.
    pub max_depth: usize,
    /// The longest string (or struct member name), in bytes.
    pub max_string_bytes: usize,
    /// The most values in one body: scalars, arrays and structs, the JSON-RPC envelope's own
    /// included (struct member names do not count). It bounds the memory a body of many tiny
    /// values (`[[],[],…]`) takes to decode, which its size alone does not.
    pub max_values: usize,
}

impl Default for Limits {
    /// Bounds for requests: a XenAPI call carries far fewer values than 100 000.
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_string_bytes: 8 * 1024 * 1024,
            max_values: 100_000,
        }
    }
}

impl Limits {
    /// Bounds for a client reading a server's replies: the request bounds, but as many values as
    /// a full body of records holds (a `get_all_records` of a large pool is far over 100 000).
    pub fn for_replies() -> Limits {
        Limits {
            max_values: 2_000_000,
            ..Limits::default()
        }
    }
}

/// A decoded call: the wire method name and its positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

/// The body as text, once its size and encoding are checked.
fn body_text<'a>(body: &'a [u8], limits: &Limits) -> Result<&'a str, DecodeError> {
    if body.len() > limits.max_body_bytes {
        return Err(DecodeError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    std::str::from_utf8(body).map_err(|_| DecodeError::InvalidUtf8)
}

/// Fails with `TooManyValues` once `count` values are over the limit.
fn check_values(count: usize, limits: &Limits) -> Result<(), DecodeError> {
    if count > limits.max_values {
        return Err(DecodeError::TooManyValues {
            limit: limits.max_values,
        });
    }
    Ok(())
}

/// Fails with `ForbiddenCharacter` on the first character of `call` (its method name, a
/// string, a struct member name) that XML 1.0 cannot carry: stored, it could never be sent back
/// over XML-RPC, whose replies drop such characters.
fn check_characters(call: &MethodCall) -> Result<(), DecodeError> {
    check_text(&call.method)?;
    call.params.iter().try_for_each(check_value_text)
}

/// Recurses once per level, within the depth limit the decoder has already applied.
fn check_value_text(value: &Value) -> Result<(), DecodeError> {
    match value {
        Value::String(s) | Value::DateTime(s) => check_text(s),
        Value::Array(items) => items.iter().try_for_each(check_value_text),
        Value::Struct(members) => members.iter().try_for_each(|(name, item)| {
            check_text(name)?;
            check_value_text(item)
        }),
        Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Int32(_) | Value::Float(_) => Ok(()),
    }
}

fn check_text(text: &str) -> Result<(), DecodeError> {
    match text.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(DecodeError::ForbiddenCharacter {
            code_point: u32::from(c),
        }),
        None => Ok(()),
    }
}

/// Whether XML 1.0 can carry `c`: its `Char` production, which a Rust `char` (never a
/// surrogate) meets unless it is a C0 control other than tab, newline and carriage return, or
/// U+FFFE or U+FFFF.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

/// Fails with `StringTooLong` when `size` is over the string limit.
fn check_string(size: usize, limits: &Limits) -> Result<(), DecodeError> {
    if size > limits.max_string_bytes {
        return Err(DecodeError::StringTooLong {
            size,
            limit: limits.max_string_bytes,
        });
    }
    Ok(())
}

/// A guess at the encoded size of `value`, to size an output buffer once: the text it holds plus
/// `per_node` bytes of markup for each node and member.
fn len_hint(value: &Value, per_node: usize) -> usize {
    match value {
        Value::String(s) | Value::DateTime(s) => per_node + s.len(),
        Value::Array(items) => {
            per_node
                + items
                    .iter()
                    .map(|item| len_hint(item, per_node))
                    .sum::<usize>()
        }
        Value::Struct(members) => {
            per_node
                + members
                    .iter()
                    .map(|(name, item)| per_node + name.len() + len_hint(item, per_node))
                    .sum::<usize>()
        }
        Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Int32(_) | Value::Float(_) => {
            per_node + 24
        }
    }
}
