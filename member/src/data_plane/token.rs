//! `Token`: the one-use name of a transfer that the master hands both ends.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data_plane::DataPlaneError;
use crate::identity::random_bytes;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 16;
/// Hex characters of a token shown in logs and errors: enough to tell transfers apart, far
/// too few to use one.
const SHOWN_HEX: usize = 8;

/// The one-use name of a transfer: 128 random bits, written as 32 lowercase hex characters.
/// Whoever holds it (and the pool secret) may send the transfer's bytes, so `Debug` and
/// `Display` show only its first characters; `to_hex` is the whole token, for the URL and for
/// handing it to the other end. Serialized as its hex text.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token([u8; TOKEN_BYTES]);

impl Token {
    /// A new token from the kernel's random source.
    pub fn generate() -> Result<Token, DataPlaneError> {
        random_bytes::<TOKEN_BYTES>()
            .map(Token)
            .map_err(DataPlaneError::Random)
    }

    /// A token from its hex text (either case).
    pub fn parse(text: &str) -> Result<Token, DataPlaneError> {
        if text.len() != 2 * TOKEN_BYTES {
            return Err(DataPlaneError::MalformedToken);
        }
        let digit = |c: u8| {
            char::from(c)
                .to_digit(16)
                .ok_or(DataPlaneError::MalformedToken)
        };
        let mut bytes = [0u8; TOKEN_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let value = digit(pair[0])? << 4 | digit(pair[1])?;
            *byte = u8::try_from(value).expect("two hex digits make a byte");
        }
        Ok(Token(bytes))
    }

    /// The whole token as lowercase hex. Never log it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.to_hex()[..SHOWN_HEX])
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

impl TryFrom<String> for Token {
    type Error = DataPlaneError;

    fn try_from(text: String) -> Result<Token, DataPlaneError> {
        Token::parse(&text)
    }
}

impl From<Token> for String {
    fn from(token: Token) -> String {
        token.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token is 32 lowercase hex characters that parse back to it, in either case; two
    /// tokens drawn differ.
    #[test]
    fn tokens_are_random_hex_that_parses_back() {
        let token = Token::generate().expect("random bytes");
        let hex = token.to_hex();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(Token::parse(&hex).expect("parses"), token);
        assert_eq!(Token::parse(&hex.to_uppercase()).expect("parses"), token);
        assert_ne!(Token::generate().expect("random bytes"), token);
    }

    /// Text of the wrong length or with a non-hex character is not a token.
    #[test]
    fn malformed_text_is_not_a_token() {
        for text in [
            "",
            "abc",
            &"a".repeat(31),
            &"a".repeat(33),
            &"g".repeat(32),
            &"é".repeat(16),
        ] {
            assert!(
                matches!(Token::parse(text), Err(DataPlaneError::MalformedToken)),
                "{text:?}"
            );
        }
        assert!(
            Token::parse(&"+1".repeat(16)).is_err(),
            "a sign is not a hex digit"
        );
    }

    /// Logs and errors show only the token's first 8 characters; serde carries all of it.
    #[test]
    fn a_token_is_shown_cut_and_serialized_whole() {
        let token = Token::parse("0123456789abcdef0123456789abcdef").expect("parses");
        assert_eq!(token.to_string(), "01234567…");
        assert_eq!(format!("{token:?}"), "Token(01234567…)");
        let json = serde_json::to_string(&token).expect("serializes");
        assert_eq!(json, "\"0123456789abcdef0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<Token>(&json).expect("parses"), token);
        assert!(serde_json::from_str::<Token>("\"short\"").is_err());
    }
}
