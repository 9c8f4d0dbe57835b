//! Conditions on a task's input, as routes write them:
//!
//! ```text
//! input.risk == 'high'
//! input.pages > 20 and not input.draft
//! (input.payer == "Aetna" or input.payer == "Cigna") and input.urgent
//! ```
//!
//! A path (`input.a.b`) alone is true when the field is present and neither
//! null nor false. `==` and `!=` compare any JSON values (numbers by value);
//! `<`, `<=`, `>`, `>=` compare two numbers or two strings and are false for
//! anything else, as is every comparison with a missing field but `!=`.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Or(Box<Condition>, Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare(Operand, Op, Operand),
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Field names under `input`.
    Path(Vec<String>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A problem in a condition: where (a byte offset into it) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: text.len(),
        };
        let c = p.or()?;
        if let Some(t) = p.peek() {
            return Err(p.error_at(t.offset, format!("unexpected {}", t.kind.show())));
        }
        Ok(c)
    }

    /// Whether the condition holds for a task's input.
    pub fn eval(&self, input: &Value) -> bool {
        match self {
            Condition::Or(a, b) => a.eval(input) || b.eval(input),
            Condition::And(a, b) => a.eval(input) && b.eval(input),
            Condition::Not(c) => !c.eval(input),
            Condition::Truthy(o) => !matches!(
                o.value(input),
                None | Some(Value::Null | Value::Bool(false))
            ),
            Condition::Compare(a, op, b) => compare(a.value(input), *op, b.value(input)),
        }
    }
}

impl Operand {
    fn value<'a>(&'a self, input: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Literal(v) => Some(v),
            Operand::Path(fields) => fields.iter().try_fold(input, |v, f| v.get(f)),
        }
    }
}

fn compare(a: Option<&Value>, op: Op, b: Option<&Value>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return op == Op::Ne;
    };
    let equal = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    };
    let order = match (a, b) {
        (Value::Number(_), Value::Number(_)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        Op::Lt => order == Some(Ordering::Less),
        Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Path(Vec<String>),
    Literal(Value),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Kind {
    fn show(&self) -> String {
        match self {
            Kind::Path(p) => format!("`input.{}`", p.join(".")),
            Kind::Literal(v) => format!("`{v}`"),
            Kind::Op(op) => format!("`{}`", op_text(*op)),
            Kind::And => "`and`".into(),
            Kind::Or => "`or`".into(),
            Kind::Not => "`not`".into(),
            Kind::Open => "`(`".into(),
            Kind::Close => "`)`".into(),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    offset: usize,
}

fn err(offset: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        offset,
        message: message.into(),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ConditionError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                i += if two { 2 } else { 1 };
                Kind::Op(match (c, two) {
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    (b'<', true) => Op::Le,
                    (b'>', true) => Op::Ge,
                    (b'<', false) => Op::Lt,
                    (b'>', false) => Op::Gt,
                    (b'=', false) => return Err(err(start, "`=` is not a comparison; write `==`")),
                    _ => {
                        return Err(err(
                            start,
                            "`!` alone is not an operator; write `!=`, or `not` to negate",
                        ));
                    }
                })
            }
            b'\'' | b'"' => {
                let close = text[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| err(start, "the string is not closed"))?;
                let s = &text[i + 1..i + 1 + close];
                i += close + 2;
                Kind::Literal(Value::String(s.to_string()))
            }
            b'0'..=b'9' | b'-' | b'.' => {
                while i < bytes.len()
                    && matches!(
                        bytes[i],
                        b'0'..=b'9' | b'-' | b'.' | b'e' | b'E' | b'+' | b'_'
                    )
                {
                    i += 1;
                }
                let word = text[start..i].replace('_', "");
                let n: f64 = word
                    .parse()
                    .map_err(|_| err(start, format!("`{}` is not a number", &text[start..i])))?;
                let v = if n.fract() == 0.0 && n.abs() < 9e15 && !word.contains(['.', 'e', 'E']) {
                    Value::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n)
                        .map(Value::Number)
                        .ok_or_else(|| err(start, "the number is out of range"))?
                };
                Kind::Literal(v)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
                {
                    i += 1;
                }
                let word = &text[start..i];
                match word {
                    "and" => Kind::And,
                    "or" => Kind::Or,
                    "not" => Kind::Not,
                    "true" => Kind::Literal(Value::Bool(true)),
                    "false" => Kind::Literal(Value::Bool(false)),
                    "null" => Kind::Literal(Value::Null),
                    _ => {
                        let mut parts = word.split('.');
                        if parts.next() != Some("input") {
                            return Err(err(
                                start,
                                format!("unknown name `{word}`: fields are written input.NAME"),
                            ));
                        }
                        let fields: Vec<String> = parts.map(str::to_string).collect();
                        if fields.is_empty() || fields.iter().any(String::is_empty) {
                            return Err(err(
                                start,
                                format!("`{word}` names no field: write input.NAME"),
                            ));
                        }
                        Kind::Path(fields)
                    }
                }
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected `{ch}`")));
            }
        };
        out.push(Token {
            kind,
            offset: start,
        });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next_if(&mut self, want: &Kind) -> bool {
        if self.peek().is_some_and(|t| &t.kind == want) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error_at(&self, offset: usize, message: String) -> ConditionError {
        err(offset, message)
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.and()?;
        while self.next_if(&Kind::Or) {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.not()?;
        while self.next_if(&Kind::And) {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, ConditionError> {
        if self.next_if(&Kind::Not) {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, ConditionError> {
        if self.next_if(&Kind::Open) {
            let inner = self.or()?;
            if !self.next_if(&Kind::Close) {
                let at = self.peek().map_or(self.end, |t| t.offset);
                return Err(self.error_at(at, "expected `)`".into()));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        if let Some(Token {
            kind: Kind::Op(op), ..
        }) = self.peek().cloned()
        {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, op, right));
        }
        Ok(Condition::Truthy(left))
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        match self.peek().cloned() {
            Some(Token {
                kind: Kind::Path(p),
                ..
            }) => {
                self.pos += 1;
                Ok(Operand::Path(p))
            }
            Some(Token {
                kind: Kind::Literal(v),
                ..
            }) => {
                self.pos += 1;
                Ok(Operand::Literal(v))
            }
            Some(t) => Err(self.error_at(
                t.offset,
                format!("expected a field or a value, found {}", t.kind.show()),
            )),
            None => Err(self.error_at(self.end, "the condition ends too soon".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(cond: &str, input: Value) -> bool {
        Condition::parse(cond).unwrap().eval(&input)
    }

    #[test]
    fn comparisons_of_strings_numbers_and_paths() {
        let input = json!({"risk": "high", "pages": 30, "ratio": 0.5, "meta": {"lang": "de"}, "draft": false});
        assert!(holds("input.risk == 'high'", input.clone()));
        assert!(holds("input.risk != \"low\"", input.clone()));
        assert!(holds("input.pages > 20", input.clone()));
        assert!(holds("input.pages >= 30.0", input.clone()));
        assert!(!holds("input.pages < 30", input.clone()));
        assert!(holds("input.ratio <= 0.5", input.clone()));
        assert!(holds("input.meta.lang == 'de'", input.clone()));
        assert!(!holds("input.draft", input.clone()));
        assert!(holds("input.risk", input.clone()));
        assert!(!holds("input.missing", input.clone()));
        assert!(!holds("input.missing == 'x'", input.clone()));
        assert!(holds("input.missing != 'x'", input.clone()));
        assert!(!holds("input.risk > 5", input));
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_and_parentheses_work() {
        let input = json!({"a": 1, "b": 2});
        assert!(holds(
            "input.a == 1 or input.b == 9 and input.a == 9",
            input.clone()
        ));
        assert!(!holds(
            "(input.a == 1 or input.b == 9) and input.a == 9",
            input.clone()
        ));
        assert!(holds("not input.c and input.b == 2", input.clone()));
        assert!(holds("not (input.a == 2)", input));
    }

    #[test]
    fn problems_say_where() {
        let e = Condition::parse("input.risk = 'high'").unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("write `==`"));
        let e = Condition::parse("risk == 'high'").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("input.NAME"), "{}", e.message);
        let e = Condition::parse("input.risk == 'high").unwrap_err();
        assert_eq!(e.offset, 14);
        let e = Condition::parse("input.a ==").unwrap_err();
        assert_eq!(e.offset, 10);
        let e = Condition::parse("(input.a").unwrap_err();
        assert!(e.message.contains("`)`"));
        let e = Condition::parse("input.a input.b").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(Condition::parse("").is_err());
    }
}
