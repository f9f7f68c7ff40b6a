//! Reading XML-RPC on quick-xml: element tokens, and text with its references resolved, within
//! `Limits`. Values are read on top of it, in `xml_value`.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

use crate::codec::{Limits, body_text, check_string};
use crate::error::DecodeError;

/// The element names XML-RPC uses, by local name (`ex:nil` is `Nil`). Any other name is `Other`
/// (shown as `<unknown>`), so that an error message never echoes the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    MethodCall,
    MethodName,
    MethodResponse,
    Params,
    Param,
    Fault,
    Value,
    Array,
    Data,
    Struct,
    Member,
    Name,
    String,
    Int,
    I4,
    I8,
    Boolean,
    Double,
    DateTime,
    Base64,
    Nil,
    Other,
}

impl Tag {
    fn of(local_name: &str) -> Tag {
        match local_name {
            "methodCall" => Tag::MethodCall,
            "methodName" => Tag::MethodName,
            "methodResponse" => Tag::MethodResponse,
            "params" => Tag::Params,
            "param" => Tag::Param,
            "fault" => Tag::Fault,
            "value" => Tag::Value,
            "array" => Tag::Array,
            "data" => Tag::Data,
            "struct" => Tag::Struct,
            "member" => Tag::Member,
            "name" => Tag::Name,
            "string" => Tag::String,
            "int" => Tag::Int,
            "i4" => Tag::I4,
            "i8" => Tag::I8,
            "boolean" => Tag::Boolean,
            "double" => Tag::Double,
            "dateTime.iso8601" => Tag::DateTime,
            "base64" => Tag::Base64,
            "nil" => Tag::Nil,
            _ => Tag::Other,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Tag::MethodCall => "methodCall",
            Tag::MethodName => "methodName",
            Tag::MethodResponse => "methodResponse",
            Tag::Params => "params",
            Tag::Param => "param",
            Tag::Fault => "fault",
            Tag::Value => "value",
            Tag::Array => "array",
            Tag::Data => "data",
            Tag::Struct => "struct",
            Tag::Member => "member",
            Tag::Name => "name",
            Tag::String => "string",
            Tag::Int => "int",
            Tag::I4 => "i4",
            Tag::I8 => "i8",
            Tag::Boolean => "boolean",
            Tag::Double => "double",
            Tag::DateTime => "dateTime.iso8601",
            Tag::Base64 => "base64",
            Tag::Nil => "nil",
            Tag::Other => "unknown",
        }
    }
}

/// What the reader hands on: comments, processing instructions and the XML declaration are
/// skipped; text, CDATA and entity references arrive as `Text` pieces, character references as
/// `Char` (so that none costs an allocation).
#[derive(Debug)]
pub(super) enum Token<'a> {
    Open(Tag),
    Empty(Tag),
    Close(Tag),
    Text(Cow<'a, str>),
    Char(char),
    Eof,
}

/// A pull reader over one document.
pub(super) struct XmlReader<'a> {
    reader: Reader<&'a [u8]>,
    pub(super) limits: Limits,
    /// The values read so far, against `limits.max_values`.
    pub(super) values: usize,
}

impl<'a> XmlReader<'a> {
    /// A reader of `body`, once its size and encoding are checked.
    pub(super) fn new(body: &'a [u8], limits: &Limits) -> Result<XmlReader<'a>, DecodeError> {
        let text = body_text(body, limits)?;
        Ok(XmlReader {
            reader: Reader::from_str(text),
            limits: *limits,
            values: 0,
        })
    }

    /// The next token. A DOCTYPE is refused outright, so no entity is ever defined or expanded.
    pub(super) fn next(&mut self) -> Result<Token<'a>, DecodeError> {
        loop {
            let event = self.reader.read_event().map_err(|_| {
                DecodeError::malformed(format!(
                    "not well-formed XML at byte {}",
                    self.reader.error_position()
                ))
            })?;
            return Ok(match event {
                Event::Start(e) => Token::Open(Tag::of(e.local_name().as_ref())),
                Event::Empty(e) => Token::Empty(Tag::of(e.local_name().as_ref())),
                Event::End(e) => Token::Close(Tag::of(e.local_name().as_ref())),
                Event::Text(e) => Token::Text(e.xml10_content()),
                Event::CData(e) => Token::Text(e.xml10_content()),
                Event::GeneralRef(e) => resolve(&e)?,
                Event::DocType(_) => return Err(DecodeError::malformed("DOCTYPE is not allowed")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
                Event::Eof => Token::Eof,
            });
        }
    }

    /// The next token that is not whitespace; other text here is an error.
    pub(super) fn next_element(&mut self) -> Result<Token<'a>, DecodeError> {
        loop {
            match self.next()? {
                Token::Text(text) if is_blank(&text) => {}
                Token::Char(c) if is_xml_space(c) => {}
                Token::Text(_) | Token::Char(_) => {
                    return Err(DecodeError::malformed("unexpected text between elements"));
                }
                token => return Ok(token),
            }
        }
    }

    /// Reads the start tag `<tag>`.
    pub(super) fn open(&mut self, tag: Tag) -> Result<(), DecodeError> {
        match self.next_element()? {
            Token::Open(t) if t == tag => Ok(()),
            token => Err(unexpected(&token, &format!("<{}>", tag.as_str()))),
        }
    }

    /// Reads the end tag `</tag>`.
    pub(super) fn close(&mut self, tag: Tag) -> Result<(), DecodeError> {
        match self.next_element()? {
            Token::Close(t) if t == tag => Ok(()),
            token => Err(unexpected(&token, &format!("</{}>", tag.as_str()))),
        }
    }

    /// Reads to the end of the document, which must hold nothing more.
    pub(super) fn end(&mut self) -> Result<(), DecodeError> {
        match self.next_element()? {
            Token::Eof => Ok(()),
            token => Err(unexpected(&token, "the end of the document")),
        }
    }

    /// Reads the text of the element just opened, through its end tag.
    pub(super) fn text(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let mut text = Cow::Borrowed("");
        loop {
            match self.next()? {
                Token::Text(piece) => self.append(&mut text, piece)?,
                Token::Char(c) => self.append_char(&mut text, c)?,
                Token::Close(_) => return Ok(text),
                token @ (Token::Open(_) | Token::Empty(_) | Token::Eof) => {
                    return Err(unexpected(&token, "text"));
                }
            }
        }
    }

    /// Appends a piece of text, within the string limit.
    pub(super) fn append(
        &self,
        text: &mut Cow<'a, str>,
        piece: Cow<'a, str>,
    ) -> Result<(), DecodeError> {
        check_string(text.len() + piece.len(), &self.limits)?;
        if text.is_empty() {
            *text = piece;
        } else {
            text.to_mut().push_str(&piece);
        }
        Ok(())
    }

    /// Appends a character, within the string limit.
    pub(super) fn append_char(&self, text: &mut Cow<'a, str>, c: char) -> Result<(), DecodeError> {
        check_string(text.len() + c.len_utf8(), &self.limits)?;
        text.to_mut().push(c);
        Ok(())
    }
}

/// A reference as the text it stands for: one of XML's five predefined entities or a character
/// reference. No other entity can exist, since a DOCTYPE is refused.
fn resolve<'a>(reference: &BytesRef<'_>) -> Result<Token<'a>, DecodeError> {
    let bad = || DecodeError::malformed("unknown entity or bad character reference");
    if let Some(c) = reference.resolve_char_ref().map_err(|_| bad())? {
        return Ok(Token::Char(c));
    }
    let text = match &**reference {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => return Err(bad()),
    };
    Ok(Token::Text(Cow::Borrowed(text)))
}

/// "expected …, found …".
pub(super) fn unexpected(token: &Token<'_>, expected: &str) -> DecodeError {
    let found = match token {
        Token::Open(tag) | Token::Empty(tag) => format!("<{}>", tag.as_str()),
        Token::Close(tag) => format!("</{}>", tag.as_str()),
        Token::Text(_) | Token::Char(_) => "text".to_owned(),
        Token::Eof => "the end of the document".to_owned(),
    };
    DecodeError::malformed(format!("expected {expected}, found {found}"))
}

pub(super) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub(super) fn is_blank(text: &str) -> bool {
    text.chars().all(is_xml_space)
}

/// The value readers' tests here and in `xml_value.rs` share these.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::types::Value;

    /// One `<value>` element, read with the default limits.
    pub(in crate::codec) fn read(text: &str) -> Result<Value, DecodeError> {
        read_with(text, &Limits::default())
    }

    /// One `<value>` element and nothing after it.
    pub(in crate::codec) fn read_with(text: &str, limits: &Limits) -> Result<Value, DecodeError> {
        let mut reader = XmlReader::new(text.as_bytes(), limits)?;
        let value = reader.value_element()?;
        reader.end()?;
        Ok(value)
    }

    pub(in crate::codec) fn malformed(result: Result<Value, DecodeError>) -> bool {
        matches!(result, Err(DecodeError::Malformed { .. }))
    }

    /// Untyped text is a string kept exactly, whitespace included; an empty value is "".
    #[test]
    fn untyped_values_are_strings_kept_exactly() {
        assert_eq!(read("<value> a b \n</value>"), Ok(Value::str(" a b \n")));
        assert_eq!(read("<value>  </value>"), Ok(Value::str("  ")));
        assert_eq!(read("<value></value>"), Ok(Value::str("")));
        assert_eq!(read("<value/>"), Ok(Value::str("")));
        assert_eq!(read("<value>a<!-- note -->b</value>"), Ok(Value::str("ab")));
    }

    /// Entities, character references and CDATA all become the characters they stand for.
    #[test]
    fn references_and_cdata_are_resolved() {
        assert_eq!(read("<value>a&lt;b</value>"), Ok(Value::str("a<b")));
        assert_eq!(read("<value>&#32;</value>"), Ok(Value::str(" ")));
        assert_eq!(read("<value>&#32;<nil/></value>"), Ok(Value::Nil));
        assert_eq!(
            read("<value>&amp;&gt;&quot;&apos;&#60;&#x3C;&#13;&#x1F600;</value>"),
            Ok(Value::str("&>\"'<<\r😀"))
        );
        assert_eq!(
            read("<value><string><![CDATA[<b>&amp;]]></string></value>"),
            Ok(Value::str("<b>&amp;"))
        );
        assert_eq!(read("<value>x\r\ny\rz</value>"), Ok(Value::str("x\ny\nz")));
    }

    /// Undefined entities, bad character references and any DOCTYPE are refused.
    #[test]
    fn doctypes_and_unknown_references_are_refused() {
        assert!(malformed(read("<value>&foo;</value>")));
        assert!(malformed(read("<value>&#0;</value>")));
        assert!(malformed(read("<value>&#xD800;</value>")));
        assert!(malformed(read(
            "<!DOCTYPE v [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;\">]><value>&b;</value>"
        )));
    }

    /// Strings and member names longer than the limit are refused, however they are split.
    #[test]
    fn strings_over_the_limit_are_too_long() {
        let limits = Limits {
            max_string_bytes: 4,
            ..Limits::default()
        };
        assert!(read_with("<value>abcd</value>", &limits).is_ok());
        for body in [
            "<value>abcde</value>",
            "<value>ab&amp;de</value>",
            "<value>abcd&#65;</value>",
            "<value><string>ab<![CDATA[cde]]></string></value>",
            "<value><struct><member><name>abcde</name><value/></member></struct></value>",
        ] {
            assert!(
                matches!(
                    read_with(body, &limits),
                    Err(DecodeError::StringTooLong { limit: 4, .. })
                ),
                "{body}"
            );
        }
    }
}
