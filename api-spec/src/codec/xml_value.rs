//! XML-RPC values read from an `XmlReader`: containers on an explicit stack (never recursion),
//! scalars with xapi's leniencies.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::codec::xml_read::{Tag, Token, XmlReader, is_blank, is_xml_space, unexpected};
use crate::codec::{Limits, check_values};
use crate::datetime;
use crate::error::DecodeError;
use crate::types::Value;

/// A container being filled while its items are read.
enum Frame {
    Array(Vec<Value>),
    /// `name` is the name of the member whose value is being read.
    Struct {
        members: BTreeMap<String, Value>,
        name: String,
    },
}

impl Frame {
    fn into_value(self) -> Value {
        match self {
            Frame::Array(items) => Value::Array(items),
            Frame::Struct { members, .. } => Value::Struct(members),
        }
    }
}

/// What a value's start reveals: the whole value, or a container whose items follow.
enum Head {
    Done(Value),
    Open(Frame),
}

/// The next item of a container.
enum Item {
    /// A `<value>` start tag has been read.
    Value,
    /// An empty `<value/>`: the empty string.
    EmptyValue,
}

impl<'a> XmlReader<'a> {
    /// Reads one `<value>…</value>` or `<value/>`.
    pub(super) fn value_element(&mut self) -> Result<Value, DecodeError> {
        match self.next_element()? {
            Token::Open(Tag::Value) => self.value(),
            Token::Empty(Tag::Value) => {
                self.count_value()?;
                Ok(Value::String(String::new()))
            }
            token => Err(unexpected(&token, "<value>")),
        }
    }

    /// Reads a value whose `<value>` start tag has just been read, through its `</value>`.
    ///
    /// Containers are kept on an explicit stack whose height is checked against the depth limit
    /// before it grows, so no input can make this recurse or run deep.
    pub(super) fn value(&mut self) -> Result<Value, DecodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut next = Item::Value;
        loop {
            self.count_value()?;
            let head = match next {
                Item::Value => self.value_head(stack.len())?,
                Item::EmptyValue => Head::Done(Value::String(String::new())),
            };
            let mut finished = match head {
                Head::Done(value) => value,
                Head::Open(mut frame) => match self.advance(&mut frame)? {
                    None => frame.into_value(),
                    Some(item) => {
                        stack.push(frame);
                        next = item;
                        continue;
                    }
                },
            };
            // Hand the finished value to its container and find that container's next item,
            // closing containers as long as they end.
            loop {
                let Some(mut frame) = stack.pop() else {
                    return Ok(finished);
                };
                self.add(&mut frame, finished)?;
                match self.advance(&mut frame)? {
                    None => finished = frame.into_value(),
                    Some(item) => {
                        stack.push(frame);
                        next = item;
                        break;
                    }
                }
            }
        }
    }

    /// Reads what follows a `<value>` start tag at nesting `depth`: an untyped string, a scalar,
    /// `<nil/>`, or the start of an array or struct.
    fn value_head(&mut self, depth: usize) -> Result<Head, DecodeError> {
        let mut text = Cow::Borrowed("");
        loop {
            match self.next()? {
                Token::Text(piece) => self.append(&mut text, piece)?,
                Token::Char(c) => self.append_char(&mut text, c)?,
                // Untyped: the text exactly as sent, whitespace included.
                Token::Close(_) => return Ok(Head::Done(Value::String(text.into_owned()))),
                Token::Open(tag) if is_blank(&text) => return self.typed(tag, depth),
                Token::Empty(tag) if is_blank(&text) => {
                    if matches!(tag, Tag::Array | Tag::Struct) {
                        check_depth(depth, &self.limits)?;
                    }
                    let value = empty_typed(tag)?;
                    self.close(Tag::Value)?;
                    return Ok(Head::Done(value));
                }
                Token::Open(_) | Token::Empty(_) => {
                    return Err(DecodeError::malformed(
                        "text mixed with elements in a value",
                    ));
                }
                Token::Eof => return Err(unexpected(&Token::Eof, "</value>")),
            }
        }
    }

    fn typed(&mut self, tag: Tag, depth: usize) -> Result<Head, DecodeError> {
        match tag {
            Tag::Array => {
                check_depth(depth, &self.limits)?;
                match self.next_element()? {
                    Token::Open(Tag::Data) => Ok(Head::Open(Frame::Array(Vec::new()))),
                    Token::Empty(Tag::Data) => {
                        self.close(Tag::Array)?;
                        self.close(Tag::Value)?;
                        Ok(Head::Done(Value::Array(Vec::new())))
                    }
                    Token::Close(Tag::Array) => {
                        self.close(Tag::Value)?;
                        Ok(Head::Done(Value::Array(Vec::new())))
                    }
                    token => Err(unexpected(&token, "<data>")),
                }
            }
            Tag::Struct => {
                check_depth(depth, &self.limits)?;
                Ok(Head::Open(Frame::Struct {
                    members: BTreeMap::new(),
                    name: String::new(),
                }))
            }
            Tag::Nil => {
                self.close(Tag::Nil)?;
                self.close(Tag::Value)?;
                Ok(Head::Done(Value::Nil))
            }
            Tag::String
            | Tag::Int
            | Tag::I4
            | Tag::I8
            | Tag::Boolean
            | Tag::Double
            | Tag::DateTime
            | Tag::Base64 => {
                let text = self.text()?;
                let value = scalar(tag, text)?;
                self.close(Tag::Value)?;
                Ok(Head::Done(value))
            }
            _ => Err(unexpected(&Token::Open(tag), "a value type")),
        }
    }

    /// Reads up to the next item of `frame`, or, at its end, through the enclosing `</value>`
    /// and gives `None`.
    fn advance(&mut self, frame: &mut Frame) -> Result<Option<Item>, DecodeError> {
        match frame {
            Frame::Array(_) => match self.next_element()? {
                Token::Open(Tag::Value) => Ok(Some(Item::Value)),
                Token::Empty(Tag::Value) => Ok(Some(Item::EmptyValue)),
                Token::Close(Tag::Data) => {
                    self.close(Tag::Array)?;
                    self.close(Tag::Value)?;
                    Ok(None)
                }
                token => Err(unexpected(&token, "<value> or </data>")),
            },
            Frame::Struct { members, name } => match self.next_element()? {
                Token::Open(Tag::Member) => {
                    *name = match self.next_element()? {
                        Token::Open(Tag::Name) => self.text()?.into_owned(),
                        Token::Empty(Tag::Name) => String::new(),
                        token => return Err(unexpected(&token, "<name>")),
                    };
                    if members.contains_key(name.as_str()) {
                        return Err(DecodeError::DuplicateMember);
                    }
                    match self.next_element()? {
                        Token::Open(Tag::Value) => Ok(Some(Item::Value)),
                        Token::Empty(Tag::Value) => Ok(Some(Item::EmptyValue)),
                        token => Err(unexpected(&token, "<value>")),
                    }
                }
                Token::Close(Tag::Struct) => {
                    self.close(Tag::Value)?;
                    Ok(None)
                }
                token => Err(unexpected(&token, "<member> or </struct>")),
            },
        }
    }

    /// Counts one more value, within the limit.
    fn count_value(&mut self) -> Result<(), DecodeError> {
        self.values += 1;
        check_values(self.values, &self.limits)
    }

    /// Puts a finished item into its container (closing its `<member>`).
    fn add(&mut self, frame: &mut Frame, item: Value) -> Result<(), DecodeError> {
        match frame {
            Frame::Array(items) => items.push(item),
            Frame::Struct { members, name } => {
                members.insert(std::mem::take(name), item);
                self.close(Tag::Member)?;
            }
        }
        Ok(())
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

/// An empty typed element: `<string/>`, `<base64/>`, `<nil/>`, `<array/>`, `<struct/>`.
fn empty_typed(tag: Tag) -> Result<Value, DecodeError> {
    match tag {
        Tag::String | Tag::Base64 => Ok(Value::String(String::new())),
        Tag::Nil => Ok(Value::Nil),
        Tag::Array => Ok(Value::Array(Vec::new())),
        Tag::Struct => Ok(Value::Struct(BTreeMap::new())),
        _ => Err(DecodeError::malformed(format!(
            "empty <{}> is not a value",
            tag.as_str()
        ))),
    }
}

/// A scalar from its element's text: a `<string>` exactly, the others trimmed. Every int tag
/// holds an int64, as in xapi; `<i4>` stays an `Int32` when it fits, so that what `write_value`
/// writes reads back the same.
fn scalar(tag: Tag, text: Cow<'_, str>) -> Result<Value, DecodeError> {
    if tag == Tag::String {
        return Ok(Value::String(text.into_owned()));
    }
    let bad = || DecodeError::malformed(format!("bad <{}>", tag.as_str()));
    let trimmed = text.trim_matches(is_xml_space);
    match tag {
        Tag::Int | Tag::I8 => trimmed.parse().map(Value::Int).map_err(|_| bad()),
        Tag::I4 => {
            let i: i64 = trimmed.parse().map_err(|_| bad())?;
            Ok(i32::try_from(i).map_or(Value::Int(i), Value::Int32))
        }
        Tag::Boolean => match trimmed {
            "1" => Ok(Value::Bool(true)),
            "0" => Ok(Value::Bool(false)),
            t if t.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            t if t.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        Tag::Double => trimmed.parse().map(Value::Float).map_err(|_| bad()),
        Tag::DateTime => plausible_datetime(trimmed)
            .then(|| datetime::normalise(trimmed))
            .flatten()
            .map(Value::DateTime)
            .ok_or_else(bad),
        Tag::Base64 => base64(trimmed)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Value::String)
            .ok_or_else(bad),
        _ => Err(unexpected(&Token::Open(tag), "a value type")),
    }
}

/// Shapes `datetime::parse_unix` can take without overflow: short, with a zone offset of at most
/// `+hh:mm`.
fn plausible_datetime(text: &str) -> bool {
    let zone_len = text
        .split_once('T')
        .and_then(|(_, time)| time.rfind(['+', '-']).map(|pos| time.len() - pos))
        .unwrap_or(0);
    text.len() <= 40 && zone_len <= 6
}

/// Standard base64, padding optional, whitespace (line breaks) ignored.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut padding = 0;
    for b in text.bytes() {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        acc = (acc << 6 | u32::from(sextet)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // One leftover sextet cannot make a byte; more than two `=` is never valid.
    (bits < 6 && padding <= 2).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::xml_read::tests::{malformed, read, read_with};

    /// Every standard type tag is read, with xapi's leniencies.
    #[test]
    fn every_standard_tag_is_read() {
        let cases = [
            ("<string>x y</string>", Value::str("x y")),
            ("<string/>", Value::str("")),
            ("<int> 42 </int>", Value::Int(42)),
            ("<i8>-9223372036854775808</i8>", Value::Int(i64::MIN)),
            ("<i4>7</i4>", Value::Int32(7)),
            ("<i4>4294967296</i4>", Value::Int(4_294_967_296)),
            ("<boolean>1</boolean>", Value::Bool(true)),
            ("<boolean>false</boolean>", Value::Bool(false)),
            ("<double>60.1</double>", Value::Float(60.1)),
            ("<double>1e3</double>", Value::Float(1000.0)),
            ("<base64>aGVsbG8=</base64>", Value::str("hello")),
            ("<base64>aGVs\nbG8</base64>", Value::str("hello")),
            ("<nil/>", Value::Nil),
            ("<ex:nil/>", Value::Nil),
            ("<nil></nil>", Value::Nil),
            ("<array><data/></array>", Value::Array(vec![])),
            ("<array/>", Value::Array(vec![])),
            ("<struct/>", Value::Struct(BTreeMap::new())),
        ];
        for (inner, want) in cases {
            assert_eq!(
                read(&format!("<value>{inner}</value>")),
                Ok(want),
                "{inner}"
            );
        }
    }

    /// Datetimes, dashed or not, are normalised to xapi's form; anything else is refused.
    #[test]
    fn datetimes_are_normalised_or_refused() {
        for text in [
            "20240101T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "20240101T02:00:00+02:00",
        ] {
            assert_eq!(
                read(&format!(
                    "<value><dateTime.iso8601>{text}</dateTime.iso8601></value>"
                )),
                Ok(Value::DateTime("20240101T00:00:00Z".into())),
                "{text}"
            );
        }
        for text in ["soon", "20240101T00:00:00+99999999999999999:00", ""] {
            assert!(
                malformed(read(&format!(
                    "<value><dateTime.iso8601>{text}</dateTime.iso8601></value>"
                ))),
                "{text}"
            );
        }
    }

    /// Bad scalars, unknown tags and text mixed with elements are malformed.
    #[test]
    fn bad_scalars_and_unknown_tags_are_malformed() {
        for body in [
            "<value><int>1.5</int></value>",
            "<value><int>9223372036854775808</int></value>",
            "<value><boolean>yes</boolean></value>",
            "<value><double>x</double></value>",
            "<value><base64>!!</base64></value>",
            "<value><base64>/w==</base64></value>",
            "<value><base64>QQ=A</base64></value>",
            "<value><blob>1</blob></value>",
            "<value><int/></value>",
            "<value>a<string>b</string></value>",
            "<value><string>a</string>b</value>",
            "<value><string>a<b/></string></value>",
            "<value><array><value/></array></value>",
            "<value><struct><member><value/></member></struct></value>",
            "<value><struct><member><name>a</name></member></struct></value>",
            "<value>x</value><value>y</value>",
            "<value>x",
            "<value><array><data>",
        ] {
            assert!(malformed(read(body)), "{body}");
        }
    }

    /// Arrays and structs nest, with whitespace between elements ignored.
    #[test]
    fn containers_nest() {
        let body = "<value><struct>\n <member><name>a</name><value><array><data>\n\
                    <value>1</value> <value/><value><i4>2</i4></value></data></array></value>\
                    </member>\n<member><name/><value/></member></struct></value>";
        let want = Value::Struct(BTreeMap::from([
            (
                "a".to_owned(),
                Value::Array(vec![Value::str("1"), Value::str(""), Value::Int32(2)]),
            ),
            (String::new(), Value::str("")),
        ]));
        assert_eq!(read(body), Ok(want));
    }

    /// Nesting is limited, empty containers included, and a huge depth fails fast.
    #[test]
    fn nesting_beyond_the_limit_is_too_deep() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let two = "<value><array><data><value><struct/></value></data></array></value>";
        assert!(read_with(two, &limits).is_ok());
        let three = "<value><array><data><value><array><data><value><array/></value></data>\
                     </array></value></data></array></value>";
        assert_eq!(
            read_with(three, &limits),
            Err(DecodeError::TooDeep { limit: 2 })
        );
        let deep = "<value><array><data>".repeat(100_000);
        assert_eq!(read(&deep), Err(DecodeError::TooDeep { limit: 64 }));
        let deep = "<value><struct><member><name>a</name>".repeat(100_000);
        assert_eq!(read(&deep), Err(DecodeError::TooDeep { limit: 64 }));
    }

    /// Every value counts against the limit, empty ones and containers included.
    #[test]
    fn values_beyond_the_limit_are_refused() {
        let limits = |max_values| Limits {
            max_values,
            ..Limits::default()
        };
        let body = "<value><array><data><value/><value>a</value><value><struct><member>\
                    <name>n</name><value><nil/></value></member></struct></value></data>\
                    </array></value>";
        assert!(read_with(body, &limits(5)).is_ok());
        assert_eq!(
            read_with(body, &limits(4)),
            Err(DecodeError::TooManyValues { limit: 4 })
        );
        assert_eq!(
            read_with("<value/>", &limits(0)),
            Err(DecodeError::TooManyValues { limit: 0 })
        );
    }

    /// A name seen before in the same struct is refused; the same name in two structs is not.
    #[test]
    fn names_repeat_only_across_structs() {
        let member = |name: &str| format!("<member><name>{name}</name><value/></member>");
        let nested = format!(
            "<value><struct>{}<member><name>b</name><value><struct>{}</struct></value>\
             </member></struct></value>",
            member("a"),
            member("a")
        );
        assert!(read(&nested).is_ok());
        let twice = format!(
            "<value><struct>{}{}</struct></value>",
            member(""),
            member("")
        );
        assert_eq!(read(&twice), Err(DecodeError::DuplicateMember));
    }

    /// Base64 decodes with or without padding and refuses a lone trailing character.
    #[test]
    fn base64_decodes_standard_text() {
        assert_eq!(base64("TWFu"), Some(b"Man".to_vec()));
        assert_eq!(base64("TWE="), Some(b"Ma".to_vec()));
        assert_eq!(base64("TQ"), Some(b"M".to_vec()));
        assert_eq!(base64(""), Some(vec![]));
        assert_eq!(base64("TWFuT"), None);
        assert_eq!(base64("TQ==="), None);
    }
}
