//! The wire codecs: XML-RPC (`xmlrpc`) and JSON-RPC 1.0 / 2.0 (`jsonrpc`), with xapi's envelopes
//! and quirks, and limits that turn hostile input into a `DecodeError`.

pub mod jsonrpc;
pub mod xmlrpc;

use crate::types::Value;

/// Bounds on what a decoder accepts. Anything beyond them is a `DecodeError`, never a panic or
/// unbounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and structs.
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
