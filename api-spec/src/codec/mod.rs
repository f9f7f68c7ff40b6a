//! The wire codecs: XML-RPC (`xmlrpc`) and JSON-RPC 1.0 / 2.0 (`jsonrpc`), with xapi's envelopes
//! and quirks, and limits that turn hostile input into a `DecodeError`.
//!
//! Decoders check, in this order: the body size, UTF-8, then the structure while parsing, with
//! the nesting depth counted as they go (no recursion that the input controls) and every string
//! measured against the limit. Encoders cannot fail.

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_string_bytes: 8 * 1024 * 1024,
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
