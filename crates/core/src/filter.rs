//! SailPoint's filter grammar (CONTRACT §6) for PAT lists: a tokenizer and a recursive-descent
//! parser that yield a typed tree of only the fields and operators patd supports.
//!
//! ```text
//! expr       := and_expr ("or" and_expr)*
//! and_expr   := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := field op value | field "in" "(" value ("," value)* ")" | field ("pr" | "isnull")
//! value      := "string" (\" and \\ escapes) | date-time | true | false
//! ```
//! A date-time is read by `patd_proto::timestamp::parse`, like every other date-time a client
//! sends: RFC 3339, with the offset optional (UTC) and 0 to 9 fractional digits.
//! Keywords and operators are case-insensitive; field names are not.

use crate::Rule;
use patd_proto::timestamp;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A parsed filter over comparisons `C` (by default, a PAT list's). `And` and `Or` are binary
/// and left-associative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter<C = Comparison> {
    And(Box<Filter<C>>, Box<Filter<C>>),
    Or(Box<Filter<C>>, Box<Filter<C>>),
    Not(Box<Filter<C>>),
    Compare(C),
}

/// The comparisons one collection supports: its fields, and how each reads its operator and
/// values. The grammar around them is shared.
pub trait Comparable: Sized {
    /// The field names the collection knows, so that an unknown one is named as such.
    const FIELDS: &'static [&'static str];
    /// The comparison `field op …`, reading its values from `values`; `Ok(None)` when the field
    /// is known but takes no such operator.
    fn read(field: &str, op: &str, values: &mut Values<'_>) -> Result<Option<Self>, Rule>;
}

/// The values after a field and its operator, for [`Comparable::read`].
pub struct Values<'p> {
    parser: &'p mut Parser,
}

impl Values<'_> {
    /// A quoted string.
    pub fn string(&mut self) -> Result<String, Rule> {
        self.parser.string_value()
    }

    /// `("a", "b", …)`: one or more quoted strings.
    pub fn string_list(&mut self) -> Result<Vec<String>, Rule> {
        self.parser.expect(Token::Open, "'(' after 'in'")?;
        let mut values = vec![self.parser.string_value()?];
        while self.parser.peek() == Some(&Token::Comma) {
            self.parser.next();
            values.push(self.parser.string_value()?);
        }
        self.parser
            .expect(Token::Close, "')' after the 'in' list")?;
        Ok(values)
    }

    /// A date-time, quoted or not, for `field`.
    pub fn date(&mut self, field: &str) -> Result<OffsetDateTime, Rule> {
        self.parser.date_value(field)
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, what: &str) -> Result<bool, Rule> {
        match self.parser.next() {
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("true") => Ok(true),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(filter_error(format!("{what} takes true or false"))),
        }
    }
}

/// A time comparison operator, from its keyword.
pub fn time_op(op: &str) -> Option<TimeOp> {
    match op {
        "gt" => Some(TimeOp::Gt),
        "ge" => Some(TimeOp::Ge),
        "lt" => Some(TimeOp::Lt),
        "le" => Some(TimeOp::Le),
        _ => None,
    }
}

/// One supported comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// `created`, `lastUsed` or `expirationDate` against a date-time.
    Time {
        field: TimeField,
        op: TimeOp,
        value: OffsetDateTime,
    },
    /// `lastUsed` or `expirationDate` with `pr` (present) or `isnull`.
    Presence {
        field: TimeField,
        present: bool,
    },
    Name(NameMatch),
    Managed(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    Created,
    LastUsed,
    ExpirationDate,
}

impl TimeField {
    pub fn name(self) -> &'static str {
        match self {
            TimeField::Created => "created",
            TimeField::LastUsed => "lastUsed",
            TimeField::ExpirationDate => "expirationDate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl TimeOp {
    pub fn keyword(self) -> &'static str {
        match self {
            TimeOp::Gt => "gt",
            TimeOp::Ge => "ge",
            TimeOp::Lt => "lt",
            TimeOp::Le => "le",
        }
    }
}

/// Comparisons on `name`; all exact and case-sensitive, like name uniqueness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    Eq(String),
    Contains(String),
    StartsWith(String),
    In(Vec<String>),
}

/// The longest filter accepted, in bytes, and the deepest nesting: bounds on the work one request
/// can ask of the parser and the database.
pub const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

impl<C: Comparable> Filter<C> {
    pub fn parse(input: &str) -> Result<Filter<C>, Rule> {
        if input.len() > MAX_FILTER_LEN {
            return Err(filter_error(format!(
                "the filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let tokens = tokenize(input)?;
        let mut parser = Parser {
            tokens,
            position: 0,
            depth: 0,
        };
        let filter = parser.expr()?;
        match parser.peek() {
            None => Ok(filter),
            Some(token) => Err(filter_error(format!("unexpected {token} after the filter"))),
        }
    }
}

/// A filter error with `message`.
pub fn filter_error(message: impl Into<String>) -> Rule {
    Rule::Filter(message.into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(word) => write!(f, "'{word}'"),
            Token::Str(text) => write!(f, "string {}", quote(text)),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, Rule> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(filter_error("a string is not closed")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => text.push(escaped),
                            Some(other) => {
                                return Err(filter_error(format!(
                                    "unknown escape '\\{other}' in a string"
                                )))
                            }
                            None => return Err(filter_error("a string is not closed")),
                        },
                        // PostgreSQL's `text` cannot hold U+0000, and no name, scope entry or id
                        // holds a control character, so none can match: refused, not quoted.
                        Some(other) if other.is_control() => {
                            return Err(filter_error(
                                "a string must not contain control characters",
                            ))
                        }
                        Some(other) => text.push(other),
                    }
                }
                tokens.push(Token::Str(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, want: Token, what: &str) -> Result<(), Rule> {
        match self.next() {
            Some(token) if token == want => Ok(()),
            Some(token) => Err(filter_error(format!("expected {what}, found {token}"))),
            None => Err(filter_error(format!(
                "expected {what} at the end of the filter"
            ))),
        }
    }

    fn expr<C: Comparable>(&mut self) -> Result<Filter<C>, Rule> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(filter_error(format!(
                "the filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut left = self.and_expr()?;
        while self.peek_keyword("or") {
            self.next();
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and_expr<C: Comparable>(&mut self) -> Result<Filter<C>, Rule> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary<C: Comparable>(&mut self) -> Result<Filter<C>, Rule> {
        if self.peek_keyword("not") {
            self.next();
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(filter_error(format!(
                    "the filter nests deeper than {MAX_DEPTH} levels"
                )));
            }
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.next();
            let inner = self.expr()?;
            self.expect(Token::Close, "')'")?;
            return Ok(inner);
        }
        self.comparison().map(Filter::Compare)
    }

    fn comparison<C: Comparable>(&mut self) -> Result<C, Rule> {
        let field = match self.next() {
            Some(Token::Word(word)) => word,
            Some(token) => {
                return Err(filter_error(format!(
                    "expected a field name, found {token}"
                )))
            }
            None => {
                return Err(filter_error(
                    "expected a field name at the end of the filter",
                ))
            }
        };
        let op = match self.next() {
            Some(Token::Word(word)) => word.to_ascii_lowercase(),
            Some(token) => {
                return Err(filter_error(format!(
                    "expected an operator after '{field}', found {token}"
                )))
            }
            None => {
                return Err(filter_error(format!(
                    "expected an operator after '{field}'"
                )))
            }
        };
        if !C::FIELDS.contains(&field.as_str()) {
            return Err(filter_error(format!(
                "field '{field}' is not supported in filters"
            )));
        }
        match C::read(&field, &op, &mut Values { parser: self })? {
            Some(comparison) => Ok(comparison),
            None if KNOWN_OPERATORS.contains(&op.as_str()) => Err(filter_error(format!(
                "operator '{op}' is not supported for field '{field}'"
            ))),
            None => Err(filter_error(format!("unknown operator '{op}'"))),
        }
    }

    fn string_value(&mut self) -> Result<String, Rule> {
        match self.next() {
            Some(Token::Str(text)) => Ok(text),
            Some(token) => Err(filter_error(format!(
                "expected a quoted string, found {token}"
            ))),
            None => Err(filter_error(
                "expected a quoted string at the end of the filter",
            )),
        }
    }

    fn date_value(&mut self, field: &str) -> Result<OffsetDateTime, Rule> {
        let raw = match self.next() {
            Some(Token::Word(word) | Token::Str(word)) => word,
            Some(token) => {
                return Err(filter_error(format!("expected a date-time, found {token}")))
            }
            None => {
                return Err(filter_error(
                    "expected a date-time at the end of the filter",
                ))
            }
        };
        timestamp::parse(&raw).map_err(|err| {
            filter_error(format!(
                "'{raw}' is not an RFC 3339 date-time for field '{field}': {err}"
            ))
        })
    }
}

impl Comparable for Comparison {
    const FIELDS: &'static [&'static str] =
        &["name", "managed", "created", "lastUsed", "expirationDate"];

    fn read(field: &str, op: &str, values: &mut Values<'_>) -> Result<Option<Comparison>, Rule> {
        let time_field = match field {
            "created" => Some(TimeField::Created),
            "lastUsed" => Some(TimeField::LastUsed),
            "expirationDate" => Some(TimeField::ExpirationDate),
            _ => None,
        };
        let comparison = match (field, op, time_field, time_op(op)) {
            (_, _, Some(field), Some(op)) => Comparison::Time {
                field,
                op,
                value: values.date(field.name())?,
            },
            ("lastUsed" | "expirationDate", "pr" | "isnull", Some(field), _) => {
                Comparison::Presence {
                    field,
                    present: op == "pr",
                }
            }
            ("name", "eq", ..) => Comparison::Name(NameMatch::Eq(values.string()?)),
            ("name", "co", ..) => Comparison::Name(NameMatch::Contains(values.string()?)),
            ("name", "sw", ..) => Comparison::Name(NameMatch::StartsWith(values.string()?)),
            ("name", "in", ..) => Comparison::Name(NameMatch::In(values.string_list()?)),
            ("managed", "eq", ..) => Comparison::Managed(values.boolean("managed eq")?),
            _ => return Ok(None),
        };
        Ok(Some(comparison))
    }
}

const KNOWN_OPERATORS: [&str; 11] = [
    "eq", "ne", "gt", "ge", "lt", "le", "co", "sw", "in", "pr", "isnull",
];

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Prints a filter so that parsing the text gives the same tree back. Compound operands are
/// always parenthesized.
impl<C: fmt::Display> fmt::Display for Filter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(left, right) => write!(f, "({left} and {right})"),
            Filter::Or(left, right) => write!(f, "({left} or {right})"),
            Filter::Not(inner) => write!(f, "not {inner}"),
            Filter::Compare(comparison) => write!(f, "{comparison}"),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Comparison::Time { field, op, value } => {
                let text = value.format(&Rfc3339).map_err(|_| fmt::Error)?;
                write!(f, "{} {} {text}", field.name(), op.keyword())
            }
            Comparison::Presence { field, present } => {
                write!(
                    f,
                    "{} {}",
                    field.name(),
                    if *present { "pr" } else { "isnull" }
                )
            }
            Comparison::Name(NameMatch::Eq(value)) => write!(f, "name eq {}", quote(value)),
            Comparison::Name(NameMatch::Contains(value)) => write!(f, "name co {}", quote(value)),
            Comparison::Name(NameMatch::StartsWith(value)) => write!(f, "name sw {}", quote(value)),
            Comparison::Name(NameMatch::In(values)) => {
                let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
                write!(f, "name in ({})", list.join(", "))
            }
            Comparison::Managed(value) => write!(f, "managed eq {value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn name_eq(value: &str) -> Filter {
        Filter::Compare(Comparison::Name(NameMatch::Eq(value.to_owned())))
    }

    fn check(input: &str, want: Filter) {
        assert_eq!(Filter::<Comparison>::parse(input), Ok(want), "{input}");
    }

    fn check_error(input: &str, want: &str) {
        match Filter::<Comparison>::parse(input) {
            Err(Rule::Filter(message)) => assert!(message.contains(want), "{input}: {message}"),
            other => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let a = || name_eq("a");
        let b = || name_eq("b");
        let c = || name_eq("c");
        use Filter::*;
        check(
            r#"name eq "a" or name eq "b" and name eq "c""#,
            Or(Box::new(a()), Box::new(And(Box::new(b()), Box::new(c())))),
        );
        check(
            r#"(name eq "a" or name eq "b") and name eq "c""#,
            And(Box::new(Or(Box::new(a()), Box::new(b()))), Box::new(c())),
        );
        check(
            r#"not name eq "a" and name eq "b""#,
            And(Box::new(Not(Box::new(a()))), Box::new(b())),
        );
        check(
            r#"not (name eq "a" and name eq "b")"#,
            Not(Box::new(And(Box::new(a()), Box::new(b())))),
        );
        check(r#"NAME eq "a""#.replace("NAME", "name").as_str(), a());
        check(
            r#"name EQ "a" OR name eq "b""#,
            Or(Box::new(a()), Box::new(b())),
        );
    }

    #[test]
    fn values_and_operators() {
        check(
            r#"name eq "say \"hi\" \\ bye""#,
            name_eq(r#"say "hi" \ bye"#),
        );
        check(
            "lastUsed le 2018-06-25T20:22:28.104Z",
            Filter::Compare(Comparison::Time {
                field: TimeField::LastUsed,
                op: TimeOp::Le,
                value: datetime!(2018-06-25 20:22:28.104 UTC),
            }),
        );
        check(
            "created gt 2018-06-25T22:22:28+02:00",
            Filter::Compare(Comparison::Time {
                field: TimeField::Created,
                op: TimeOp::Gt,
                value: datetime!(2018-06-25 20:22:28 UTC),
            }),
        );
        check(
            "expirationDate gt 2026-12-08T10:00:00.1234567",
            Filter::Compare(Comparison::Time {
                field: TimeField::ExpirationDate,
                op: TimeOp::Gt,
                value: datetime!(2026-12-08 10:00:00.1234567 UTC),
            }),
        );
        check(
            "lastUsed isnull",
            Filter::Compare(Comparison::Presence {
                field: TimeField::LastUsed,
                present: false,
            }),
        );
        check(
            "expirationDate pr",
            Filter::Compare(Comparison::Presence {
                field: TimeField::ExpirationDate,
                present: true,
            }),
        );
        check(
            "managed eq true",
            Filter::Compare(Comparison::Managed(true)),
        );
        check(
            r#"name in ("a","b" , "c")"#,
            Filter::Compare(Comparison::Name(NameMatch::In(vec![
                "a".into(),
                "b".into(),
                "c".into(),
            ]))),
        );
        check(
            r#"name co "x""#,
            Filter::Compare(Comparison::Name(NameMatch::Contains("x".into()))),
        );
        check(
            r#"name sw "x""#,
            Filter::Compare(Comparison::Name(NameMatch::StartsWith("x".into()))),
        );
    }

    #[test]
    fn unsupported_fields_and_operators_are_named() {
        check_error(r#"owner eq "x""#, "field 'owner' is not supported");
        check_error(r#"id eq "x""#, "field 'id' is not supported");
        check_error(
            r#"name ne "x""#,
            "operator 'ne' is not supported for field 'name'",
        );
        check_error(
            "created eq 2018-06-25T20:22:28Z",
            "operator 'eq' is not supported for field 'created'",
        );
        check_error(
            "created isnull",
            "operator 'isnull' is not supported for field 'created'",
        );
        check_error("lastUsed like 5", "unknown operator 'like'");
        check_error("managed eq maybe", "managed eq takes true or false");
        check_error(
            "lastUsed le yesterday",
            "'yesterday' is not an RFC 3339 date-time",
        );
        check_error(
            "created lt 2026-12-08T10:00:00.1234567890",
            "not an RFC 3339 date-time for field 'created': at most 9 fractional digits",
        );
        check_error(r#"name eq "open"#, "a string is not closed");
        check_error(r#"name eq "a\n""#, "unknown escape");
        for control in ['\0', '\t', '\n', '\u{7f}', '\u{85}'] {
            for filter in [
                format!("name eq \"a{control}\""),
                format!("name co \"{control}\""),
                format!("name sw \"{control}b\""),
                format!("name in (\"a\", \"{control}\")"),
            ] {
                check_error(&filter, "a string must not contain control characters");
            }
        }
        check_error(r#"name eq "a" and"#, "expected a field name");
        check_error(r#"(name eq "a""#, "expected ')'");
        check_error(r#"name eq "a" name eq "b""#, "unexpected 'name'");
        check_error("", "expected a field name");
        check_error(
            &format!("{}name eq \"a\"{}", "(".repeat(40), ")".repeat(40)),
            "nests deeper",
        );
        check_error(&"not ".repeat(40), "nests deeper");
    }
}
