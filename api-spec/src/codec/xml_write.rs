//! Writing XML-RPC values as xapi's rpclib does: strings and int64s untyped, `<i4>` only for
//! `Int32`, dash-less datetimes, `<nil/>`.
//!
//! Text is escaped so that a reader gives back the same string: `& < > " '` as entities, `\r` as
//! `&#13;` (a literal one would be read back as `\n`). Characters XML 1.0 cannot carry at all
//! (C0 controls other than tab, newline and carriage return; U+FFFE; U+FFFF) are dropped, as
//! rpclib drops them: a strict client parser (Python's expat) would reject the whole reply
//! otherwise.

use std::fmt::Write;

use crate::types::Value;

/// Markup bytes per node, for `len_hint`: `<value></value>` plus a member's tags.
pub(super) const NODE_MARKUP: usize = 32;

/// Appends `<value>…</value>` for `value`.
pub(super) fn write_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Nil => out.push_str("<nil/>"),
        Value::Bool(true) => out.push_str("<boolean>1</boolean>"),
        Value::Bool(false) => out.push_str("<boolean>0</boolean>"),
        Value::Int(i) => write_int(out, *i),
        Value::Int32(i) => {
            out.push_str("<i4>");
            write_int(out, i64::from(*i));
            out.push_str("</i4>");
        }
        Value::Float(f) => {
            out.push_str("<double>");
            write_double(out, *f);
            out.push_str("</double>");
        }
        Value::String(s) => escape_into(out, s),
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, item) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, item);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

fn write_int(out: &mut String, i: i64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{i}");
}

/// The shortest text that parses back to the same double, with an exponent for very large or
/// small magnitudes (`1e16`, `1.5e-7`): xapi's `%.16g` loses the last digit, Python's `float()`,
/// JavaScript's `parseFloat` and OCaml's `float_of_string` all read this form. NaN and the
/// infinities, which XML-RPC has no form for, are written `NaN`, `Infinity` and `-Infinity`,
/// which those same parsers accept.
fn write_double(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{f:?}");
    }
}

/// Appends `text` escaped for element content (see the module comment).
pub(super) fn escape_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (replacement, len) = match bytes[i] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&apos;", 1),
            b'\r' => ("&#13;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0x00..=0x1f => ("", 1),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
            0xef if bytes.get(i + 1) == Some(&0xbf)
                && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
            {
                ("", 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // Every byte matched above is ASCII or a lead byte, so both ends are char boundaries.
        out.push_str(&text[start..i]);
        out.push_str(replacement);
        i += len;
        start = i;
    }
    out.push_str(&text[start..]);
}

/// `text` as a reader gets it back after `escape_into`: without the characters XML 1.0 cannot
/// carry.
#[cfg(test)]
pub(super) fn carried(text: &str) -> String {
    text.chars().filter(|c| super::is_xml_char(*c)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn value(v: &Value) -> String {
        let mut out = String::new();
        write_value(&mut out, v);
        out
    }

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        escape_into(&mut out, text);
        out
    }

    /// The five markup characters become entities and a carriage return a character reference.
    #[test]
    fn markup_characters_and_carriage_returns_are_escaped() {
        assert_eq!(
            escaped("a&b<c>d\"e'f\r\n\tg"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;\n\tg"
        );
    }

    /// Controls XML 1.0 cannot carry and the two non-characters are dropped; the rest stays.
    #[test]
    fn characters_xml_cannot_carry_are_dropped() {
        assert_eq!(
            escaped("a\u{0}b\u{1}c\u{1f}d\u{7f}é\u{fffe}\u{ffff}\u{fffd}😀"),
            "abcd\u{7f}é\u{fffd}😀"
        );
        assert_eq!(carried("a\u{0}b\u{fffe}\r"), "ab\r");
    }

    /// Plain text is copied as it is.
    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escaped("OpaqueRef:6a1d…"), "OpaqueRef:6a1d…");
        assert_eq!(escaped(""), "");
    }

    /// Each kind of value gets rpclib's markup: int64 untyped, int32 as `<i4>`.
    #[test]
    fn scalars_use_xapis_markup() {
        assert_eq!(
            value(&Value::Int(i64::MIN)),
            "<value>-9223372036854775808</value>"
        );
        assert_eq!(value(&Value::Int32(3)), "<value><i4>3</i4></value>");
        assert_eq!(
            value(&Value::Bool(true)),
            "<value><boolean>1</boolean></value>"
        );
        assert_eq!(
            value(&Value::Bool(false)),
            "<value><boolean>0</boolean></value>"
        );
        assert_eq!(value(&Value::Nil), "<value><nil/></value>");
        assert_eq!(value(&Value::str("a<b")), "<value>a&lt;b</value>");
        assert_eq!(
            value(&Value::DateTime("19700101T00:00:00Z".into())),
            "<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value>"
        );
    }

    /// Doubles are written in the shortest form that reads back exactly; non-finite ones by name.
    #[test]
    fn doubles_are_exact_and_non_finite_ones_are_named() {
        for (f, text) in [
            (60.1, "60.1"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (1e16, "1e16"),
            (1.5e-7, "1.5e-7"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(
                value(&Value::Float(f)),
                format!("<value><double>{text}</double></value>")
            );
        }
        assert_eq!("0.30000000000000004".parse::<f64>(), Ok(0.1 + 0.2));
        assert_eq!(
            value(&Value::Float(0.1 + 0.2)),
            "<value><double>0.30000000000000004</double></value>"
        );
    }

    /// Arrays and structs nest `<array><data>` and `<struct><member><name>`, members in key order.
    #[test]
    fn containers_nest_as_rpclib_writes_them() {
        let members = BTreeMap::from([
            (
                "b".to_owned(),
                Value::Array(vec![Value::str("x"), Value::Int(1)]),
            ),
            ("a&".to_owned(), Value::Struct(BTreeMap::new())),
        ]);
        assert_eq!(
            value(&Value::Struct(members)),
            "<value><struct><member><name>a&amp;</name><value><struct></struct></value></member>\
             <member><name>b</name><value><array><data><value>x</value><value>1</value></data>\
             </array></value></member></struct></value>"
        );
    }
}
