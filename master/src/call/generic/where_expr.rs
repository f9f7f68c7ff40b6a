//! The expression language of `get_all_where` / `get_all_records_where`, as xapi parses it:
//! `field "name_label"="x" and not (field "power_state"="Running" or false)`.
//!
//! Values are a quoted literal or `field` and a quoted field name; `=` compares their text.
//! `and` and `or` bind equally and group from the left; `not` covers everything to its right
//! (xapi's grammar gives it the lowest precedence). xapi quotes with `"` only; `'` is accepted
//! too.

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    True,
    False,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Operand, Operand),
}

/// One side of `=`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Field(String),
    Literal(String),
}

/// Why an expression did not parse; the text goes into `INVALID_VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at byte {position}: {reason}")]
pub(crate) struct ParseError {
    pub position: usize,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Eq,
    True,
    False,
    Field,
    And,
    Or,
    Not,
    Open,
    Close,
    Str(String),
}

const KEYWORDS: [(&str, Token); 6] = [
    ("true", Token::True),
    ("false", Token::False),
    ("field", Token::Field),
    ("and", Token::And),
    ("or", Token::Or),
    ("not", Token::Not),
];

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        let position = text.len() - trimmed.len();
        rest = trimmed;
        let Some(c) = rest.chars().next() else {
            return Ok(out);
        };
        let (token, len) = match c {
            '=' => (Token::Eq, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '"' | '\'' => match rest[1..].find(c) {
                Some(end) => (Token::Str(rest[1..=end].to_owned()), end + 2),
                None => {
                    return Err(ParseError {
                        position,
                        reason: "unterminated string",
                    });
                }
            },
            _ => match KEYWORDS.iter().find(|(k, _)| rest.starts_with(k)) {
                Some((k, t)) => (t.clone(), k.len()),
                None => {
                    return Err(ParseError {
                        position,
                        reason: "unexpected character",
                    });
                }
            },
        };
        out.push((position, token));
        rest = &rest[len..];
    }
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(p, _)| *p)
    }

    fn fail<T>(&self, reason: &'static str) -> Result<T, ParseError> {
        Err(ParseError {
            position: self.position(),
            reason,
        })
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).map(|(_, t)| t.clone());
        self.next += 1;
        token
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.primary()?;
        loop {
            let combine: fn(Box<Expr>, Box<Expr>) -> Expr = match self.peek() {
                Some(Token::And) => Expr::And,
                Some(Token::Or) => Expr::Or,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.primary()?;
            left = combine(Box::new(left), Box::new(right));
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(Token::Not) => {
                self.bump();
                Ok(Expr::Not(Box::new(self.expr()?)))
            }
            Some(Token::True) => {
                self.bump();
                Ok(Expr::True)
            }
            Some(Token::False) => {
                self.bump();
                Ok(Expr::False)
            }
            Some(Token::Open) => {
                self.bump();
                let inner = self.expr()?;
                match self.bump() {
                    Some(Token::Close) => Ok(inner),
                    _ => {
                        self.next -= 1;
                        self.fail("expected )")
                    }
                }
            }
            Some(Token::Field | Token::Str(_)) => {
                let left = self.operand()?;
                if self.peek() != Some(&Token::Eq) {
                    return self.fail("expected =");
                }
                self.bump();
                let right = self.operand()?;
                Ok(Expr::Eq(left, right))
            }
            _ => self.fail("expected an expression"),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.bump();
                Ok(Operand::Literal(s))
            }
            Some(Token::Field) => {
                self.bump();
                match self.peek().cloned() {
                    Some(Token::Str(s)) => {
                        self.bump();
                        Ok(Operand::Field(s))
                    }
                    _ => self.fail("expected a quoted field name"),
                }
            }
            _ => self.fail("expected a value"),
        }
    }
}

/// Parses an expression; the whole text must be one expression.
pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        next: 0,
        end: text.len(),
    };
    let expr = parser.expr()?;
    if parser.peek().is_some() {
        return parser.fail("unexpected text after the expression");
    }
    Ok(expr)
}

impl Expr {
    /// Every field name the expression reads.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::True | Expr::False => {}
            Expr::Not(e) => e.collect_fields(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_fields(out);
                b.collect_fields(out);
            }
            Expr::Eq(a, b) => {
                for operand in [a, b] {
                    if let Operand::Field(f) = operand {
                        out.push(f);
                    }
                }
            }
        }
    }

    /// Whether a row matches; `field_text` gives the text of a field's value.
    pub fn eval(&self, field_text: &dyn Fn(&str) -> String) -> bool {
        let text = |o: &Operand| match o {
            Operand::Field(f) => field_text(f),
            Operand::Literal(s) => s.clone(),
        };
        match self {
            Expr::True => true,
            Expr::False => false,
            Expr::Not(e) => !e.eval(field_text),
            Expr::And(a, b) => a.eval(field_text) && b.eval(field_text),
            Expr::Or(a, b) => a.eval(field_text) || b.eval(field_text),
            Expr::Eq(a, b) => text(a) == text(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> Expr {
        Expr::Eq(
            Operand::Field(name.to_owned()),
            Operand::Literal(value.to_owned()),
        )
    }

    /// The expression XO sends for certificates parses to an `or` of two comparisons.
    #[test]
    fn or_of_two_field_comparisons_parses() {
        assert_eq!(
            parse(r#"field "type"="ca" or field "type"="pinned""#),
            Ok(Expr::Or(
                Box::new(field("type", "ca")),
                Box::new(field("type", "pinned"))
            ))
        );
    }

    /// Both quote styles, constants and parentheses are accepted.
    #[test]
    fn single_quotes_constants_and_parentheses_parse() {
        assert_eq!(
            parse("(true and field 'a'='b')"),
            Ok(Expr::And(Box::new(Expr::True), Box::new(field("a", "b"))))
        );
        assert_eq!(parse(" false "), Ok(Expr::False));
    }

    /// `not` covers everything to its right, as in xapi's grammar.
    #[test]
    fn not_extends_to_the_end() {
        assert_eq!(
            parse(r#"not true and false"#),
            Ok(Expr::Not(Box::new(Expr::And(
                Box::new(Expr::True),
                Box::new(Expr::False)
            ))))
        );
    }

    /// `and` and `or` group from the left at the same level.
    #[test]
    fn and_or_group_from_the_left() {
        assert_eq!(
            parse("true or false and false"),
            Ok(Expr::And(
                Box::new(Expr::Or(Box::new(Expr::True), Box::new(Expr::False))),
                Box::new(Expr::False)
            ))
        );
    }

    /// Malformed text is an error with a position, never a panic.
    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "",
            "field",
            r#"field "a""#,
            r#"field "a"="#,
            r#""a"="b" and"#,
            "(true",
            "true)",
            r#"field "a"="b"#,
            "maybe",
            r#"name_label="x""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    /// Evaluation compares texts and combines with the boolean operators.
    #[test]
    fn eval_compares_field_text() {
        let expr = parse(r#"field "name_label"="x" and not field "uuid"="u1""#).expect("valid");
        let row = |uuid: &'static str| {
            move |f: &str| match f {
                "name_label" => "x".to_owned(),
                "uuid" => uuid.to_owned(),
                _ => String::new(),
            }
        };
        assert!(expr.eval(&row("u2")));
        assert!(!expr.eval(&row("u1")));
        assert_eq!(expr.fields(), ["name_label", "uuid"]);
    }
}
